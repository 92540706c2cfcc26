"""Check that a lab's training run really happened and really learned."""

from __future__ import annotations

import math

import torch
from torch import nn

from labkit.data import ImageData
from labkit.train import History, evaluate

__all__ = ["chance_threshold", "check_training_run", "snapshot"]


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached CPU copy of every parameter, to compare with after training."""
    return {name: p.detach().to("cpu", copy=True) for name, p in model.named_parameters()}


def chance_threshold(num_classes: int, num_test: int) -> float:
    """Accuracy that guessing reaches with probability under about 0.1%:
    chance plus three binomial standard errors on ``num_test`` images."""
    p = 1 / num_classes
    return p + 3 * math.sqrt(p * (1 - p) / max(num_test, 1))


def _number(value) -> float | None:
    return float(value) if type(value) in (float, int) else None


def check_training_run(
    history: History,
    before: dict[str, torch.Tensor],
    model: nn.Module,
    epochs: int = 2,
    data: ImageData | None = None,
) -> list[str]:
    """Readable problems with a finished run; ``[]`` means it completed and learned.

    ``before`` is ``snapshot(model)`` taken before training. With ``data``, the
    model is evaluated again, in the history's precision and layout, and must
    reproduce the history's last test accuracy.
    """
    if type(history) is not History:
        return [f"expected the History that fit() returns, got {type(history).__name__}."]
    problems = []
    recorded = len(history.epochs)
    if recorded != epochs:
        problems.append(f"expected exactly {epochs} epochs in the history, found {recorded}.")
    for stats in history.epochs:
        for name in ("train_loss", "test_loss", "train_acc", "test_acc"):
            value = _number(getattr(stats, name))
            if value is None or not math.isfinite(value):
                problems.append(
                    f"epoch {stats.epoch}: {name} is {getattr(stats, name)!r}, not a finite number."
                )
    if problems:
        return problems

    first, last = history.epochs[0], history.epochs[-1]
    if recorded >= 2 and not last.train_loss < first.train_loss:
        problems.append(
            f"the training loss did not go down: epoch 1 {first.train_loss:.4f}, "
            f"epoch {last.epoch} {last.train_loss:.4f}. Check the learning rate and that "
            "optimizer.step() updates this model's parameters."
        )
    threshold = chance_threshold(history.num_classes, history.num_test)
    if not last.test_acc > threshold:
        problems.append(
            f"test accuracy {last.test_acc:.1%} after epoch {last.epoch} is not above chance "
            f"({1 / history.num_classes:.0%}; needs more than {threshold:.1%} on "
            f"{history.num_test:,} test images)."
        )

    after = dict(model.named_parameters())
    if set(after) != set(before):
        problems.append("the model's parameters are not the ones snapshotted before training.")
    else:
        unchanged = [
            name for name, p in after.items() if torch.equal(p.detach().cpu(), before[name])
        ]
        if len(unchanged) == len(after):
            problems.append("no parameter changed during training.")
        elif unchanged:
            listed = ", ".join(unchanged[:5]) + (" ..." if len(unchanged) > 5 else "")
            problems.append(
                f"{len(unchanged)} of {len(after)} parameter tensors never changed during "
                f"training (a layer forward() never uses?): {listed}"
            )

    if data is not None and not problems:
        # Evaluate the way the run did (fit records its precision and layout; a History
        # built by hand, as on Day 2, defaults to fp32), so that the numbers can agree.
        precision, channels_last = history.precision, history.channels_last
        if type(precision) is not str or precision not in ("bf16", "fp16", "fp32"):
            return [f"the history's precision is {precision!r}, not 'bf16', 'fp16' or 'fp32'."]
        if type(channels_last) is not bool:
            return [f"the history's channels_last is {channels_last!r}, not True or False."]
        try:
            _, accuracy = evaluate(model, data, precision=precision, channels_last=channels_last)
        except ValueError as error:  # fp16 recorded for a model on the CPU
            return [f"evaluating the trained model as the history records failed: {error}"]
        if abs(accuracy - last.test_acc) > 0.005:
            problems.append(
                f"evaluating the trained model gives {accuracy:.1%} test accuracy, but the "
                f"history records {last.test_acc:.1%}."
            )
    return problems
