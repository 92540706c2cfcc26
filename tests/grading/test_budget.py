"""Tests for what a graded run computes (autograder.grading.budget): which cells no test
reads, on made-up notebooks and on every lab, and the grading size's setting."""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
import pytest

from autograder.grading import budget
from autograder.grading.budget import grading_run, skips_unread, unread_cells
from autograder.grading.course import REPO_ROOT, assignments, notebook_names
from autograder.translation.edition import LANGUAGE_CELL_ID


def _notebook(*cells: str | tuple[str, dict]) -> nbformat.NotebookNode:
    """Code cells; a (source, nbgrader metadata) pair makes a test or solution cell."""
    nb = nbformat.v4.new_notebook()
    for cell in cells:
        source, meta = cell if isinstance(cell, tuple) else (cell, None)
        code = nbformat.v4.new_code_cell(source)
        if meta:
            code.metadata["nbgrader"] = meta
        nb.cells.append(code)
    return nb


TEST = {"grade": True, "solution": False, "grade_id": "test", "points": 1, "locked": True}
SOLUTION = {"grade": False, "solution": True, "grade_id": "answer", "locked": False}


def _skipped(nb: nbformat.NotebookNode) -> list[int]:
    return [cell.index for cell in unread_cells(nb)]


def test_a_cell_a_test_reads_runs_and_a_plot_after_it_does_not():
    nb = _notebook(
        "import torch\nx = torch.ones(3)",
        "print(len(x))",  # reads x, changes nothing: no test needs it
        ("assert x.sum() == 3, 'sum'", TEST),
        "fig = plot(x)",
    )
    assert _skipped(nb) == [1, 3]
    (note,) = [c.note() for c in unread_cells(nb) if c.index == 3]
    assert note.startswith("⏭ not run while grading: no test reads what it computes (`fig`)")


def test_what_a_needed_cell_reads_is_needed_in_turn():
    nb = _notebook(
        "data = load()",
        "model = build(data)",
        "costs = measure(model)",  # read only by the table below
        "table = format(costs)",
        ("check(model)", TEST),
    )
    assert _skipped(nb) == [2, 3]


def test_changing_a_name_counts_as_making_it():
    nb = _notebook(
        "histories = {}",
        "histories['a'] = fit(1)",  # an item set
        "model.eval()",  # a method called on it
        "results += [1]",  # augmented
        ("check(histories, model, results)", TEST),
    )
    assert _skipped(nb) == []


def test_calls_on_modules_do_not_make_the_module():
    nb = _notebook(
        "import torch\nimport matplotlib.pyplot as plt",
        "torch.manual_seed(1)\nplt.plot([1, 2])",
        ("assert torch.ones(1).item() == 1, 'one'", TEST),
    )
    assert _skipped(nb) == [1]


def test_student_cells_and_tests_always_run_with_what_they_read():
    nb = _notebook(
        "helper = 1",
        ("def answer():\n    return helper", SOLUTION),
        ("pass", TEST),
        ("x = 1", SOLUTION),  # read by nothing, but a student's cell
    )
    assert _skipped(nb) == []


def test_names_a_cell_binds_before_reading_them_are_its_own():
    nb = _notebook(
        "name = 'old'\nrows = 1",
        "for name in names():\n    print(name)\nsquares = [row * row for row in range(3)]",
        ("def f(rows):\n    return rows\nassert f(2) == 2, 'f'", TEST),
        ("name = 'mine'\nassert name, 'name'", TEST),
    )
    # the tests read neither the first cell's name (bound first) nor its rows (an argument)
    assert _skipped(nb) == [0, 1]


def test_a_cell_that_does_not_parse_keeps_everything_before_it():
    nb = _notebook(
        "a = 1",
        "%time b = a",  # a magic: not Python, so not understood
        "c = 2",
        ("pass", TEST),
    )
    assert _skipped(nb) == [2]


@pytest.mark.parametrize("assignment", assignments(REPO_ROOT))
def test_every_lab_runs_every_test_and_student_cell(assignment):
    for name in notebook_names(assignment, REPO_ROOT):
        nb = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
        for skipped in unread_cells(nb):
            meta = nb.cells[skipped.index].metadata.get("nbgrader", {})
            assert not meta.get("grade") and not meta.get("solution"), skipped


def test_day05s_comparison_is_not_run_while_grading():
    path = REPO_ROOT / "solutions" / "day05_googlenet_resnet" / "googlenet_resnet.ipynb"
    nb = nbformat.read(path, as_version=4)
    skipped = {
        nb.cells[c.index].metadata.get("nbgrader", {}).get("grade_id") for c in unread_cells(nb)
    }
    assert "train_comparison" in skipped
    trained = {"train_googlenet", "train_resnet50"}  # the tests read these two runs
    assert not trained & skipped


