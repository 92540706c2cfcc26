"""Figures the labs show: training curves, labelled image grids, model comparisons.

In Korean (``LABKIT_LANG=ko``) their text is Korean, drawn with a Korean font
(``use_hangul_font``): an installed one (Debian's ``fonts-nanum``, Noto CJK), else the
NanumGothic that the ``koreanize-matplotlib`` package ships (Colab has no Korean font).
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib import font_manager
from torch import nn

from labkit.data import ImageData
from labkit.i18n import _, language
from labkit.train import History, predict

__all__ = [
    "HANGUL_FONTS",
    "confusion_matrix",
    "hangul_font",
    "plot_confusion_matrix",
    "plot_error_curves",
    "plot_histories",
    "plot_history",
    "plot_tradeoff",
    "show_images",
    "show_predictions",
    "show_samples",
    "use_hangul_font",
]

# Korean fonts, the first installed wins: Debian's fonts-nanum, Noto CJK, then the
# fonts of Windows and macOS.
HANGUL_FONTS = (
    "NanumGothic",
    "Noto Sans CJK KR",
    "Noto Sans KR",
    "Noto Sans CJK JP",
    "UnDotum",
    "Malgun Gothic",
    "AppleGothic",
)


def hangul_font() -> str | None:
    """The name of a font family that has Hangul, registering koreanize-matplotlib's
    NanumGothic when no system font has it; None when there is none at all."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    for family in HANGUL_FONTS:
        if family in installed:
            return family
    spec = importlib.util.find_spec("koreanize_matplotlib")  # found, not imported
    if spec is None or spec.origin is None:
        return None
    for path in sorted((Path(spec.origin).parent / "fonts").glob("NanumGothic*.ttf")):
        font_manager.fontManager.addfont(str(path))
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return "NanumGothic" if "NanumGothic" in installed else None


def use_hangul_font() -> str | None:
    """Draw text with a Hangul font from now on (the family's name; None: none found)."""
    family = hangul_font()
    if family is not None:
        others = [name for name in plt.rcParams["font.sans-serif"] if name != family]
        plt.rcParams["font.family"] = "sans-serif"
        plt.rcParams["font.sans-serif"] = [family, *others]
        plt.rcParams["axes.unicode_minus"] = False  # the Hangul fonts lack U+2212
    return family


def _prepare() -> None:
    if language() == "ko":
        use_hangul_font()


def plot_history(history: History) -> plt.Figure:
    """Loss per step (with each epoch's mean) and accuracy per epoch."""
    _prepare()
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.5))
    steps = len(history.step_losses)
    ax_loss.plot(range(1, steps + 1), history.step_losses, lw=0.8, alpha=0.6, label=_("batch"))
    per_epoch = steps / max(len(history.epochs), 1)
    ends = [per_epoch * e.epoch for e in history.epochs]
    ax_loss.plot(ends, history.train_loss, "o-", label=_("epoch mean (train)"))
    ax_loss.plot(ends, [e.test_loss for e in history.epochs], "s--", label=_("test"))
    ax_loss.set(xlabel=_("step"), ylabel=_("cross-entropy loss"), title=_("Loss"))
    ax_loss.legend()

    epochs = [e.epoch for e in history.epochs]
    ax_acc.plot(epochs, [e.train_acc for e in history.epochs], "o-", label=_("train"))
    ax_acc.plot(epochs, history.test_acc, "s--", label=_("test"))
    ax_acc.axhline(1 / history.num_classes, color="grey", ls=":", label=_("chance"))
    ax_acc.set(xlabel=_("epoch"), ylabel=_("accuracy"), title=_("Accuracy"), xticks=epochs)
    ax_acc.set_ylim(0, 1)
    ax_acc.legend()
    fig.tight_layout()
    return fig


_METRICS = {  # History attribute of each panel: (title, y label)
    "train_acc": ("Train accuracy", "accuracy"),
    "test_acc": ("Test accuracy", "accuracy"),
    "train_loss": ("Train loss", "cross-entropy loss"),
    "test_loss": ("Test loss", "cross-entropy loss"),
}


