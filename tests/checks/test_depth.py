"""Tests for Day 6's checks (autograder.checks.depth) on the solution and its mutants.

Each mutant is the solution with one mistake a student makes, built by editing the
solution's source text (``solution_namespace`` checks that every edit applies exactly
once). The degradation check's bounds are measured over seeds here, on the solution's
own networks.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autograder.checks.depth import (
    PAPER_CIFAR,
    PLAIN_56_OVER_20,
    RESNET_56_OVER_20,
    CifarBlockCase,
    ShortcutCase,
    check_cifar_block,
    check_cifar_family,
    check_degradation,
    check_gradient_norms,
    check_pad_shortcut,
    check_shortcuts_used,
    cifar_target,
    gradient_ratio,
)
from autograder.checks.tables import check_summary
from labkit.summary import capture_summary, count_parameters
from tests.conftest import ROOT, solution_namespace

DAY06 = ROOT / "solutions" / "day06_depth_study" / "depth_study.ipynb"
NAMES = (
    "conv3x3",
    "pad_shortcut",
    "BasicBlock",
    "CifarResNet",
    "cifar_resnet",
    "cifar_plain",
    "layer_gradient_norms",
    "resnet",
)
SHORTCUTS = [
    ShortcutCase(16, 32, stride=2, size=32),
    ShortcutCase(3, 8, stride=2, size=7, batch=3),
    ShortcutCase(4, 12, stride=1, size=5),
    ShortcutCase(16, 16, stride=1),
]
BLOCKS = [
    CifarBlockCase(16, 16, 1, True),
    CifarBlockCase(16, 32, 2, True),
    CifarBlockCase(8, 24, 2, True, size=7),
    CifarBlockCase(16, 16, 1, False),
    CifarBlockCase(32, 64, 2, False),
]

# ---- one-line edits of the solution's source: each makes one classic mistake ----------------

_PAD = "    return F.pad(x, (0, 0, 0, 0, 0, extra))  # N x planes x H/stride x W/stride\n"
_SUBSAMPLE = "        x = x[:, :, ::stride, ::stride]  # N x C x H/stride x W/stride\n"
AVG_POOL = {_SUBSAMPLE: "        x = F.avg_pool2d(x, stride, ceil_mode=True)\n"}
NO_SUBSAMPLING = {_SUBSAMPLE: "        pass\n"}
ONES_PADDING = {_PAD: "    return F.pad(x, (0, 0, 0, 0, 0, extra), value=1.0)\n"}
SYMMETRIC_PADDING = {  # akamaster's placement: accepted, the paper leaves it open
    _PAD: "    return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))\n"
}
DETACHED = {_PAD: "    return F.pad(x.detach(), (0, 0, 0, 0, 0, extra))\n"}
_ADD = "            out = out + pad_shortcut(x, self.planes, self.stride)  # option A\n"
NEVER_ADDED = {_ADD: "            pass\n"}
ALWAYS_ADDED = {"        if self.residual:\n": "        if True:\n"}
PROJECTION = {  # option B in every block: a 1x1 convolution on the shortcut
    "        self.planes, self.stride, self.residual = planes, stride, residual\n": (
        "        self.planes, self.stride, self.residual = planes, stride, residual\n"
        "        self.proj = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False),"
        " nn.BatchNorm2d(planes))\n"
    ),
    _ADD: "            out = out + self.proj(x)\n",
}
NO_LAST_RELU = {"        return self.relu(out)\n": "        return out\n"}
_FIRST = "        out = self.relu(self.bn1(self.conv1(x)))  # N x planes x H/stride x W/stride\n"
NO_FIRST_RELU = {_FIRST: "        out = self.bn1(self.conv1(x))\n"}
RELU_BEFORE_ADD = {
    "        out = self.bn2(self.conv2(out))\n": (
        "        out = self.relu(self.bn2(self.conv2(out)))\n"
    ),
    "        return self.relu(out)\n": "        return out\n",
}
STRIDE_ON_CONV2 = {
    "        self.conv1 = conv3x3(inplanes, planes, stride)\n": (
        "        self.conv1 = conv3x3(inplanes, planes)\n"
    ),
    "        self.conv2 = conv3x3(planes, planes)\n": (
        "        self.conv2 = conv3x3(planes, planes, stride)\n"
    ),
}
WRONG_CHANNELS = {"        self.layer1 = self._make_layer(16, n)\n": (
    "        self.layer1 = self._make_layer(32, n)\n"
)}  # fmt: skip
NO_STAGE_STRIDE = {"        self.layer2 = self._make_layer(32, n, stride=2)\n": (
    "        self.layer2 = self._make_layer(32, n)\n"
)}  # fmt: skip
ONE_BLOCK_SHORT = {"        for _ in range(1, blocks):\n": "        for _ in range(2, blocks):\n"}
RESIDUAL_NOT_PASSED = {
    "            layers.append(BasicBlock(planes, planes, residual=self.residual))\n": (
        "            layers.append(BasicBlock(planes, planes))\n"
    )
}
NO_ZERO_GRAD = {"    model.zero_grad()\n": ""}
NO_TRAIN_MODE = {"    model.train()\n": ""}
BIAS_TOO = {
    "    return [m.weight.grad.norm().item() for m in layers]\n": (
        "    return [torch.cat([p.grad.flatten() for p in m.parameters()]).norm().item()"
        " for m in layers]\n"
    )
}
TENSORS = {
    "    return [m.weight.grad.norm().item() for m in layers]\n": (
        "    return [m.weight.grad.norm() for m in layers]\n"
    )
}
CONV_ONLY = {"isinstance(m, (nn.Conv2d, nn.Linear))]": "isinstance(m, nn.Conv2d)]"}


@pytest.fixture(scope="module")
def day06() -> dict:
    """The unmodified solution's namespace (shared: do not mutate it)."""
    return solution_namespace(path=DAY06, names=NAMES)


