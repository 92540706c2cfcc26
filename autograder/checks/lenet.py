"""Day 2 checks: LeNet-5's activations and the first training loop.

The loop checks run a student's ``train_one_epoch`` and ``evaluate`` on a tiny
problem (a linear model on 4 features, 3 classes) through a probe that records
how it was called, and compare the results with gradient descent done by hand.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from autograder.checks import student
from labkit.summary import record_outputs

__all__ = ["check_evaluate", "check_lenet5_tanh", "check_train_one_epoch", "lenet5_params"]

_TOL = 1e-4


def lenet5_params(num_classes: int = 10) -> int:
    """LeNet-5's parameter count: 61,706 for 10 classes."""
    convs = (1 * 25 + 1) * 6 + (6 * 25 + 1) * 16 + (16 * 25 + 1) * 120
    return convs + (120 + 1) * 84 + (84 + 1) * num_classes


def check_lenet5_tanh(model: nn.Module, size: int = 32) -> list[str]:
    """Every pooling layer and every Linear layer must receive tanh outputs (in [-1, 1]).

    The input is scaled up so that a missing tanh shows: pre-activations then exceed 1.
    """
    if not isinstance(model, nn.Module):
        return [f"expected an nn.Module, got {type(model).__name__}."]
    probe = copy.deepcopy(model).eval()
    watched = (nn.AvgPool2d, nn.Linear)
    if not any(isinstance(m, watched) for m in probe.modules()):
        return ["the model has no nn.AvgPool2d or nn.Linear layer."]
    x = 50 * torch.randn(4, 1, size, size, generator=torch.Generator().manual_seed(0))
    try:
        calls = record_outputs(probe, x, lambda m: isinstance(m, watched))
    except Exception as error:  # a student's forward() can fail in any way
        return [
            f"the model failed on a 4 x 1 x {size} x {size} batch: {type(error).__name__}: {error}"
        ]
    seen = [(type(c.module).__name__, float(c.inputs[0].detach().abs().max())) for c in calls]
    for position, (layer, largest) in enumerate(seen):
        if largest > 1 + 1e-5:
            return [
                f"the input of layer call {position + 1} ({layer}) reaches {largest:.2f}: it "
                "should be a tanh output, within [-1, 1]. Apply torch.tanh after every "
                "convolution and after fc6."
            ]
    return []


