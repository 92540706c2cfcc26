"""Checks for a student's ``Bottleneck`` block against torchvision's (ResNet V1.5).

As for Day 4's ``BasicBlock`` (``autograder.checks.blocks``), the strongest check loads a
torchvision block's weights into the student's block and compares outputs. Layers are
matched by role, not by attribute name: of the 1x1 convolutions that read the block's
input, the one with ``planes`` filters is conv1 and the one with ``planes * 4`` is the
shortcut's projection; the 3x3 convolution is conv2; the 1x1 convolution that reads
anything else is conv3. Each BatchNorm is the one called right after its convolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torchvision.models.resnet import Bottleneck as ReferenceBottleneck

from autograder.checks.blocks import BlockCase, check_against_reference
from autograder.checks.probe import (
    check_output_shapes,
    check_own_table,
    first_match,
    with_batchnorms,
)

__all__ = [
    "EXPANSION",
    "BottleneckCase",
    "check_bottleneck",
    "check_bottleneck_shapes",
    "check_bottleneck_table",
]

EXPANSION = 4


@dataclass(frozen=True)
class BottleneckCase(BlockCase):
    """``Bottleneck(inplanes, planes, stride)`` on a ``batch x inplanes x size x size``
    input: ``planes * 4`` channels out."""

    name: ClassVar[str] = "Bottleneck"
    expansion: ClassVar[int] = EXPANSION
    reference_cls: ClassVar[type[nn.Module]] = ReferenceBottleneck


def _shape_hint(case: BottleneckCase, shape: tuple[int, ...]) -> str:
    if len(shape) != 4:
        return ""
    hints = []
    if shape[1] == case.planes:
        hints.append(
            f" {case.planes} channels is planes: the last 1x1 convolution expands to "
            f"planes * expansion = {case.outplanes}."
        )
    elif shape[1] != case.outplanes:
        hints.append(f" The block outputs planes * expansion = {case.outplanes} channels.")
    if shape[2:] != case.output_shape[2:]:
        hints.append(
            f" Stride {case.stride} goes on the 3x3 convolution (padding 1) and on the "
            "shortcut's 1x1 projection."
        )
    return "".join(hints)


def check_bottleneck_shapes(
    block_cls: Callable[..., nn.Module], cases: Sequence[BottleneckCase]
) -> list[str]:
    """Each case builds, runs, and gives ``planes * 4`` channels at the strided size."""
    return check_output_shapes(lambda case: case.build(block_cls), cases, _shape_hint)


def check_bottleneck_table(block_cls: Callable[..., nn.Module], case: BottleneckCase) -> list[str]:
    """The block's own summary table matches torchvision's Bottleneck, row by row."""
    return check_own_table(case.build(block_cls), case.reference(), case)


def _roles(calls: list[tuple[nn.Module, bool]], case: BottleneckCase) -> dict | list[str]:
    """Name each layer by what it does: conv1..3/bn1..3, downsample.0/downsample.1."""
    convs = [(m, reads_x) for m, reads_x in calls if isinstance(m, nn.Conv2d)]
    convs3 = [m for m, _ in convs if m.kernel_size == (3, 3)]
    on_input = [m for m, reads_x in convs if reads_x and m.kernel_size == (1, 1)]
    inner = [m for m, reads_x in convs if not reads_x and m.kernel_size == (1, 1)]
    problems = []
    if len(convs3) != 1:
        problems.append(f"{case.call}: expected one 3x3 convolution, forward() uses {len(convs3)}.")
    conv1 = [m for m in on_input if m.out_channels == case.planes]
    shortcut = [m for m in on_input if m.out_channels != case.planes]
    if len(conv1) != 1 or len(inner) != 1:
        problems.append(
            f"{case.call}: expected conv1 (1x1, {case.inplanes} -> {case.planes}) on the "
            f"block's input and conv3 (1x1, {case.planes} -> {case.outplanes}) after the 3x3; "
            f"forward() applies {len(on_input)} 1x1 convolution(s) to the input and "
            f"{len(inner)} to other tensors."
        )
    if case.needs_projection and len(shortcut) != 1:
        problems.append(
            f"{case.call}: stride {case.stride}, {case.inplanes} -> {case.outplanes} channels: "
            "the shortcut needs one 1x1 convolution (and a BatchNorm2d) on the block's input."
        )
    if not case.needs_projection and shortcut:
        problems.append(
            f"{case.call}: input and output shapes match, so the shortcut should be the "
            "identity; forward() applies a 1x1 convolution to the input."
        )
    if problems:
        return problems

    roles = {"conv1": conv1[0], "conv2": convs3[0], "conv3": inner[0]}
    if case.needs_projection:
        roles["downsample.0"] = shortcut[0]
    described = {
        "conv1": "conv1 (the first 1x1)",
        "conv2": "conv2 (the 3x3)",
        "conv3": "conv3 (the expanding 1x1)",
        "downsample.0": "the shortcut's 1x1 conv",
    }
    return with_batchnorms(roles, calls, case.call, described)


def _diagnose(out: torch.Tensor, ref: nn.Module, x: torch.Tensor) -> str:
    """Say which common mistake reproduces ``out``, if one does."""
    relu = torch.relu
    first = ref.bn1(ref.conv1(x))
    main = ref.bn3(ref.conv3(relu(ref.bn2(ref.conv2(relu(first))))))
    shortcut = x if ref.downsample is None else ref.downsample(x)
    variants = {
        "the shortcut is never added: out = relu(bn3(conv3(...))) needs + identity": relu(main),
        "the ReLU comes before the addition: add the shortcut first, then apply the last ReLU": (
            relu(main) + shortcut
        ),
        "the last ReLU is missing: out = relu(bn3(conv3(...)) + identity)": main + shortcut,
        "the ReLU after bn1 is missing": relu(
            ref.bn3(ref.conv3(relu(ref.bn2(ref.conv2(first))))) + shortcut
        ),
        "the ReLU after bn2 is missing": relu(
            ref.bn3(ref.conv3(ref.bn2(ref.conv2(relu(first))))) + shortcut
        ),
    }
    return first_match(variants, out)


def _check_against_reference(block_cls, case: BottleneckCase, seed: int) -> list[str]:
    def stride_problem(named: dict[str, nn.Module]) -> str | None:
        stride = (case.stride, case.stride)
        if case.stride != 1 and named["conv2"].stride != stride:
            where = "conv1 (the first 1x1)" if named["conv1"].stride == stride else "no convolution"
            return (
                f"{case.call}: the stride is on {where}; torchvision (ResNet V1.5) puts it on "
                f"conv2, the 3x3 convolution, whose stride is {named['conv2'].stride}."
            )
        if named["conv1"].stride != (1, 1):
            return (
                f"{case.call}: conv1 (the first 1x1) should have stride 1, "
                f"not {named['conv1'].stride}."
            )
        return None

    return check_against_reference(block_cls, case, seed, _roles, stride_problem, _diagnose)


def check_bottleneck(
    block_cls: Callable[..., nn.Module], cases: Sequence[BottleneckCase], seed: int = 0
) -> list[str]:
    """Everything a Bottleneck must do, case by case, compared with torchvision's.

    ``expansion`` is the int 4; shapes for each stride and width; an identity shortcut
    when shapes match and conv1x1 + BatchNorm otherwise; the stride on the 3x3
    convolution (V1.5); the same output as torchvision's block with the same weights.
    """
    problems = []
    expansion = getattr(block_cls, "expansion", None)
    if type(expansion) is not int or expansion != EXPANSION:
        problems.append(f"Bottleneck.expansion should be the int 4, got {expansion!r}.")
    problems += check_bottleneck_shapes(block_cls, cases)
    if problems:
        return problems
    for i, case in enumerate(cases):
        found = _check_against_reference(block_cls, case, seed + i)  # names the layer
        if not found:  # every layer right: anything more is a layer forward() never uses
            block = case.build(block_cls)
            params = sum(p.numel() for p in block.parameters())
            expected = sum(p.numel() for p in case.reference().parameters())
            if params != expected:
                found = [
                    f"{case.call} has {params:,} parameters, expected {expected:,}: it holds "
                    "layers that forward() does not use."
                ]
        problems += found
    return problems
