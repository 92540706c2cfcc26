"""What a model costs: FLOPs counted by PyTorch, and forward time on a device.

``count_flops`` runs one forward pass under ``torch.utils.flop_counter.FlopCounterMode``,
which counts 2 FLOPs per multiply-add of convolutions and matrix products (and nothing
for BatchNorm, activations or pooling). Papers often write "FLOPs" for multiply-adds:
the ResNet paper's 1.8 x 10^9 for ResNet-18 is half of what ``count_flops`` reports.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_flops", "time_forward"]


def _device(model: nn.Module) -> torch.device:
    tensor = next(model.parameters(), None)
    if tensor is None:
        tensor = next(model.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")


@torch.no_grad()
def count_flops(model: nn.Module, input_size: Sequence[int] = (3, 224, 224)) -> int:
    """FLOPs of one forward pass of ``model`` on one image of ``input_size`` (C, H, W).

    Runs in eval mode on the model's device (the ``meta`` device works, and costs
    nothing); the model's mode is restored afterwards.
    """
    was_training = model.training
    x = torch.zeros(1, *input_size, device=_device(model))
    try:
        model.eval()
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_forward(
    model: nn.Module,
    input_size: Sequence[int] = (3, 32, 32),
    batch_size: int = 64,
    repeats: int = 5,
    warmup: int = 1,
) -> float:
    """Median seconds of one eval-mode forward pass of a ``batch_size`` batch of
    ``input_size`` images on the model's device, after ``warmup`` untimed passes.

    On a GPU the clock stops only once the GPU has finished (``cuda.synchronize``).
    """
    if repeats < 1:
        raise ValueError(f"repeats={repeats}: time at least one forward pass")
    device = _device(model)
    was_training = model.training
    x = torch.randn(batch_size, *input_size, device=device)
    times = []
    try:
        model.eval()
        for _ in range(warmup):
            model(x)
        for _ in range(repeats):
            _synchronize(device)
            start = time.perf_counter()
            model(x)
            _synchronize(device)
            times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)
