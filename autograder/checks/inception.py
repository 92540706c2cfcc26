"""Checks for Day 5's GoogLeNet: a convolution's multiplications, the Inception module
with 1x1 reductions, and the whole network from the paper's table.

The references are torchvision's ``Inception`` and ``GoogLeNet`` (``weights=None``,
``aux_logits=False``) with one change: torchvision's "5x5" branch is a 3x3 convolution,
a bug it keeps for its pretrained weights (pytorch/vision#906). The paper, the course slides and
the lab use 5x5, so ``reference_inception`` and ``reference_googlenet`` put a 5x5
``BasicConv2d`` there; ``torchvision_kernels`` turns a model back into torchvision's,
whose parameter count it must then match exactly.

Multiplications are checked against ``torch.utils.flop_counter.FlopCounterMode``, which
counts 2 FLOPs per multiply-add of a convolution. Inception modules are compared with the
reference layer by layer (summary tables), then with the reference's weights loaded in
the order ``forward`` calls the layers, output against output.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.googlenet import BasicConv2d as ReferenceBasicConv2d
from torchvision.models.googlenet import Inception as ReferenceInception

from autograder.checks import student
from autograder.checks.probe import (
    ATOL,
    build_module,
    call_order,
    check_output_shapes,
    check_own_table,
    compare_outputs,
    randomize_batchnorm,
)
from autograder.checks.tables import compare_tables
from autograder.checks.targets import target_table
from labkit.summary import SummaryTable, meta_summary

__all__ = [
    "GOOGLENET_TABLE",
    "SLIDES_SAVING",
    "InceptionCase",
    "MultiplicationCase",
    "check_conv_multiplications",
    "check_googlenet_torchvision",
    "check_inception",
    "check_inception_shapes",
    "check_inception_table",
    "flop_counter_multiplications",
    "googlenet_target",
    "reference_googlenet",
    "reference_inception",
    "torchvision_kernels",
]


# The paper's Table 1 (Szegedy et al., 2014): the nine Inception modules, in order,
# as (name, in_channels, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj).
GOOGLENET_TABLE: tuple[tuple[str, int, int, int, int, int, int, int], ...] = (
    ("inception3a", 192, 64, 96, 128, 16, 32, 32),
    ("inception3b", 256, 128, 128, 192, 32, 96, 64),
    ("inception4a", 480, 192, 96, 208, 16, 48, 64),
    ("inception4b", 512, 160, 112, 224, 24, 64, 64),
    ("inception4c", 512, 128, 128, 256, 24, 64, 64),
    ("inception4d", 512, 112, 144, 288, 32, 64, 64),
    ("inception4e", 528, 256, 160, 320, 32, 128, 128),
    ("inception5a", 832, 256, 160, 320, 32, 128, 128),
    ("inception5b", 832, 384, 192, 384, 48, 128, 128),
)

# The course slides' example: a 32 x 32 x 200 input, a 5x5 convolution with 32 filters ("163M"),
# or a 1x1 reduction to 16 channels first ("16.3M": 3.2M + 13.1M).
SLIDES_SAVING = {"direct": 163_840_000, "reduce": 3_276_800, "then_5x5": 13_107_200}


# ---- multiplications of one convolution ------------------------------------------------------


@dataclass(frozen=True)
class MultiplicationCase:
    """``nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups)``
    on a ``height x width`` input."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    groups: int = 1
    height: int = 32
    width: int = 32
    bias: bool = True

    def build(self) -> nn.Conv2d:
        return nn.Conv2d(
            self.in_channels,
            self.out_channels,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            groups=self.groups,
            bias=self.bias,
        )

    @property
    def call(self) -> str:
        options = student.non_default_keywords(
            ("stride", self.stride, 1), ("padding", self.padding, 0), ("groups", self.groups, 1)
        )
        conv = f"Conv2d({self.in_channels}, {self.out_channels}, {self.kernel_size}{options})"
        return f"conv_multiplications({conv}, {self.height}, {self.width})"

    def out_size(self) -> tuple[int, int]:
        k, s, p = self.kernel_size, self.stride, self.padding
        return (self.height + 2 * p - k) // s + 1, (self.width + 2 * p - k) // s + 1


def flop_counter_multiplications(conv: nn.Conv2d, height: int, width: int) -> int:
    """Multiply-adds of ``conv`` on one ``height x width`` image, as PyTorch's FLOP
    counter measures them (it counts 2 FLOPs per multiply-add)."""
    probe = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        device="meta",
    )
    with FlopCounterMode(display=False) as counter:
        probe(torch.empty(1, conv.in_channels, height, width, device="meta"))
    return counter.get_total_flops() // 2


