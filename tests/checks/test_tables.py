"""Tests for autograder.checks.tables: comparing a model's summary table with a target."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from autograder.checks.tables import check_summary, check_summary_meta, compare_tables
from autograder.checks.targets import stored_table, target_table
from labkit.summary import SummaryRow, SummaryTable, capture_summary

NO_SHORTCUT_BN = {"                nn.BatchNorm2d(planes * self.expansion),\n": ""}
SMALL = (3, 12, 12)


class ConvBnRelu(nn.Module):
    """conv -> bn -> relu, or with ``swap`` conv -> relu -> bn: the same rows, reordered."""

    def __init__(self, swap: bool = False) -> None:
        super().__init__()
        self.swap = swap
        self.conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        x = self.bn(self.relu(x)) if self.swap else self.relu(self.bn(x))
        return self.fc(torch.flatten(self.pool(x), 1))


class Broken(ConvBnRelu):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn(self.conv(x)))
        return self.fc(x)  # forgot pooling and flatten: 12 features into Linear(4, 2)


class WithGain(ConvBnRelu):
    """The right table, plus a parameter that no row shows."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.gain


@pytest.fixture(scope="module")
def target() -> SummaryTable:
    return capture_summary(ConvBnRelu(), SMALL)


# ---- compare_tables -----------------------------------------------------------------------------


def test_identical_tables_match(target):
    assert compare_tables(target, target) == []
    assert compare_tables(capture_summary(ConvBnRelu(), SMALL), target) == []
    stored = stored_table("resnet18-10")
    assert compare_tables(stored, stored) == []


def test_stored_and_printed_tables_match_despite_their_text(target):
    restored = SummaryTable.from_dict(target.to_dict())
    assert restored.text == "" and target.text
    assert compare_tables(restored, target) == []


def test_sizes_within_rounding_match_and_beyond_it_differ(target):
    close = dataclasses.replace(target, forward_backward_mb=target.forward_backward_mb + 0.01)
    assert compare_tables(close, target) == []

    far = dataclasses.replace(target, forward_backward_mb=target.forward_backward_mb + 1.5)
    assert compare_tables(far, target, "net") == [
        f"net: Forward/backward pass size (MB): expected {target.forward_backward_mb:.2f}, "
        f"yours {far.forward_backward_mb:.2f}."
    ]


def test_only_the_first_differing_parameter_count_is_reported(target):
    actual = dataclasses.replace(
        target, total_params=target.total_params + 7, trainable_params=target.trainable_params + 7
    )
    problems = compare_tables(actual, target, "net")
    assert problems == [
        f"net: Total params: expected {target.total_params:,}, "
        f"yours {target.total_params + 7:,} (+7)."
    ]


def test_rows_in_another_order_get_the_order_hint(target):
    swapped = capture_summary(ConvBnRelu(swap=True), SMALL)
    problems = compare_tables(swapped, target, "net")

    assert len(problems) == 1  # same layers, so the same totals
    (problem,) = problems
    assert problem.startswith("net: the summary table differs from the target at row 2 ")
    assert "expected: BatchNorm2d-2 [-1, 4, 12, 12] 8 params" in problem
    assert "yours:    ReLU-2 [-1, 4, 12, 12] 0 params" in problem
    assert "in a different order" in problem
    assert "missing layers" not in problem and "unexpected layers" not in problem


def test_extra_and_missing_layers_are_listed_with_a_cap():
    rows = [SummaryRow("Conv2d", i, f"[-1, {i}, 8, 8]", 10 * i) for i in range(1, 10)]

    def table(rows):
        total = sum(r.params for r in rows)
        return SummaryTable(tuple(rows), total, total, 0, 0.0, 0.0, 0.0, 0.0, "")

    expected = table(rows)
    extra = SummaryRow("Dropout", 3, "[-1, 9, 8, 8]", 0)
    problems = compare_tables(table([*rows[:2], extra]), expected, "net")

    listing = problems[0]
    assert "at row 3 (target has 9 rows, yours 3)" in listing
    assert "missing layers (7):" in listing
    assert "    Conv2d [-1, 3, 8, 8] (30 params, expected row 3)" in listing
    assert "Conv2d [-1, 8, 8, 8]" not in listing  # only the first 5 are shown ...
    assert "... and 2 more" in listing  # ... and the rest counted
    assert "unexpected layers (1):" in listing
    assert "    Dropout-3 [-1, 9, 8, 8] 0 params" in listing
    assert problems[1] == "net: Total params: expected 450, yours 30 (-420)."


# ---- check_summary on the seed ResNet-18 --------------------------------------------------------


def test_solution_resnet18_matches_the_seed_table(solution):
    assert check_summary(solution["resnet18"](), stored_table("resnet18-10")) == []


def test_solution_resnet18_matches_a_smaller_torchvision_table(solution):
    model = solution["ResNet"](solution["BasicBlock"], [2, 2, 2, 2], 100)
    assert check_summary(model, target_table("resnet18", 100, (3, 64, 64)), (3, 64, 64)) == []