def mutant(replace: dict[str, str]) -> dict:
    return solution_namespace(replace, path=DAY06, names=NAMES)


def _one_problem(problems: list[str], *fragments: str) -> str:
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], problems[0]
    return problems[0]


# ---- option A ---------------------------------------------------------------------------------


def test_solution_shortcut_passes(day06):
    assert check_pad_shortcut(day06["pad_shortcut"], SHORTCUTS) == []
    assert check_pad_shortcut(day06["pad_shortcut"], SHORTCUTS, seed=7) == []


def test_symmetric_zero_channels_are_option_a_too():
    assert check_pad_shortcut(mutant(SYMMETRIC_PADDING)["pad_shortcut"], SHORTCUTS) == []


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (AVG_POOL, ("average pooling", "::stride")),
        (NO_SUBSAMPLING, ("expected shape (2, 32, 16, 16), got (2, 32, 32, 32)",)),
        (ONES_PADDING, ("channels of zeros",)),
        (DETACHED, ("no gradient back to x",)),
    ],
    ids=["avg-pool", "no-subsampling", "ones", "detached"],
)
def test_shortcut_mistakes_fail_and_are_named(edit, fragments):
    problems = check_pad_shortcut(mutant(edit)["pad_shortcut"], SHORTCUTS[:1])
    _one_problem(problems, *fragments)


def test_an_untouched_shortcut_is_one_stub_sentence():
    def stub(x, planes, stride=1):
        raise NotImplementedError

    problems = check_pad_shortcut(stub, SHORTCUTS)
    _one_problem(problems, "raised NotImplementedError")


# ---- the block ----------------------------------------------------------------------------------


def test_solution_block_passes(day06):
    assert check_cifar_block(day06["BasicBlock"], BLOCKS) == []
    assert check_cifar_block(day06["BasicBlock"], BLOCKS, seed=11) == []


