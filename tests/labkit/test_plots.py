"""Tests for labkit.plots.show_samples: which images it shows, and with which titles."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import torch

from labkit.data import ImageData
from labkit.plots import show_samples


def make_data(labels: list[int], channels: int = 3) -> ImageData:
    """Image i is filled with the value i, so a shown image tells which one it was."""
    n = len(labels)
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, channels, 4, 4)
    return ImageData(
        name="tiny",
        train_images=images.clone(),
        train_labels=torch.tensor(labels),
        test_images=images[:2].clone(),
        test_labels=torch.tensor(labels[:2]),
        classes=("ant", "bee", "cat"),
        mean=(0.5,) * channels,
        std=(0.25,) * channels,
        source="memory",
    )


def shown(fig) -> list[tuple[str, int]]:
    """(title, pixel value) of every panel that shows an image."""
    return [
        (ax.get_title(), int(np.asarray(ax.images[0].get_array()).flat[0]))
        for ax in fig.axes
        if ax.images
    ]


def test_show_samples_takes_each_class_in_turn() -> None:
    data = make_data([2, 0, 0, 1, 2, 0, 1])
    fig = show_samples(data, count=5)
    # ant: images 1, 2, 5; bee: 3, 6; cat: 0, 4 -> ant, bee, cat, ant, bee
    assert shown(fig) == [("ant", 1), ("bee", 3), ("cat", 0), ("ant", 2), ("bee", 6)]


def test_show_samples_skips_classes_that_ran_out_and_shows_grey() -> None:
    data = make_data([0, 0, 0, 1], channels=1)
    fig = show_samples(data, count=6, columns=4)
    assert shown(fig) == [("ant", 0), ("bee", 3), ("ant", 1), ("ant", 2)]
    assert all(ax.images[0].get_cmap().name == "gray" for ax in fig.axes if ax.images)
    assert shown(show_samples(data, count=3, train=False)) == [("ant", 0), ("ant", 1)]


def test_confusion_matrix_counts_true_rows_and_predicted_columns():
    from labkit.plots import confusion_matrix

    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    predictions = torch.tensor([0, 1, 1, 2, 0, 2])
    counts = confusion_matrix(predictions, labels, 3)
    assert counts.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]
    assert counts.dtype == torch.int64


def test_plot_confusion_matrix_titles_the_right_count():
    from labkit.plots import plot_confusion_matrix

    fig = plot_confusion_matrix(
        torch.tensor([0, 1, 2, 2]), torch.tensor([0, 1, 1, 2]), ("a", "b", "c")
    )
    assert "3 of 4 right" in fig.axes[0].get_title()
    assert [t.get_text() for t in fig.axes[0].texts] == ["1"] * 4  # the non-zero cells


def test_plot_tradeoff_labels_each_model_and_sizes_by_parameters():
    import pytest

    from labkit.plots import plot_tradeoff

    fig = plot_tradeoff(["small", "big"], [1e6, 1e9], [0.2, 0.4], [50_000, 100_000_000], chance=0.1)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.texts] == ["small", "big"]
    assert ax.get_xscale() == "log"
    sizes = [c.get_sizes()[0] for c in ax.collections[:2]]
    assert sizes[1] == 1020 and 20 <= sizes[0] < 21  # area by parameters, never invisible
    assert "chance" in [t.get_text() for t in ax.get_legend().get_texts()]
    with pytest.raises(ValueError, match="one value per model"):
        plot_tradeoff(["a"], [1.0, 2.0], [0.5], [10])


def _history(accuracies: list[tuple[float, float]], losses: list[tuple[float, float]], steps=4):
    from labkit.train import EpochStats, History

    history = History(device="cpu", num_train=8, num_test=4, num_classes=4)
    for epoch, ((train_acc, test_acc), (train_loss, test_loss)) in enumerate(
        zip(accuracies, losses, strict=True), start=1
    ):
        history.epochs.append(EpochStats(epoch, train_loss, train_acc, test_loss, test_acc, 1.0))
        history.step_losses += [train_loss] * steps
    return history


def test_plot_histories_puts_every_run_on_shared_axes():
    from labkit.plots import plot_histories

    runs = {
        "ResNet-18": _history([(0.5, 0.4), (0.7, 0.6)], [(1.5, 1.6), (0.9, 1.1)]),
        "ResNet-50": _history([(0.3, 0.3), (0.4, 0.35)], [(3.0, 2.0), (2.2, 2.1)]),
    }
    fig = plot_histories(runs, title="CIFAR-10")
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["Train accuracy", "Test accuracy", "Train loss", "Test loss"]
    for ax in fig.axes:
        assert [line.get_label() for line in ax.lines[:2]] == ["ResNet-18", "ResNet-50"]
    train_acc, test_acc, train_loss, test_loss = fig.axes
    assert list(train_acc.lines[1].get_ydata()) == [0.3, 0.4]
    assert list(test_loss.lines[0].get_ydata()) == [1.6, 1.1]
    assert train_acc.get_ylim() == test_acc.get_ylim() == (0, 1)
    assert train_loss.get_ylim() == test_loss.get_ylim() == (0, 3.0 * 1.05)
    assert fig._suptitle.get_text() == "CIFAR-10"


def test_plot_error_curves_draws_error_in_percent_against_iterations():
    from labkit.plots import plot_error_curves

    runs = {"plain-20": _history([(0.5, 0.4), (0.75, 0.6)], [(1.0, 1.0), (0.5, 0.5)], steps=10)}
    ax = plot_error_curves(runs).axes[0]
    train, test = ax.lines[:2]
    assert list(train.get_xdata()) == [10, 20]  # an epoch is 10 iterations
    assert list(train.get_ydata()) == [50, 25] and train.get_linestyle() == "--"
    assert list(test.get_ydata()) == pytest.approx([60, 40]) and test.get_linewidth() == 2
    assert ax.get_xlabel() == "iteration" and ax.get_ylabel() == "error (%)"


def test_plot_histories_needs_a_run():
    from labkit.plots import plot_histories

    with pytest.raises(ValueError, match="at least one History"):
        plot_histories({})
