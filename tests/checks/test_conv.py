"""Tests for autograder.checks.conv: correct answers pass, each classic mistake fails with a hint.

The correct answers below are written independently of the Day 1 solution
(``unfold`` instead of loops, arithmetic instead of layers); each mutant makes one
mistake a student makes. Objects that compare equal to everything, ints that are
floats or subclasses, and calls to the library functions being reimplemented
must all fail.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.vgg import cfgs

from autograder.checks.conv import (
    Conv2dCase,
    ParamCase,
    PoolCase,
    SizeCase,
    check_conv2d,
    check_conv_output_size,
    check_conv_params,
    check_max_pool2d,
    check_vgg_against_torchvision,
    check_vgg_walkthrough,
    compare_conv2d,
    compare_max_pool2d,
    random_conv_cases,
    random_param_cases,
    random_pool_cases,
    random_size_cases,
    vgg_reference_rows,
)

SLIDES_X = torch.tensor([[1, 2, 3, 0], [0, 1, 2, 3], [3, 0, 1, 2], [2, 3, 0, 1]]).float()
SLIDES_X = SLIDES_X.view(1, 1, 4, 4)
SLIDES_W = torch.tensor([[2, 0, 1], [0, 1, 2], [1, 0, 2]]).float().view(1, 1, 3, 3)
SLIDES_PADDED = [[7, 12, 10, 2], [4, 15, 16, 10], [10, 6, 15, 6], [8, 10, 4, 3]]
POOL_X = torch.tensor([[1, 1, 2, 4], [5, 6, 7, 8], [3, 2, 1, 0], [1, 2, 3, 4]]).float()
POOL_X = POOL_X.view(1, 1, 4, 4)
VGG16 = cfgs["D"]


class AlwaysEqual:
    """Claims to equal anything: must never pass a check."""

    shape = (1, 1, 2, 2)
    dtype = torch.float32

    def __eq__(self, other):
        return True

    __hash__ = object.__hash__


class EqualInt(int):
    """An int that claims to equal anything."""

    def __eq__(self, other):
        return True

    __hash__ = int.__hash__


# ---- conv2d -----------------------------------------------------------------------------------


def conv_unfold(x, weight, bias=None, stride=1, padding=0, *, flip=False, pad_extra=0):
    """A correct convolution by unfold (no F.conv2d), with switches for mutants."""
    if flip:
        weight = weight.flip(2, 3)
    n, _, h, w = x.shape
    c_out, _, kh, kw = weight.shape
    p = padding + pad_extra
    cols = F.unfold(x, (kh, kw), padding=p, stride=stride)  # N x (C_in kH kW) x L
    out = weight.reshape(c_out, -1) @ cols  # N x C_out x L
    out_h = (h + 2 * p - kh) // stride + 1
    out_w = (w + 2 * p - kw) // stride + 1
    out = out.reshape(n, c_out, out_h, out_w)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


CONV_CASES = random_conv_cases(25, seed=0)
BIASED = [c for c in CONV_CASES if c.bias]
STRIDED = [c for c in CONV_CASES if c.stride > 1]
PADDED = [c for c in CONV_CASES if c.padding > 0]


def test_random_conv_cases_cover_the_settings():
    assert BIASED and STRIDED and PADDED
    assert any(c.kernel[0] != c.kernel[1] for c in CONV_CASES)
    assert any(c.in_channels > 1 and c.batch > 1 for c in CONV_CASES)
    assert random_conv_cases(5, seed=3) == random_conv_cases(5, seed=3)


def test_correct_conv_passes_the_seed_examples_and_random_cases():
    assert compare_conv2d(conv_unfold, SLIDES_X, SLIDES_W, expected=[[15, 16], [6, 15]]) == []
    bias = torch.tensor([3.0])
    assert compare_conv2d(conv_unfold, SLIDES_X, SLIDES_W, bias, expected=[[18, 19], [9, 18]]) == []
    assert compare_conv2d(conv_unfold, SLIDES_X, SLIDES_W, padding=1, expected=SLIDES_PADDED) == []
    assert check_conv2d(conv_unfold, CONV_CASES) == []


def test_conv_on_layer_parameters_that_require_grad():
    layer = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    assert (
        compare_conv2d(conv_unfold, torch.randn(2, 3, 7, 6), layer.weight, layer.bias, 2, 1) == []
    )


def test_seed_example_shows_both_outputs():
    wrong = lambda x, w, bias=None, stride=1, padding=0: conv_unfold(x, w) + 1  # noqa: E731
    (problem,) = compare_conv2d(wrong, SLIDES_X, SLIDES_W, expected=[[15, 16], [6, 15]])
    assert "output[0, 0, 0, 0] is 16, expected 15 (4 of 4 values differ)" in problem
    assert "expected: [[15.0, 16.0], [6.0, 15.0]]" in problem
    assert "yours:    [[16.0, 17.0], [7.0, 16.0]]" in problem


@pytest.mark.parametrize(
    ("mutant", "cases", "hint"),
    [
        (
            lambda x, w, bias=None, stride=1, padding=0: conv_unfold(x, w, bias, 1, padding),
            STRIDED,
            "the stride is ignored",
        ),
        (
            lambda x, w, bias=None, stride=1, padding=0: conv_unfold(x, w, bias, stride, 0),
            PADDED,
            "the padding is ignored",
        ),
        (
            lambda x, w, bias=None, stride=1, padding=0: conv_unfold(
                x, w, bias, stride, padding, pad_extra=1
            ),
            CONV_CASES,
            "the padding is off by one",
        ),
        (
            lambda x, w, bias=None, stride=1, padding=0: conv_unfold(x, w, None, stride, padding),
            BIASED,
            "the bias is missing",
        ),
        (
            lambda x, w, bias=None, stride=1, padding=0: conv_unfold(
                x, w, bias, stride, padding, flip=True
            ),
            [c for c in CONV_CASES if c.kernel[0] > 1 or c.kernel[1] > 1],
            "the kernel is flipped",
        ),
    ],
    ids=["ignores-stride", "ignores-padding", "padding-off-by-one", "no-bias", "flipped"],
)
def test_conv_mistakes_fail_with_a_hint(mutant, cases, hint):
    problems = check_conv2d(mutant, cases)
    assert problems, "the mutant passed"
    assert hint in problems[0], problems[0]


def test_conv_mistake_on_one_case_names_the_call():
    case = Conv2dCase(2, 3, 4, 6, 5, (3, 2), stride=2, padding=1, bias=True)
    mutant = lambda x, w, bias=None, stride=1, padding=0: conv_unfold(x, w, None, stride, padding)  # noqa: E731
    (problem,) = check_conv2d(mutant, [case])
    assert problem.startswith(
        "conv2d_naive(x <2x3x6x5>, weight <4x3x3x2>, bias=<4>, stride=2, padding=1): output["
    )


def test_many_failing_conv_cases_are_summarised():
    problems = check_conv2d(lambda x, w, bias=None, stride=1, padding=0: x, CONV_CASES)
    assert len(problems) == 4
    assert problems[-1] == f"... and {len(CONV_CASES) - 3} more case(s) fail."


@pytest.mark.parametrize(
    ("result", "message"),
    [
        (AlwaysEqual(), "should return a torch.Tensor, got AlwaysEqual"),
        ([[15.0, 16.0], [6.0, 15.0]], "should return a torch.Tensor, got list"),
        (
            torch.tensor([[[[15, 16], [6, 15]]]], dtype=torch.float64),
            "returned a torch.float64 tensor; expected torch.float32",
        ),
        (
            torch.tensor([[15.0, 16.0], [6.0, 15.0]]),
            "expected output shape (1, 1, 2, 2), got (2, 2)",
        ),
        (
            torch.nn.Parameter(torch.tensor([[[[15.0, 16.0], [6.0, 15.0]]]])),
            "a plain torch.Tensor, got the subclass Parameter",
        ),
    ],
    ids=["always-equal", "list", "float64", "no-batch-dims", "tensor-subclass"],
)
def test_conv_results_of_the_wrong_type_fail(result, message):
    (problem,) = compare_conv2d(
        lambda *a, **k: result, SLIDES_X, SLIDES_W, expected=[[15, 16], [6, 15]]
    )
    assert message in problem, problem


def test_calling_conv2d_is_refused():
    for cheat in (
        lambda x, w, bias=None, stride=1, padding=0: F.conv2d(x, w, bias, stride, padding),
        lambda x, w, bias=None, stride=1, padding=0: torch.conv2d(x, w, bias, stride, padding),
    ):
        (problem,) = compare_conv2d(cheat, SLIDES_X, SLIDES_W)
        assert "calls F.conv2d" in problem or "calls torch.conv2d" in problem, problem

    # swallowing the refusal does not help
    def sly(x, w, bias=None, stride=1, padding=0):
        try:
            return F.conv2d(x, w, bias, stride, padding)
        except Exception:
            return conv_unfold(x, w, bias, stride, padding)

    assert "calls F.conv2d" in compare_conv2d(sly, SLIDES_X, SLIDES_W)[0]
    assert torch.equal(F.conv2d(SLIDES_X, SLIDES_W), torch.tensor([[[[15.0, 16.0], [6.0, 15.0]]]]))


def test_layer_inside_the_function_is_refused():
    def with_layer(x, w, bias=None, stride=1, padding=0):
        layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], stride, padding, bias=False)
        layer.weight.data = w
        return layer(x)

    assert "calls F.conv2d" in compare_conv2d(with_layer, SLIDES_X, SLIDES_W)[0]


def test_changing_the_input_in_place_fails():
    def in_place(x, w, bias=None, stride=1, padding=0):
        out = conv_unfold(x, w, bias, stride, padding)
        x.zero_()
        return out

    assert "changed its input" in compare_conv2d(in_place, SLIDES_X.clone(), SLIDES_W)[0]


def test_stub_and_crash_are_reported():
    def stub(x, w, bias=None, stride=1, padding=0):
        raise NotImplementedError()

    assert (
        "raised NotImplementedError: replace the stub with your code"
        in compare_conv2d(stub, SLIDES_X, SLIDES_W)[0]
    )
    (problem,) = compare_conv2d(lambda x, w: x, SLIDES_X, SLIDES_W)
    assert "raised TypeError" in problem


# ---- conv_output_size -------------------------------------------------------------------------


def output_size(size, kernel_size, stride=1, padding=0, dilation=1):
    return math.floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1


SLIDES_SIZES = [
    SizeCase(7, 3, 1, 1),
    SizeCase(32, 5, 1, 2),
    SizeCase(4, 3),
    SizeCase(4, 3, padding=1),
]
SIZE_CASES = random_size_cases(200, seed=0)
UNEVEN = [SizeCase(7, 3, stride=3), SizeCase(227, 3, stride=2), SizeCase(10, 4, stride=3)]


def test_random_size_cases_are_valid_and_varied():
    assert {c.dilation for c in SIZE_CASES} == {1, 2, 3}
    assert {c.stride for c in SIZE_CASES} == {1, 2, 3, 4}
    assert max(c.size for c in SIZE_CASES) > 100


def test_correct_output_size_passes():
    assert check_conv_output_size(output_size, SLIDES_SIZES + SIZE_CASES + UNEVEN) == []


@pytest.mark.parametrize(
    ("mutant", "cases", "hint"),
    [
        (
            lambda s, k, stride=1, padding=0, dilation=1: (
                math.ceil((s + 2 * padding - dilation * (k - 1) - 1) / stride) + 1
            ),
            UNEVEN,
            "that is the ceiling",
        ),
        (
            lambda s, k, stride=1, padding=0, dilation=1: (s + 2 * padding - k) // stride + 1,
            [SizeCase(9, 3, dilation=2)],
            "the dilation is ignored",
        ),
        (
            lambda s, k, stride=1, padding=0, dilation=1: (s + padding - k) // stride + 1,
            [SizeCase(7, 3, padding=1)],
            "the padding is counted once",
        ),
        (
            lambda s, k, stride=1, padding=0, dilation=1: (s + 2 * padding - k) // stride,
            [SizeCase(7, 3)],
            "the +1 is missing",
        ),
    ],
    ids=["ceil", "no-dilation", "padding-once", "no-plus-one"],
)
def test_output_size_mistakes_fail_with_a_hint(mutant, cases, hint):
    problems = check_conv_output_size(mutant, cases)
    assert problems and hint in problems[0], problems


@pytest.mark.parametrize(
    ("wrap", "message"),
    [
        (float, "should return an int, got float 7.0"),
        (EqualInt, "should return an int, got EqualInt 7"),
        (lambda v: AlwaysEqual(), "should return an int, got AlwaysEqual"),
        (torch.tensor, "should return an int, got Tensor"),
        (lambda v: True, "should return an int, got bool True"),
    ],
    ids=["float", "int-subclass", "always-equal", "tensor", "bool"],
)
def test_output_size_must_be_a_plain_int(wrap, message):
    (problem,) = check_conv_output_size(
        lambda *a, **k: wrap(output_size(*a, **k)), [SizeCase(7, 3, padding=1)]
    )
    assert message in problem, problem


def test_true_division_fails_on_uneven_sizes():
    def true_division(s, k, stride=1, padding=0, dilation=1):
        return (s + 2 * padding - dilation * (k - 1) - 1) / stride + 1

    problems = check_conv_output_size(true_division, [SizeCase(7, 3, stride=3)])
    assert "got float 2.333" in problems[0]
    assert "Use // to round down" in problems[0]


def test_defaults_are_tested():
    def no_defaults(s, k, stride, padding, dilation):
        return output_size(s, k, stride, padding, dilation)

    assert "raised TypeError" in check_conv_output_size(no_defaults, [SizeCase(4, 3)])[0]


# ---- conv_params ------------------------------------------------------------------------------


def params(c_in, c_out, k, bias=True):
    return (k * k * c_in + int(bias)) * c_out


PARAM_CASES = [ParamCase(3, 1, 5), ParamCase(3, 10, 5), ParamCase(512, 512, 3, bias=False)]
PARAM_CASES += random_param_cases(50, seed=0)


def test_correct_params_pass_and_match_the_seed():
    assert params(3, 1, 5) == 76 and params(3, 10, 5) == 760
    assert check_conv_params(params, PARAM_CASES) == []


@pytest.mark.parametrize(
    ("mutant", "hint"),
    [
        (lambda i, o, k, bias=True: k * k * i * o, "the biases are missing"),
        (lambda i, o, k, bias=True: (k * k * i + 1) * o, "biases are counted although bias=False"),
        (lambda i, o, k, bias=True: k * k * i * o + int(bias), "the bias is counted once"),
        (lambda i, o, k, bias=True: (k * k + int(bias)) * o, "the input channels are missing"),
    ],
    ids=["no-bias", "bias-always", "bias-once", "no-in-channels"],
)
def test_param_mistakes_fail_with_a_hint(mutant, hint):
    problems = check_conv_params(mutant, PARAM_CASES)
    assert problems and hint in problems[0], problems


def test_params_must_be_a_plain_int():
    (problem,) = check_conv_params(lambda *a, **k: float(params(*a, **k)), [ParamCase(3, 1, 5)])
    assert "should return an int, got float 76.0" in problem
    (problem,) = check_conv_params(lambda *a, **k: EqualInt(1), [ParamCase(3, 1, 5)])
    assert "got EqualInt" in problem


# ---- max_pool2d -------------------------------------------------------------------------------


def pool_unfold(x, kernel_size, stride=None):
    stride = kernel_size if stride is None else stride
    windows = x.unfold(2, kernel_size, stride).unfold(3, kernel_size, stride)
    return windows.amax(dim=(-2, -1))


POOL_CASES = random_pool_cases(30, seed=0)


def test_random_pool_cases_cover_the_settings():
    assert any(c.stride is None for c in POOL_CASES)
    assert any(c.stride is not None and c.stride < c.kernel_size for c in POOL_CASES)
    assert any(c.negative for c in POOL_CASES)


def test_correct_pool_passes_the_seed_example():
    assert compare_max_pool2d(pool_unfold, POOL_X, 2, expected=[[6, 8], [3, 4]]) == []
    assert compare_max_pool2d(pool_unfold, -POOL_X, 2) == []
    assert check_max_pool2d(pool_unfold, POOL_CASES) == []


def pool_from_zero(x, kernel_size, stride=None):
    return pool_unfold(x, kernel_size, stride).clamp(min=0)


@pytest.mark.parametrize(
    ("mutant", "x", "kwargs", "hint"),
    [
        (pool_from_zero, -POOL_X, {}, "the maximum starts at 0"),
        (
            lambda x, k, stride=None: F.avg_pool2d(x, k, stride),
            POOL_X,
            {},
            "that is the average",
        ),
        (lambda x, k, stride=1: pool_unfold(x, k, stride), POOL_X, {}, "the stride defaults to 1"),
        (lambda x, k, stride=None: pool_unfold(x, k), POOL_X, {"stride": 1}, "stride is ignored"),
    ],
    ids=["max-from-zero", "average", "default-stride-1", "ignores-stride"],
)
def test_pool_mistakes_fail_with_a_hint(mutant, x, kwargs, hint):
    problems = compare_max_pool2d(mutant, x, 2, **kwargs)
    assert problems and hint in problems[0], problems


def test_pool_results_of_the_wrong_type_fail():
    (problem,) = compare_max_pool2d(
        lambda *a, **k: AlwaysEqual(), POOL_X, 2, expected=[[6, 8], [3, 4]]
    )
    assert "should return a torch.Tensor, got AlwaysEqual" in problem


def test_calling_max_pool2d_is_refused():
    for cheat in (
        lambda x, k, stride=None: F.max_pool2d(x, k, stride),
        lambda x, k, stride=None: nn.MaxPool2d(k, stride)(x),
    ):
        (problem,) = compare_max_pool2d(cheat, POOL_X, 2)
        assert "calls F.max_pool2d" in problem, problem
    assert compare_max_pool2d(pool_unfold, POOL_X, 2) == []  # F.max_pool2d is restored


def test_the_pool_case_with_negatives_catches_max_from_zero():
    case = PoolCase(1, 2, 5, 5, 2, negative=True)
    assert check_max_pool2d(pool_from_zero, [case])


# ---- VGG walk-through -------------------------------------------------------------------------


def walkthrough(cfg, input_size=224, num_classes=1000, bias=False, *, hwc=False, fc_in=None):
    """A correct walk-through by arithmetic, with switches for mutants."""
    c, h = 3, input_size
    rows = [("INPUT", (3, h, h), 3 * h * h, 0)]
    for v in cfg:
        if v == "M":
            h //= 2
            rows.append(("POOL2", (c, h, h), c * h * h, 0))
        else:
            rows.append((f"CONV3-{v}", (v, h, h), v * h * h, (9 * c + int(bias)) * v))
            c = v
    inputs = c * h * h if fc_in is None else fc_in
    for n in (4096, 4096, num_classes):
        rows.append((f"FC-{n}", (n, 1, 1), n, inputs * n + (n if bias else 0)))
        inputs = n
    if hwc:
        rows = [(name, (s[1], s[2], s[0]), a, p) for name, s, a, p in rows]
    return rows


def test_reference_rows_are_the_seed_table():
    rows = vgg_reference_rows(VGG16)
    assert rows[:4] == [
        ("INPUT", (3, 224, 224), 150_528, 0),
        ("CONV3-64", (64, 224, 224), 3_211_264, 1_728),
        ("CONV3-64", (64, 224, 224), 3_211_264, 36_864),
        ("POOL2", (64, 112, 112), 802_816, 0),
    ]
    assert rows[-3:] == [
        ("FC-4096", (4096, 1, 1), 4096, 102_760_448),
        ("FC-4096", (4096, 1, 1), 4096, 16_777_216),
        ("FC-1000", (1000, 1, 1), 1000, 4_096_000),
    ]
    assert sum(r[3] for r in rows) == 138_344_128  # the course slides' 138M, without biases
    assert sum(r[2] for r in rows) == 15_237_608  # what the course slides' rows add up to
    assert sum(r[3] for r in vgg_reference_rows(VGG16, bias=True)) == 138_357_544


@pytest.mark.parametrize(
    ("cfg", "size", "classes", "bias"),
    [(VGG16, 224, 1000, False), (cfgs["A"], 32, 10, True), (cfgs["E"], 100, 10, False)],
)
def test_correct_walkthrough_passes(cfg, size, classes, bias):
    assert check_vgg_walkthrough(walkthrough, cfg, size, classes, bias) == []


@pytest.mark.parametrize("arch", ["vgg11", "vgg16", "vgg19"])
def test_correct_walkthrough_matches_torchvision(arch):
    assert check_vgg_against_torchvision(walkthrough, arch) == []


@pytest.mark.parametrize(
    ("mutant", "args", "message"),
    [
        (lambda *a, **k: walkthrough(*a, **k, hwc=True), (VGG16,), "slides' H x W x C order"),
        (lambda cfg, **k: walkthrough(cfg, **{**k, "bias": True}), (VGG16,), "biases are counted"),
        (
            lambda cfg, **k: walkthrough(cfg, **k, fc_in=7 * 7 * 512),
            (cfgs["A"], 32, 10),
            "row 14 differs",
        ),
        (
            lambda cfg, **k: [(n, s, s[1] * s[2], p) for n, s, _, p in walkthrough(cfg, **k)],
            (VGG16,),
            "Activations are every value",
        ),
        (lambda cfg, **k: walkthrough(cfg, **k)[:-1], (VGG16,), "expected 22 rows"),
    ],
    ids=["hwc", "bias-always", "fc-hard-coded", "activations-hw", "missing-row"],
)
def test_walkthrough_mistakes_fail_with_a_hint(mutant, args, message):
    problems = check_vgg_walkthrough(mutant, *args)
    assert problems and message in problems[0], problems


def test_walkthrough_values_must_be_plain_ints():
    def floats(cfg, **k):
        return [(n, s, float(a), p) for n, s, a, p in walkthrough(cfg, **k)]

    (problem,) = check_vgg_walkthrough(floats, VGG16)
    assert "row 0 (INPUT): activations should be an int, got float 150528.0" in problem
    (problem,) = check_vgg_walkthrough(lambda *a, **k: AlwaysEqual(), VGG16)
    assert "should return a list of rows, got AlwaysEqual" in problem
    (problem,) = check_vgg_walkthrough(lambda *a, **k: [AlwaysEqual()] * 22, VGG16)
    assert "row 0: expected a tuple" in problem

    def equal_ints(cfg, **k):
        return [(n, s, EqualInt(a), p) for n, s, a, p in walkthrough(cfg, **k)]

    assert "got EqualInt" in check_vgg_walkthrough(equal_ints, VGG16)[0]


def test_torchvision_check_names_the_parameter_difference():
    def never_biased(cfg, input_size=224, num_classes=1000, bias=False):
        return walkthrough(cfg, input_size, num_classes, bias=False)

    (problem,) = check_vgg_against_torchvision(never_biased, "vgg16")
    assert "138,344,128 parameters in total; torchvision's vgg16 has 138,357,544 (-13,416)" in (
        problem
    )
    (problem,) = check_vgg_against_torchvision(lambda cfg, **k: walkthrough(cfg[:-1], **k))
    assert "the first difference is at row 18" in problem, problem


def test_a_stub_is_reported_once():
    def stub(*args, **kwargs):
        raise NotImplementedError()

    for problems in (
        check_conv2d(stub, CONV_CASES),
        check_conv_output_size(stub, SIZE_CASES),
        check_conv_params(stub, PARAM_CASES),
        check_max_pool2d(stub, POOL_CASES),
    ):
        assert len(problems) == 1, problems
        assert problems[0].endswith("raised NotImplementedError: replace the stub with your code.")
