"""Tests for autograder.checks.vgg on the Day 3 solution and its mutants.

Each mutant is the solution with one mistake a student makes, built by editing the
solution's source text (``solution_namespace`` checks that every edit applies exactly
once). Whole VGGs are built on the meta device, so these tests allocate no weights
except where an initialisation is checked.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from autograder.checks.tables import check_summary_meta
from autograder.checks.targets import target_table
from autograder.checks.vgg import (
    ARCH_CFGS,
    check_adaptive_pool_params,
    check_cfgs,
    check_init_flag,
    check_make_layers,
    check_vgg_init,
    check_vgg_outputs,
    cifar_reference,
    cifar_target,
    describe_layers,
    reference_cfgs,
)
from labkit.summary import count_parameters
from tests.conftest import ROOT, solution_namespace

DAY03 = ROOT / "solutions" / "day03_vgg" / "vgg.ipynb"
NAMES = ("make_layers", "vgg_cfgs", "adaptive_pool_params", "VGG", "vgg", "vgg_cifar")
CUSTOM = [64, 64, 64, "M", 128, 128, 128, "M", 256, 256, 256, "M"]  # the course slides'
SMALL = [64, "M", 512]  # 28 x 28 in: 512 x 14 x 14 into the 7 x 7 adaptive pool

# One-line edits of the solution's source: each makes one classic mistake.
NO_RELU = {"layers += [conv2d, nn.ReLU(inplace=True)]": "layers += [conv2d]"}
BN_AFTER_RELU = {
    "[conv2d, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]": (
        "[conv2d, nn.ReLU(inplace=True), nn.BatchNorm2d(v)]"
    )
}
ALWAYS_BN = {"            if batch_norm:\n": "            if True:\n"}
CHANNELS_NOT_CARRIED = {
    "            in_channels = v  # the next convolution takes v channels\n": ""
}
NO_POOL = {"layers += [nn.MaxPool2d(kernel_size=2, stride=2)]  # halves": "pass  #"}
POOL_TWICE = {
    "layers += [nn.MaxPool2d(kernel_size=2, stride=2)]  # halves": (
        "layers += [nn.MaxPool2d(2, 2), nn.MaxPool2d(2, 2)]  #"
    )
}
NO_PADDING = {"kernel_size=3, padding=1)  # keeps": "kernel_size=3)  # keeps"}
D_SHORT = {  # one conv3-256 too few
    '"D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M",': (
        '"D": [64, 64, "M", 128, 128, "M", 256, 256, "M",'
    )
}
FIXED_CLASSES = {"nn.Linear(4096, num_classes)": "nn.Linear(4096, 1000)"}
SMALL_FIRST_FC = {"nn.Linear(512 * 7 * 7, 4096)": "nn.Linear(512, 4096)"}
NO_DROPOUT = {
    "            nn.ReLU(True),\n            nn.Dropout(),\n            nn.Linear(4096, 4096),": (
        "            nn.ReLU(True),\n            nn.Linear(4096, 4096),"
    )
}
SOFTMAX = {
    "        x = self.classifier(x)  # N x num_classes\n        return x": (
        "        x = self.classifier(x)  # N x num_classes\n        return x.softmax(1)"
    )
}
NO_AVGPOOL_CALL = {"        x = self.avgpool(x)  # N x 512 x 7 x 7\n": ""}
FAN_IN = {'mode="fan_out"': 'mode="fan_in"'}
ALWAYS_INIT = {"        if init_weights:\n": "        if True:\n"}
NO_LINEAR_INIT = {"                nn.init.normal_(m.weight, 0, 0.01)\n": ""}
SWAPPED = {"    return kernel, stride\n": "    return stride, kernel\n"}
KERNEL_IS_STRIDE = {"kernel = in_size - (out_size - 1) * stride": "kernel = stride"}
TRUE_DIVISION = {"stride = in_size // out_size": "stride = in_size / out_size"}
NO_REINIT = {"    model._initialize_weights()\n": ""}
KEEP_POOL = {"    model.avgpool = nn.Identity()\n": ""}
SEVEN_BY_SEVEN = {'size = 32 // 2 ** cfg.count("M")': "size = 7"}


@pytest.fixture(scope="module")
def day03() -> dict:
    """The unmodified solution's namespace (shared: do not mutate it)."""
    return solution_namespace(path=DAY03, names=NAMES)