def test_resnet18_without_the_shortcut_batchnorm(solution_namespace):
    model = solution_namespace(NO_SHORTCUT_BN)["resnet18"]()

    problems = check_summary(model, stored_table("resnet18-10"), name="resnet18()")

    assert len(problems) == 3
    table, totals, numel = problems
    lines = table.splitlines()
    assert lines[0] == (
        "resnet18(): the summary table differs from the target at row 25 "
        "(target has 68 rows, yours 65)."
    )
    assert lines[1] == "  expected: BatchNorm2d-25 [-1, 128, 28, 28] 256 params"
    assert lines[2] == "  yours:    ReLU-25 [-1, 128, 28, 28] 0 params"
    assert "  missing layers (3):" in lines
    assert "    BatchNorm2d [-1, 128, 28, 28] (256 params, expected row 25)" in lines
    assert "    BatchNorm2d [-1, 256, 14, 14] (512 params, expected row 41)" in lines
    assert "    BatchNorm2d [-1, 512, 7, 7] (1,024 params, expected row 57)" in lines
    assert "unexpected layers" not in table
    # the diff: the missing row marked "-", between the rows around it
    diff = lines[lines.index("  first differences (- expected, + yours):") + 1 :]
    assert 0 < len(diff) <= 12
    assert [line.split() for line in diff[:3]] == [
        ["Conv2d-24", "[-1,", "128,", "28,", "28]", "8,192"],
        ["-", "BatchNorm2d-25", "[-1,", "128,", "28,", "28]", "256"],
        ["ReLU-25", "[-1,", "128,", "28,", "28]", "0"],
    ]
    assert totals == "resnet18(): Total params: expected 11,181,642, yours 11,179,850 (-1,792)."
    assert numel == (
        "resnet18(): counting every parameter by numel gives 11,179,850, "
        "expected 11,181,642 (-1,792)."
    )


# ---- check_summary's own checks -----------------------------------------------------------------


def test_check_summary_passes_a_matching_model(target):
    assert check_summary(ConvBnRelu(), target, SMALL) == []


def test_check_summary_names_the_model_by_its_class_by_default(target):
    (problem,) = check_summary(ConvBnRelu(swap=True), target, SMALL)
    assert problem.startswith("ConvBnRelu: ")
    (problem,) = check_summary(ConvBnRelu(swap=True), target, SMALL, name="block()")
    assert problem.startswith("block(): ")


def test_check_summary_counts_parameters_no_row_shows(target):
    assert check_summary(WithGain(), target, SMALL) == [
        f"WithGain: counting every parameter by numel gives {target.total_params + 1:,}, "
        f"expected {target.total_params:,} (+1)."
    ]


def test_check_summary_reports_a_failing_forward(target):
    problems = check_summary(Broken(), target, SMALL)

    assert len(problems) == 1
    problem = problems[0]
    assert problem.startswith("Broken: summary(model, (3, 12, 12)) failed: RuntimeError: ")
    assert "torch.randn(2, 3, 12, 12)" in problem


def test_check_summary_reports_an_exception_from_forward_without_raising(target):
    class Stub(nn.Module):
        def forward(self, x):
            raise NotImplementedError("write forward()")

    (problem,) = check_summary(Stub(), target, SMALL)
    assert "failed: NotImplementedError: write forward()" in problem


@pytest.mark.parametrize(("thing", "kind"), [(None, "NoneType"), ("resnet18()", "str")])
def test_check_summary_rejects_what_is_not_a_module(target, thing, kind):
    problems = check_summary(thing, target, SMALL)
    assert problems == [f"{kind}: expected an nn.Module, got {kind}."]


def test_check_summary_says_to_call_a_class(target):
    (problem,) = check_summary(ConvBnRelu, target, SMALL)
    assert "got the class ConvBnRelu, not a model: call it" in problem


# ---- check_summary_meta: the same check on the meta device -------------------------------------


@pytest.mark.parametrize("model_cls", [ConvBnRelu, WithGain, Broken])
def test_check_summary_meta_says_what_check_summary_says(target, model_cls):
    assert check_summary_meta(model_cls, target, SMALL, "net") == check_summary(
        model_cls(), target, SMALL, "net"
    )


def test_check_summary_meta_reports_a_stub(target):
    def stub() -> nn.Module:
        raise NotImplementedError()

    assert check_summary_meta(stub, target, SMALL, "net") == [
        "net raised NotImplementedError: replace the stub with your code."
    ]


class ValueBranch(ConvBnRelu):
    """The right table, but forward() reads a value: only a real run can check it."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * (1.0 if x.abs().sum().item() >= 0 else -1.0)


def test_check_summary_meta_runs_for_real_when_values_are_needed(target):
    assert check_summary_meta(ValueBranch, target, SMALL, "net") == []
    wrong = dataclasses.replace(target, total_params=target.total_params + 1)
    assert "Total params" in check_summary_meta(ValueBranch, wrong, SMALL, "net")[0]


def test_check_summary_meta_reports_a_failing_constructor(target):
    def broken() -> nn.Module:
        return nn.Conv2d(3, -1, 3)

    problems = check_summary_meta(broken, target, SMALL, "net")
    assert problems == [
        "net: building the model raised RuntimeError: "
        "Trying to create tensor with negative dimension -1: [-1, 3, 3, 3]"
    ]