def _multiplication_hint(case: MultiplicationCase, got: int, expected: int) -> str:
    out_h, out_w = case.out_size()
    per_output = case.in_channels // case.groups * case.kernel_size**2
    weights = case.out_channels * per_output
    hints = {
        2 * expected: "You counted the additions too (2 per multiply-add): count multiplications.",
        case.height * case.width * case.out_channels * per_output: (
            "You used the input's height x width: each filter is applied once per OUTPUT "
            f"position, here {out_h} x {out_w} = (H + 2*padding - kernel) // stride + 1."
        ),
        weights: (
            "That is the number of weights: each of them is used once per output position "
            f"({out_h} x {out_w})."
        ),
        expected * case.groups: (
            "With groups=g each filter sees only in_channels // g channels: divide by the groups."
        ),
        expected + out_h * out_w * case.out_channels: (
            "Adding the bias is an addition, not a multiplication: leave it out."
        ),
    }
    hints.pop(expected, None)
    return " " + hints[got] if got in hints else ""


def check_conv_multiplications(
    fn: Callable[[nn.Conv2d, int, int], Any], cases: Sequence[MultiplicationCase]
) -> list[str]:
    """``fn(conv, height, width)`` is the number of multiplications ``conv`` performs on
    one ``height x width`` image, as a Python int: what FlopCounterMode measures, halved."""
    problems = []
    for case in cases:
        # measured on a layer of its own, so that nothing fn does to its argument counts
        expected = flop_counter_multiplications(case.build(), case.height, case.width)
        try:
            got = fn(case.build(), case.height, case.width)
        except NotImplementedError:
            return [student.stub_problem(case.call)]
        except Exception as error:  # a student's function can fail in any way
            problems.append(f"{case.call} raised {type(error).__name__}: {error}")
            continue
        if type(got) is not int:
            problems.append(
                f"{case.call} should return a Python int, got {type(got).__name__} {got!r:.40}"
                + (": use int(...) or integer arithmetic (//)." if type(got) is not bool else ".")
            )
        elif got != expected:
            problems.append(
                f"{case.call}: expected {expected:,} multiplications (PyTorch's FLOP counter), "
                f"got {got:,}.{_multiplication_hint(case, got, expected)}"
            )
    return problems


# ---- the Inception module ---------------------------------------------------------------------


@dataclass(frozen=True)
class InceptionCase:
    """``Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)`` on a
    ``batch x in_channels x size x size`` input."""

    in_channels: int
    ch1x1: int
    ch3x3red: int
    ch3x3: int
    ch5x5red: int
    ch5x5: int
    pool_proj: int
    size: int = 8
    batch: int = 2

    @property
    def args(self) -> tuple[int, ...]:
        return (
            self.in_channels,
            self.ch1x1,
            self.ch3x3red,
            self.ch3x3,
            self.ch5x5red,
            self.ch5x5,
            self.pool_proj,
        )

    @property
    def call(self) -> str:
        return f"Inception{self.args}"

    @property
    def out_channels(self) -> int:
        return self.ch1x1 + self.ch3x3 + self.ch5x5 + self.pool_proj

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.in_channels, self.size, self.size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.out_channels, self.size, self.size)


def _five_by_five(block: ReferenceInception) -> ReferenceInception:
    """torchvision's Inception with the paper's 5x5 convolution in its third branch."""
    old = block.branch3[1].conv
    block.branch3[1] = ReferenceBasicConv2d(
        old.in_channels, old.out_channels, kernel_size=5, padding=2
    )
    return block


def reference_inception(case: InceptionCase) -> nn.Module:
    """torchvision's ``Inception`` for ``case``, with the paper's 5x5 third branch."""
    return _five_by_five(ReferenceInception(*case.args))


def _build(cls: Callable[..., nn.Module], case: InceptionCase) -> nn.Module | str:
    signature = "Inception(in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)"
    return build_module(cls, case.args, case.call, signature)


