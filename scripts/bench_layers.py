"""Where bf16 pays on this CPU: each convolution of a model, fp32 NCHW against bf16 channels_last.

    .venv/bin/python scripts/bench_layers.py [--model vgg16-bn] [--batch-size 128] [--rounds 5]

Times the forward and backward pass of every ``Conv2d`` of one of ``bench_training``'s
models alone, on random inputs of the shape it sees when a 32 x 32 batch goes through
the model: once as the slides-style loop computes it (fp32, NCHW), once as the kit's loop
does on a CPU with native bf16 (bf16, channels_last). The two alternate, ``--rounds``
times; the median of each is printed with their ratio and each layer's share of the
convolutions' time. The total bounds what bf16 can give the whole training step, where
the convolutions are most of the time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_training import MODELS, describe_machine

Layer = tuple[str, nn.Conv2d, torch.Size]  # name, module, the input's shape


def conv_inputs(model: nn.Module, batch_size: int) -> list[Layer]:
    """Every ``Conv2d`` of ``model`` with the shape of its input for a 32 x 32 batch."""
    shapes: dict[nn.Module, torch.Size] = {}

    def record(module: nn.Module, args: tuple) -> None:  # None: the input goes on unchanged
        shapes[module] = args[0].shape

    hooks = [
        m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)
    ]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(batch_size, 3, 32, 32))
    finally:
        for hook in hooks:
            hook.remove()
    return [(name, m, shapes[m]) for name, m in model.named_modules() if m in shapes]


def time_conv(conv: nn.Conv2d, shape: torch.Size, dtype: torch.dtype, layout) -> float:
    """Seconds of one forward and backward pass of ``conv``'s weights alone (no bias, whose
    cost is a broadcast add), after one untimed pass."""
    weight = conv.weight.detach().to(dtype).contiguous(memory_format=layout).requires_grad_()
    x = torch.randn(shape, dtype=dtype).contiguous(memory_format=layout).requires_grad_()
    seconds = 0.0
    for _ in range(2):
        start = time.perf_counter()
        y = F.conv2d(x, weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
        y.backward(torch.ones_like(y))
        seconds = time.perf_counter() - start
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=sorted(MODELS), default="vgg16-bn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (median kept)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    layers = conv_inputs(MODELS[args.model].build(), args.batch_size)
    fp32, bf16 = (torch.float32, torch.contiguous_format), (torch.bfloat16, torch.channels_last)
    times = {name: ([], []) for name, _, _ in layers}
    for _ in range(args.rounds):
        for name, conv, shape in layers:
            times[name][0].append(time_conv(conv, shape, *fp32))
            times[name][1].append(time_conv(conv, shape, *bf16))

    print(f"machine: {describe_machine(torch.device('cpu'))}")
    print(
        f"{MODELS[args.model].label}: forward + backward of each convolution alone, batch "
        f"{args.batch_size}, median of {args.rounds} alternating rounds"
    )
    width = max(len(name) for name, _, _ in layers) + 2
    print(
        f"{'layer':{width}}{'input':>12}{'fp32 NCHW':>11}{'bf16 CL':>10}"
        f"{'speed-up':>10}{'share':>8}"
    )
    medians = {name: tuple(map(statistics.median, pair)) for name, pair in times.items()}
    total32 = sum(m[0] for m in medians.values())
    total16 = sum(m[1] for m in medians.values())
    for name, _, shape in layers:
        t32, t16 = medians[name]
        size = "x".join(map(str, shape[1:]))
        print(
            f"{name:{width}}{size:>12}{t32 * 1000:9.1f}ms{t16 * 1000:8.1f}ms{t32 / t16:9.2f}x"
            f"{t16 / total16:8.0%}"
        )
    print(
        f"{'all convolutions':{width + 12}}{total32 * 1000:9.0f}ms{total16 * 1000:8.0f}ms"
        f"{total32 / total16:9.2f}x"
    )
    slower = [name for name, (t32, t16) in medians.items() if t16 > t32]
    if slower:
        share = sum(medians[name][1] for name in slower) / total16
        print(f"slower in bf16: {', '.join(slower)} ({share:.0%} of the bf16 convolution time)")


if __name__ == "__main__":
    main()
