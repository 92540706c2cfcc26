"""Tests for Day 5's checks (autograder.checks.inception, autograder.checks.bottleneck) on the
solution and its mutants.

Each mutant is the solution with one mistake a student makes, built by editing the
solution's source text (``solution_namespace`` checks that every edit applies exactly
once). Whole networks are checked on the meta device.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from autograder.checks.bottleneck import (
    BottleneckCase,
    check_bottleneck,
    check_bottleneck_shapes,
    check_bottleneck_table,
)
from autograder.checks.inception import (
    GOOGLENET_TABLE,
    SLIDES_SAVING,
    InceptionCase,
    MultiplicationCase,
    check_conv_multiplications,
    check_googlenet_torchvision,
    check_inception,
    check_inception_shapes,
    check_inception_table,
    flop_counter_multiplications,
    googlenet_target,
    reference_googlenet,
    reference_inception,
    torchvision_kernels,
)
from autograder.checks.tables import check_summary_meta
from autograder.checks.targets import reference_model, target_table
from labkit.summary import count_parameters
from tests.conftest import ROOT, solution_namespace

DAY05 = ROOT / "solutions" / "day05_googlenet_resnet" / "googlenet_resnet.ipynb"
NAMES = (
    "conv_multiplications",
    "BasicConv2d",
    "Inception",
    "GoogLeNet",
    "conv3x3",
    "conv1x1",
    "BasicBlock",
    "ResNet",
    "resnet18",
    "resnet34",
    "Bottleneck",
    "resnet50",
    "resnet101",
    "resnet152",
)

CONV_CASES = [
    MultiplicationCase(200, 32, kernel_size=5, padding=2),
    MultiplicationCase(200, 16, kernel_size=1),
    MultiplicationCase(3, 64, kernel_size=7, stride=2, padding=3, height=224, width=224),
    MultiplicationCase(96, 256, kernel_size=5, padding=2, groups=2, height=27, width=27),
    MultiplicationCase(4, 6, kernel_size=3, stride=2, padding=0, height=9, width=12, bias=False),
]
INCEPTION_CASES = [
    InceptionCase(16, 8, 4, 8, 2, 4, 4, size=7),
    InceptionCase(3, 1, 2, 3, 4, 5, 6, size=5, batch=3),
    InceptionCase(24, 8, 8, 16, 4, 8, 8, size=1),
]
BOTTLENECK_CASES = [
    BottleneckCase(8, 8, stride=1),  # projection at stride 1: 8 -> 32 channels
    BottleneckCase(32, 8, stride=1),  # identity
    BottleneckCase(32, 16, stride=2),  # projection, stride 2
    BottleneckCase(8, 2, stride=2, size=7, batch=3),  # odd size
]
STRIDED = BOTTLENECK_CASES[2]

# ---- one-line edits of the solution's source: each makes one classic mistake ----------------

# conv_multiplications
_RETURN = "    return out_h * out_w * conv.out_channels * per_output\n"
_PER_OUTPUT = "per_output = conv.in_channels // conv.groups * kh * kw"
INPUT_SIZE = {_RETURN: _RETURN.replace("out_h * out_w", "height * width")}
ADDITIONS_TOO = {_RETURN: _RETURN.replace("return out_h", "return 2 * out_h")}
NO_GROUPS = {_PER_OUTPUT: _PER_OUTPUT.replace(" // conv.groups", "")}
TRUE_DIVISION = {_PER_OUTPUT: _PER_OUTPUT.replace(" // ", " / ")}
# Inception
_CAT = "torch.cat([branch1, branch2, branch3, branch4], 1)"
_BRANCH2 = "BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)"
_BRANCH3 = "BasicConv2d(ch5x5red, ch5x5, kernel_size=5, padding=2)"
CONCAT_ORDER = {_CAT: _CAT.replace("branch2, branch3", "branch3, branch2")}
CONCAT_DIM0 = {_CAT: _CAT.replace("], 1)", "], 0)")}
NO_3X3_PADDING = {_BRANCH2: _BRANCH2.replace(", padding=1", "")}
NO_REDUCTION_OUT = {_BRANCH2: _BRANCH2.replace("ch3x3red, ch3x3,", "ch3x3red, ch3x3red,")}
TORCHVISION_BUG = {
    _BRANCH3: _BRANCH3.replace("kernel_size=5, padding=2", "kernel_size=3, padding=1")
}
NO_POOL = {"            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True),\n": ""}
# GoogLeNet
WRONG_IN_CHANNELS = {
    "Inception(528, 256, 160, 320, 32, 128, 128)": "Inception(512, 256, 160, 320, 32, 128, 128)"
}
SWAPPED_REDUCTIONS = {
    "Inception(512, 160, 112, 224, 24, 64, 64)": "Inception(512, 160, 24, 224, 112, 64, 64)"
}
# Bottleneck
NO_EXPANSION = {"    expansion = 4\n": "    expansion = 1\n"}
STRIDE_ON_1X1 = {  # the paper's V1
    "        self.conv1 = conv1x1(inplanes, planes)\n": (
        "        self.conv1 = conv1x1(inplanes, planes, stride)\n"
    ),
    "self.conv2 = conv3x3(planes, planes, stride)  # V1.5: the stride is here": (
        "self.conv2 = conv3x3(planes, planes)"
    ),
}
NO_BN3 = {"        out = self.bn3(out)\n": ""}
_SHORTCUT_BN = "                nn.BatchNorm2d(planes * self.expansion),\n"
_BOTTLENECK_FORWARD = (
    "            )\n        ### END SOLUTION\n\n"
    "    def forward(self, x: torch.Tensor) -> torch.Tensor:\n"
    "        ### BEGIN SOLUTION\n        identity = x\n\n"
    "        out = self.conv1(x)  # N x planes"
)
NO_SHORTCUT_BN = {_SHORTCUT_BN + _BOTTLENECK_FORWARD: _BOTTLENECK_FORWARD}
_SHORTCUT = "        if self.shortcut is not None:\n            identity = self.shortcut(x)\n\n"
_BN3 = "        out = self.bn3(out)\n"
_ADD, _RELU = "        out += identity\n", "        out = self.relu(out)\n"
_TAIL = f"{_BN3}\n{_SHORTCUT}{_ADD}{_RELU}"
RELU_BEFORE_ADD = {_TAIL: f"{_BN3}{_RELU}\n{_SHORTCUT}{_ADD}"}
BOTTLENECK_NEVER_ADDED = {_TAIL: f"{_BN3}\n{_SHORTCUT}{_RELU}"}
NO_SECOND_RELU = {
    "        out = self.bn2(out)\n        out = self.relu(out)\n\n        out = self.conv3(out)": (
        "        out = self.bn2(out)\n\n        out = self.conv3(out)"
    )
}
NO_BN2 = {
    "        self.bn2 = nn.BatchNorm2d(planes)\n        self.conv3": "        self.conv3",
    "        out = self.bn2(out)\n        out = self.relu(out)\n\n        out = self.conv3(out)": (
        "        out = self.relu(out)\n\n        out = self.conv3(out)"
    ),
}
UNUSED_LAYER = {
    "        self.relu = nn.ReLU(inplace=True)\n        self.shortcut = None\n        if stride": (
        "        self.relu = nn.ReLU(inplace=True)\n        self.spare = conv1x1(planes, planes)\n"
        "        self.shortcut = None\n        if stride"
    )
}
# ResNet builders
_RESNET101 = "ResNet(Bottleneck, [3, 4, 23, 3], num_classes)"
RESNET101_SHORT = {_RESNET101: _RESNET101.replace("23", "6")}


@pytest.fixture(scope="module")
def day05() -> dict:
    """The unmodified solution's namespace (shared: do not mutate it)."""
    return solution_namespace(path=DAY05, names=NAMES)


