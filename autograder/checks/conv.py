"""Checks for Day 1: convolution and pooling by hand, and the arithmetic of sizes and parameters.

The reference is always PyTorch itself: ``F.conv2d``, ``F.max_pool2d``, and
``nn.Conv2d`` / ``nn.Linear`` / torchvision's VGG on the ``meta`` device, where
shapes and parameter counts come for free. A student's result is trusted only
after its type is: numbers must be ``int`` exactly (``type(n) is int``), tensors a
plain ``torch.Tensor`` of the right dtype and shape, before any value is
compared. An object that claims to equal everything therefore gets nowhere.

Each check returns a list of readable problems, ``[]`` meaning pass: the call
that went wrong, what was expected, what came out, the first difference, and,
where a common mistake reproduces the result, which one it looks like.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from autograder.checks import student
from labkit.summary import record_outputs

__all__ = [
    "Conv2dCase",
    "ParamCase",
    "PoolCase",
    "SizeCase",
    "check_conv2d",
    "check_conv_output_size",
    "check_conv_params",
    "check_max_pool2d",
    "check_vgg_against_torchvision",
    "check_vgg_walkthrough",
    "compare_conv2d",
    "compare_max_pool2d",
    "random_conv_cases",
    "random_param_cases",
    "random_pool_cases",
    "random_size_cases",
    "vgg_reference_rows",
]

ShapeHint = Callable[[tuple[int, ...]], str]  # the output shape -> " It looks like ..." or ""

_ATOL = 1e-4
_SHOWN_NUMEL = 36  # tensors up to this size are printed in full in a problem


# ---- checking a student's answer ---------------------------------------------------------


def _tensor_problem(
    out: object, call: str, dtype: torch.dtype, shape: tuple[int, ...], shape_hint: ShapeHint
) -> str | None:
    """A problem unless ``out`` is a plain tensor of ``dtype`` and ``shape``."""
    if not isinstance(out, torch.Tensor):
        return f"{call} should return a torch.Tensor, got {type(out).__name__}."
    if type(out) is not torch.Tensor:
        return f"{call} should return a plain torch.Tensor, got the subclass {type(out).__name__}."
    if out.dtype != dtype:
        return (
            f"{call} returned a {out.dtype} tensor; expected {dtype}, the input's dtype "
            "(create the output with dtype=x.dtype)."
        )
    if tuple(out.shape) != shape:
        got = tuple(out.shape)
        return f"{call}: expected output shape {shape}, got {got}.{shape_hint(got)}"
    return None


def _fmt(value: float) -> str:
    return f"{value:g}"


def _value_problem(
    out: torch.Tensor, expected: torch.Tensor, call: str, hint: Callable[[], str]
) -> str | None:
    """Name the first wrong value, how many are wrong, the likely mistake (``hint()``),
    and show small tensors in full."""
    out = out.detach().to("cpu", expected.dtype)
    wrong = ~torch.isclose(out, expected, atol=_ATOL, rtol=_ATOL)
    if not wrong.any():
        return None
    first = tuple(int(i) for i in wrong.nonzero()[0])
    index = ", ".join(str(i) for i in first)
    lines = [
        f"{call}: output[{index}] is {_fmt(out[first].item())}, expected "
        f"{_fmt(expected[first].item())} ({int(wrong.sum())} of {wrong.numel()} values differ)."
        + hint()
    ]
    if expected.numel() <= _SHOWN_NUMEL:
        lines += [
            f"  expected: {expected.squeeze().tolist()}",
            f"  yours:    {out.squeeze().tolist()}",
        ]
    return "\n".join(lines)


def _looks_like(variants: dict[str, Any], matches: Callable[[Any], bool]) -> str:
    """' It looks like <mistake>.' for the first variant that reproduces the answer, else ''."""
    for hint, value in variants.items():
        if matches(value):
            return f" It looks like {hint}."
    return ""


def _same(reference: torch.Tensor, out: torch.Tensor) -> bool:
    out = out.detach()
    return reference.shape == out.shape and torch.allclose(reference, out, atol=_ATOL, rtol=_ATOL)


def _int_answer(
    fn: Callable[..., Any],
    call: str,
    args: tuple,
    kwargs: dict,
    expected: int,
    source: str,
    hint: Callable[[int], str],
    type_hint: str = "",
) -> list[str]:
    """One call of ``fn`` whose answer must be exactly the int ``expected``."""
    got, problem = student.call(fn, call, *args, **kwargs)
    if problem is None:
        problem = student.int_problem(got, call, f"Expected {expected:,}.{type_hint}")
    if problem is None and got != expected:
        problem = f"{call}: expected {expected:,} ({source}), got {got:,}." + hint(got)
    return [problem] if problem else []


def _reference(expected: Any, computed: torch.Tensor) -> torch.Tensor:
    """``computed``, or ``expected`` given as numbers (2-D: one image, one channel)."""
    if expected is None:
        return computed
    reference = torch.as_tensor(expected, dtype=computed.dtype)
    while reference.dim() < 4:
        reference = reference.unsqueeze(0)
    return reference


def _tensor_answer(
    fn: Callable[..., Any],
    call: str,
    args: tuple,
    kwargs: dict,
    reference: torch.Tensor,
    forbidden: Sequence[str],
    rule: str,
    shape_hint: ShapeHint,
    value_hint: Callable[[torch.Tensor], str],
) -> list[str]:
    """One call of ``fn`` whose answer must be a tensor like ``reference``.

    ``fn`` may not call ``forbidden`` (``rule`` says why) and must leave the tensors
    among ``args`` as they were; the hints name the likely mistake.
    """
    inputs = [a for a in args if isinstance(a, torch.Tensor)]
    originals = [t.clone() for t in inputs]
    with student.forbidden(forbidden, rule) as called:
        out, problem = student.call(fn, call, *args, **kwargs)
    if called:
        return [f"{call} calls {called[0]}: {rule}."]
    if problem:
        return [problem]
    if any(not torch.equal(t, o) for t, o in zip(inputs, originals, strict=True)):
        return [f"{call} changed its input in place: work on a copy."]
    problem = _tensor_problem(out, call, inputs[0].dtype, tuple(reference.shape), shape_hint)
    if problem is None:
        problem = _value_problem(out, reference, call, lambda: value_hint(out))
    return [problem] if problem else []


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(s) for s in t.shape)


# ---- conv2d_naive ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv2dCase:
    """``conv2d_naive`` on a ``batch x in_channels x height x width`` input."""

    batch: int
    in_channels: int
    out_channels: int
    height: int
    width: int
    kernel: tuple[int, int]  # kH, kW
    stride: int = 1
    padding: int = 0
    bias: bool = False


def random_conv_cases(count: int, seed: int) -> list[Conv2dCase]:
    """``count`` small random settings: non-square inputs and kernels, strides 1-3, padding 0-2."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        kernel = (rng.randint(1, 4), rng.randint(1, 4))
        padding = rng.randint(0, 2)
        height = rng.randint(max(1, kernel[0] - 2 * padding), 9)
        width = rng.randint(max(1, kernel[1] - 2 * padding), 9)
        cases.append(
            Conv2dCase(
                batch=rng.randint(1, 3),
                in_channels=rng.randint(1, 4),
                out_channels=rng.randint(1, 5),
                height=height,
                width=width,
                kernel=kernel,
                stride=rng.randint(1, 3),
                padding=padding,
                bias=rng.random() < 0.6,
            )
        )
    return cases


