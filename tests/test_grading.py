"""End to end: nbgrader grades the bundled sample submissions as each one says.

One module-scoped run grades every Day 4 sample in a fresh course folder; the
tests read its results, gradebook and feedback.
"""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.course import REPO_ROOT, _split_regions, make_course_root
from autograder.grade import (
    FAILED,
    GRADED,
    INVALID,
    Result,
    format_results,
    grade_assignment,
    preflight,
)
from autograder.samples import SAMPLES, write_samples

ASSIGNMENT = "day04_resnet"
NOTEBOOK = "resnet.ipynb"
TABLE_TESTS = ("test_resnet18_table", "test_resnet34_table")


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, dict[str, Result]]:
    root = make_course_root(tmp_path_factory.mktemp("course"), [ASSIGNMENT])
    write_samples(ASSIGNMENT, root, REPO_ROOT)
    results = grade_assignment(ASSIGNMENT, root, timeout=600)
    print(format_results(results))
    return root, {r.student: r for r in results}


def _cell_scores(root: Path, student: str) -> dict[str, float]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        nb = gradebook.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT, student)
        return {grade.name: grade.score for grade in nb.grades}


def _feedback(root: Path, student: str) -> str:
    path = root / "feedback" / student / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")
    return html.unescape(path.read_text(encoding="utf-8"))


def _hidden_lines() -> set[str]:
    source = nbformat.read(REPO_ROOT / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    hidden = set()
    for cell in source.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            inside, outside = _split_regions(cell.source)
            hidden |= {line for line in inside - outside if len(line) > 15}
    return hidden


@pytest.mark.slow
def test_every_sample_is_accounted_for(graded):
    _, results = graded
    assert set(results) == {s.student for s in SAMPLES[ASSIGNMENT]}


@pytest.mark.slow
def test_solution_gets_full_marks(graded):
    _, results = graded
    result = results["sample-correct"]
    assert result.status == GRADED, result
    assert result.max_score == 12
    assert result.score == result.max_score


@pytest.mark.slow
def test_untouched_notebook_gets_zero(graded):
    _, results = graded
    assert results["sample-untouched"].status == GRADED
    assert results["sample-untouched"].score == 0


@pytest.mark.slow
def test_missing_shortcut_batchnorm_loses_table_points(graded):
    root, results = graded
    result = results["sample-no-shortcut-bn"]
    assert result.status == GRADED, result
    scores = _cell_scores(root, "sample-no-shortcut-bn")
    assert all(scores[test] == 0 for test in TABLE_TESTS), scores
    assert scores["test_training_run"] == 3, scores
    feedback = _feedback(root, "sample-no-shortcut-bn")
    assert "missing layers" in feedback
    assert "BatchNorm2d [-1, 128, 28, 28]" in feedback


@pytest.mark.slow
def test_deleted_test_cell_is_restored_and_graded(graded):
    root, results = graded
    result = results["sample-deleted-test-cell"]
    assert result.status == GRADED, result
    assert result.score == result.max_score
    assert _cell_scores(root, "sample-deleted-test-cell")["test_resnet34_table"] == 2


@pytest.mark.slow
def test_corrupted_notebook_is_reported_and_kept(graded):
    root, results = graded
    result = results["sample-corrupted"]
    assert result.status == INVALID
    assert result.score is None
    assert "not a valid notebook" in result.detail
    assert (root / "submitted" / "sample-corrupted" / ASSIGNMENT / NOTEBOOK).exists()


@pytest.mark.slow
def test_feedback_never_shows_hidden_tests(graded):
    root, results = graded
    hidden = _hidden_lines()
    assert hidden, "the lab has hidden tests to look for"
    for student, result in results.items():
        if result.status != GRADED:
            continue
        feedback = _feedback(root, student)
        assert "HIDDEN TESTS" not in feedback
        shown = [line for line in hidden if line in feedback]
        assert not shown, f"{student}'s feedback shows hidden test lines: {shown}"


def test_preflight_names_what_is_wrong(tmp_path):
    assert "missing resnet.ipynb" in preflight(tmp_path, ["resnet.ipynb"])
    (tmp_path / "resnet.ipynb").write_text('{"cells": [', encoding="utf-8")
    assert "not a valid notebook" in preflight(tmp_path, ["resnet.ipynb"])
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "resnet.ipynb")
    assert preflight(tmp_path, ["resnet.ipynb"]) is None


def test_results_table_shows_status_beside_score():
    table = format_results(
        [Result("alice", GRADED, 12, 12), Result("bob", FAILED, detail="kernel died")]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["student", "score", "max", "status", "detail"]
    assert lines[2].split() == ["alice", "12", "12", "graded"]
    assert lines[3].split()[:4] == ["bob", "-", "-", "failed"]
    assert lines[3].endswith("kernel died")