def mutant(replace: dict[str, str]) -> dict:
    return solution_namespace(replace, path=DAY05, names=NAMES)


def _one_problem(problems: list[str], *fragments: str) -> str:
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], problems[0]
    return problems[0]


# ---- conv_multiplications -------------------------------------------------------------------


def test_solution_counts_multiplications_as_the_flop_counter(day05):
    assert check_conv_multiplications(day05["conv_multiplications"], CONV_CASES) == []


def test_seed_saving_is_the_seeds_163m_and_16_3m(day05):
    count = day05["conv_multiplications"]
    direct = count(nn.Conv2d(200, 32, 5, padding=2), 32, 32)
    reduced = count(nn.Conv2d(200, 16, 1), 32, 32) + count(nn.Conv2d(16, 32, 5, padding=2), 32, 32)
    assert direct == SLIDES_SAVING["direct"] == 163_840_000
    assert reduced == SLIDES_SAVING["reduce"] + SLIDES_SAVING["then_5x5"] == 16_384_000


def test_flop_counter_counts_two_per_multiply_add():
    conv = nn.Conv2d(2, 3, kernel_size=3)
    assert flop_counter_multiplications(conv, 5, 5) == 3 * 3 * 3 * 2 * 3 * 3


@pytest.mark.parametrize(
    ("replace", "hint"),
    [
        (INPUT_SIZE, "You used the input's height x width"),
        (ADDITIONS_TOO, "You counted the additions too"),
        (NO_GROUPS, "With groups=g each filter sees only in_channels // g"),
    ],
)
def test_multiplication_mistakes_are_named(replace, hint):
    problems = check_conv_multiplications(mutant(replace)["conv_multiplications"], CONV_CASES)
    assert problems, replace
    assert any(hint in p for p in problems), problems