def test_day03_grades_the_vgg19_run_and_skips_the_vgg16_one():
    """The assignment is VGG-19's run (the course slides); VGG-16's, built by the same
    `make_layers` and `VGG`, has a self-check that earns no points, and is not run."""
    path = REPO_ROOT / "solutions" / "day03_vgg" / "vgg.ipynb"
    nb = nbformat.read(path, as_version=4)
    skipped = {
        nb.cells[c.index].metadata.get("nbgrader", {}).get("grade_id") for c in unread_cells(nb)
    }
    assert {"train_vgg16", "check_training_vgg16"} <= skipped
    assert "train_vgg19" not in skipped
    graded = {
        c.metadata.nbgrader["grade_id"]
        for c in nb.cells
        if c.metadata.get("nbgrader", {}).get("grade")
    }
    assert "test_training_vgg19" in graded


@pytest.mark.parametrize(
    ("value", "run", "skips"),
    [(None, "grade", True), ("grade", "grade", True), ("FAST", "fast", False)],
)
def test_the_grading_size_is_set_on_the_grading_machine(monkeypatch, value, run, skips):
    if value is None:
        monkeypatch.delenv(budget.GRADING_RUN_VARIABLE, raising=False)
    else:
        monkeypatch.setenv(budget.GRADING_RUN_VARIABLE, value)
    assert (grading_run(), skips_unread()) == (run, skips)


def test_an_unknown_grading_size_says_what_to_use(monkeypatch):
    monkeypatch.setenv(budget.GRADING_RUN_VARIABLE, "full")
    with pytest.raises(ValueError, match=r"use 'grade' .* or 'fast'"):
        grading_run()


def test_the_sandboxed_kernel_gets_the_grading_size(monkeypatch):
    from autograder.grading import sandbox

    monkeypatch.delenv(budget.GRADING_RUN_VARIABLE, raising=False)
    assert sandbox.kernel_env()["LABKIT_RUN"] == "grade"
    monkeypatch.setenv(budget.GRADING_RUN_VARIABLE, "fast")
    assert sandbox.kernel_env()["LABKIT_RUN"] == "fast"


def test_a_cell_nested_past_the_parser_keeps_everything_before_it():
    nb = _notebook("a = 1", "x = a" + ".b" * 200_000, "c = 2", ("pass", TEST))
    assert _skipped(nb) == [2]


# ---- only the release's own cells are ever left unrun --------------------------------------------


def _marked(nb: nbformat.NotebookNode, release: nbformat.NotebookNode) -> list[int]:
    from autograder.grading.preflight import normalise

    normalise(nb, release)
    return [i for i, cell in enumerate(nb.cells) if cell.metadata.get(budget.RELEASE_KEY)]


def test_preflight_marks_the_cells_that_run_as_the_release_wrote_them():
    release = _notebook("x = 1", "print(len([x]))", ("pass", TEST), "plot(x)")
    nb = copy.deepcopy(release)
    nb.cells[3].source = "plot(x)\nimport os; os.system('sh')"  # changed by the student
    nb.cells.append(nbformat.v4.new_code_cell("print(len([x]))"))  # a copy of a release cell
    nb.cells[0].metadata[budget.RELEASE_KEY] = True  # ... and a mark written by hand
    nb.cells[0].source = "x = 2"
    assert _marked(nb, release) == [1, 2, 4]
    # the changed cell and the student's cell run; an unchanged plot does not
    assert [c.index for c in unread_cells(nb, release_only=True)] == [1, 4]
    assert [c.index for c in unread_cells(nb)] == [0, 1, 3, 4]  # read by none of them


def test_a_cell_the_student_added_runs_whatever_it_binds():
    release = _notebook("x = 1", ("pass", TEST))
    nb = copy.deepcopy(release)
    nb.cells.insert(1, nbformat.v4.new_code_cell("print('a flood' * 10**6)"))
    _marked(nb, release)
    assert [c.index for c in unread_cells(nb, release_only=True)] == [0]  # only x = 1


def _prepared(tmp_path, edition: Path, assignment: str) -> nbformat.NotebookNode:
    """``edition``'s notebook of ``assignment``, submitted unchanged, after preflight."""
    from autograder.grading.preflight import prepare_submission

    (name,) = notebook_names(assignment)
    folder = tmp_path / "submitted" / "student" / assignment
    folder.mkdir(parents=True)
    shutil.copy(edition / assignment / name, folder / name)
    release = REPO_ROOT / "notebooks" / assignment
    assert prepare_submission(folder, release, tmp_path).error is None
    return nbformat.read(folder / name, as_version=4)


DAY05 = "day05_googlenet_resnet"


def test_an_untouched_submission_is_written_with_its_marks(tmp_path):
    """Preflight changes nothing else in the release itself, yet its marks are written:
    otherwise an honest student's unread cells would all run."""
    nb = _prepared(tmp_path, REPO_ROOT / "notebooks", DAY05)
    assert any(cell.metadata.get(budget.RELEASE_KEY) for cell in nb.cells)
    assert unread_cells(nb, release_only=True)


def test_a_korean_submission_leaves_unrun_what_the_english_one_does(tmp_path):
    english = _prepared(tmp_path / "en", REPO_ROOT / "notebooks", DAY05)
    korean = _prepared(tmp_path / "ko", REPO_ROOT / "notebooks" / "ko", DAY05)
    ids = {english.cells[c.index].id for c in unread_cells(english, release_only=True)}
    korean_ids = {korean.cells[c.index].id for c in unread_cells(korean, release_only=True)}
    assert ids and korean_ids - {LANGUAGE_CELL_ID} == ids
