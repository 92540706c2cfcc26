"""The course's training loop: the one Day 2 writes out, kept here for later days.

The images stay uint8 tensors (on the training device) until a batch is drawn;
a batch is an index slice of a random permutation, augmented as a whole with a
per-image random crop and flip, then normalised. Losses are summed on the device
and read once per epoch, so the loop never waits on the GPU mid-epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.data import ImageData

__all__ = ["EpochStats", "History", "evaluate", "fit", "predict", "random_crop_flip"]


@dataclass(frozen=True)
class EpochStats:
    epoch: int
    train_loss: float
    train_acc: float
    test_loss: float
    test_acc: float
    seconds: float


@dataclass
class History:
    """What ``fit`` measured: one ``EpochStats`` per epoch, and every step's loss."""

    device: str
    num_train: int
    num_test: int
    num_classes: int
    epochs: list[EpochStats] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)

    @property
    def train_loss(self) -> list[float]:
        return [e.train_loss for e in self.epochs]

    @property
    def test_acc(self) -> list[float]:
        return [e.test_acc for e in self.epochs]

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.epochs)


def random_crop_flip(images: torch.Tensor, padding: int = 4, generator=None) -> torch.Tensor:
    """Pad, crop back to size at a random offset, and flip half: each image its own draw."""
    n, _, h, w = images.shape
    padded = F.pad(images, (padding,) * 4)
    device = images.device
    dy = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n, 1, 1), device=device, generator=generator)
    rows = (torch.arange(h, device=device).view(1, h, 1) + dy).expand(n, h, w)
    cols = (torch.arange(w, device=device).view(1, 1, w) + dx).expand(n, h, w)
    batch = torch.arange(n, device=device).view(n, 1, 1).expand(n, h, w)
    cropped = padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # N x C x H x W
    flip = torch.rand(n, device=device, generator=generator) < 0.5
    return torch.where(flip.view(n, 1, 1, 1), cropped.flip(3), cropped)


def _normalize(images: torch.Tensor, data: ImageData) -> torch.Tensor:
    mean = torch.tensor(data.mean, device=images.device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255 - mean) / std


@torch.no_grad()
def predict(
    model: nn.Module, images: torch.Tensor, data: ImageData, batch_size: int = 256
) -> torch.Tensor:
    """Logits for uint8 ``images``, computed in eval mode on the model's device."""
    model.eval()
    device = next(model.parameters()).device
    outputs = [
        model(_normalize(chunk.to(device), data)).float() for chunk in images.split(batch_size)
    ]
    return torch.cat(outputs)


@torch.no_grad()
def evaluate(model: nn.Module, data: ImageData, batch_size: int = 256) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``data``'s test split."""
    logits = predict(model, data.test_images, data, batch_size)
    labels = data.test_labels.to(logits.device)
    loss = F.cross_entropy(logits, labels).item()
    acc = (logits.argmax(1) == labels).float().mean().item()
    return loss, acc


def fit(
    model: nn.Module,
    data: ImageData,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 2,
    batch_size: int = 128,
    augment: bool = True,
    seed: int = 0,
    progress: bool = True,
) -> History:
    """Train ``model`` on ``data`` for ``epochs`` epochs; evaluate after each one.

    The model trains on the device its parameters are on. Prints one line per
    epoch and returns the ``History``.
    """
    device = next(model.parameters()).device
    generator = torch.Generator(device="cpu").manual_seed(seed)
    train_images = data.train_images.to(device)
    train_labels = data.train_labels.to(device)
    n = len(train_labels)
    history = History(str(device), n, len(data.test_labels), data.num_classes)

    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        batches = [b for b in order.split(batch_size) if len(b) > 1]  # BatchNorm needs 2+
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        step_losses = []

        for index in tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=not progress):
            images = train_images[index]  # B x C x H x W, uint8
            labels = train_labels[index]
            if augment:
                images = random_crop_flip(images)
            logits = model(_normalize(images, data))  # B x num_classes
            loss = F.cross_entropy(logits, labels)

            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

            step_losses.append(loss.detach())
            loss_sum += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()

        seen = sum(len(b) for b in batches)
        test_loss, test_acc = evaluate(model, data)
        stats = EpochStats(
            epoch=epoch,
            train_loss=loss_sum.item() / seen,
            train_acc=correct.item() / seen,
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=time.perf_counter() - start,
        )
        history.epochs.append(stats)
        history.step_losses.extend(torch.stack(step_losses).tolist())
        print(
            f"epoch {epoch}/{epochs}: train loss {stats.train_loss:.3f}, "
            f"acc {stats.train_acc:.1%} | test loss {stats.test_loss:.3f}, "
            f"acc {stats.test_acc:.1%} | {stats.seconds:.1f} s"
        )
        if not math.isfinite(stats.train_loss):
            print("the loss is no longer finite: lower the learning rate and start again")
            break
    return history