def test_multiplications_must_be_an_int():
    problems = check_conv_multiplications(mutant(TRUE_DIVISION)["conv_multiplications"], CONV_CASES)
    assert problems and all("should return a Python int, got float" in p for p in problems)


def test_multiplications_stub_is_reported_once():
    def stub(conv, height, width):
        raise NotImplementedError()

    (problem,) = check_conv_multiplications(stub, CONV_CASES)
    assert "raised NotImplementedError: replace the stub" in problem


def test_multiplications_by_running_the_convolution_pass():
    """A student may count by running the layer: the check hands over real layers."""

    def by_running(conv, height, width):
        out = conv(torch.zeros(1, conv.in_channels, height, width))
        return out[0].numel() * conv.weight[0].numel()

    assert check_conv_multiplications(by_running, CONV_CASES) == []


# ---- Inception ------------------------------------------------------------------------------


def test_solution_inception_passes_every_check(day05):
    assert check_inception(day05["Inception"], INCEPTION_CASES) == []
    assert check_inception(day05["Inception"], INCEPTION_CASES, seed=99) == []
    assert (
        check_inception_table(day05["Inception"], InceptionCase(192, 64, 96, 128, 16, 32, 32)) == []
    )


def test_reference_inception_has_the_papers_5x5():
    block = reference_inception(InceptionCase(192, 64, 96, 128, 16, 32, 32))
    assert block.branch3[1].conv.kernel_size == (5, 5)
    assert block.branch3[1].conv.padding == (2, 2)
    out = block(torch.randn(2, 192, 28, 28))
    assert tuple(out.shape) == (2, 256, 28, 28)


def test_concatenation_order_is_named():
    problems = check_inception(mutant(CONCAT_ORDER)["Inception"], INCEPTION_CASES)
    _one_problem(
        problems, "concatenated in the order (1x1, 5x5, 3x3, pool)", "(1x1, 3x3, 5x5, pool)"
    )


def test_concatenation_along_the_batch():
    problems = check_inception_shapes(mutant(CONCAT_DIM0)["Inception"], INCEPTION_CASES[:1])
    _one_problem(problems, "raised RuntimeError", "concatenate along dim 1 (the channels)")


def test_missing_padding_changes_the_size():
    problems = check_inception_shapes(mutant(NO_3X3_PADDING)["Inception"], INCEPTION_CASES[:1])
    _one_problem(problems, "raised RuntimeError", "every branch must keep H x W", "padding=1")


def test_branch_ending_in_its_reduction_is_a_channel_count():
    case = InceptionCase(16, 8, 4, 8, 2, 4, 4, size=7)
    (problem,) = check_inception_shapes(mutant(NO_REDUCTION_OUT)["Inception"], [case])
    assert "expected output shape (2, 24, 7, 7), got (2, 20, 7, 7)" in problem
    assert "ch1x1 + ch3x3 + ch5x5 + pool_proj = 8 + 8 + 4 + 4" in problem


def test_torchvisions_3x3_in_the_5x5_branch_loses_parameters():
    problems = check_inception(mutant(TORCHVISION_BUG)["Inception"], INCEPTION_CASES[:1])
    _one_problem(problems, "Inception(16, 8, 4, 8, 2, 4, 4) has", "parameters, expected")


def test_pool_branch_without_its_pool():
    case = INCEPTION_CASES[0]
    problems = check_inception(mutant(NO_POOL)["Inception"], [case])
    assert problems
    assert "missing layers (1):\n    MaxPool2d [-1, 16, 7, 7]" in problems[0]


