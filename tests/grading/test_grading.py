"""End to end: nbgrader grades the bundled sample submissions as each one says.

Every lab's samples are graded once, in a fresh course folder per lab; the tests
read the results, the gradebook and the feedback. Every lab gets the common
samples (correct, untouched, corrupted); Day 4 also has its own mistakes.
"""

from __future__ import annotations

import html
from pathlib import Path

import nbformat
import pytest
from nbgrader.api import Gradebook

from autograder.grading.batch import cores
from autograder.grading.course import (
    REPO_ROOT,
    assignments,
    make_course_root,
    notebook_names,
    split_regions,
)
from autograder.grading.grade import (
    FAILED,
    GRADED,
    INVALID,
    Result,
    format_results,
    grade_assignment,
)
from autograder.grading.preflight import prepare_submission
from autograder.grading.samples import (
    edition_student,
    kernels_at_once,
    samples_for,
    write_samples,
)

DAY04 = "day04_resnet"
DAY06 = "day06_depth_study"
TABLE_TESTS = ("test_resnet18_table", "test_resnet34_table")


@pytest.fixture(scope="module", params=assignments())
def graded(request, tmp_path_factory) -> tuple[str, Path, dict[str, Result]]:
    """(assignment, course root, results by student), graded once per assignment."""
    assignment = request.param
    root = make_course_root(tmp_path_factory.mktemp(assignment), [assignment])
    write_samples(assignment, root, REPO_ROOT)
    write_samples(assignment, root, REPO_ROOT, language="ko")  # the Korean edition's
    # One single-thread kernel per core, as a class is graded: the batch driver
    # leaves what the serial one leaves (test_batch_grading.py); here, with a Korean twin
    # of every sample, it took Days 4 and 6 in 530 s against 1,139 s one at a time.
    results = grade_assignment(assignment, root, timeout=900, workers=cores())
    print(format_results(results))
    return assignment, root, {r.student: r for r in results}


@pytest.fixture
def day04(graded):
    if graded[0] != DAY04:
        pytest.skip("a Day 4 sample")
    return graded[1:]


@pytest.fixture
def day06(graded):
    if graded[0] != DAY06:
        pytest.skip("a Day 6 sample")
    return graded[1:]


def _notebook(assignment: str) -> str:
    (name,) = notebook_names(assignment)
    return name


def _cell_scores(root: Path, assignment: str, student: str) -> dict[str, float]:
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        notebook = _notebook(assignment).removesuffix(".ipynb")
        nb = gradebook.find_submission_notebook(notebook, assignment, student)
        return {grade.name: grade.score for grade in nb.grades}


def _feedback(root: Path, assignment: str, student: str) -> str:
    name = _notebook(assignment).replace(".ipynb", ".html")
    path = root / "feedback" / student / assignment / name
    return html.unescape(path.read_text(encoding="utf-8"))


def _hidden_lines(assignment: str) -> set[str]:
    source = nbformat.read(REPO_ROOT / "solutions" / assignment / _notebook(assignment), 4)
    hidden = set()
    for cell in source.cells:
        if cell.metadata.get("nbgrader", {}).get("grade"):
            inside, outside = split_regions(cell.source)
            hidden |= {line for line in inside - outside if len(line) > 15}
    return hidden


@pytest.mark.slow
def test_every_sample_is_accounted_for(graded):
    assignment, _, results = graded
    students = {s.student for s in samples_for(assignment)}
    assert set(results) == students | {edition_student(s, "ko") for s in students}


@pytest.mark.slow
def test_a_sample_runs_in_a_kernel_unless_it_is_refused(graded):
    """``Sample.runs``, which sizes ``make demo``'s workers, says what grading does."""
    assignment, _, results = graded
    for sample in samples_for(assignment):
        assert sample.runs == (results[sample.student].status != INVALID), sample.student


def test_make_demo_gives_a_lone_running_sample_every_core():
    day01 = samples_for("day01_conv_arithmetic", demo_only=True)  # correct, corrupted
    assert [s.runs for s in day01] == [True, False]
    assert kernels_at_once(day01, 2) == 1  # one kernel, two threads
    assert kernels_at_once(samples_for("day01_conv_arithmetic"), 2) == 2  # with untouched
    day04 = samples_for(DAY04, demo_only=True)
    assert sum(s.runs for s in day04) == 3
    assert (kernels_at_once(day04, 2), kernels_at_once(day04, 16)) == (2, 3)


@pytest.mark.slow
def test_korean_edition_is_graded_as_the_english_one(graded):
    """Language-blind grading: every Korean sample gets the English sample's status,
    score and per-test scores, from the same gradebook (same grade ids, hidden tests)."""
    assignment, root, results = graded
    for sample in samples_for(assignment):
        english, korean = results[sample.student], results[edition_student(sample.student, "ko")]
        assert (korean.status, korean.score, korean.max_score) == (
            english.status,
            english.score,
            english.max_score,
        ), (english, korean)
        if english.status == GRADED:
            assert _cell_scores(root, assignment, korean.student) == _cell_scores(
                root, assignment, english.student
            )


@pytest.mark.slow
def test_korean_feedback_speaks_korean(day04):
    """The kernel of a Korean submission prints the check's problems in Korean."""
    root, _ = day04
    english = _feedback(root, DAY04, "sample-no-shortcut-bn")
    korean = _feedback(root, DAY04, "sample-no-shortcut-bn-ko")
    assert "problems found:" in english and "문제" not in english
    assert "문제" in korean and "summary 표가" in korean


@pytest.mark.slow
def test_solution_gets_full_marks(graded):
    _, _, results = graded
    result = results["sample-correct"]
    assert result.status == GRADED, result
    assert result.max_score > 0
    assert result.score == result.max_score