@pytest.fixture
def mutant():
    def build(replace: dict[str, str]) -> dict:
        return solution_namespace(replace, path=DAY03, names=NAMES)

    return build


def _one_problem(problems: list[str], *fragments: str) -> str:
    assert len(problems) == 1, problems
    for fragment in fragments:
        assert fragment in problems[0], problems[0]
    return problems[0]


# ---- make_layers ------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("key", ["A", "B", "D", "E"])
def test_solution_make_layers_matches_torchvision(day03, key, batch_norm):
    assert check_make_layers(day03["make_layers"], reference_cfgs()[key], batch_norm) == []


def test_solution_make_layers_on_odd_cfgs(day03):
    for cfg in ([8], [4, "M", "M", 16], ["M", 8, 8, "M", 3], CUSTOM):
        for batch_norm in (False, True):
            assert check_make_layers(day03["make_layers"], cfg, batch_norm) == []


def test_describe_layers_reads_like_the_seed():
    features = torchvision.models.vgg.make_layers([64, "M"], batch_norm=True)
    assert describe_layers(features) == [
        "Conv2d(3, 64, kernel_size=3, padding=1)",
        "BatchNorm2d(64)",
        "ReLU",
        "MaxPool2d(kernel_size=2, stride=2)",
    ]


def test_missing_relu(mutant):
    problems = check_make_layers(mutant(NO_RELU)["make_layers"], CUSTOM, batch_norm=False)
    _one_problem(problems, "layer 1 differs", "expected: ReLU", "followed by a ReLU", "0 ReLU")


def test_batchnorm_after_relu(mutant):
    problems = check_make_layers(mutant(BN_AFTER_RELU)["make_layers"], CUSTOM, batch_norm=True)
    _one_problem(problems, "layer 1 differs", "expected: BatchNorm2d(64)", "yours:    ReLU")
    assert "BatchNorm2d(v) and then ReLU" in problems[0]


def test_batchnorm_when_not_asked(mutant):
    problems = check_make_layers(mutant(ALWAYS_BN)["make_layers"], CUSTOM, batch_norm=False)
    _one_problem(problems, "batch_norm=False: no BatchNorm2d")


def test_channels_not_carried_over(mutant):
    problems = check_make_layers(mutant(CHANNELS_NOT_CARRIED)["make_layers"], CUSTOM)
    _one_problem(problems, "layer 2 differs", "Conv2d(64, 64", "Conv2d(3, 64", "in_channels = v")


@pytest.mark.parametrize("mistake", [NO_POOL, POOL_TWICE])
def test_wrong_number_of_pools(mutant, mistake):
    problems = check_make_layers(mutant(mistake)["make_layers"], CUSTOM)
    _one_problem(problems, "expected 21 layers", "3 MaxPool2d)", "one MaxPool2d")


def test_no_padding(mutant):
    problems = check_make_layers(mutant(NO_PADDING)["make_layers"], CUSTOM)
    _one_problem(problems, "layer 0 differs", "padding=0", "padding=1")


class ListNotSequential:
    def __call__(self, cfg, batch_norm=False):
        return nn.ModuleList([nn.Conv2d(3, v, 3, padding=1) for v in cfg if v != "M"])


def test_make_layers_must_return_a_sequential():
    _one_problem(check_make_layers(ListNotSequential(), [8]), "nn.Sequential", "ModuleList")


def test_make_layers_must_not_change_the_cfg(day03):
    def popping(cfg, batch_norm=False):
        features = day03["make_layers"](list(cfg), batch_norm)
        cfg.pop()
        return features

    _one_problem(check_make_layers(popping, [8, "M"]), "changed the cfg")


