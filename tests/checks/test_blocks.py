"""Tests for autograder.checks.blocks on the Day 4 solution's BasicBlock and its mutants.

Each mutant is the solution with one mistake a student makes, built by editing
the solution's source text (``solution_namespace`` checks that every edit applies
exactly once) or written out below when the mistake is not a one-line edit.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from autograder.checks.blocks import (
    BlockCase,
    check_basic_block,
    check_block_shapes,
    check_block_table,
)

IDENTITY = BlockCase(8, 8, 1)
PROJECTION = BlockCase(8, 16, 2)
CASES = [
    IDENTITY,
    PROJECTION,
    BlockCase(6, 10, 1, size=7),  # channels change, size kept
    BlockCase(4, 4, 2, size=9),  # size halves (odd), channels kept
    BlockCase(3, 5, 2, size=5, batch=3),
]
STRIDED = [c for c in CASES if c.stride != 1]

# One-line edits of the solution's source: each makes one classic mistake.
NO_SHORTCUT_BN = {"                nn.BatchNorm2d(planes * self.expansion),\n": ""}
RELU_BEFORE_ADD = {
    "        out = self.bn2(out)\n": "        out = self.bn2(out)\n        out = self.relu(out)\n",
    "        out += identity\n        out = self.relu(out)\n": "        out += identity\n",
}
NEVER_ADDED = {"        out += identity\n": ""}
NO_LAST_RELU = {
    "        out += identity\n        out = self.relu(out)\n": "        out += identity\n"
}
NO_FIRST_RELU = {
    "        out = self.bn1(out)\n        out = self.relu(out)\n": "        out = self.bn1(out)\n"
}
STRIDE_ON_CONV2 = {
    "self.conv1 = conv3x3(inplanes, planes, stride)": "self.conv1 = conv3x3(inplanes, planes)",
    "self.conv2 = conv3x3(planes, planes)": "self.conv2 = conv3x3(planes, planes, stride)",
}
NO_STRIDE = {
    "self.conv1 = conv3x3(inplanes, planes, stride)": "self.conv1 = conv3x3(inplanes, planes)",
    "conv1x1(inplanes, planes * self.expansion, stride)": "conv1x1(inplanes, planes)",
}
ALWAYS_PROJECT = {"if stride != 1 or inplanes != planes * self.expansion:": "if True:"}
FORWARD_STUB = {"        identity = x\n": "        raise NotImplementedError()\n"}


def mutant(solution_namespace, replace: dict[str, str]) -> type[nn.Module]:
    return solution_namespace(replace)["BasicBlock"]


@pytest.fixture(scope="module")
def block_cls(solution) -> type[nn.Module]:
    return solution["BasicBlock"]


class ShortcutFirst(nn.Module):
    """A correct block with its own attribute names that computes the shortcut first."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.a = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.a_norm = nn.BatchNorm2d(planes)
        self.b = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.b_norm = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.skip = None
        if stride != 1 or inplanes != planes:
            self.skip = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = x if self.skip is None else self.skip(x)
        out = self.relu(self.a_norm(self.a(x)))
        return self.relu(self.b_norm(self.b(out)) + skip)