@pytest.mark.parametrize(
    ("edit", "case", "fragments"),
    [
        (NEVER_ADDED, BLOCKS[1], ("shortcut is never added",)),
        (ALWAYS_ADDED, BLOCKS[3], ("a plain block (residual=False) has none",)),
        (PROJECTION, BLOCKS[1], ("1x1 convolution", "option A")),
        (NO_LAST_RELU, BLOCKS[0], ("last ReLU is missing",)),
        (NO_FIRST_RELU, BLOCKS[4], ("first ReLU",)),
        (RELU_BEFORE_ADD, BLOCKS[2], ("ReLU comes before the addition",)),
        (STRIDE_ON_CONV2, BLOCKS[1], ("stride belongs on conv1",)),
    ],
    ids=[
        "never-added",
        "plain-adds",
        "projection",
        "no-last-relu",
        "no-first-relu",
        "relu-before-add",
        "stride-on-conv2",
    ],
)
def test_block_mistakes_fail_and_are_named(edit, case, fragments):
    problems = check_cifar_block(mutant(edit)["BasicBlock"], [case])
    _one_problem(problems, *fragments)


# ---- the networks -------------------------------------------------------------------------------


def test_parameter_counts_round_to_the_papers_table():
    for depth, row in PAPER_CIFAR.items():
        millions = row["exact_params"] / 1e6
        digits = len(row["params"].rstrip("M").split(".")[1])
        assert f"{millions:.{digits}f}M" == row["params"], (depth, millions)


def test_solution_family_matches_the_paper_and_the_reference(day06):
    resnet, plain = day06["cifar_resnet"], day06["cifar_plain"]
    assert check_summary(resnet(20), cifar_target(20), (3, 32, 32)) == []
    assert check_summary(plain(56), cifar_target(56), (3, 32, 32)) == []
    assert check_summary(resnet(32, num_classes=100), cifar_target(32, 100), (3, 32, 32)) == []
    assert check_cifar_family(resnet) == []
    assert check_cifar_family(plain) == []
    assert check_shortcuts_used(resnet, plain) == []
    assert check_shortcuts_used(resnet, plain, depth=32, seed=3) == []
    with pytest.raises(ValueError, match="6n"):
        resnet(21)


def test_target_table_is_torchsummarys_own(day06):
    """The reference's table on the meta device is what torchsummary prints for the
    solution's ResNet-20, row for row, and torchinfo reads the same."""
    model = day06["cifar_resnet"](20)
    assert capture_summary(model, (3, 32, 32)).to_dict() == cifar_target(20).to_dict()
    assert capture_summary(model, (3, 32, 32), tool="torchinfo").to_dict() == (
        cifar_target(20).to_dict()
    )


@pytest.mark.parametrize(
    ("edit", "counts_differ"),
    [(WRONG_CHANNELS, True), (ONE_BLOCK_SHORT, True), (NO_STAGE_STRIDE, False)],
    ids=["wrong-channels", "one-block-short", "no-stage-stride"],
)
def test_network_mistakes_fail_the_table(edit, counts_differ):
    resnet = mutant(edit)["cifar_resnet"]
    problems = check_summary(resnet(20), cifar_target(20), (3, 32, 32))
    assert "differs from the target" in problems[0], problems
    problems = check_cifar_family(resnet)
    if counts_differ:
        assert "parameters, expected 269,722 (the paper's table: 0.27M)" in problems[0], problems
    else:  # a stride changes no parameter count: the table is what catches it
        assert problems == []


def test_residual_flag_that_never_reaches_the_blocks_is_found():
    namespace = mutant(RESIDUAL_NOT_PASSED)
    problems = check_shortcuts_used(namespace["cifar_resnet"], namespace["cifar_plain"])
    _one_problem(problems, "plain 20-layer network, 6 of 9 blocks add a shortcut", "layer1.1")
    namespace = mutant(NEVER_ADDED)
    problems = check_shortcuts_used(namespace["cifar_resnet"], namespace["cifar_plain"])
    _one_problem(problems, "residual 20-layer network, 9 of 9 blocks add no shortcut")


# ---- gradients ----------------------------------------------------------------------------------