def test_make_layers_with_a_classifier_attached(day03):
    def extra(cfg, batch_norm=False):
        return nn.Sequential(*day03["make_layers"](cfg, batch_norm), nn.Flatten())

    _one_problem(check_make_layers(extra, [8, "M"]), "then yours go on: Flatten")


def test_make_layers_stub_is_reported_once():
    def stub(cfg, batch_norm=False):
        raise NotImplementedError()

    assert check_make_layers(stub, CUSTOM) == [
        f"make_layers({CUSTOM!r}, batch_norm=False) raised NotImplementedError: "
        "replace the stub with your code."
    ]


# ---- the cfgs ---------------------------------------------------------------------------------


def test_solution_cfgs_match_torchvision(day03):
    assert check_cfgs(day03["vgg_cfgs"]) == []
    assert reference_cfgs() == {k: list(v) for k, v in torchvision.models.vgg.cfgs.items()}


def test_a_missing_convolution_in_d(mutant):
    problem = _one_problem(check_cfgs(mutant(D_SHORT)["vgg_cfgs"]), "['D'] (VGG-16)")
    assert "position 8: expected 256, got 'M'" in problem
    assert "expected 13 convolutions" in problem and "yours has 12" in problem


@pytest.mark.parametrize(
    ("cfgs", "fragment"),
    [
        ({"A": [64.0, "M"]}, "64.0 (float) is neither an int nor 'M'"),
        ({"A": [64, "m"]}, "'m' (str) is neither"),
        ({"A": (64, "M")}, "should be a list, got tuple"),
        ([], "should return a dict"),
    ],
)
def test_cfg_types_are_strict(cfgs, fragment):
    problems = check_cfgs(lambda: cfgs)
    assert any(fragment in p for p in problems), problems


def test_missing_cfgs_are_named():
    problems = check_cfgs(lambda: {"D": reference_cfgs()["D"]})
    assert problems == [
        "vgg_cfgs() has no 'A' entry (VGG-11).",
        "vgg_cfgs() has no 'B' entry (VGG-13).",
        "vgg_cfgs() has no 'E' entry (VGG-19).",
    ]


# ---- adaptive pooling -------------------------------------------------------------------------

DIVISIBLE = [(14, 7), (7, 7), (28, 7), (8, 2), (6, 3), (5, 1)]
UNEVEN = [(10, 4), (9, 4), (13, 5)]


def test_solution_adaptive_pool_params(day03):
    assert check_adaptive_pool_params(day03["adaptive_pool_params"], DIVISIBLE + UNEVEN) == []


def test_seed_formula_is_pytorchs_pooling_when_the_sizes_divide():
    for out_size in range(1, 8):
        for in_size in range(out_size, 8 * out_size + 1, out_size):
            stride = in_size // out_size
            kernel = in_size - (out_size - 1) * stride
            x = torch.randn(1, 1, in_size, in_size)
            pooled = nn.functional.avg_pool2d(x, kernel, stride)
            assert torch.allclose(pooled, nn.AdaptiveAvgPool2d(out_size)(x)), (in_size, out_size)


def test_swapped_kernel_and_stride(mutant):
    fn = mutant(SWAPPED)["adaptive_pool_params"]
    assert check_adaptive_pool_params(fn, DIVISIBLE) == []  # kernel == stride when they divide
    problems = check_adaptive_pool_params(fn, [(10, 4)])
    _one_problem(problems, "expected (4, 2)", "got (2, 4)", "in this order")


def test_kernel_equal_to_stride_fails_only_on_uneven_sizes(mutant):
    fn = mutant(KERNEL_IS_STRIDE)["adaptive_pool_params"]
    assert check_adaptive_pool_params(fn, DIVISIBLE) == []
    _one_problem(check_adaptive_pool_params(fn, [(10, 4)]), "expected (4, 2)", "got (2, 2)")


def test_true_division_gives_floats(mutant):
    problems = check_adaptive_pool_params(mutant(TRUE_DIVISION)["adaptive_pool_params"], [(14, 7)])
    _one_problem(problems, "tuple (kernel, stride) of two ints", "(2.0, 2.0)")


