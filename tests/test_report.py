"""Tests for autograder.report: the message of ``assert not problems, report(problems)``."""

from __future__ import annotations

from autograder import report


def test_report_of_one_problem_is_singular():
    assert report(["BasicBlock.expansion should be the int 1, got 4."]) == (
        "1 problem found:\n- BasicBlock.expansion should be the int 1, got 4."
    )


def test_report_lists_every_problem_in_order():
    assert report(("first", "second", "third")) == ("3 problems found:\n- first\n- second\n- third")


def test_report_keeps_multi_line_problems_whole():
    text = report(["table differs at row 25\n  missing layers (1):", "Total params differ"])
    assert text.splitlines() == [
        "2 problems found:",
        "- table differs at row 25",
        "  missing layers (1):",
        "- Total params differ",
    ]


def test_report_of_no_problems():
    assert report([]) == "0 problems found:"
