"""Check that a lab's training run really happened and really learned."""

from __future__ import annotations

import math

import torch
from torch import nn

from labkit.config import RunConfig
from labkit.data import ImageData
from labkit.train import History, evaluate, split_digest

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

    ``before`` is ``snapshot(model)`` taken before training. The run must have
    ``epochs`` epochs of finite numbers, a training loss that went down, test accuracy
    above chance, every parameter changed and, when the history records its batch size,
    one optimizer step per batch. With ``data``, it must have trained on all of ``data``'s
    training split, and the model is evaluated again, in the history's precision and
    layout: it must reproduce the history's last test accuracy and fit the training
    split better than the test split (a run on the test split does the opposite).

    These hold at any run size, the token size graded runs use included.
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

    problems += _steps_problems(history, epochs, data)
    first, last = history.epochs[0], history.epochs[-1]
    if recorded >= 2 and not last.train_loss < first.train_loss:
        problems.append(
            f"the training loss did not go down: epoch 1 {first.train_loss:.4f}, "
            f"epoch {last.epoch} {last.train_loss:.4f}. Check the learning rate and that "
            "optimizer.step() updates this model's parameters."
        )
    # At the token size a few steps leave BatchNorm's running statistics unsettled, and
    # the test split is scored with them: the accuracy the loop measured while training
    # (with each batch's own statistics) is what tells learning from guessing there.
    token = RunConfig.from_env().size == "grade"
    split, accuracy, count = (
        ("training", last.train_acc, history.num_train)
        if token
        else ("test", last.test_acc, history.num_test)
    )
    threshold = chance_threshold(history.num_classes, count)
    if not accuracy > threshold:
        problems.append(
            f"{split} accuracy {accuracy:.1%} after epoch {last.epoch} is not above chance "
            f"({1 / history.num_classes:.0%}; needs more than {threshold:.1%} on "
            f"{count:,} {split} images)."
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


def _steps_problems(history: History, epochs: int, data: ImageData | None) -> list[str]:
    """The run trained on the whole training split, one optimizer step per batch."""
    problems = []
    if data is not None and history.num_train != len(data.train_labels):
        problems.append(
            f"the run trained on {history.num_train:,} images, but the training split has "
            f"{len(data.train_labels):,}: train on data's training split, all of it."
        )
    if data is not None and history.trained_on:
        if history.trained_on == split_digest(data.test_images, data.test_labels):
            problems.append("the run trained on the test split: train on the training split.")
        elif history.trained_on != split_digest(data.train_images, data.train_labels):
            problems.append("the run trained on other images or labels than data's training split.")
    size = history.batch_size
    if type(size) is not int or size < 0:
        return [*problems, f"the history's batch_size is {size!r}, not a whole number."]
    if size:
        batches = math.ceil(history.num_train / size)
        # fit drops a last batch of one image (BatchNorm needs two); a DataLoader does not
        allowed = {batches * epochs, (batches - (history.num_train % size == 1)) * epochs}
        steps = len(history.step_losses)
        if steps not in allowed:
            problems.append(
                f"the run took {steps} optimizer steps in {epochs} epochs, but "
                f"{history.num_train:,} images in batches of {size} make "
                f"{max(allowed)}: were batches skipped?"
            )
    return problems