class _Probe(nn.Module):
    """A linear classifier that records, at each forward, train mode and grad mode."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)
        self.calls: list[tuple[bool, bool, int]] = []  # (training, grad enabled, batch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls.append((self.training, torch.is_grad_enabled(), len(x)))
        return self.fc(x)


def _problem(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=generator)
    y = torch.randint(0, 3, (n,), generator=generator)
    return x, y


def _probe(seed: int) -> _Probe:
    torch.manual_seed(seed)
    return _Probe()


def _is_float(value: object) -> bool:
    return type(value) is float and math.isfinite(value)


def check_train_one_epoch(train_one_epoch: Callable, seed: int = 0, n: int = 40) -> list[str]:
    """``train_one_epoch(model, loader, optimizer, device)`` must return (batch losses,
    accuracy) and leave the weights where plain SGD on cross-entropy puts them."""
    x, y = _problem(n, seed)
    batch = 16  # unequal last batch: 16, 16, 8
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    model = _probe(seed)
    model.eval()  # train_one_epoch must switch to train mode itself
    lr = 0.5
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)

    # Gradient descent by hand, batch by batch, on a copy of the weights.
    w = model.fc.weight.detach().clone().requires_grad_(True)
    b = model.fc.bias.detach().clone().requires_grad_(True)
    expected_losses, correct = [], 0
    for xb, yb in zip(x.split(batch), y.split(batch), strict=True):
        logits = xb @ w.T + b
        loss = F.cross_entropy(logits, yb)
        grad_w, grad_b = torch.autograd.grad(loss, (w, b))
        expected_losses.append(loss.item())
        correct += int((logits.argmax(1) == yb).sum())
        with torch.no_grad():
            w -= lr * grad_w
            b -= lr * grad_b
    expected_acc = correct / n

    try:
        result = train_one_epoch(model, loader, optimizer, torch.device("cpu"))
    except NotImplementedError:
        return [student.stub_problem("train_one_epoch")]
    except Exception as error:  # a student's loop can fail in any way
        return [f"train_one_epoch failed on a small problem: {type(error).__name__}: {error}"]

    if not (isinstance(result, tuple) and len(result) == 2):
        return [
            "train_one_epoch must return a tuple (losses, accuracy): the list of each batch's "
            f"loss.item() and the fraction of training images classified right; got {result!r:.80}."
        ]
    losses, accuracy = result
    problems = []
    batches = len(expected_losses)
    if not (type(losses) is list and all(_is_float(v) for v in losses)):
        problems.append(
            "the losses must be a list of Python floats, one per batch (use loss.item()); "
            f"got {type(losses).__name__}."
        )
    elif len(losses) != batches:
        problems.append(
            f"expected {batches} batch losses ({n} images in batches of {batch}), "
            f"got {len(losses)}."
        )
    if not _is_float(accuracy):
        problems.append(f"the accuracy must be a Python float, got {type(accuracy).__name__}.")
    elif not 0 <= accuracy <= 1:
        problems.append(f"the accuracy must be a fraction in [0, 1], got {accuracy}.")
    if problems:
        return problems

    modes = [training for training, _, _ in model.calls]
    if len(model.calls) != batches:
        problems.append(f"the model was called {len(model.calls)} times for {batches} batches.")
    if not all(modes):
        problems.append("the model was not in training mode: call model.train() first.")
    if not all(grad for _, grad, _ in model.calls):
        problems.append("gradients were disabled during training: no torch.no_grad() here.")
    updated = torch.allclose(model.fc.weight, w, atol=_TOL) and torch.allclose(
        model.fc.bias, b, atol=_TOL
    )
    if not updated:
        problems.append(
            "after one epoch the weights are not where SGD on F.cross_entropy puts them: "
            "for each batch call optimizer.zero_grad(), loss.backward() and optimizer.step() "
            "once each."
        )
    first = next(
        (
            i
            for i, (g, e) in enumerate(zip(losses, expected_losses, strict=True))
            if abs(g - e) > _TOL
        ),
        None,
    )
    if first is not None:
        problems.append(
            f"batch {first + 1}'s loss: expected {expected_losses[first]:.4f} (cross-entropy "
            f"before that batch's step), got {losses[first]:.4f}."
        )
    if abs(accuracy - expected_acc) > 1e-6:
        problems.append(
            f"training accuracy: expected {expected_acc:.4f} ({correct} of {n} right, counted on "
            f"each batch's logits before its step), got {accuracy:.4f}."
        )
    return problems


def check_evaluate(evaluate: Callable, seed: int = 0, n: int = 10) -> list[str]:
    """``evaluate(model, loader, device)`` must return (mean loss per image, accuracy),
    in eval mode, under torch.no_grad(), without changing the model."""
    x, y = _problem(n, seed)
    batch = 4  # 4, 4, 2: a mean of the batch means would be wrong
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False)
    model = _probe(seed)
    model.train()  # evaluate must switch to eval mode itself
    before = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        logits = model.fc(x)
    expected_loss = F.cross_entropy(logits, y).item()
    expected_acc = (logits.argmax(1) == y).float().mean().item()

    try:
        result = evaluate(model, loader, torch.device("cpu"))
    except NotImplementedError:
        return [student.stub_problem("evaluate")]
    except Exception as error:  # a student's loop can fail in any way
        return [f"evaluate failed on a small problem: {type(error).__name__}: {error}"]
    if not (isinstance(result, tuple) and len(result) == 2):
        return [f"evaluate must return a tuple (mean loss, accuracy), got {result!r:.80}."]
    loss, accuracy = result
    if not (_is_float(loss) and _is_float(accuracy)):
        return [
            "evaluate must return two Python floats (use .item()), got "
            f"({type(loss).__name__}, {type(accuracy).__name__})."
        ]
    problems = []
    if not model.calls:
        problems.append("evaluate never called the model.")
    if any(training for training, _, _ in model.calls):
        problems.append("the model was in training mode: call model.eval() first.")
    if any(grad for _, grad, _ in model.calls):
        problems.append("gradients were enabled: run the loop under torch.no_grad().")
    seen = sum(size for _, _, size in model.calls)
    if seen != n:
        problems.append(f"the model saw {seen} images, the loader holds {n}.")
    after = model.state_dict()
    if any(not torch.equal(before[k], after[k]) for k in before):
        problems.append("evaluate changed the model's weights.")
    if abs(loss - expected_loss) > _TOL:
        problems.append(
            f"mean loss: expected {expected_loss:.4f} over {n} images in batches of 4, 4 and 2, "
            f"got {loss:.4f}. Weight each batch's mean loss by its size, then divide by {n}."
        )
    if abs(accuracy - expected_acc) > 1e-6:
        problems.append(f"accuracy: expected {expected_acc:.4f}, got {accuracy:.4f}.")
    return problems