# ---- the VGG class ----------------------------------------------------------------------------


@pytest.mark.parametrize("arch", [*ARCH_CFGS, *(f"{a}_bn" for a in ARCH_CFGS)])
def test_solution_vgg_matches_torchvision(day03, arch):
    vgg = day03["vgg"]
    assert check_summary_meta(lambda: vgg(arch), target_table(arch), name=arch) == []


def test_solution_vgg16_has_the_seed_parameter_count(day03):
    with torch.device("meta"):
        assert count_parameters(day03["vgg"]("vgg16")) == 138_357_544
        assert count_parameters(day03["vgg"]("vgg16", 10)) == 134_301_514


def test_fixed_class_count(mutant):
    vgg = mutant(FIXED_CLASSES)["vgg"]
    problems = check_summary_meta(lambda: vgg("vgg11", 10), target_table("vgg11", 10), name="v")
    assert "Linear [-1, 10] (40,970 params" in problems[0], problems


def test_classifier_sized_for_one_pixel(mutant):
    vgg = mutant(SMALL_FIRST_FC)["vgg"]
    problems = check_summary_meta(lambda: vgg("vgg11"), target_table("vgg11"), name="vgg11")
    _one_problem(problems, "(3, 224, 224)) failed: RuntimeError", "(2x25088 and 512x4096)")


def test_missing_dropout(mutant):
    vgg = mutant(NO_DROPOUT)["vgg"]
    problems = check_summary_meta(lambda: vgg("vgg13"), target_table("vgg13"), name="vgg13")
    assert "missing layers (1)" in problems[0] and "Dropout [-1, 4096]" in problems[0], problems


def test_forward_without_the_average_pool(mutant):
    vgg = mutant(NO_AVGPOOL_CALL)["vgg"]
    problems = check_summary_meta(lambda: vgg("vgg16"), target_table("vgg16"), name="vgg16")
    assert "AdaptiveAvgPool2d [-1, 512, 7, 7]" in problems[0], problems


def _outputs(namespace: dict) -> list[str]:
    make_layers = torchvision.models.vgg.make_layers
    return check_vgg_outputs(
        lambda: namespace["VGG"](make_layers(SMALL, True), num_classes=10),
        lambda: torchvision.models.vgg.VGG(make_layers(SMALL, True), 10),
        (3, 28, 28),
        "VGG",
    )


def test_solution_vgg_gives_torchvisions_logits(day03):
    assert _outputs(day03) == []


def test_softmax_at_the_end(mutant):
    _one_problem(_outputs(mutant(SOFTMAX)), "your logits differ", "softmax probabilities")


def test_outputs_without_the_average_pool(mutant):
    _one_problem(_outputs(mutant(NO_AVGPOOL_CALL)), "raised RuntimeError")


def test_outputs_of_a_different_layout(day03):
    make_layers = torchvision.models.vgg.make_layers
    problems = check_vgg_outputs(
        lambda: day03["VGG"](make_layers(SMALL, False), num_classes=10),
        lambda: torchvision.models.vgg.VGG(make_layers(SMALL, True), 10),
        (3, 28, 28),
        "VGG",
    )
    _one_problem(problems, "state_dict has 10 tensors, torchvision's 20")


@pytest.fixture(scope="module")
def small_vgg(day03) -> nn.Module:
    """A real VGG (122M parameters, mostly the classifier): built once for the init checks."""
    return day03["VGG"](day03["make_layers"](SMALL, batch_norm=True), num_classes=10)


def test_solution_initialisation(small_vgg):
    assert check_vgg_init(small_vgg) == []


def test_fan_in_initialisation(mutant):
    namespace = mutant(FAN_IN)
    model = namespace["VGG"](namespace["make_layers"]([64, "M"]), num_classes=10)
    problems = check_vgg_init(model)
    assert "model.features.0.weight" in problems[0] and "mode='fan_in'" in problems[0], problems