def plot_histories(histories: Mapping[str, History], title: str | None = None) -> plt.Figure:
    """Several runs on one figure: train and test accuracy and loss per epoch, one line
    per run (labelled by its key), every panel of a kind on the same axes (accuracy
    panels share 0-1, loss panels share their range), so that runs compare at a glance."""
    if not histories:
        raise ValueError("plot_histories needs at least one History")
    fig, axes = plt.subplots(2, 2, figsize=(11, 7), sharex=True)
    losses = [v for h in histories.values() for e in h.epochs for v in (e.train_loss, e.test_loss)]
    top_loss = max((v for v in losses if math.isfinite(v)), default=1.0)
    for ax, (metric, (panel, ylabel)) in zip(axes.flat, _METRICS.items(), strict=True):
        for name, history in histories.items():
            epochs = [e.epoch for e in history.epochs]
            values = [getattr(e, metric) for e in history.epochs]
            ax.plot(epochs, values, "o-", ms=3, label=name)
        if metric.endswith("acc"):
            first = next(iter(histories.values()))
            ax.axhline(1 / first.num_classes, color="grey", ls=":", lw=1)
            ax.set_ylim(0, 1)
        else:
            ax.set_ylim(0, top_loss * 1.05)
        ax.set(title=panel, ylabel=ylabel)
        ax.grid(True, alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_error_curves(
    histories: Mapping[str, History], ax: plt.Axes | None = None, title: str | None = None
) -> plt.Figure:
    """Error (1 - accuracy, in %) against training iterations, as the ResNet paper draws
    it: thin dashed lines for training error, bold lines for test error, one colour per
    run. A point is an epoch's end; its training error is the epoch's running error."""
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5))
    for index, (name, history) in enumerate(histories.items()):
        color = f"C{index}"
        per_epoch = len(history.step_losses) / max(len(history.epochs), 1)
        steps = [per_epoch * e.epoch for e in history.epochs]
        train = [100 * (1 - e.train_acc) for e in history.epochs]
        test = [100 * (1 - e.test_acc) for e in history.epochs]
        ax.plot(steps, train, "--", lw=1, color=color)
        ax.plot(steps, test, "-", lw=2, color=color, label=name)
    ax.plot([], [], "k--", lw=1, label="train (dashed)")
    ax.plot([], [], "k-", lw=2, label="test (bold)")
    ax.set(xlabel="iteration", ylabel="error (%)", title=title or "Error against iterations")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def show_images(
    images: torch.Tensor,
    labels: torch.Tensor,
    classes: tuple[str, ...],
    predictions: torch.Tensor | None = None,
    columns: int = 8,
) -> plt.Figure:
    """A grid of uint8 images titled by class; with ``predictions``, "pred (true)"
    in green when right and red when wrong."""
    _prepare()
    n = len(images)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        image = images[i].permute(1, 2, 0).cpu().numpy()  # H x W x C
        grey = image.shape[-1] == 1
        ax.imshow(image[..., 0] if grey else image, cmap="gray" if grey else None)
        true = classes[int(labels[i])]
        if predictions is None:
            ax.set_title(true, fontsize=8)
        else:
            pred = classes[int(predictions[i])]
            color = "green" if pred == true else "red"
            ax.set_title(f"{pred}\n({true})", fontsize=8, color=color)
    fig.tight_layout()
    return fig


def show_samples(
    data: ImageData, count: int = 16, train: bool = True, columns: int = 8
) -> plt.Figure:
    """``count`` images titled by class, taking the classes in turn so that each one shows."""
    labels = data.train_labels if train else data.test_labels
    candidates = []  # (rank within its class, class, index): sorted, the classes take turns
    for c in range(data.num_classes):
        index = (labels == c).nonzero().squeeze(1)[:count].tolist()
        candidates += [(rank, c, i) for rank, i in enumerate(index)]
    index = [i for _, _, i in sorted(candidates)[:count]]
    images = (data.train_images if train else data.test_images)[index]
    return show_images(images, labels[index], data.classes, columns=min(columns, len(index)))


