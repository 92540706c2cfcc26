"""Plumbing for the labs: data, the training loop, plots and summary capture.

Students can read all of it; it never holds a graded answer.
"""

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