@pytest.mark.slow
def test_untouched_notebook_gets_zero(graded):
    _, _, results = graded
    assert results["sample-untouched"].status == GRADED
    assert results["sample-untouched"].score == 0


@pytest.mark.slow
def test_corrupted_notebook_is_reported_and_kept(graded):
    assignment, root, results = graded
    result = results["sample-corrupted"]
    assert result.status == INVALID
    assert result.score is None
    assert "not a valid notebook" in result.detail
    assert (root / "submitted" / "sample-corrupted" / assignment / _notebook(assignment)).exists()


@pytest.mark.slow
def test_feedback_never_shows_hidden_tests(graded):
    assignment, root, results = graded
    hidden = _hidden_lines(assignment)
    assert hidden, "the lab has hidden tests to look for"
    for student, result in results.items():
        if result.status != GRADED:
            continue
        feedback = _feedback(root, assignment, student)
        assert "HIDDEN TESTS" not in feedback
        shown = [line for line in hidden if line in feedback]
        assert not shown, f"{student}'s feedback shows hidden test lines: {shown}"


@pytest.mark.slow
def test_setup_cell_is_left_unrun_while_grading(graded):
    """The Colab setup cell is the release's own and no test reads what it makes, so it
    is left unrun while grading and says so: nothing can be installed (and in the
    sandbox, with no network and PIP_NO_INDEX, nothing could be)."""
    assignment, root, results = graded
    assert results["sample-correct"].status == GRADED
    path = root / "autograded" / "sample-correct" / assignment / _notebook(assignment)
    cells = [
        c
        for c in nbformat.read(path, as_version=4).cells
        if c.metadata.get("nbgrader", {}).get("grade_id") == "colab_setup"
    ]
    assert len(cells) == 1, f"no setup cell: python -m autograder colab {assignment}"
    outputs = cells[0].outputs
    assert not [o for o in outputs if o.output_type == "error"], outputs
    assert "not run while grading" in "".join(o.get("text", "") for o in outputs), outputs


@pytest.mark.slow
def test_day04_full_marks_are_twelve(day04):
    _, results = day04
    assert results["sample-correct"].max_score == 12


@pytest.mark.slow
def test_day04_missing_shortcut_batchnorm_loses_table_points(day04):
    root, results = day04
    result = results["sample-no-shortcut-bn"]
    assert result.status == GRADED, result
    scores = _cell_scores(root, DAY04, "sample-no-shortcut-bn")
    assert all(scores[test] == 0 for test in TABLE_TESTS), scores
    assert scores["test_training_run"] == 3, scores
    feedback = _feedback(root, DAY04, "sample-no-shortcut-bn")
    assert "missing layers" in feedback
    assert "BatchNorm2d [-1, 128, 28, 28]" in feedback


def _grade_rows(table: str) -> dict[str, tuple[str, str, str]]:
    """Student -> (score, max, status) from a ``format_results`` table."""
    rows = [line.split() for line in table.strip().splitlines()[2:]]
    return {row[0]: tuple(row[1:4]) for row in rows}


@pytest.mark.slow
def test_the_readme_shows_the_day04_grades_make_demo_prints(day04):
    _, results = day04
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    shown = readme.split("```\nstudent ", 1)[1].split("```", 1)[0]
    printed = format_results([r for s, r in results.items() if not s.endswith("-ko")])
    assert _grade_rows("student " + shown) == _grade_rows(printed), printed


@pytest.mark.slow
def test_day04_deleted_test_cell_is_restored_and_graded(day04):
    root, results = day04
    result = results["sample-deleted-test-cell"]
    assert result.status == GRADED, result
    assert result.score == result.max_score
    assert _cell_scores(root, DAY04, "sample-deleted-test-cell")["test_resnet34_table"] == 2


@pytest.mark.slow
def test_day06_shortcut_never_added_loses_the_residual_points(day06):
    root, results = day06
    result = results["sample-shortcut-never-added"]
    assert result.status == GRADED, result
    scores = _cell_scores(root, DAY06, "sample-shortcut-never-added")
    lost = ("test_basic_block", "test_cifar_resnet", "test_degradation")
    assert all(scores[test] == 0 for test in lost), scores
    assert scores["test_pad_shortcut"] == 2 and scores["test_layer_gradient_norms"] == 2, scores
    feedback = _feedback(root, DAY06, "sample-shortcut-never-added")
    assert "the shortcut is never added" in feedback


def test_preflight_names_what_is_wrong(tmp_path):
    release = tmp_path / "notebooks" / "lab"
    release.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), release / "resnet.ipynb")
    folder = tmp_path / "submitted" / "alice" / "lab"
    folder.mkdir(parents=True)
    assert "missing resnet.ipynb" in prepare_submission(folder, release, tmp_path).error
    (folder / "resnet.ipynb").write_text('{"cells": [', encoding="utf-8")
    assert "not a valid notebook" in prepare_submission(folder, release, tmp_path).error
    nbformat.write(nbformat.v4.new_notebook(), folder / "resnet.ipynb")
    assert prepare_submission(folder, release, tmp_path).error is None


def test_results_table_shows_status_beside_score():
    table = format_results(
        [Result("alice", GRADED, 12, 12), Result("bob", FAILED, detail="kernel died")]
    )
    lines = table.splitlines()
    assert lines[0].split() == ["student", "score", "max", "status", "detail"]
    assert lines[2].split() == ["alice", "12", "12", "graded"]
    assert lines[3].split()[:4] == ["bob", "-", "-", "failed"]
    assert lines[3].endswith("kernel died")