class PlainConvs(nn.Module):
    """An Inception with plain Conv2d + BatchNorm2d (PyTorch's eps) instead of BasicConv2d."""

    def __init__(self, in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj):
        super().__init__()

        def conv(cin, cout, k):
            return nn.Sequential(
                nn.Conv2d(cin, cout, k, padding=k // 2, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
            )

        self.b1 = conv(in_channels, ch1x1, 1)
        self.b2 = nn.Sequential(conv(in_channels, ch3x3red, 1), conv(ch3x3red, ch3x3, 3))
        self.b3 = nn.Sequential(conv(in_channels, ch5x5red, 1), conv(ch5x5red, ch5x5, 5))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), conv(in_channels, pool_proj, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def test_inception_without_basicconv2d_is_told_to_use_it():
    (problem,) = check_inception(PlainConvs, INCEPTION_CASES[:1])
    assert "missing layers" in problem and "BasicConv2d" in problem


def test_inception_stub_is_reported_once():
    class Stub(nn.Module):
        def __init__(self, *args):
            super().__init__()
            raise NotImplementedError()

    (problem,) = check_inception(Stub, INCEPTION_CASES)
    assert problem.endswith("raised NotImplementedError: replace the stub with your code.")


# ---- GoogLeNet ------------------------------------------------------------------------------


def test_solution_googlenet_matches_the_reference_and_torchvision(day05):
    googlenet = day05["GoogLeNet"]
    build = lambda: googlenet(num_classes=10)  # noqa: E731
    assert check_summary_meta(build, googlenet_target(10), (3, 224, 224)) == []
    assert check_googlenet_torchvision(build, 10) == []
    assert check_googlenet_torchvision(googlenet, 1000) == []


def test_googlenet_parameter_counts():
    with torch.device("meta"):
        paper = count_parameters(reference_googlenet(1000))
        theirs = count_parameters(
            reference_model("googlenet", 1000, aux_logits=False, init_weights=False)
        )
        swapped = count_parameters(torchvision_kernels(reference_googlenet(1000)))
    assert theirs == swapped == 6_624_904  # torchvision googlenet(aux_logits=False)
    # the nine 5x5 convolutions hold 16 more weights per (filter, input channel) than 3x3
    assert paper - theirs == sum(16 * row[5] * row[6] for row in GOOGLENET_TABLE) == 380_928


def test_googlenet_table_is_torchvisions_configuration():
    model = torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=False)
    for name, *args in GOOGLENET_TABLE:
        block = getattr(model, name)
        assert block.branch1.conv.in_channels == args[0]
        assert block.branch1.conv.out_channels == args[1]
        assert block.branch2[0].conv.out_channels == args[2]
        assert block.branch2[1].conv.out_channels == args[3]
        assert block.branch3[0].conv.out_channels == args[4]
        assert block.branch3[1].conv.out_channels == args[5]
        assert block.branch4[1].conv.out_channels == args[6]


def test_googlenet_wrong_in_channels_names_the_module():
    build = lambda: mutant(WRONG_IN_CHANNELS)["GoogLeNet"](num_classes=10)  # noqa: E731
    problems = check_summary_meta(build, googlenet_target(10), (3, 224, 224), "GoogLeNet(10)")
    assert problems
    assert "GoogLeNet(10): summary(model, (3, 224, 224)) failed" in problems[0] or (
        "differs from the target" in problems[0]
    )


def test_googlenet_swapped_reductions_differ_at_the_row():
    build = lambda: mutant(SWAPPED_REDUCTIONS)["GoogLeNet"](num_classes=10)  # noqa: E731
    problems = check_summary_meta(build, googlenet_target(10), (3, 224, 224), "GoogLeNet(10)")
    assert problems
    assert "expected: Conv2d-" in problems[0] and "[-1, 112, 14, 14] 57,344 params" in problems[0]


# ---- Bottleneck -----------------------------------------------------------------------------


def test_solution_bottleneck_passes_every_check(day05):
    block = day05["Bottleneck"]
    assert check_bottleneck(block, BOTTLENECK_CASES) == []
    assert check_bottleneck(block, BOTTLENECK_CASES, seed=4321) == []
    assert check_bottleneck_table(block, STRIDED) == []
    assert check_bottleneck_table(block, BOTTLENECK_CASES[1]) == []


