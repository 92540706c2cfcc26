"""Plumbing for the labs: data, the training loop, plots and summary capture.

Students can read all of it; it never holds a graded answer.

The names below load on first use (``from labkit import fit`` imports ``labkit.train``
then), so that a tool needing only ``labkit.i18n`` (the grader's nbgrader runs, the
translation commands) does not import torch and matplotlib for nothing.
"""

from __future__ import annotations

import importlib
from typing import Any

# The kit's names, by the module that defines them.
_MODULES = {
    "config": ("RunConfig", "default_device", "seed_everything"),
    "data": ("ImageData", "as_dataset", "load_cifar10", "load_fashion_mnist", "load_mnist"),
    "plots": (
        "plot_confusion_matrix",
        "plot_error_curves",
        "plot_histories",
        "plot_history",
        "plot_tradeoff",
        "show_images",
        "show_predictions",
        "show_samples",
    ),
    "profile": ("count_flops", "time_forward"),
    "summary": ("capture_summary", "count_parameters", "record_outputs"),
    "train": ("History", "evaluate", "fit"),
}
_HOMES = {name: module for module, names in _MODULES.items() for name in names}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"labkit.{home}"), name)
    globals()[name] = value  # bound once: later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
