"""Compare a model's ``summary`` table with a target table, layer by layer.

Rows are compared as (layer type, output shape, parameter count) without their
numbers: torchsummary numbers rows in call order, so one missing layer would
otherwise make every later row "wrong". The problems name the first differing
row, the layers missing or extra, and the totals.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence

import torch
from torch import nn

from autograder.checks import student
from labkit.summary import (
    SummaryRow,
    SummaryTable,
    capture_summary,
    count_parameters,
    meta_summary,
)

__all__ = ["check_summary", "check_summary_meta", "compare_tables"]

_MAX_LISTED = 5
_DIFF_LINES = 12


def _row(row: SummaryRow) -> str:
    return f"{row.layer}-{row.index} {row.shape} {row.params:,} params"


def _layer(row: SummaryRow) -> str:
    return f"{row.layer} {row.shape} ({row.params:,} params, expected row {row.index})"


def _listing(title: str, rows: Sequence[SummaryRow], describe=_row) -> list[str]:
    if not rows:
        return []
    shown = [f"    {describe(r)}" for r in rows[:_MAX_LISTED]]
    more = len(rows) - _MAX_LISTED
    if more > 0:
        shown.append(f"    ... and {more} more")
    return [f"  {title} ({len(rows)}):", *shown]


def _diff(expected: Sequence[SummaryRow], actual: Sequence[SummaryRow]) -> list[str]:
    """A unified diff of the rows, matched without their numbers (1 row of context)."""
    matcher = difflib.SequenceMatcher(
        a=[r.key for r in expected], b=[r.key for r in actual], autojunk=False
    )
    lines: list[str] = []
    for group in matcher.get_grouped_opcodes(n=1):
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [f"  {row}" for row in actual[j1:j2]]
                continue
            lines += [f"- {row}" for row in expected[i1:i2]]
            lines += [f"+ {row}" for row in actual[j1:j2]]
        lines.append("  ...")
        if len(lines) > _DIFF_LINES:
            break
    return [f"    {line}" for line in lines[:_DIFF_LINES]]


def compare_tables(actual: SummaryTable, expected: SummaryTable, name: str = "model") -> list[str]:
    """Readable differences between two summary tables; ``[]`` means they match."""
    problems: list[str] = []
    exp_keys = [r.key for r in expected.rows]
    act_keys = [r.key for r in actual.rows]
    if exp_keys != act_keys:
        first = next(
            (i for i, (e, a) in enumerate(zip(exp_keys, act_keys, strict=False)) if e != a),
            min(len(exp_keys), len(act_keys)),
        )
        want = _row(expected.rows[first]) if first < len(expected.rows) else "(no more rows)"
        got = _row(actual.rows[first]) if first < len(actual.rows) else "(no more rows)"
        lines = [
            f"{name}: the summary table differs from the target at row {first + 1} "
            f"(target has {len(exp_keys)} rows, yours {len(act_keys)}).",
            f"  expected: {want}",
            f"  yours:    {got}",
        ]
        if sorted(exp_keys) == sorted(act_keys):
            lines.append(
                "  Your layers are all there, in a different order: summary lists layers in the "
                "order forward() calls them."
            )
        else:
            matcher = difflib.SequenceMatcher(a=exp_keys, b=act_keys, autojunk=False)
            missing: list[SummaryRow] = []
            extra: list[SummaryRow] = []
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag in ("delete", "replace"):
                    missing.extend(expected.rows[i1:i2])
                if tag in ("insert", "replace"):
                    extra.extend(actual.rows[j1:j2])
            lines += _listing("missing layers", missing, _layer)
            lines += _listing("unexpected layers", extra)
        lines += ["  first differences (- expected, + yours):", *_diff(expected.rows, actual.rows)]
        problems.append("\n".join(lines))
    for attr, label in (
        ("total_params", "Total params"),
        ("trainable_params", "Trainable params"),
        ("non_trainable_params", "Non-trainable params"),
    ):
        want, got = getattr(expected, attr), getattr(actual, attr)
        if want != got:
            problems.append(f"{name}: {label}: expected {want:,}, yours {got:,} ({got - want:+,}).")
            break  # the other counts follow from the first that differs
    for attr, label in (
        ("forward_backward_mb", "Forward/backward pass size (MB)"),
        ("total_mb", "Estimated Total Size (MB)"),
    ):
        want, got = getattr(expected, attr), getattr(actual, attr)
        if abs(want - got) > 0.011 and not problems:
            problems.append(f"{name}: {label}: expected {want:.2f}, yours {got:.2f}.")
    return problems


def _failed(name: str, input_size: Sequence[int], error: Exception) -> str:
    shape = ", ".join(str(s) for s in input_size)
    return (
        f"{name}: summary(model, ({shape})) failed: {type(error).__name__}: "
        f"{str(error).rstrip('.')}. "
        "Run the model on torch.randn(2, " + shape + ") to find the layer that breaks."
    )


def check_summary(
    model: nn.Module,
    expected: SummaryTable,
    input_size: Sequence[int] = (3, 224, 224),
    name: str | None = None,
) -> list[str]:
    """Run ``summary(model, input_size)`` safely and compare it with ``expected``.

    Parameters are also counted by ``numel``, which sees what torchsummary's
    ``weight``/``bias`` count misses.
    """
    name = name or type(model).__name__
    if isinstance(model, type) and issubclass(model, nn.Module):
        return [f"{name}: got the class {model.__name__}, not a model: call it, e.g. resnet18()."]
    if not isinstance(model, nn.Module):
        return [f"{name}: expected an nn.Module, got {type(model).__name__}."]
    try:
        actual = capture_summary(model, input_size)
    except Exception as error:  # a student's forward() can fail in any way
        return [_failed(name, input_size, error)]
    problems = compare_tables(actual, expected, name)
    numel = count_parameters(model)
    if numel != expected.total_params:
        problems.append(
            f"{name}: counting every parameter by numel gives {numel:,}, "
            f"expected {expected.total_params:,} ({numel - expected.total_params:+,})."
        )
    return problems


def check_summary_meta(
    build: Callable[[], nn.Module],
    expected: SummaryTable,
    input_size: Sequence[int] = (3, 224, 224),
    name: str = "model",
) -> list[str]:
    """``check_summary(build(), ...)`` without the cost: the model is built and run on the
    ``meta`` device (shapes, no weights). A model that fails there (its code needs real
    values, or it is broken) is built for real and checked by ``check_summary``."""
    try:
        actual = meta_summary(build, input_size)
        with torch.device("meta"):
            numel = count_parameters(build())
    except Exception as error:  # a student's model can fail in any way
        if isinstance(error, NotImplementedError) and "meta" not in str(error):
            return [student.stub_problem(name)]
        # Its code needs real values, or it fails: a real run says how, in the CPU's words.
        return _check_built(build, expected, input_size, name)
    problems = compare_tables(actual, expected, name)
    if numel != expected.total_params:
        problems.append(
            f"{name}: counting every parameter by numel gives {numel:,}, "
            f"expected {expected.total_params:,} ({numel - expected.total_params:+,})."
        )
    return problems


def _check_built(
    build: Callable[[], nn.Module], expected: SummaryTable, input_size: Sequence[int], name: str
) -> list[str]:
    try:
        model = build()
    except NotImplementedError:
        return [student.stub_problem(name)]
    except Exception as error:  # a student's constructor can fail in any way
        return [f"{name}: building the model raised {type(error).__name__}: {error}"]
    return check_summary(model, expected, input_size, name)
