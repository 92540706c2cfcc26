"""Checks for a student's residual block against torchvision's ``BasicBlock``.

The strongest check loads one torchvision block's weights into the student's
block and compares outputs. Layers are matched by role, not by attribute name:
the 3x3 convolutions in the order ``forward`` calls them, the 1x1 shortcut
convolution, and each BatchNorm with the convolution called just before it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock as ReferenceBasicBlock
from torchvision.models.resnet import conv1x1

from autograder.checks.probe import (
    build_module,
    call_order,
    check_output_shapes,
    check_own_table,
    compare_outputs,
    first_match,
    load_roles,
    randomize_batchnorm,
    with_batchnorms,
)

__all__ = [
    "BlockCase",
    "check_against_reference",
    "check_basic_block",
    "check_block_shapes",
    "check_block_table",
]


@dataclass(frozen=True)
class BlockCase:
    """``BasicBlock(inplanes, planes, stride)`` on a ``batch x inplanes x size x size`` input.

    Subclasses name another residual block (``autograder.checks.bottleneck.BottleneckCase``)."""

    inplanes: int
    planes: int
    stride: int = 1
    size: int = 8
    batch: int = 2

    name: ClassVar[str] = "BasicBlock"
    expansion: ClassVar[int] = 1
    reference_cls: ClassVar[type[nn.Module]] = ReferenceBasicBlock

    @property
    def call(self) -> str:
        return f"{self.name}({self.inplanes}, {self.planes}, stride={self.stride})"

    @property
    def outplanes(self) -> int:
        return self.planes * self.expansion

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.inplanes, self.size, self.size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        out = (self.size - 1) // self.stride + 1  # the strided 3x3 conv, padding 1
        return (self.batch, self.outplanes, out, out)

    @property
    def needs_projection(self) -> bool:
        return self.stride != 1 or self.inplanes != self.outplanes

    def reference(self) -> nn.Module:
        """torchvision's block, with the 1x1 conv + BN shortcut when shapes change."""
        downsample = None
        if self.needs_projection:
            downsample = nn.Sequential(
                conv1x1(self.inplanes, self.outplanes, self.stride),
                nn.BatchNorm2d(self.outplanes),
            )
        return self.reference_cls(self.inplanes, self.planes, self.stride, downsample)

    def build(self, block_cls: Callable[..., nn.Module]) -> nn.Module | str:
        """``block_cls(inplanes, planes, stride)``, or why it is not a block."""
        args = (self.inplanes, self.planes, self.stride)
        return build_module(block_cls, args, self.call, f"{self.name}(inplanes, planes, stride=1)")


def check_block_shapes(
    block_cls: Callable[..., nn.Module], cases: Sequence[BlockCase]
) -> list[str]:
    """Each case builds, runs, and gives the output shape of a 3x3 conv with ``stride``."""
    return check_output_shapes(lambda case: case.build(block_cls), cases)


def check_block_table(block_cls: Callable[..., nn.Module], case: BlockCase) -> list[str]:
    """The block's own summary table matches torchvision's block, row by row."""
    return check_own_table(case.build(block_cls), case.reference(), case)


def _roles(
    order: list[tuple[nn.Module, bool]], case: BlockCase
) -> dict[str, nn.Module] | list[str]:
    """Name each layer by what it does: conv1/bn1, conv2/bn2, downsample.0/downsample.1."""
    convs = [m for m, _ in order if isinstance(m, nn.Conv2d)]
    convs3 = [m for m in convs if m.kernel_size == (3, 3)]
    convs1 = [m for m in convs if m.kernel_size == (1, 1)]

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
    return with_batchnorms(roles, order, case.call, described)


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
    return first_match(variants, out)


def check_against_reference(
    block_cls: Callable[..., nn.Module],
    case: BlockCase,
    seed: int,
    roles: Callable[[list[tuple[nn.Module, bool]], BlockCase], dict[str, nn.Module] | list[str]],
    stride_problem: Callable[[dict[str, nn.Module]], str | None],
    diagnose: Callable[[torch.Tensor, nn.Module, torch.Tensor], str],
) -> list[str]:
    """Match the student's layers to torchvision's by role (``roles``), check where the
    stride is (``stride_problem``), load torchvision's weights (random BatchNorm
    statistics) and compare outputs; ``diagnose`` names a mistake that explains them."""
    generator = torch.Generator().manual_seed(seed)
    block = case.build(block_cls)
    if isinstance(block, str):
        return [block]
    x = torch.randn(case.input_shape, generator=generator)
    block.eval()
    try:
        order = call_order(block, x)
    except Exception as error:  # a student's forward can fail in any way
        return [f"{case.call} raised {type(error).__name__}: {error}"]
    named = roles(order, case)
    if isinstance(named, list):
        return named
    problem = stride_problem(named)
    if problem:
        return [problem]

    ref = case.reference()
    randomize_batchnorm(ref, generator)
    ref.eval()
    problem = load_roles(named, ref, case.call)
    if problem:
        return [problem]
    what = f"torchvision's {case.name}"
    return compare_outputs(block, ref, x, case.call, what, lambda out: diagnose(out, ref, x))


def _check_against_reference(block_cls, case: BlockCase, seed: int) -> list[str]:
    def stride_problem(named: dict[str, nn.Module]) -> str | None:
        conv1 = named["conv1"]
        if conv1.stride != (case.stride, case.stride):
            return (
                f"{case.call}: the stride belongs on conv1 (the first 3x3 conv), "
                f"which has stride {conv1.stride}."
            )
        return None

    return check_against_reference(block_cls, case, seed, _roles, stride_problem, _diagnose)


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
        block = case.build(block_cls)
        params = sum(p.numel() for p in block.parameters())
        expected = sum(p.numel() for p in case.reference().parameters())
        if params != expected:
            problems.append(f"{case.call} has {params:,} parameters, expected {expected:,}.")
        problems += _check_against_reference(block_cls, case, seed + i)
    return problems
