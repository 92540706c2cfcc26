"""Checks for a student's residual block against torchvision's ``BasicBlock``.

The strongest check loads one torchvision block's weights into the student's
block and compares outputs. Layers are matched by role, not by attribute name:
the 3x3 convolutions in the order ``forward`` calls them, the 1x1 shortcut
convolution, and each BatchNorm with the convolution called just before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock as ReferenceBasicBlock
from torchvision.models.resnet import conv1x1

from autograder.probe import (
    ATOL,
    batchnorm_after,
    build_module,
    call_order,
    compare_outputs,
    load_roles,
    randomize_batchnorm,
    run_module,
)
from autograder.tables import compare_tables
from labkit.summary import capture_summary

__all__ = ["BlockCase", "check_basic_block", "check_block_shapes", "check_block_table"]


@dataclass(frozen=True)
class BlockCase:
    """``block_cls(inplanes, planes, stride)`` on a ``batch x inplanes x size x size`` input."""

    inplanes: int
    planes: int
    stride: int = 1
    size: int = 8
    batch: int = 2

    @property
    def call(self) -> str:
        return f"BasicBlock({self.inplanes}, {self.planes}, stride={self.stride})"

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.inplanes, self.size, self.size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        out = (self.size - 1) // self.stride + 1  # a 3x3 conv with padding 1
        return (self.batch, self.planes, out, out)

    @property
    def needs_projection(self) -> bool:
        return self.stride != 1 or self.inplanes != self.planes


def reference_block(case: BlockCase) -> nn.Module:
    """torchvision's block for ``case``, with the 1x1 conv + BN shortcut when shapes change."""
    downsample = None
    if case.needs_projection:
        downsample = nn.Sequential(
            conv1x1(case.inplanes, case.planes, case.stride), nn.BatchNorm2d(case.planes)
        )
    return ReferenceBasicBlock(case.inplanes, case.planes, case.stride, downsample)


def _build(block_cls: Callable[..., nn.Module], case: BlockCase) -> nn.Module | str:
    args = (case.inplanes, case.planes, case.stride)
    return build_module(block_cls, args, case.call, "BasicBlock(inplanes, planes, stride=1)")


def check_block_shapes(
    block_cls: Callable[..., nn.Module], cases: Sequence[BlockCase]
) -> list[str]:
    """Each case builds, runs, and gives the output shape of a 3x3 conv with ``stride``."""
    problems = []
    for case in cases:
        block = _build(block_cls, case)
        if isinstance(block, str):
            problems.append(block)
            continue
        out = run_module(block, torch.randn(case.input_shape), case.call)
        if isinstance(out, str):
            problems.append(out)
        elif tuple(out.shape) != case.output_shape:
            problems.append(
                f"{case.call} on input {case.input_shape}: expected output shape "
                f"{case.output_shape}, got {tuple(out.shape)}."
            )
    return problems


def check_block_table(block_cls: Callable[..., nn.Module], case: BlockCase) -> list[str]:
    """The block's own summary table matches torchvision's block, row by row."""
    block = _build(block_cls, case)
    if isinstance(block, str):
        return [block]
    input_size = case.input_shape[1:]
    try:
        actual = capture_summary(block, input_size)
    except Exception as error:
        return [f"summary({case.call}, {input_size}) failed: {type(error).__name__}: {error}"]
    expected = capture_summary(reference_block(case), input_size)
    return compare_tables(actual, expected, case.call)