class InitStub(nn.Module):
    """What a student's notebook holds before TODO 1 is done."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        raise NotImplementedError()


# ---- the solution passes ------------------------------------------------------------------------


def test_solution_block_passes_every_check(block_cls):
    assert check_basic_block(block_cls, CASES) == []
    assert check_basic_block(block_cls, CASES, seed=1234) == []
    assert check_block_shapes(block_cls, CASES) == []
    assert check_block_table(block_cls, PROJECTION) == []
    assert check_block_table(block_cls, IDENTITY) == []


def test_reference_block_has_the_shapes_of_each_case():
    for case in CASES:
        block = case.reference()
        assert isinstance(block.downsample, nn.Sequential) == case.needs_projection
        out = block(torch.randn(case.input_shape))
        assert tuple(out.shape) == case.output_shape


def test_layers_are_matched_by_role_not_by_name_or_call_order():
    assert check_basic_block(ShortcutFirst, CASES) == []
    # summary lists layers in call order, so the table check does see the difference
    (problem,) = check_block_table(ShortcutFirst, PROJECTION)
    assert "in a different order" in problem


def test_block_case_shapes():
    assert BlockCase(3, 5, 2, size=5, batch=3).input_shape == (3, 3, 5, 5)
    assert BlockCase(3, 5, 2, size=5, batch=3).output_shape == (3, 5, 3, 3)
    assert BlockCase(4, 4, 2, size=9).output_shape == (2, 4, 5, 5)
    assert BlockCase(8, 8, 1).call == "BasicBlock(8, 8, stride=1)"
    assert not IDENTITY.needs_projection
    assert PROJECTION.needs_projection and BlockCase(6, 10).needs_projection
    assert BlockCase(4, 4, 2).needs_projection


# ---- each mistake gets its own message ----------------------------------------------------------


def test_missing_shortcut_batchnorm(solution_namespace):
    problems = check_basic_block(mutant(solution_namespace, NO_SHORTCUT_BN), CASES)

    projected = [c for c in CASES if c.needs_projection]
    assert problems  # and only the projection cases are wrong:
    assert all(any(p.startswith(c.call) for p in problems) for c in projected)
    assert not any(p.startswith(IDENTITY.call) for p in problems)
    assert f"{PROJECTION.call}: no BatchNorm2d follows the shortcut's 1x1 conv" in "\n".join(
        problems
    )
    assert f"{PROJECTION.call} has 3,648 parameters, expected 3,680." in problems


def test_missing_shortcut_batchnorm_in_the_block_table(solution_namespace):
    table, totals = check_block_table(mutant(solution_namespace, NO_SHORTCUT_BN), PROJECTION)
    assert "at row 7 (target has 8 rows, yours 7)" in table
    assert (
        "missing layers (1):\n    BatchNorm2d [-1, 16, 4, 4] (32 params, expected row 7)" in table
    )
    assert totals == f"{PROJECTION.call}: Total params: expected 3,680, yours 3,648 (-32)."


def test_relu_before_the_addition(solution_namespace):
    problems = check_basic_block(mutant(solution_namespace, RELU_BEFORE_ADD), CASES)

    assert len(problems) == len(CASES)
    for problem, case in zip(problems, CASES, strict=True):
        assert problem.startswith(f"{case.call}: with torchvision's weights loaded")
        assert "It looks like the ReLU comes before the addition" in problem


def test_shortcut_never_added(solution_namespace):
    problems = check_basic_block(mutant(solution_namespace, NEVER_ADDED), CASES)

    assert len(problems) == len(CASES)
    assert all("It looks like the shortcut is never added" in p for p in problems)


@pytest.mark.parametrize(
    ("replace", "hint"),
    [
        (NO_LAST_RELU, "the last ReLU is missing"),
        (NO_FIRST_RELU, "the first ReLU (after bn1) is missing"),
    ],
)
def test_missing_relu(solution_namespace, replace, hint):
    problems = check_basic_block(mutant(solution_namespace, replace), CASES)

    assert len(problems) == len(CASES)
    assert all(f"It looks like {hint}" in p for p in problems)


def test_stride_on_conv2_instead_of_conv1(solution_namespace):
    problems = check_basic_block(mutant(solution_namespace, STRIDE_ON_CONV2), CASES)

    assert problems == [
        f"{case.call}: the stride belongs on conv1 (the first 3x3 conv), which has stride (1, 1)."
        for case in STRIDED
    ]


def test_stride_forgotten_gives_the_wrong_output_shape(solution_namespace):
    problems = check_block_shapes(mutant(solution_namespace, NO_STRIDE), CASES)

    assert problems == [
        f"{case.call} on input {case.input_shape}: expected output shape "
        f"{case.output_shape}, got {(case.batch, case.planes, case.size, case.size)}."
        for case in STRIDED
    ]


def test_projection_when_shapes_match(solution_namespace):
    problems = check_basic_block(mutant(solution_namespace, ALWAYS_PROJECT), CASES)

    assert problems == [
        f"{IDENTITY.call} has 1,264 parameters, expected 1,184.",
        f"{IDENTITY.call}: input and output shapes match, so the shortcut should be the "
        "identity; forward() uses a 1x1 convolution.",
    ]


def test_init_stub_raising_not_implemented_is_reported_once():
    problems = check_basic_block(InitStub, CASES)

    assert problems == [
        f"{CASES[0].call} raised NotImplementedError: replace the stub with your code."
    ]


def test_forward_stub_raising_not_implemented(solution_namespace):
    problems = check_basic_block(mutant(solution_namespace, FORWARD_STUB), CASES[:2])

    assert problems == [
        f"{case.call}.forward raised NotImplementedError: replace the stub with your code."
        for case in CASES[:2]
    ]


@pytest.mark.parametrize(
    ("source", "shown"), [("expansion = 4\n", "4"), ("expansion = 1.0\n", "1.0")]
)
def test_wrong_expansion(solution_namespace, source, shown):
    block = mutant(solution_namespace, {"expansion = 1\n": source})

    problems = check_basic_block(block, CASES)

    assert problems[0] == f"BasicBlock.expansion should be the int 1, got {shown}."


def test_missing_expansion():
    class NoExpansion(ShortcutFirst):
        expansion = None

    assert check_basic_block(NoExpansion, CASES) == [
        "BasicBlock.expansion should be the int 1, got None."
    ]


def test_wrong_signature_is_reported_with_the_expected_one():
    class NeedsDownsample(ShortcutFirst):
        def __init__(self, inplanes, planes, stride, downsample):
            super().__init__(inplanes, planes, stride)

    problems = check_basic_block(NeedsDownsample, CASES[:1])

    (problem,) = problems
    assert problem.startswith(f"{IDENTITY.call} raised TypeError: ")
    assert problem.endswith("The signature is BasicBlock(inplanes, planes, stride=1).")


def test_forward_that_returns_no_tensor():
    class ReturnsTuple(ShortcutFirst):
        def forward(self, x):
            return (super().forward(x),)

    assert check_block_shapes(ReturnsTuple, CASES[:1]) == [
        f"{IDENTITY.call}.forward should return a Tensor, got tuple."
    ]