def _cat_hint(message: str) -> str:
    """What a failed torch.cat of the four branches most likely means."""
    if "must match except in dimension 0" in message:
        return (
            " The branches have different channel counts, which only dim 1 allows: "
            "concatenate along dim 1 (the channels), not dim 0 (the batch)."
        )
    if "must match except in dimension 1" in message:
        return (
            " The branches have different H x W, and every branch must keep H x W: "
            "padding=1 for the 3x3 convolution, padding=2 for the 5x5, and a 3x3 max pool "
            "with stride=1, padding=1 in the pool branch."
        )
    return ""


def _shape_hint(case: InceptionCase, shape: tuple[int, ...]) -> str:
    if len(shape) != 4:
        return " Concatenate the four branches along the channels: torch.cat([...], 1)."
    hints = []
    if shape[1] != case.out_channels:
        parts = f"{case.ch1x1} + {case.ch3x3} + {case.ch5x5} + {case.pool_proj}"
        if shape[0] != case.batch:
            hints.append(" Concatenate along dim 1 (the channels), not dim 0 (the batch).")
        elif shape[1] == case.ch1x1 + case.ch3x3red + case.ch5x5red + case.pool_proj:
            hints.append(
                " That is ch1x1 + ch3x3red + ch5x5red + pool_proj: the 3x3 and 5x5 branches "
                "must end in their ch3x3 and ch5x5 filters, after the 1x1 reductions."
            )
        else:
            hints.append(f" The output has ch1x1 + ch3x3 + ch5x5 + pool_proj = {parts} channels.")
    if shape[2:] != (case.size, case.size):
        hints.append(
            " Every branch keeps H x W: padding=1 for the 3x3 convolution, padding=2 for the "
            "5x5, and a 3x3 max pool with stride=1, padding=1 in the pool branch."
        )
    return "".join(hints)


def check_inception_shapes(
    cls: Callable[..., nn.Module], cases: Sequence[InceptionCase]
) -> list[str]:
    """Each case builds, runs, keeps H x W and has ch1x1 + ch3x3 + ch5x5 + pool_proj channels."""
    return check_output_shapes(lambda case: _build(cls, case), cases, _shape_hint, _cat_hint)


def check_inception_table(cls: Callable[..., nn.Module], case: InceptionCase) -> list[str]:
    """The module's own summary table matches the reference's (torchvision's, with 5x5)."""
    return check_own_table(_build(cls, case), reference_inception(case), case)


def _branches(ref: ReferenceInception, x: torch.Tensor) -> list[torch.Tensor]:
    return [ref.branch1(x), ref.branch2(x), ref.branch3(x), ref.branch4(x)]


def _diagnose(out: torch.Tensor, ref: ReferenceInception, x: torch.Tensor) -> str:
    """Say which common mistake reproduces ``out``, if one does."""
    names = ("1x1", "3x3", "5x5", "pool")
    branches = _branches(ref, x)
    for order in itertools.permutations(range(4)):
        if order == (0, 1, 2, 3):
            continue
        value = torch.cat([branches[i] for i in order], 1)
        if value.shape == out.shape and torch.allclose(value, out, atol=ATOL):
            yours = ", ".join(names[i] for i in order)
            return (
                f" Your branches are concatenated in the order ({yours}): torchvision and the "
                "paper put them as (1x1, 3x3, 5x5, pool)."
            )
    no_pool = torch.cat([*branches[:3], ref.branch4[1](x)], 1)
    if no_pool.shape == out.shape and torch.allclose(no_pool, out, atol=ATOL):
        return (
            " The pool branch skips its max pool: MaxPool2d(3, stride=1, padding=1) comes "
            "before the 1x1 projection."
        )
    return ""


def _load_by_call_order(block: nn.Module, ref: nn.Module, x: torch.Tensor, call: str) -> str | None:
    """Copy ``ref``'s weights into ``block``, layer by layer in call order; a problem or None."""
    try:
        mine = [module for module, _ in call_order(block, x)]
    except Exception as error:  # a student's forward can fail in any way
        return f"{call} raised {type(error).__name__}: {error}"
    theirs = [module for module, _ in call_order(ref, x)]
    kinds = [type(m).__name__ for m in mine]
    wanted = [type(m).__name__ for m in theirs]
    if kinds != wanted:
        return (
            f"{call}: forward() calls {kinds.count('Conv2d')} Conv2d and "
            f"{kinds.count('BatchNorm2d')} BatchNorm2d layers, expected 6 of each "
            "(a BasicConv2d for every convolution)."
        )
    for i, (module, source) in enumerate(zip(mine, theirs, strict=True)):
        try:
            module.load_state_dict(source.state_dict())
        except RuntimeError as error:
            return (
                f"{call}: layer {i} in call order ({module}) does not fit the reference's: {error}"
            )
    return None


