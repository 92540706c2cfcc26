"""How ``fit`` computes fast: the precision, the memory layout and the optimizer's step.

``labkit.train`` holds the loop Day 2 teaches; this module holds the choices that make
it fast on the hardware at hand. ``native_bf16`` says whether a device computes bf16 in
hardware; ``choose_fast_path`` turns that into a ``FastPath`` (the autocast precision,
bf16, fp16 with a GradScaler, or fp32, and channels_last or NCHW), on a CPU keeping
bf16 only if a trial step (``time_training_steps``) shows it ``BF16_MIN_SPEEDUP``
times faster for the model. ``fuse_step`` switches an optimizer that was left to torch
to its fused kernel, one pass over memory for all parameters.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BF16_MIN_SPEEDUP",
    "PRECISIONS",
    "TRIAL_MIN_STEPS",
    "FastPath",
    "choose_fast_path",
    "cpu_capability",
    "fuse_step",
    "fused_kernel_devices",
    "native_bf16",
    "time_training_steps",
    "trial_steps",
]

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
BF16_MIN_SPEEDUP = 1.2  # on a CPU, "auto" keeps bf16 only if a trial step is this much faster
# The trial takes four steps' time (two rounds of two paths): in a shorter run than this,
# what bf16 might save cannot pay for it, and the run stays in fp32 untried.
TRIAL_MIN_STEPS = 40
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


# ---- what the hardware can do, and what fit chooses ---------------------------------------------


def cpu_capability(name: str) -> bool:
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
            if cpu_capability(flag)
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
    steps: int | None = None,
) -> FastPath:
    """The ``FastPath`` for ``device``.

    ``precision="auto"`` picks bf16 where it is native, else fp16 on a GPU and fp32 on
    a CPU. On a CPU, given a ``trial`` (which times a training step of the model for
    each FastPath it is handed), it keeps bf16 only if that is ``BF16_MIN_SPEEDUP``
    times faster than fp32: oneDNN's bf16 kernels win on large feature maps but lose
    on tiny ones (the course slides' ResNet-18 on 32x32 images). A run of fewer than
    ``TRIAL_MIN_STEPS`` ``steps`` stays in fp32 on a CPU, untried. An explicit choice is
    kept, with a warning in ``reason`` when bf16 would be emulated.
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
    if device.type == "cpu" and steps is not None and steps < TRIAL_MIN_STEPS:
        reason = f"{why}, but a run of {steps} steps is too short for a bf16 trial to pay off"
        return FastPath(device.type, "fp32", channels_last, reason)
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


def time_training_steps(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, paths: list[FastPath]
) -> list[float]:
    """Seconds of one forward and backward pass of a copy of ``model`` on one batch, for
    each of ``paths``, in two alternating rounds: the first warms up, the second counts.
    Measured once per model, batch shape and paths; later calls return the same numbers."""
    key = (tuple(images.shape), tuple(paths))
    taken = _TRIALS.setdefault(model, {})
    if key not in taken:
        taken[key] = trial_steps(model, images, labels, paths)
    return taken[key]


def trial_steps(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, paths: list[FastPath]
) -> list[float]:
    """``time_training_steps``'s measurement itself, taken afresh on every call."""
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


def fused_kernel_devices() -> set[str]:
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
    devices = fused_kernel_devices()
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
