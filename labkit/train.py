"""The course's training loop: the one Day 2 writes out, made fast, kept here for later days.

The images stay uint8 tensors on the training device until a batch is drawn; a batch
is an index slice of a random permutation, augmented as a whole with a per-image
random crop and flip, then normalised. The model runs in channels_last layout under
autocast: bf16 where the hardware has it natively (on a CPU only if a trial step shows
it faster for this model), fp16 with a GradScaler on older GPUs, else fp32. Losses are
summed on the device and read once per epoch, so the loop never waits on the GPU
mid-epoch, and the optimizer steps with its fused kernel unless told otherwise. ``fit``
prints what it chose; Day 2 explains each line. The choices themselves (precision,
layout, trial step, fused step) are made in ``labkit.fastpath``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import time
import weakref
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.data import ImageData
from labkit.fastpath import FastPath, choose_fast_path, fuse_step, time_training_steps
from labkit.i18n import _

__all__ = [
    "EpochStats",
    "History",
    "evaluate",
    "fit",
    "predict",
    "random_crop_flip",
    "split_digest",
]


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
    """What ``fit`` measured: one ``EpochStats`` per epoch, and every step's loss.

    ``precision`` and ``channels_last`` say how the run computed, so that an
    evaluation afterwards can compute the same way; ``fused_step``, whether the
    optimizer stepped with its fused kernel; ``batch_size``, the batches it drew (0 when
    not recorded), so that a check can count the steps ``step_losses`` should hold;
    ``trained_on``, the ``split_digest`` of the images and labels it trained on ("" when
    not recorded).
    """

    device: str
    num_train: int
    num_test: int
    num_classes: int
    epochs: list[EpochStats] = field(default_factory=list)
    step_losses: list[float] = field(default_factory=list)
    precision: str = "fp32"
    channels_last: bool = False
    fused_step: bool = False
    batch_size: int = 0
    trained_on: str = ""

    @property
    def train_loss(self) -> list[float]:
        return [e.train_loss for e in self.epochs]

    @property
    def test_acc(self) -> list[float]:
        return [e.test_acc for e in self.epochs]

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.epochs)


# What fit last trained each model with: predict and evaluate compute the same way.
_TRAINED_WITH: weakref.WeakKeyDictionary[nn.Module, FastPath] = weakref.WeakKeyDictionary()


# ---- augmentation and normalisation -------------------------------------------------------------


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


def _mean_std(data: ImageData, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``data``'s per-channel mean and std as 1 x C x 1 x 1 tensors on ``device``, made once."""
    mean = torch.tensor(data.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(data.std, device=device).view(1, -1, 1, 1)
    return mean, std


def _normalize(images: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (images.float() / 255 - mean) / std


# ---- inference ----------------------------------------------------------------------------------


@torch.no_grad()
def predict(
    model: nn.Module,
    images: torch.Tensor,
    data: ImageData,
    batch_size: int = 256,
    *,
    precision: str = "auto",
    channels_last: bool = True,
) -> torch.Tensor:
    """fp32 logits for uint8 ``images``, computed in eval mode on the model's device.

    ``precision`` and ``channels_last`` as in ``fit``; with ``precision="auto"``, a
    model that ``fit`` trained is computed in the precision ``fit`` chose for it.
    """
    model.eval()
    device = next(model.parameters()).device
    trained = _TRAINED_WITH.get(model)
    if precision == "auto" and trained is not None and trained.device == device.type:
        fast = dataclasses.replace(trained, channels_last=channels_last)
    else:
        fast = choose_fast_path(device, precision, channels_last)
    mean, std = _mean_std(data, device)
    outputs = []
    for chunk in images.to(device).split(batch_size):  # one copy to the device, not one a batch
        batch = _normalize(chunk, mean, std).contiguous(memory_format=fast.memory_format)
        with fast.autocast():
            outputs.append(model(batch).float())
    return torch.cat(outputs)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: ImageData,
    batch_size: int = 256,
    *,
    precision: str = "auto",
    channels_last: bool = True,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on ``data``'s test split (see ``predict``)."""
    logits = predict(
        model, data.test_images, data, batch_size, precision=precision, channels_last=channels_last
    )
    labels = data.test_labels.to(logits.device)
    loss = F.cross_entropy(logits, labels).item()
    acc = (logits.argmax(1) == labels).float().mean().item()
    return loss, acc


# ---- training -----------------------------------------------------------------------------------


def split_digest(images: torch.Tensor, labels: torch.Tensor) -> str:
    """A short digest of a split's images and labels: which data a run trained on."""
    digest = hashlib.blake2b(digest_size=8)
    for tensor in (images, labels):
        digest.update(str((tuple(tensor.shape), tensor.dtype)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


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
    precision: str = "auto",
    channels_last: bool = True,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> History:
    """Train ``model`` on ``data`` for ``epochs`` epochs; evaluate after each one.

    The model trains on the device its parameters are on. ``precision``: "auto"
    (bf16 where the hardware has it natively, on a CPU only if a trial step of this
    model is faster in bf16; else fp16 on a GPU, fp32 on a CPU), "bf16", "fp16" or
    "fp32". ``channels_last``: convert the model and each batch to the N x H x W x C
    layout that fast convolution kernels want. ``scheduler``: a learning-rate
    scheduler of ``optimizer``, stepped once after each epoch (``MultiStepLR`` with
    milestones in epochs, say). Prints what it chose, one line per epoch, and returns
    the ``History``.
    """
    device = next(model.parameters()).device
    train_images = data.train_images.to(device)  # uint8: a quarter of float32's memory
    train_labels = data.train_labels.to(device)
    mean, std = _mean_std(data, device)
    first = _normalize(train_images[:batch_size], mean, std)  # one batch, to time a trial step
    trial = functools.partial(time_training_steps, model, first, train_labels[:batch_size])
    steps = epochs * math.ceil(len(train_labels) / batch_size)
    trial = trial if len(first) > 1 else None
    fast = choose_fast_path(device, precision, channels_last, trial, steps=steps)
    _TRAINED_WITH[model] = fast  # predict and evaluate will compute this model the same way
    model.to(memory_format=fast.memory_format)  # conv weights in the layout of the inputs
    scaler = torch.amp.GradScaler(device.type, enabled=fast.uses_grad_scaler)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # time the conv algorithms once, keep the fastest
    fused = fuse_step(optimizer)  # one kernel updates every parameter
    fused_step = _(", fused {optimizer} step").format(optimizer=type(optimizer).__name__)
    print(
        _("fit on {how}").format(how=fast.describe())
        + (", cudnn.benchmark" if device.type == "cuda" else "")
        + (fused_step if fused else "")
    )

    generator = torch.Generator(device="cpu").manual_seed(seed)
    n = len(train_labels)
    history = History(
        str(device),
        n,
        len(data.test_labels),
        data.num_classes,
        precision=fast.precision,
        channels_last=fast.channels_last,
        fused_step=fused,
        batch_size=batch_size,
        trained_on=split_digest(data.train_images, data.train_labels),
    )

    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        order = torch.randperm(n, generator=generator).to(device)
        batches = [b for b in order.split(batch_size) if len(b) > 1]  # BatchNorm needs 2+
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), device=device, dtype=torch.long)
        step_losses = []

        for index in tqdm(batches, desc=f"epoch {epoch}/{epochs}", disable=not progress):
            images = train_images[index]  # B x C x H x W, uint8, already on the device
            labels = train_labels[index]
            if augment:
                images = random_crop_flip(images)  # the whole batch at once
            images = _normalize(images, mean, std).contiguous(memory_format=fast.memory_format)
            with fast.autocast():
                logits = model(images)  # B x num_classes, in bf16/fp16 under autocast
            loss = F.cross_entropy(logits.float(), labels)

            optimizer.zero_grad(set_to_none=True)  # drop the old gradients, don't zero-fill them
            scaler.scale(loss).backward()  # with fp16, scaled up so no gradient underflows
            scaler.step(optimizer)  # unscales first; skips the step if a gradient overflowed
            scaler.update()

            step_losses.append(loss.detach())  # stays on the device: no wait for the GPU
            loss_sum += loss.detach() * len(labels)
            correct += (logits.argmax(1) == labels).sum()

        seen = sum(len(b) for b in batches)
        test_loss, test_acc = evaluate(
            model, data, precision=fast.precision, channels_last=fast.channels_last
        )
        stats = EpochStats(
            epoch=epoch,
            train_loss=loss_sum.item() / seen,  # the one read from the device per epoch
            train_acc=correct.item() / seen,
            test_loss=test_loss,
            test_acc=test_acc,
            seconds=time.perf_counter() - start,
        )
        if scheduler is not None:
            scheduler.step()  # after the epoch's last optimizer step, as torch expects
        history.epochs.append(stats)
        history.step_losses.extend(torch.stack(step_losses).tolist())
        print(
            _(
                "epoch {epoch}/{epochs}: train loss {train_loss:.3f}, acc {train_acc:.1%} | "
                "test loss {test_loss:.3f}, acc {test_acc:.1%} | {seconds:.1f} s"
            ).format(epochs=epochs, **dataclasses.asdict(stats))
        )
        if not math.isfinite(stats.train_loss):
            print(_("the loss is no longer finite: lower the learning rate and start again"))
            break
    return history