def _conv_call(x: torch.Tensor, weight: torch.Tensor, bias, stride: int, padding: int) -> str:
    bias_text = "None" if bias is None else f"<{_shape(bias)}>"
    return (
        f"conv2d_naive(x <{_shape(x)}>, weight <{_shape(weight)}>, bias={bias_text}, "
        f"stride={stride}, padding={padding})"
    )


def _conv_shape_hint(x, weight, stride: int, padding: int, got: tuple[int, ...]) -> str:
    def shape(total_padding: int, step: int) -> tuple[int, ...]:
        (h, w), (kh, kw) = x.shape[2:], weight.shape[2:]
        return (
            x.shape[0],
            weight.shape[0],
            (h + total_padding - kh) // step + 1,
            (w + total_padding - kw) // step + 1,
        )

    variants = {
        "the stride is ignored: step the window by `stride` pixels": shape(2 * padding, 1),
        "the padding is ignored: pad `padding` zeros on every side first": shape(0, stride),
        "the padding is off by one: pad `padding` zeros on each side": shape(
            2 * padding + 2, stride
        ),
        "the padding is added on one side only: pad every side": shape(padding, stride),
    }
    return _looks_like(variants, lambda variant: variant == got) or (
        " Output size: (H + 2P - kH) // S + 1 rows and (W + 2P - kW) // S + 1 columns."
    )