def _roles(
    order: list[tuple[nn.Module, bool]], case: BlockCase
) -> dict[str, nn.Module] | list[str]:
    """Name each layer by what it does: conv1/bn1, conv2/bn2, downsample.0/downsample.1."""
    convs = [m for m, _ in order if isinstance(m, nn.Conv2d)]
    convs3 = [m for m in convs if m.kernel_size == (3, 3)]
    convs1 = [m for m in convs if m.kernel_size == (1, 1)]
    bn_after = batchnorm_after(order)

    problems = []
    if len(convs3) != 2:
        problems.append(
            f"{case.call}: expected two 3x3 convolutions, forward() uses {len(convs3)}."
        )
    if case.needs_projection and len(convs1) != 1:
        problems.append(
            f"{case.call}: stride {case.stride}, {case.inplanes} -> {case.planes} channels: the "
            f"shortcut needs one 1x1 convolution, forward() uses {len(convs1)}."
        )
    if not case.needs_projection and convs1:
        problems.append(
            f"{case.call}: input and output shapes match, so the shortcut should be the identity; "
            "forward() uses a 1x1 convolution."
        )
    if problems:
        return problems

    roles = {"conv1": convs3[0], "conv2": convs3[1]}
    if case.needs_projection:
        roles["downsample.0"] = convs1[0]
    described = {"conv1": "conv1", "conv2": "conv2", "downsample.0": "the shortcut's 1x1 conv"}
    for name in list(roles):
        bn = bn_after.get(id(roles[name]))
        if bn is None:
            problems.append(
                f"{case.call}: no BatchNorm2d follows {described[name]}; "
                "every convolution is followed by a BatchNorm2d."
            )
        else:
            roles[name.replace("conv", "bn").replace(".0", ".1")] = bn
    return problems or roles


def _diagnose(out: torch.Tensor, ref: nn.Module, x: torch.Tensor) -> str:
    """Say which common mistake reproduces ``out``, if one does."""
    relu = torch.relu
    main = ref.bn2(ref.conv2(relu(ref.bn1(ref.conv1(x)))))
    shortcut = x if ref.downsample is None else ref.downsample(x)
    no_first_relu = ref.bn2(ref.conv2(ref.bn1(ref.conv1(x))))
    variants = {
        "the shortcut is never added: out = relu(bn2(conv2(...))) needs + identity": relu(main),
        "the ReLU comes before the addition: add the shortcut first, then apply the last ReLU": (
            relu(main) + shortcut
        ),
        "the last ReLU is missing: out = relu(bn2(conv2(...)) + identity)": main + shortcut,
        "the first ReLU (after bn1) is missing": relu(no_first_relu + shortcut),
    }
    for hint, value in variants.items():
        if value.shape == out.shape and torch.allclose(value, out, atol=ATOL):
            return f" It looks like {hint}."
    return ""


def _check_against_reference(block_cls, case: BlockCase, seed: int) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    block = _build(block_cls, case)
    if isinstance(block, str):
        return [block]
    x = torch.randn(case.input_shape, generator=generator)
    block.eval()
    try:
        order = call_order(block, x)
    except Exception as error:
        return [f"{case.call} raised {type(error).__name__}: {error}"]
    roles = _roles(order, case)
    if isinstance(roles, list):
        return roles

    ref = reference_block(case)
    randomize_batchnorm(ref, generator)
    ref.eval()
    problem = load_roles(roles, ref, case.call)
    if problem:
        return [problem]
    conv1 = roles["conv1"]
    if conv1.stride != (case.stride, case.stride):
        return [
            f"{case.call}: the stride belongs on conv1 (the first 3x3 conv), "
            f"which has stride {conv1.stride}."
        ]
    return compare_outputs(
        block, ref, x, case.call, "torchvision's BasicBlock", lambda out: _diagnose(out, ref, x)
    )


def check_basic_block(
    block_cls: Callable[..., nn.Module], cases: Sequence[BlockCase], seed: int = 0
) -> list[str]:
    """Everything a BasicBlock must do, case by case, compared with torchvision's.

    Shapes for each stride and channel change; an identity shortcut (no extra
    layers or parameters) when shapes match and conv1x1 + BatchNorm otherwise;
    the same output as torchvision's block with the same weights, which holds
    only if the residual is added before the last ReLU.
    """
    problems = []
    expansion = getattr(block_cls, "expansion", None)
    if type(expansion) is not int or expansion != 1:
        problems.append(f"BasicBlock.expansion should be the int 1, got {expansion!r}.")
    problems += check_block_shapes(block_cls, cases)
    if problems:
        return problems
    for i, case in enumerate(cases):
        block = _build(block_cls, case)
        params = sum(p.numel() for p in block.parameters())
        expected = sum(p.numel() for p in reference_block(case).parameters())
        if params != expected:
            problems.append(f"{case.call} has {params:,} parameters, expected {expected:,}.")
        problems += _check_against_reference(block_cls, case, seed + i)
    return problems
