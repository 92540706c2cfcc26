"""The course's training loop: the one Day 2 writes out, made fast, kept here for later days.

The images stay uint8 tensors on the training device until a batch is drawn; a batch
is an index slice of a random permutation, augmented as a whole with a per-image
random crop and flip, then normalised. The model runs in channels_last layout under
autocast: bf16 where the hardware has it natively (on a CPU only if a trial step shows
it faster for this model), fp16 with a GradScaler on older GPUs, else fp32. Losses are
summed on the device and read once per epoch, so the loop never waits on the GPU
mid-epoch, and the optimizer steps with its fused kernel unless told otherwise. ``fit``
prints what it chose; Day 2 explains each line.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import math
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.data import ImageData

__all__ = [
    "BF16_MIN_SPEEDUP",
    "PRECISIONS",
    "EpochStats",
    "FastPath",
    "History",
    "choose_fast_path",
    "evaluate",
    "fit",
    "fuse_step",
    "native_bf16",
    "predict",
    "random_crop_flip",
]

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BF16_MIN_SPEEDUP = 1.2  # on a CPU, "auto" keeps bf16 only if a trial step is this much faster
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


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
    optimizer stepped with its fused kernel.
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

    @property
    def train_loss(self) -> list[float]:
        return [e.train_loss for e in self.epochs]

    @property
    def test_acc(self) -> list[float]:
        return [e.test_acc for e in self.epochs]

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.epochs)


# ---- what the hardware can do, and what fit chooses ---------------------------------------------


def _cpu_capability(name: str) -> bool:
    """One flag of torch's CPU feature detection (``avx512_bf16``, ``amx_tile``, ...)."""
    get_capabilities = getattr(torch.cpu, "get_capabilities", None)  # torch >= 2.9
    if get_capabilities is not None:
        return bool(get_capabilities().get(name, False))
    check = getattr(torch.cpu, f"_is_{name}_supported", None)  # older torch
    try:
        return bool(check()) if check is not None else False
    except RuntimeError:
        return False


def native_bf16(device: torch.device | str) -> tuple[bool, str]:
    """Whether ``device`` computes bf16 in hardware (not emulated), and why, in words.

    CPUs: AVX512-BF16 or AMX (Intel since Cooper Lake / Sapphire Rapids, AMD since
    Zen 4); elsewhere bf16 is emulated and about 10 times slower than fp32. Native is
    not always faster: without AMX, oneDNN's bf16 convolutions can run slower than
    fp32 (the reason then says "no AMX"), so on a CPU ``choose_fast_path`` times
    a trial step before it keeps bf16.

    GPUs: compute capability 8.0 or more (Ampere, Ada, Hopper); a T4 (7.5) reports
    bf16 as supported but emulates it.
    """
    device = torch.device(device)
    if device.type == "cuda":
        if torch.version.hip:
            return True, "a ROCm GPU computes bf16 natively"
        major, minor = torch.cuda.get_device_capability(device)
        name = torch.cuda.get_device_name(device)
        if major >= 8:
            return True, f"{name}, compute capability {major}.{minor}, has bf16 tensor cores"
        return False, f"{name}, compute capability {major}.{minor}, only emulates bf16"
    if device.type == "cpu":
        found = [
            label
            for flag, label in (("avx512_bf16", "AVX512-BF16"), ("amx_bf16", "AMX-BF16"))
            if _cpu_capability(flag)
        ]
        if found and torch.backends.mkldnn.is_available():
            no_amx = "" if "AMX-BF16" in found else " (no AMX)"
            return True, f"this CPU has {' and '.join(found)}{no_amx}"
        return False, "this CPU has no AVX512-BF16 or AMX: bf16 would be emulated, ~10x slower"
    return False, f"no bf16 autocast on {device.type} in this kit"