def test_reference_bottleneck_has_the_shapes_of_each_case():
    for case in BOTTLENECK_CASES:
        block = case.reference()
        assert isinstance(block.downsample, nn.Sequential) == case.needs_projection
        assert block.conv2.stride == (case.stride, case.stride)
        assert tuple(block(torch.randn(case.input_shape)).shape) == case.output_shape


def test_bottleneck_without_expansion():
    problems = check_bottleneck(mutant(NO_EXPANSION)["Bottleneck"], BOTTLENECK_CASES)
    assert problems[0] == "Bottleneck.expansion should be the int 4, got 1."
    assert any("the last 1x1 convolution expands to planes * expansion" in p for p in problems)


def test_stride_on_the_first_1x1_is_named():
    problems = check_bottleneck(mutant(STRIDE_ON_1X1)["Bottleneck"], BOTTLENECK_CASES)
    strided = [c for c in BOTTLENECK_CASES if c.stride != 1]
    assert len(problems) == len(strided), problems
    for problem, case in zip(problems, strided, strict=True):
        assert problem.startswith(f"{case.call}: the stride is on conv1 (the first 1x1)")
        assert "ResNet V1.5" in problem


def test_missing_shortcut_batchnorm_is_named():
    problems = check_bottleneck(mutant(NO_SHORTCUT_BN)["Bottleneck"], BOTTLENECK_CASES)
    projected = [c for c in BOTTLENECK_CASES if c.needs_projection]
    assert len(problems) == len(projected), problems
    assert all("no BatchNorm2d follows the shortcut's 1x1 conv" in p for p in problems)
    problems = check_bottleneck_table(mutant(NO_SHORTCUT_BN)["Bottleneck"], STRIDED)
    assert "missing layers (1):\n    BatchNorm2d [-1, 64, 4, 4]" in problems[0]


def test_unused_bn3_is_found_by_role():
    """bn3 declared but never called: the parameter count is right, the roles are not."""
    problems = check_bottleneck(mutant(NO_BN3)["Bottleneck"], BOTTLENECK_CASES[1:2])
    _one_problem(problems, "no BatchNorm2d follows conv3 (the expanding 1x1)")


def test_missing_bn2_is_named():
    problems = check_bottleneck(mutant(NO_BN2)["Bottleneck"], BOTTLENECK_CASES)
    assert len(problems) == len(BOTTLENECK_CASES), problems
    assert all("no BatchNorm2d follows conv2 (the 3x3)" in p for p in problems)


def test_unused_layer_is_found_by_the_parameter_count():
    problems = check_bottleneck(mutant(UNUSED_LAYER)["Bottleneck"], BOTTLENECK_CASES[1:2])
    _one_problem(problems, "parameters, expected", "layers that forward() does not use")


@pytest.mark.parametrize(
    ("replace", "hint"),
    [
        (RELU_BEFORE_ADD, "the ReLU comes before the addition"),
        (BOTTLENECK_NEVER_ADDED, "the shortcut is never added"),
        (NO_SECOND_RELU, "the ReLU after bn2 is missing"),
    ],
)
def test_bottleneck_forward_mistakes_are_diagnosed(replace, hint):
    problems = check_bottleneck(mutant(replace)["Bottleneck"], BOTTLENECK_CASES)
    assert len(problems) == len(BOTTLENECK_CASES), problems
    assert all(f"It looks like {hint}" in p for p in problems), problems


def test_bottleneck_shapes_name_the_missing_expansion():
    problems = check_bottleneck_shapes(mutant(NO_EXPANSION)["Bottleneck"], [STRIDED])
    _one_problem(problems, "16 channels is planes", "planes * expansion = 64")


# ---- the ResNet builders --------------------------------------------------------------------


@pytest.mark.parametrize("name", ["resnet50", "resnet101", "resnet152"])
def test_solution_resnets_match_torchvision(day05, name):
    assert check_summary_meta(day05[name], target_table(name, 10), name=f"{name}()") == []


def test_resnet101_with_resnet50s_stages():
    build = mutant(RESNET101_SHORT)["resnet101"]
    (table, total, numel) = check_summary_meta(
        build, target_table("resnet101", 10), name="resnet101()"
    )
    assert "resnet101(): the summary table differs from the target" in table
    assert "Total params: expected 42,520,650, yours 23,528,522" in total
    assert "counting every parameter by numel" in numel
