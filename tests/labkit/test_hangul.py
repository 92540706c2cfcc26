"""Plots of the Korean edition draw Hangul with a Korean font, never empty boxes.

Matplotlib warns "Glyph ... missing from font(s)" for each character its font lacks;
rendering must raise no such warning. The DejaVu control shows the warning is real."""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import pytest

from labkit.plots import hangul_font, plot_history, use_hangul_font
from labkit.train import EpochStats, History

HANGUL = "합성곱 신경망의 학습 손실"


def _missing_glyphs(fig) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig.canvas.draw()
    plt.close(fig)
    return [str(w.message) for w in caught if "missing from font" in str(w.message)]


def _history() -> History:
    history = History(device="cpu", num_train=100, num_test=100, num_classes=10)
    for epoch, loss in ((1, 2.0), (2, 1.5)):
        history.epochs.append(EpochStats(epoch, loss, 0.3, loss, 0.3, 1.0))
        history.step_losses += [loss, loss]
    return history


@pytest.fixture
def restore_fonts():
    saved = matplotlib.rcParams.copy()
    yield
    matplotlib.rcParams.update(saved)


def test_a_korean_font_is_found(restore_fonts):
    assert hangul_font() is not None, "install fonts-nanum, or pip install koreanize-matplotlib"


def test_without_a_korean_font_hangul_is_missing(restore_fonts):
    matplotlib.rcParams["font.family"] = "sans-serif"
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans"]
    fig, ax = plt.subplots()
    ax.set_title(HANGUL)
    assert _missing_glyphs(fig), "DejaVu Sans has no Hangul: the warning should appear"


def test_hangul_title_renders_with_the_korean_font(restore_fonts):
    assert use_hangul_font() is not None
    fig, ax = plt.subplots()
    ax.set_title(HANGUL)
    ax.plot([-2, 2], [-1, 1])  # tick labels with minus signs, which the Hangul fonts lack
    assert _missing_glyphs(fig) == []


def test_korean_edition_training_plot_has_no_missing_glyph(restore_fonts, monkeypatch):
    matplotlib.rcParams["font.sans-serif"] = ["DejaVu Sans"]  # as a fresh kernel starts
    monkeypatch.setenv("LABKIT_LANG", "ko")
    fig = plot_history(_history())
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["손실", "정확도"]
    assert _missing_glyphs(fig) == []