def test_solution_gradient_norms_pass(day06):
    for seed in range(4):
        assert check_gradient_norms(day06["layer_gradient_norms"], seed=seed) == []


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        (NO_ZERO_GRAD, "clear them first"),
        (NO_TRAIN_MODE, "call model.train()"),
        (BIAS_TOO, "biases' gradients are included"),
        (TENSORS, "list of Python floats"),
        (CONV_ONLY, "one per layer"),
    ],
    ids=["no-zero-grad", "eval-mode", "bias-too", "tensors", "conv-only"],
)
def test_gradient_mistakes_fail_and_are_named(edit, fragment):
    _one_problem(check_gradient_norms(mutant(edit)["layer_gradient_norms"]), fragment)


def _profiles(namespace: dict, seed: int, batch: int = 32) -> dict[str, list[float]]:
    """The notebook's measurement: ``batch`` images (here random ones; the notebook takes
    32, its hidden test 16), each network seeded."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (batch,), generator=generator)
    norms = namespace["layer_gradient_norms"]
    builds = {
        "plain-20": lambda: namespace["cifar_plain"](20),
        "plain-56": lambda: namespace["cifar_plain"](56),
        "ResNet-20": lambda: namespace["cifar_resnet"](20),
        "ResNet-56": lambda: namespace["cifar_resnet"](56),
    }
    profiles = {}
    for name, build in builds.items():
        torch.manual_seed(seed)
        profiles[name] = norms(build(), images, labels)
    return profiles


@pytest.mark.parametrize(
    ("seed", "batch"), [(s, 32) for s in range(5)] + [(s, 16) for s in range(5)]
)
def test_degradation_bounds_hold_over_seeds_with_a_margin(day06, seed, batch):
    """The check's bounds, with room to spare on each of 5 seeds at both batch sizes the
    notebook uses: at least 3 times the plain bound, and at most half the residual one
    (three quarters with 16 images)."""
    profiles = _profiles(day06, seed, batch)
    assert check_degradation(profiles) == []
    ratios = {name: gradient_ratio(norms) for name, norms in profiles.items()}
    assert ratios["plain-56"] / ratios["plain-20"] > 3 * PLAIN_56_OVER_20, ratios
    margin = 0.5 if batch == 32 else 0.75  # 16 images: noisier statistics in BatchNorm
    assert ratios["ResNet-56"] / ratios["ResNet-20"] < RESNET_56_OVER_20 * margin, ratios


def test_degradation_check_fails_networks_without_the_split():
    """ResNets that never add their shortcuts are plain: the residual bound fails. Plain
    networks that add shortcuts anyway are ResNets: the plain bound fails."""
    problems = check_degradation(_profiles(mutant(NEVER_ADDED), seed=0))
    _one_problem(problems, "ResNet-56's first-to-last gradient ratio")
    problems = check_degradation(_profiles(mutant(ALWAYS_ADDED), seed=0))
    _one_problem(problems, "plain-56's first-to-last gradient ratio")


def test_degradation_check_names_a_missing_or_malformed_profile():
    good = {"plain-20": [1.0] * 20, "plain-56": [1.0] * 56, "ResNet-20": [1.0] * 20}
    _one_problem(check_degradation(good), "no gradient profile for ResNet-56")
    _one_problem(check_degradation({**good, "ResNet-56": [1.0] * 20}), "expected 56")


def test_series_resnets_are_torchvisions_with_a_grey_stem(day06):
    resnet = day06["resnet"]
    with torch.device("meta"):
        assert count_parameters(resnet(18)) == 11_181_642
        grey = resnet(50, in_channels=1)
        assert grey.conv1.in_channels == 1
        assert count_parameters(grey) == count_parameters(resnet(50)) - 2 * 64 * 49
    out = resnet(18, in_channels=1).eval()(torch.zeros(2, 1, 28, 28))
    assert out.shape == (2, 10)
    assert F.softmax(out, 1).shape == (2, 10) and isinstance(grey, nn.Module)
