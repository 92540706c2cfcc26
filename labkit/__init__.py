"""Plumbing for the labs: data, the training loop, plots and summary capture.

Students can read all of it; it never holds a graded answer.

The names below load on first use (``from labkit import fit`` imports ``labkit.train``
then), so that a tool needing only ``labkit.i18n`` (the grader's nbgrader runs, the
translation commands) does not import torch and matplotlib for nothing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from labkit.config import RunConfig, default_device, seed_everything
    from labkit.data import ImageData, as_dataset, load_cifar10, load_fashion_mnist, load_mnist
    from labkit.plots import (
        plot_confusion_matrix,
        plot_error_curves,
        plot_histories,
        plot_history,
        plot_tradeoff,
        show_images,
        show_predictions,
        show_samples,
    )
    from labkit.profile import count_flops, time_forward
    from labkit.summary import capture_summary, count_parameters, record_outputs
    from labkit.train import History, evaluate, fit

__all__ = [
    "History",
    "ImageData",
    "RunConfig",
    "as_dataset",
    "capture_summary",
    "count_flops",
    "count_parameters",
    "default_device",
    "evaluate",
    "fit",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist",
    "plot_confusion_matrix",
    "plot_error_curves",
    "plot_histories",
    "plot_history",
    "plot_tradeoff",
    "record_outputs",
    "seed_everything",
    "show_images",
    "show_predictions",
    "show_samples",
    "time_forward",
]
# the module of the kit that defines each name above
_HOMES = {
    **dict.fromkeys(("RunConfig", "default_device", "seed_everything"), "config"),
    **dict.fromkeys(
        ("ImageData", "as_dataset", "load_cifar10", "load_fashion_mnist", "load_mnist"), "data"
    ),
    **dict.fromkeys(
        (
            "plot_confusion_matrix",
            "plot_error_curves",
            "plot_histories",
            "plot_history",
            "plot_tradeoff",
            "show_images",
            "show_predictions",
            "show_samples",
        ),
        "plots",
    ),
    **dict.fromkeys(("count_flops", "time_forward"), "profile"),
    **dict.fromkeys(("capture_summary", "count_parameters", "record_outputs"), "summary"),
    **dict.fromkeys(("History", "evaluate", "fit"), "train"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"labkit.{home}"), name)
    globals()[name] = value  # bound once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