def _conv_value_hint(out, x, weight, bias, stride: int, padding: int) -> str:
    variants = {
        "the kernel is flipped (that is the textbook convolution; PyTorch, like the course slides, "
        "slides the filter as it is)": F.conv2d(x, weight.flip(2, 3), bias, stride, padding),
    }
    if bias is not None:
        variants["the bias is missing: add bias[k] to every value of output channel k"] = F.conv2d(
            x, weight, None, stride, padding
        )
        variants["the bias is added once per input channel"] = F.conv2d(
            x, weight, bias * x.shape[1], stride, padding
        )
    if x.shape[1] > 1:
        variants["only the first input channel is used: sum over all input channels"] = F.conv2d(
            x[:, :1], weight[:, :1], bias, stride, padding
        )
    return _looks_like(variants, lambda value: _same(value, out))


def compare_conv2d(
    fn: Callable[..., Any],
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    expected: Any = None,
) -> list[str]:
    """One call of ``fn(x, weight, bias, stride=..., padding=...)`` against ``expected``.

    ``expected`` defaults to ``F.conv2d``; a nested list (the course slides' 2-D numbers)
    is taken as one image with one channel. ``fn`` may not call F.conv2d or
    nn.Conv2d, and must leave its inputs as they were.
    """
    x, weight = x.detach(), weight.detach()
    bias = None if bias is None else bias.detach()
    return _tensor_answer(
        fn,
        _conv_call(x, weight, bias, stride, padding),
        (x, weight, bias),
        {"stride": stride, "padding": padding},
        _reference(expected, F.conv2d(x, weight, bias, stride=stride, padding=padding)),
        ("conv2d",),
        "compute the convolution yourself, with loops (or unfold)",
        lambda got: _conv_shape_hint(x, weight, stride, padding, got),
        lambda out: _conv_value_hint(out, x, weight, bias, stride, padding),
    )


def check_conv2d(fn: Callable[..., Any], cases: Sequence[Conv2dCase], seed: int = 0) -> list[str]:
    """``fn`` against ``F.conv2d`` on random tensors, one case at a time."""

    def run(i: int, case: Conv2dCase) -> list[str]:
        generator = torch.Generator().manual_seed(seed + i)
        x = torch.randn(case.batch, case.in_channels, case.height, case.width, generator=generator)
        weight = torch.randn(case.out_channels, case.in_channels, *case.kernel, generator=generator)
        bias = torch.randn(case.out_channels, generator=generator) if case.bias else None
        return compare_conv2d(fn, x, weight, bias, case.stride, case.padding)

    return student.first_failures(run(i, case) for i, case in enumerate(cases))


# ---- conv_output_size -----------------------------------------------------------------------


@dataclass(frozen=True)
class SizeCase:
    """``conv_output_size(size, kernel_size, stride, padding, dilation)``."""

    size: int
    kernel_size: int
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    def call(self) -> str:
        extra = student.non_default_keywords(
            ("stride", self.stride, 1), ("padding", self.padding, 0), ("dilation", self.dilation, 1)
        )
        return f"conv_output_size({self.size}, {self.kernel_size}{extra})"

    def kwargs(self) -> dict[str, int]:
        """Only the arguments that differ from the defaults, so the defaults are tested too."""
        given = {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}
        defaults = {"stride": 1, "padding": 0, "dilation": 1}
        return {k: v for k, v in given.items() if v != defaults[k]}


