"""Day 2 checks: AlexNet's per-layer shapes, its LRN and dropout, and the two-column
convolution that a grouped convolution (``groups=2``) computes in one call."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from labkit.summary import record_outputs

__all__ = [
    "SLIDES_ALEXNET_SHAPES",
    "GroupedConvCase",
    "check_alexnet_settings",
    "check_grouped_conv",
    "check_layer_shapes",
    "layer_shapes",
]

# The course slides' AlexNet, layer by layer (227 x 227 x 3 input): the layers that change
# the shape or hold weights, as (layer type, output shape without the batch).
SLIDES_ALEXNET_SHAPES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Conv2d", (96, 55, 55)),  # CONV1: 96 11x11 filters, stride 4, pad 0
    ("LocalResponseNorm", (96, 55, 55)),  # NORM1
    ("MaxPool2d", (96, 27, 27)),  # POOL1: 3x3, stride 2
    ("Conv2d", (256, 27, 27)),  # CONV2: 256 5x5, pad 2
    ("LocalResponseNorm", (256, 27, 27)),  # NORM2
    ("MaxPool2d", (256, 13, 13)),  # POOL2
    ("Conv2d", (384, 13, 13)),  # CONV3: 384 3x3, pad 1
    ("Conv2d", (384, 13, 13)),  # CONV4: 384 3x3, pad 1
    ("Conv2d", (256, 13, 13)),  # CONV5: 256 3x3, pad 1
    ("MaxPool2d", (256, 6, 6)),  # POOL3
    ("Linear", (4096,)),  # FC6
    ("Linear", (4096,)),  # FC7
    ("Linear", (1000,)),  # FC8: class scores
)
_SHAPED = ("Conv2d", "LocalResponseNorm", "MaxPool2d", "AvgPool2d", "Linear")


def layer_shapes(
    model: nn.Module, input_size: Sequence[int] = (3, 227, 227), kinds: Sequence[str] = _SHAPED
) -> list[tuple[str, tuple[int, ...]]]:
    """(layer type, output shape without the batch) for each call of a layer of ``kinds``,
    in call order, from one eval-mode forward pass of a copy of ``model``."""
    calls = record_outputs(
        copy.deepcopy(model).eval(),
        torch.zeros(1, *input_size),
        lambda m: type(m).__name__ in kinds,
    )
    return [(type(c.module).__name__, tuple(c.output.shape[1:])) for c in calls]


def _fmt(row: tuple[str, tuple[int, ...]]) -> str:
    layer, shape = row
    return f"{layer} -> {' x '.join(str(s) for s in shape)}"


def check_layer_shapes(
    model: nn.Module,
    expected: Sequence[tuple[str, tuple[int, ...]]] = SLIDES_ALEXNET_SHAPES,
    input_size: Sequence[int] = (3, 227, 227),
    name: str = "model",
) -> list[str]:
    """The layers' output shapes against ``expected``; names the first that differs."""
    if not isinstance(model, nn.Module):
        return [f"{name}: expected an nn.Module, got {type(model).__name__}."]
    try:
        actual = layer_shapes(model, input_size)
    except Exception as error:  # a student's forward() can fail in any way
        size = " x ".join(str(s) for s in input_size)
        return [
            f"{name}: a forward pass on a 1 x {size} input failed: {type(error).__name__}: {error}"
        ]
    for i, (want, got) in enumerate(zip(expected, actual, strict=False)):
        if tuple(want) != got:
            return [
                f"{name}: layer {i + 1} of the course slides' list differs.\n"
                f"  expected: {_fmt(tuple(want))}\n  yours:    {_fmt(got)}\n"
                f"  ({i} layers before it match the course slides' list)"
            ]
    if len(actual) != len(expected):
        extra = actual[len(expected) :]
        missing = expected[len(actual) :]
        return [
            f"{name}: expected {len(expected)} conv/LRN/pool/linear layer calls, found "
            f"{len(actual)}."
            + (f" Missing: {', '.join(_fmt(tuple(r)) for r in missing)}." if missing else "")
            + (f" Extra: {', '.join(_fmt(r) for r in extra)}." if extra else "")
        ]
    return []