@dataclass(frozen=True)
class FastPath:
    """How ``fit`` and ``predict`` compute: the autocast precision and the memory layout."""

    device: str  # "cpu", "cuda", ...
    precision: str  # "bf16", "fp16" or "fp32"
    channels_last: bool
    reason: str  # why this precision, in words

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    @property
    def uses_grad_scaler(self) -> bool:
        """fp16 needs its loss scaled so that small gradients do not round to 0; bf16 not."""
        return self.precision == "fp16"

    @property
    def dtype(self) -> torch.dtype:
        """The dtype this precision computes in."""
        return _DTYPES[self.precision]

    def autocast(self) -> contextlib.AbstractContextManager:
        """``torch.autocast`` for this precision; does nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device, dtype=self.dtype)

    def describe(self) -> str:
        if self.precision == "fp32":
            compute = f"fp32 ({self.reason})"
        else:
            scaler = " with a GradScaler" if self.uses_grad_scaler else ""
            compute = f"{self.precision} autocast{scaler} ({self.reason})"
        layout = "channels_last" if self.channels_last else "contiguous (NCHW)"
        return f"{self.device}, {compute}, {layout}"


Trial = Callable[[list[FastPath]], list[float]]  # seconds of a training step, per FastPath


def choose_fast_path(
    device: torch.device | str,
    precision: str = "auto",
    channels_last: bool = True,
    trial: Trial | None = None,
) -> FastPath:
    """The ``FastPath`` for ``device``.

    ``precision="auto"`` picks bf16 where it is native, else fp16 on a GPU and fp32 on
    a CPU. On a CPU, given a ``trial`` (which times a training step of the model for
    each FastPath it is handed), it keeps bf16 only if that is ``BF16_MIN_SPEEDUP``
    times faster than fp32: oneDNN's bf16 kernels win on large feature maps but lose
    on tiny ones (the seed's ResNet-18 on 32x32 images). An explicit choice is kept,
    with a warning in ``reason`` when bf16 would be emulated.
    """
    device = torch.device(device)
    if type(precision) is not str or precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: use one of {', '.join(map(repr, PRECISIONS))}")
    if type(channels_last) is not bool:
        raise ValueError(f"channels_last={channels_last!r}: use True or False")
    native, why = native_bf16(device)
    if precision == "fp16" and device.type != "cuda":
        raise ValueError(
            f"precision='fp16' is for GPUs; on {device.type} use 'bf16' ({why}) or 'fp32'"
        )
    if precision != "auto":
        reason = f"as asked, but {why}" if precision == "bf16" and not native else "as asked"
        return FastPath(device.type, precision, channels_last, reason)
    if not native:
        precision = "fp16" if device.type == "cuda" else "fp32"
        return FastPath(device.type, precision, channels_last, why)
    if device.type != "cpu" or trial is None:
        return FastPath(device.type, "bf16", channels_last, why)
    bf16, fp32 = (FastPath(device.type, p, channels_last, why) for p in ("bf16", "fp32"))
    bf16_seconds, fp32_seconds = trial([bf16, fp32])
    timing = f"a trial step took {_ms(bf16_seconds)} in bf16, {_ms(fp32_seconds)} in fp32"
    if fp32_seconds >= BF16_MIN_SPEEDUP * bf16_seconds:
        return dataclasses.replace(bf16, reason=f"{why}; {timing}")
    return dataclasses.replace(
        fp32, reason=f"{why}, but {timing}: bf16 is not {BF16_MIN_SPEEDUP}x faster here"
    )


# Trial timings already taken, per model: fit runs the trial once per model and batch shape.
_TRIALS: weakref.WeakKeyDictionary[nn.Module, dict] = weakref.WeakKeyDictionary()


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.0f} s"


def _time_training_steps(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, paths: list[FastPath]
) -> list[float]:
    """Seconds of one forward and backward pass of a copy of ``model`` on one batch, for
    each of ``paths``, in two alternating rounds: the first warms up, the second counts.
    Measured once per model, batch shape and paths; later calls return the same numbers."""
    key = (tuple(images.shape), tuple(paths))
    taken = _TRIALS.setdefault(model, {})
    if key not in taken:
        taken[key] = _trial_steps(model, images, labels, paths)
    return taken[key]


def _trial_steps(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, paths: list[FastPath]
) -> list[float]:
    trial_model = copy.deepcopy(model).train()  # the model, and its BatchNorm statistics, stay
    seconds = [0.0] * len(paths)
    with torch.random.fork_rng(devices=[]):  # dropout in the trial leaves the run's RNG alone
        for _ in range(2):
            for i, path in enumerate(paths):
                trial_model.to(memory_format=path.memory_format)
                batch = images.contiguous(memory_format=path.memory_format)
                start = time.perf_counter()
                with path.autocast():
                    logits = trial_model(batch)
                F.cross_entropy(logits.float(), labels).backward()
                seconds[i] = time.perf_counter() - start
                trial_model.zero_grad(set_to_none=True)
    return seconds


# ---- the optimizer's step -----------------------------------------------------------------------

_FUSABLE = (torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW)


def _fused_kernel_devices() -> set[str]:
    """The CPU and GPU device types this torch has fused optimizer kernels for."""
    try:  # torch's own list; older versions have no CPU kernels
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    except ImportError:  # moved in some later torch: fuse nothing rather than fail mid-run
        return set()
    return set(_get_fused_kernels_supported_devices()) & {"cpu", "cuda"}


def fuse_step(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` steps with its fused kernel, switching it on where the choice
    was left to torch.

    Built without ``fused`` or ``foreach``, SGD, Adam and AdamW update one parameter at a
    time, a few passes over memory each (on a CPU; on a GPU, ``foreach`` batches them). The
    fused kernel computes the same update for all parameters in one pass: for VGG-16-BN's
    34 million parameters, Adam's step takes 24 ms instead of 133 ms on a 2-core CPU.
    It is switched on only before the first step (the optimizer's state is laid out for
    one kind of step) and only for floating-point parameters on a CPU or a CUDA GPU. A
    choice made when the optimizer was built (``fused=False``, ``foreach=True``) is kept,
    and an optimizer that is not a ``torch.optim.Optimizer`` steps as it was written.

    With fp16 the fused kernel also takes the GradScaler's scale and overflow flag, as
    when built with ``fused=True``: it divides the scale out and skips an overflowed
    step on the device, where the GradScaler would otherwise read the flag (a host
    sync) every step.
    """
    if not isinstance(optimizer, torch.optim.Optimizer):
        return False
    groups = optimizer.param_groups
    if all(group.get("fused") for group in groups):
        return True
    left_to_torch = all(
        group.get("fused") is None
        and group.get("foreach") is None
        and not group.get("differentiable")
        for group in groups
    )
    devices = _fused_kernel_devices()
    supported = all(
        p.is_floating_point() and p.device.type in devices
        for group in groups
        for p in group["params"]
    )
    if isinstance(optimizer, _FUSABLE) and left_to_torch and supported and not optimizer.state:
        for group in groups:
            group["fused"] = True
        optimizer._step_supports_amp_scaling = True  # as torch's constructor sets for fused=True
        return True
    return False


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
) -> History:
    """Train ``model`` on ``data`` for ``epochs`` epochs; evaluate after each one.

    The model trains on the device its parameters are on. ``precision``: "auto"
    (bf16 where the hardware has it natively, on a CPU only if a trial step of this
    model is faster in bf16; else fp16 on a GPU, fp32 on a CPU), "bf16", "fp16" or
    "fp32". ``channels_last``: convert the model and each batch to the N x H x W x C
    layout that fast convolution kernels want. Prints what it chose, one line per
    epoch, and returns the ``History``.
    """
    device = next(model.parameters()).device
    train_images = data.train_images.to(device)  # uint8: a quarter of float32's memory
    train_labels = data.train_labels.to(device)
    mean, std = _mean_std(data, device)
    first = _normalize(train_images[:batch_size], mean, std)  # one batch, to time a trial step
    trial = functools.partial(_time_training_steps, model, first, train_labels[:batch_size])
    fast = choose_fast_path(device, precision, channels_last, trial if len(first) > 1 else None)
    _TRAINED_WITH[model] = fast  # predict and evaluate will compute this model the same way
    model.to(memory_format=fast.memory_format)  # conv weights in the layout of the inputs
    scaler = torch.amp.GradScaler(device.type, enabled=fast.uses_grad_scaler)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # time the conv algorithms once, keep the fastest
    fused = fuse_step(optimizer)  # one kernel updates every parameter
    print(
        f"fit on {fast.describe()}"
        + (", cudnn.benchmark" if device.type == "cuda" else "")
        + (f", fused {type(optimizer).__name__} step" if fused else "")
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