def _torch_output_size(case: SizeCase) -> int:
    """What nn.Conv2d makes of it, on the meta device (shapes only, no arithmetic of ours)."""
    layer = nn.Conv2d(
        1, 1, case.kernel_size, case.stride, case.padding, case.dilation, device="meta"
    )
    return layer(torch.empty(1, 1, case.size, case.size, device="meta")).shape[-1]


def random_size_cases(count: int, seed: int) -> list[SizeCase]:
    """Random valid settings: sizes 1-300, kernels 1-11, strides 1-4, padding 0-5, dilation 1-3."""
    rng = random.Random(seed)
    cases = []
    while len(cases) < count:
        case = SizeCase(
            size=rng.choice([rng.randint(1, 16), rng.randint(17, 300)]),
            kernel_size=rng.randint(1, 11),
            stride=rng.randint(1, 4),
            padding=rng.randint(0, 5),
            dilation=rng.choice([1, 1, 2, 3]),
        )
        if case.size + 2 * case.padding >= case.dilation * (case.kernel_size - 1) + 1:
            cases.append(case)
    return cases


def _size_hint(case: SizeCase, got: int) -> str:
    s, k, st, p, d = case.size, case.kernel_size, case.stride, case.padding, case.dilation
    span = d * (k - 1) + 1  # how many input pixels one dilated filter covers
    variants = {
        "that is the ceiling; PyTorch rounds down (use //)": -(-(s + 2 * p - span) // st) + 1,
        "the dilation is ignored: a filter of size F with dilation D spans D*(F-1)+1 pixels": (
            (s + 2 * p - k) // st + 1
        ),
        "the padding is counted once: it is added on both sides, 2P": (s + p - span) // st + 1,
        "the +1 is missing: the first position counts too": (s + 2 * p - span) // st,
    }
    return _looks_like(variants, lambda value: value == got)


def check_conv_output_size(fn: Callable[..., Any], cases: Sequence[SizeCase]) -> list[str]:
    """``fn`` gives, as an int, the output size nn.Conv2d produces."""
    return student.first_failures(
        _int_answer(
            fn,
            case.call(),
            (case.size, case.kernel_size),
            case.kwargs(),
            _torch_output_size(case),
            "what nn.Conv2d gives",
            lambda got, case=case: _size_hint(case, got),
            " Use // to round down as PyTorch does.",
        )
        for case in cases
    )


# ---- conv_params ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamCase:
    """``conv_params(in_channels, out_channels, kernel_size, bias)``."""

    in_channels: int
    out_channels: int
    kernel_size: int
    bias: bool = True

    def call(self) -> str:
        tail = "" if self.bias else ", bias=False"
        return f"conv_params({self.in_channels}, {self.out_channels}, {self.kernel_size}{tail})"


def random_param_cases(count: int, seed: int) -> list[ParamCase]:
    rng = random.Random(seed)
    return [
        ParamCase(
            rng.choice([1, 3, rng.randint(1, 64), rng.randint(64, 1024)]),
            rng.choice([1, rng.randint(1, 64), rng.randint(64, 1024)]),
            rng.choice([1, 3, 5, 7, rng.randint(1, 11)]),
            rng.random() < 0.5,
        )
        for _ in range(count)
    ]


def _params_hint(case: ParamCase, got: int) -> str:
    c_in, c_out, k = case.in_channels, case.out_channels, case.kernel_size
    weights = c_in * c_out * k * k
    variants = {
        "the biases are missing: one per filter": weights,
        "biases are counted although bias=False": weights + c_out,
        "the bias is counted once, not once per filter": weights + (1 if case.bias else 0),
        "the input channels are missing: each filter is kernel x kernel x in_channels": (
            c_out * k * k + (c_out if case.bias else 0)
        ),
    }
    return _looks_like(variants, lambda value: value == got)


def check_conv_params(fn: Callable[..., Any], cases: Sequence[ParamCase]) -> list[str]:
    """``fn`` counts, as an int, the parameters of the nn.Conv2d it describes."""

    def run(case: ParamCase) -> list[str]:
        args = (case.in_channels, case.out_channels, case.kernel_size)
        layer = nn.Conv2d(*args, bias=case.bias, device="meta")
        expected = sum(p.numel() for p in layer.parameters())
        kwargs = {} if case.bias else {"bias": False}
        return _int_answer(
            fn,
            case.call(),
            args,
            kwargs,
            expected,
            "what nn.Conv2d has",
            lambda got: _params_hint(case, got),
        )

    return student.first_failures(run(case) for case in cases)


# ---- max_pool2d_naive -----------------------------------------------------------------------


@dataclass(frozen=True)
class PoolCase:
    """``max_pool2d_naive`` on a ``batch x channels x height x width`` input.

    ``stride=None`` leaves the argument out, to test its default (the kernel size).
    """

    batch: int
    channels: int
    height: int
    width: int
    kernel_size: int
    stride: int | None = None
    negative: bool = False  # every value below zero


def random_pool_cases(count: int, seed: int) -> list[PoolCase]:
    """Random settings, overlapping windows included, some with only negative values."""
    rng = random.Random(seed)
    cases = []
    for _ in range(count):
        kernel = rng.randint(1, 4)
        cases.append(
            PoolCase(
                batch=rng.randint(1, 3),
                channels=rng.randint(1, 4),
                height=rng.randint(kernel, 11),
                width=rng.randint(kernel, 11),
                kernel_size=kernel,
                stride=rng.choice([None, 1, 2, 3]),
                negative=rng.random() < 0.3,
            )
        )
    return cases


def _pool_call(x: torch.Tensor, kernel_size: int, stride: int | None) -> str:
    tail = "" if stride is None else f", stride={stride}"
    return f"max_pool2d_naive(x <{_shape(x)}>, {kernel_size}{tail})"


def _pool_hint(out, x, kernel_size: int, stride: int | None) -> str:
    s = kernel_size if stride is None else stride
    variants = {
        "the maximum starts at 0: start from the window's first value (or -inf), "
        "since all values may be negative": F.max_pool2d(x, kernel_size, s).clamp(min=0),
        "that is the average, not the maximum": F.avg_pool2d(x, kernel_size, s),
    }
    return _looks_like(variants, lambda value: _same(value, out))


def _pool_shape_hint(x, kernel_size: int, stride: int | None, got: tuple[int, ...]) -> str:
    if stride is None and got == tuple(F.max_pool2d(x, kernel_size, 1).shape):
        return " It looks like the stride defaults to 1: it defaults to kernel_size."
    if stride is not None and got == tuple(F.max_pool2d(x, kernel_size, kernel_size).shape):
        return " It looks like the stride is ignored."
    return ""


def compare_max_pool2d(
    fn: Callable[..., Any],
    x: torch.Tensor,
    kernel_size: int,
    stride: int | None = None,
    expected: Any = None,
) -> list[str]:
    """One call of ``fn(x, kernel_size[, stride=...])`` against ``expected``
    (default: ``F.max_pool2d``). ``fn`` may not call F.max_pool2d or nn.MaxPool2d."""
    x = x.detach()
    return _tensor_answer(
        fn,
        _pool_call(x, kernel_size, stride),
        (x, kernel_size),
        {} if stride is None else {"stride": stride},
        _reference(expected, F.max_pool2d(x, kernel_size, stride)),
        ("max_pool2d", "max_pool2d_with_indices"),
        "take the maximum of each window yourself",
        lambda got: _pool_shape_hint(x, kernel_size, stride, got),
        lambda out: _pool_hint(out, x, kernel_size, stride),
    )


def check_max_pool2d(fn: Callable[..., Any], cases: Sequence[PoolCase], seed: int = 0) -> list[str]:
    """``fn`` against ``F.max_pool2d`` on random tensors, one case at a time."""

    def run(i: int, case: PoolCase) -> list[str]:
        generator = torch.Generator().manual_seed(seed + i)
        x = torch.randn(case.batch, case.channels, case.height, case.width, generator=generator)
        if case.negative:
            x = -x.abs() - 0.1
        return compare_max_pool2d(fn, x, case.kernel_size, case.stride)

    return student.first_failures(run(i, case) for i, case in enumerate(cases))


# ---- the VGG walk-through -------------------------------------------------------------------

Row = tuple[str, tuple[int, int, int], int, int]  # name, (C, H, W), activations, params


def _vgg_call(cfg: Sequence, input_size: int, num_classes: int, bias: bool) -> str:
    known = {tuple(v): k for k, v in torchvision.models.vgg.cfgs.items()}
    names = {"A": "VGG11", "B": "VGG13", "D": "VGG16", "E": "VGG19"}
    name = names.get(known.get(tuple(cfg), ""), "cfg")
    return (
        f"vgg_walkthrough({name}, input_size={input_size}, num_classes={num_classes}, bias={bias})"
    )


def vgg_reference_rows(
    cfg: Sequence[int | str], input_size: int = 224, num_classes: int = 1000, bias: bool = False
) -> list[Row]:
    """The slides' table, measured: torch layers run on the meta device, one row per layer."""
    rows: list[Row] = [("INPUT", (3, input_size, input_size), 3 * input_size**2, 0)]

    def add(name: str, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        x = layer(x)
        c, h, w = (*x.shape[1:], 1, 1)[:3]  # a Linear layer's output counts as C x 1 x 1
        rows.append((name, (c, h, w), c * h * w, sum(p.numel() for p in layer.parameters())))
        return x

    with torch.device("meta"):
        x = torch.empty(1, 3, input_size, input_size)
        for v in cfg:
            if v == "M":
                x = add("POOL2", nn.MaxPool2d(kernel_size=2, stride=2), x)
            else:
                x = add(f"CONV3-{v}", nn.Conv2d(x.shape[1], int(v), 3, padding=1, bias=bias), x)
        x = x.flatten(1)
        for features in (4096, 4096, num_classes):
            x = add(f"FC-{features}", nn.Linear(x.shape[1], features, bias=bias), x)
    return rows


def _checked_rows(rows: object, call: str) -> list[Row] | str:
    """The rows as plain tuples of plain ints and strs, or the problem with them."""
    if not isinstance(rows, (list, tuple)):
        return f"{call} should return a list of rows, got {type(rows).__name__}."
    checked: list[Row] = []
    for i, row in enumerate(rows):
        where = f"{call}, row {i}"
        if not isinstance(row, (list, tuple)) or len(row) != 4:
            return (
                f"{where}: expected a tuple (name, (C, H, W), activations, params), "
                f"got {row!r:.80}."
            )
        name, shape, activations, params = row[0], row[1], row[2], row[3]
        if type(name) is not str:
            return f"{where}: the name should be a str, got {type(name).__name__}."
        if not isinstance(shape, (list, tuple)) or len(shape) != 3:
            return f"{where} ({name}): the shape should be a tuple (C, H, W), got {shape!r:.80}."
        dims = [shape[0], shape[1], shape[2]]
        for value in dims:
            if type(value) is not int:
                got = student.describe_value(value)
                return f"{where} ({name}): C, H and W should be ints, got {got}."
        for label, value in (("activations", activations), ("params", params)):
            if type(value) is not int:
                got = student.describe_value(value)
                return f"{where} ({name}): {label} should be an int, got {got}."
        checked.append((name, (dims[0], dims[1], dims[2]), activations, params))
    return checked


def _row_text(row: Row) -> str:
    name, (c, h, w), activations, params = row
    return f"{name} [{c}x{h}x{w}] activations {activations:,} params {params:,}"


def _row_hint(got: Row, want: Row, bias: bool) -> str:
    c, h, w = want[1]
    if got[1] != want[1] and got[1] == (h, w, c):
        return " The shape is in the course slides' H x W x C order; use PyTorch's (C, H, W)."
    if got[1] == want[1] and got[2] != want[2]:
        return " Activations are every value of the layer's output: C * H * W."
    if got[3] != want[3] and want[3] and got[3] == want[3] + (-1 if bias else 1) * c:
        return " The biases " + ("are missing." if bias else "are counted although bias=False.")
    return ""


def check_vgg_walkthrough(
    fn: Callable[..., Any],
    cfg: Sequence[int | str],
    input_size: int = 224,
    num_classes: int = 1000,
    bias: bool = False,
) -> list[str]:
    """Every row of ``fn(cfg, ...)`` matches what torch's own layers give, then the totals."""
    call = _vgg_call(cfg, input_size, num_classes, bias)
    rows, problem = student.call(
        fn, call, list(cfg), input_size=input_size, num_classes=num_classes, bias=bias
    )
    if problem:
        return [problem]
    checked = _checked_rows(rows, call)
    if isinstance(checked, str):
        return [checked]
    expected = vgg_reference_rows(cfg, input_size, num_classes, bias)
    for i, (got, want) in enumerate(zip(checked, expected, strict=False)):
        if got != want:
            return [
                f"{call}: row {i} differs" + (" (the rows before it match)" if i else "") + ".\n"
                f"  expected: {_row_text(want)}\n"
                f"  yours:    {_row_text(got)}" + _row_hint(got, want, bias)
            ]
    if len(checked) != len(expected):
        return [
            f"{call}: expected {len(expected)} rows (INPUT, one per cfg entry, three FC), "
            f"got {len(checked)}."
        ]
    return []


def check_vgg_against_torchvision(fn: Callable[..., Any], arch: str = "vgg16") -> list[str]:
    """``fn`` at 224 x 224 with biases matches torchvision's model: every layer's output
    shape and the parameter total (built on the meta device: no weights, no download)."""
    key = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}[arch]
    cfg = torchvision.models.vgg.cfgs[key]
    call = _vgg_call(cfg, 224, 1000, True)
    rows, problem = student.call(fn, call, list(cfg), input_size=224, num_classes=1000, bias=True)
    if problem:
        return [problem]
    checked = _checked_rows(rows, call)
    if isinstance(checked, str):
        return [checked]
    with torch.device("meta"):  # shapes and counts only: no memory, no initialisation cost
        model = getattr(torchvision.models, arch)(weights=None)
        calls = record_outputs(
            model,
            torch.empty(1, 3, 224, 224),
            lambda m: isinstance(m, (nn.Conv2d, nn.MaxPool2d, nn.Linear)),
        )
    shapes = [tuple(c.output.shape[1:]) for c in calls]
    expected_shapes = [s if len(s) == 3 else (s[0], 1, 1) for s in shapes]
    got_shapes = [row[1] for row in checked[1:]]
    if got_shapes != expected_shapes:
        first = next(
            (
                i
                for i, (g, e) in enumerate(zip(got_shapes, expected_shapes, strict=False))
                if g != e
            ),
            min(len(got_shapes), len(expected_shapes)),
        )
        return [
            f"{call}: torchvision's {arch} has {len(expected_shapes)} layers after the input, "
            f"yours {len(got_shapes)}; the first difference is at row {first + 1}: "
            f"torchvision {expected_shapes[first] if first < len(expected_shapes) else 'none'}, "
            f"yours {got_shapes[first] if first < len(got_shapes) else 'none'}."
        ]
    total = sum(p.numel() for p in model.parameters())
    got_total = sum(row[3] for row in checked)
    if got_total != total:
        return [
            f"{call}: {got_total:,} parameters in total; torchvision's {arch} has {total:,} "
            f"({got_total - total:+,})."
        ]
    return []