def check_alexnet_settings(model: nn.Module) -> list[str]:
    """What the summary table cannot show: LRN's constants and the dropout probability."""
    problems = []
    norms = [m for m in model.modules() if isinstance(m, nn.LocalResponseNorm)]
    for norm in norms:
        got = (norm.size, norm.alpha, norm.beta, norm.k)
        if got != (5, 1e-4, 0.75, 2.0):
            problems.append(
                f"LocalResponseNorm(size={got[0]}, alpha={got[1]}, beta={got[2]}, k={got[3]}): "
                "the paper uses size=5, alpha=1e-4, beta=0.75, k=2."
            )
            break
    if len(norms) != 2:
        problems.append(
            f"expected 2 LocalResponseNorm layers (after conv1, conv2), found {len(norms)}."
        )
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    if len(drops) != 2 or any(d.p != 0.5 for d in drops):
        problems.append(
            "expected 2 nn.Dropout(0.5) layers, before fc6 and before fc7; found "
            f"{[d.p for d in drops]}."
        )
    return problems


@dataclass(frozen=True)
class GroupedConvCase:
    """One column pair: two convs of ``in_channels`` -> ``out_channels`` each."""

    in_channels: int
    out_channels: int
    kernel_size: int = 3
    stride: int = 1
    padding: int = 1
    size: int = 9
    batch: int = 2


def _columns(case: GroupedConvCase, seed: int) -> tuple[nn.Conv2d, nn.Conv2d, torch.Tensor]:
    torch.manual_seed(seed)
    convs = [
        nn.Conv2d(case.in_channels, case.out_channels, case.kernel_size, case.stride, case.padding)
        for _ in range(2)
    ]
    x = torch.randn(case.batch, 2 * case.in_channels, case.size, case.size)
    return convs[0], convs[1], x


def check_grouped_conv(
    two_column_conv: Callable,
    grouped_from_columns: Callable,
    cases: Sequence[GroupedConvCase],
    seed: int = 0,
) -> list[str]:
    """``two_column_conv(x, conv_a, conv_b)`` computes the course slides' two GPU columns;
    ``grouped_from_columns(conv_a, conv_b)`` is one ``nn.Conv2d(groups=2)`` that
    computes the same, with half the weights of a dense convolution."""
    problems = []
    for i, case in enumerate(cases):
        conv_a, conv_b, x = _columns(case, seed + i)
        c = case.in_channels
        with torch.no_grad():
            expected = torch.cat([conv_a(x[:, :c]), conv_b(x[:, c:])], dim=1)
        label = (
            f"two columns of Conv2d({c}, {case.out_channels}, {case.kernel_size}, "
            f"stride={case.stride}, padding={case.padding}) on a {tuple(x.shape)} input"
        )
        with torch.no_grad():
            out = two_column_conv(x, conv_a, conv_b)
        if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            problems.append(
                f"two_column_conv, {label}: expected shape {tuple(expected.shape)}, got {shape}."
            )
        elif not torch.allclose(out, expected, atol=1e-5):
            problems.append(
                f"two_column_conv, {label}: the values differ (largest difference "
                f"{(out - expected).abs().max().item():.3g}). conv_a sees the first {c} channels "
                "and conv_b the rest; concatenate a's output before b's."
            )

        grouped = grouped_from_columns(conv_a, conv_b)
        if type(grouped) is not nn.Conv2d:
            problems.append(
                f"grouped_from_columns must return an nn.Conv2d, got {type(grouped).__name__}."
            )
            continue
        if grouped.groups != 2:
            problems.append(f"grouped_from_columns: groups={grouped.groups}, expected 2.")
            continue
        dense = 2 * case.out_channels * 2 * c * case.kernel_size**2
        weights = grouped.weight.numel()
        if weights * 2 != dense:
            problems.append(
                f"grouped_from_columns, {label}: {weights:,} weights; a dense "
                f"Conv2d({2 * c}, {2 * case.out_channels}) has {dense:,}, groups=2 exactly half."
            )
            continue
        with torch.no_grad():
            try:
                got = grouped(x)
            except Exception as error:  # the student's module can fail in any way
                problems.append(
                    f"grouped_from_columns: the conv failed: {type(error).__name__}: {error}"
                )
                continue
        if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-5):
            problems.append(
                f"grouped_from_columns, {label}: its output is not the two columns' output. "
                "Copy conv_a's weight and bias into the first half (dim 0) and conv_b's into "
                "the second, and keep kernel size, stride and padding."
            )
    return problems