def show_predictions(model: nn.Module, data: ImageData, count: int = 16) -> plt.Figure:
    """``count`` test images, spread over the test split, with the model's predictions."""
    index = torch.linspace(0, len(data.test_labels) - 1, count).long()
    images = data.test_images[index]
    predictions = predict(model, images, data).argmax(1).cpu()
    return show_images(images, data.test_labels[index], data.classes, predictions)


def confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, num_classes: int
) -> torch.Tensor:
    """Counts, int64, num_classes x num_classes: row = true class, column = prediction."""
    predictions, labels = predictions.long().cpu(), labels.long().cpu()
    if predictions.shape != labels.shape:
        raise ValueError(
            f"predictions {tuple(predictions.shape)} and labels {tuple(labels.shape)} differ"
        )
    flat = labels * num_classes + predictions
    return torch.bincount(flat, minlength=num_classes**2).view(num_classes, num_classes)


def plot_confusion_matrix(
    predictions: torch.Tensor, labels: torch.Tensor, classes: tuple[str, ...]
) -> plt.Figure:
    """The confusion matrix with counts in the cells: the diagonal is what went right."""
    _prepare()
    counts = confusion_matrix(predictions, labels, len(classes))
    n = len(classes)
    fig, ax = plt.subplots(figsize=(0.5 * n + 2.5, 0.5 * n + 2))
    image = ax.imshow(counts.numpy(), cmap="Blues")
    fig.colorbar(image, ax=ax, fraction=0.046)
    ax.set(
        xticks=range(n),
        yticks=range(n),
        xticklabels=classes,
        yticklabels=classes,
        xlabel=_("predicted"),
        ylabel=_("true"),
        title=_("Confusion matrix ({right:,} of {total:,} right)").format(
            right=int(counts.diagonal().sum()), total=int(counts.sum())
        ),
    )
    ax.tick_params(axis="x", labelrotation=45)
    threshold = counts.max().item() / 2
    for (i, j), count in zip(
        ((i, j) for i in range(n) for j in range(n)), counts.flatten().tolist(), strict=True
    ):
        if count:
            color = "white" if count > threshold else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7, color=color)
    fig.tight_layout()
    return fig


def plot_tradeoff(
    names: Sequence[str],
    flops: Sequence[float],
    accuracy: Sequence[float],
    params: Sequence[int],
    *,
    chance: float | None = None,
    ax: plt.Axes | None = None,
) -> plt.Figure:
    """Accuracy against FLOPs per image (log scale), one labelled marker per model
    whose area grows with its parameters; ``chance`` draws the guessing line."""
    if not len(names) == len(flops) == len(accuracy) == len(params):
        raise ValueError(
            f"one value per model: {len(names)} names, {len(flops)} FLOPs, "
            f"{len(accuracy)} accuracies, {len(params)} parameter counts"
        )
    _prepare()
    if ax is None:
        ax = plt.subplots(figsize=(7, 4.5))[1]
    biggest = max(params, default=1)

    def area(count: float) -> float:
        return 20.0 + 1000.0 * count / biggest  # points^2; the smallest stay visible

    for name, x, y, count in zip(names, flops, accuracy, params, strict=True):
        ax.scatter(x, y, s=area(count), alpha=0.5, edgecolors="black")
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(7, 7), fontsize=8)
    if chance is not None:
        ax.axhline(chance, color="grey", ls=":", label=_("chance"))
    for count in (1e6, 1e7, biggest):  # the size legend
        if count <= biggest:
            label = _("{millions:,.0f}M parameters").format(millions=count / 1e6)
            ax.scatter([], [], s=area(count), alpha=0.5, edgecolors="black", color="grey",
                       label=label)  # fmt: skip
    ax.set_xscale("log")
    if len(flops):
        ax.set_xlim(min(flops) / 3, max(flops) * 3)
    top = max(accuracy, default=0.0)
    ax.set(xlabel=_("FLOPs per image (forward)"), ylabel=_("test accuracy"))
    ax.set_ylim(0, min(1, top + 0.15))
    ax.set_title(_("Accuracy against cost"))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, frameon=False)
    ax.grid(True, which="major", alpha=0.3)
    return ax.figure