def _check_against_reference(cls, case: InceptionCase, seed: int) -> list[str]:
    generator = torch.Generator().manual_seed(seed)
    block = _build(cls, case)
    if isinstance(block, str):
        return [block]
    x = torch.randn(case.input_shape, generator=generator)
    ref = reference_inception(case)
    randomize_batchnorm(ref, generator)
    block.eval()
    ref.eval()
    problem = _load_by_call_order(block, ref, x, case.call)
    if problem:
        return [problem]
    eps = {m.eps for m in block.modules() if isinstance(m, nn.BatchNorm2d)}
    if eps != {0.001}:
        return [
            f"{case.call}: its BatchNorm2d layers have eps {sorted(eps)}: build every "
            "convolution with the BasicConv2d given above (BatchNorm2d(..., eps=0.001))."
        ]
    return compare_outputs(
        block,
        ref,
        x,
        case.call,
        "torchvision's Inception (with 5x5)",
        lambda out: _diagnose(out, ref, x),
        _cat_hint,
        weights="the reference's",
    )


def check_inception(
    cls: Callable[..., nn.Module], cases: Sequence[InceptionCase], seed: int = 0
) -> list[str]:
    """Everything an Inception module must do, case by case, compared with torchvision's
    (with 5x5): shapes, parameters, the summary table, and the same output as the
    reference with the same weights, which holds only if the branches are what they
    should be and concatenated in the order 1x1, 3x3, 5x5, pool."""
    problems = check_inception_shapes(cls, cases)
    if problems:
        return problems
    for i, case in enumerate(cases):
        block = _build(cls, case)
        params = sum(p.numel() for p in block.parameters())
        expected = sum(p.numel() for p in reference_inception(case).parameters())
        if params != expected:
            problems.append(f"{case.call} has {params:,} parameters, expected {expected:,}.")
            continue
        problems += check_inception_table(cls, case)
        if not problems:
            problems += _check_against_reference(cls, case, seed + i)
    return problems


# ---- GoogLeNet --------------------------------------------------------------------------------


def reference_googlenet(num_classes: int = 1000, paper_kernels: bool = True) -> nn.Module:
    """torchvision's GoogLeNet without auxiliary classifiers; with ``paper_kernels``, the
    paper's 5x5 convolutions in the third branch of every Inception module."""
    model = torchvision.models.googlenet(
        weights=None, num_classes=num_classes, aux_logits=False, init_weights=False
    )
    if paper_kernels:
        for module in model.modules():
            if isinstance(module, ReferenceInception):
                _five_by_five(module)
    return model


def googlenet_target(
    num_classes: int = 10, input_size: Sequence[int] = (3, 224, 224)
) -> SummaryTable:
    """The summary table of ``reference_googlenet(num_classes)`` (computed on the meta device)."""
    return meta_summary(lambda: reference_googlenet(num_classes), tuple(input_size))


def torchvision_kernels(model: nn.Module) -> nn.Module:
    """``model`` with every 5x5 convolution (padding 2) replaced by torchvision's 3x3
    (padding 1), in place: the change that separates the paper's GoogLeNet from
    torchvision's. Returns ``model``."""
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.Conv2d) and child.kernel_size == (5, 5):
                replacement = nn.Conv2d(
                    child.in_channels,
                    child.out_channels,
                    kernel_size=3,
                    stride=child.stride,
                    padding=1,
                    bias=child.bias is not None,
                    device=child.weight.device,
                )
                parent.add_module(name, replacement)
    return model


def check_googlenet_torchvision(
    build: Callable[[], nn.Module], num_classes: int, name: str = "GoogLeNet"
) -> list[str]:
    """With torchvision's 3x3 convolutions in place of the 5x5 ones, ``build()`` has
    torchvision's ``googlenet(aux_logits=False)`` summary table and parameter count."""
    expected = target_table(
        "googlenet", num_classes, (3, 224, 224), aux_logits=False, init_weights=False
    )
    try:
        actual = meta_summary(lambda: torchvision_kernels(build()), (3, 224, 224))
    except NotImplementedError:
        return [student.stub_problem(name)]
    except Exception as error:  # a student's model can fail in any way
        return [f"{name} with torchvision's 3x3 kernels failed: {type(error).__name__}: {error}"]
    return compare_tables(actual, expected, f"{name} with torchvision's 3x3 kernels")