def test_missing_linear_initialisation(mutant):
    namespace = mutant(NO_LINEAR_INIT)
    model = namespace["VGG"](namespace["make_layers"]([512]), num_classes=10)
    problems = check_vgg_init(model)
    assert problems[0].startswith("model.classifier.0.weight has mean"), problems
    assert "nn.init.normal_(weight, 0, 0.01) gives std 0.01" in problems[0]


def test_default_initialisation_is_caught(small_vgg):
    model = torchvision.models.vgg.VGG(
        torchvision.models.vgg.make_layers([8, "M", 512]), 10, init_weights=False
    )
    problems = check_vgg_init(model)
    assert len(problems) == 4 and problems[-1] == "(later layers not checked)", problems


def test_init_flag(day03, mutant):
    vgg_cls, make_layers = day03["VGG"], day03["make_layers"]
    assert check_init_flag(lambda flag: vgg_cls(make_layers([8]), 5, init_weights=flag)) == []
    always = mutant(ALWAYS_INIT)["VGG"]
    problems = check_init_flag(lambda flag: always(make_layers([8]), 5, init_weights=flag))
    _one_problem(problems, "init_weights=False) still calls nn.init.kaiming_normal_")


def test_init_flag_restores_nn_init():
    originals = (nn.init.kaiming_normal_, nn.init.normal_, nn.init.constant_)

    def broken(flag):
        raise ValueError("no")

    assert "raised ValueError: no" in check_init_flag(broken)[0]
    assert (nn.init.kaiming_normal_, nn.init.normal_, nn.init.constant_) == originals


# ---- the CIFAR-10 variant ---------------------------------------------------------------------


def test_cifar_reference_sizes_the_classifier_to_the_feature_map():
    with torch.device("meta"):
        vgg16 = cifar_reference(reference_cfgs()["D"])
        custom = cifar_reference(CUSTOM, 100, batch_norm=False)
    assert vgg16.classifier[0].in_features == 512
    assert custom.classifier[0].in_features == 256 * 4 * 4
    assert custom.classifier[-1].out_features == 100
    assert cifar_target("D") == cifar_target(reference_cfgs()["D"])
    assert cifar_target("D").total_params == 33_646_666


@pytest.mark.parametrize(
    ("cfg", "classes", "batch_norm"),
    [(reference_cfgs()["D"], 10, True), (reference_cfgs()["E"], 10, True), (CUSTOM, 100, False)],
)
def test_solution_vgg_cifar_matches_the_reference(day03, cfg, classes, batch_norm):
    def build():
        return day03["vgg_cifar"](cfg, classes, batch_norm)

    target = cifar_target(cfg, classes, batch_norm)
    assert check_summary_meta(build, target, (3, 32, 32)) == []


def test_solution_vgg_cifar_initialises_the_new_layer(day03):
    assert check_vgg_init(day03["vgg_cifar"](CUSTOM)) == []


def test_vgg_cifar_without_reinitialisation(mutant):
    problems = check_vgg_init(mutant(NO_REINIT)["vgg_cifar"](CUSTOM))
    assert problems and problems[0].startswith("model.features.0.weight"), problems


def test_a_replaced_layer_left_at_pytorchs_default(day03):
    model = day03["VGG"](day03["make_layers"](CUSTOM), num_classes=10)  # initialised
    model.avgpool = nn.Identity()
    model.classifier[0] = nn.Linear(256 * 4 * 4, 4096)  # PyTorch's init: std 0.009, bias != 0
    with torch.no_grad():
        model.classifier[0].bias.zero_()  # so that only the spread can tell
    problems = check_vgg_init(model)
    _one_problem(problems, "model.classifier.0.weight has mean", "gives std 0.01")


@pytest.mark.parametrize("mistake", [KEEP_POOL, SEVEN_BY_SEVEN])
def test_vgg_cifar_shape_mistakes(mutant, mistake):
    vgg_cifar = mutant(mistake)["vgg_cifar"]
    cfg = reference_cfgs()["D"]
    problems = check_summary_meta(lambda: vgg_cifar(cfg), cifar_target(cfg), (3, 32, 32), "v")
    _one_problem(problems, "(3, 32, 32)) failed: RuntimeError", "mat1 and mat2 shapes")
