"""The labs as nbgrader sees them: release, no leaks, the untouched release failing
every test at its stubs.

(nbval runs the solution notebooks themselves: ``pytest --nbval-lax solutions``.)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from autograder.grading.course import (
    REPO_ROOT,
    assignments,
    find_leaks,
    generate_release,
    make_course_root,
    notebook_names,
)
from autograder.translation.edition import edition_path, write_edition

LABS = [(a, n) for a in assignments() for n in notebook_names(a)]
IDS = [f"{a}/{n}" for a, n in LABS]


def _grade_cells(nb) -> list:
    return [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]


def _self_checks(nb) -> list:
    """Check cells that earn no points: locked, with a ``check_`` grade id (Day 3's check
    on the VGG-16 run, which grading skips: its VGG-19 run is graded the same way)."""
    return [
        c
        for c in nb.cells
        if (meta := c.metadata.get("nbgrader", {})).get("locked")
        and not meta.get("grade")
        and meta.get("grade_id", "").startswith("check_")
    ]


def test_there_is_a_lab():
    assert ("day04_resnet", "resnet.ipynb") in LABS


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_committed_release_has_no_leaks(assignment, name):
    leaks = find_leaks(
        REPO_ROOT / "solutions" / assignment / name, REPO_ROOT / "notebooks" / assignment / name
    )
    assert not leaks, leaks


def test_leak_check_finds_solution_code(tmp_path):
    source = REPO_ROOT / "solutions" / "day04_resnet" / "resnet.ipynb"
    nb = nbformat.read(source, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "resnet34")
    cell.source = cell.source.replace("### BEGIN SOLUTION\n", "").replace("### END SOLUTION", "")
    leaky = tmp_path / "leaky.ipynb"
    nbformat.write(nb, leaky)
    leaks = find_leaks(source, leaky)
    assert any("return ResNet(BasicBlock, [3, 4, 6, 3], num_classes)" in p for p in leaks), leaks
    assert any("BEGIN HIDDEN TESTS" in p for p in leaks), leaks


@pytest.mark.slow
@pytest.mark.parametrize("assignment", assignments())
def test_regenerated_release_is_identical(assignment, tmp_path):
    """notebooks/ is nbgrader's output for solutions/, byte for byte, and notebooks/ko/
    the Korean edition of it (translations/ko/), with no solution text in either."""
    root = make_course_root(tmp_path, [assignment])
    generate_release(assignment, root)  # refuses a release that leaks
    shutil.copytree(REPO_ROOT / "translations", root / "translations")
    write_edition(assignment, root)  # refuses an edition that leaks
    for name in notebook_names(assignment):
        for fresh_path, committed_path in [
            (root / "notebooks" / assignment / name, REPO_ROOT / "notebooks" / assignment / name),
            (edition_path(assignment, name, root), edition_path(assignment, name)),
        ]:
            assert fresh_path.read_bytes() == committed_path.read_bytes(), (
                f"{committed_path.relative_to(REPO_ROOT)} differs from what solutions/ and "
                "translations/ generate: run `python -m autograder release` and commit notebooks/"
            )


# That the solution passes every test is proved by grading it: the sample-correct
# submission must get full marks (tests/grading/test_grading.py). Executing it here as well
# would run every lab's training a third time in CI (nbval runs it too).


@pytest.mark.slow
@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_untouched_release_fails_every_test_and_stops_only_at_stubs(assignment, name):
    """Run as a student gets it: every test cell fails, and other cells fail with
    NotImplementedError, never a NameError.

    Test cells and self-checks may fail however their subject does; every other cell
    either runs or raises the stub's NotImplementedError. (Executed once for both: that
    nbgrader scores the untouched release 0 is tests/grading/test_grading.py's.)
    """
    path = REPO_ROOT / "notebooks" / assignment / name
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=600, allow_errors=True, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    check_cells = [*_grade_cells(nb), *_self_checks(nb)]
    checks = {id(c) for c in check_cells}
    errors = {
        i: output.ename
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    }
    assert errors, "the untouched notebook ran without a single NotImplementedError"
    passing = [
        c.metadata.nbgrader["grade_id"]
        for c in check_cells
        if not any(o.output_type == "error" for o in c.outputs)
    ]
    assert not passing, f"test cells that pass on the untouched release: {passing}"
    bad = {
        i: ename
        for i, ename in errors.items()
        if ename != "NotImplementedError" and id(nb.cells[i]) not in checks
    }
    assert not bad, f"cells failing with something other than NotImplementedError: {bad}"
    assert "NameError" not in {
        ename for i, ename in errors.items() if id(nb.cells[i]) not in checks
    }


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_every_todo_has_a_check_below_it(assignment, name):
    """A solution cell is followed (before the next solution cell) by a graded test cell."""
    nb = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
    pending = None
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("solution"):
            assert pending is None, f"TODO {pending!r} has no check before the next TODO"
            pending = meta["grade_id"]
        elif meta.get("grade"):
            pending = None
    assert pending is None, f"TODO {pending!r} has no check below it"


def test_release_outputs_are_stripped():
    for assignment, name in LABS:
        nb = nbformat.read(Path(REPO_ROOT / "notebooks" / assignment / name), as_version=4)
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_every_test_cell_says_when_it_passes(assignment, name):
    """The driver treats a graded cell that ran without output as blanked (tampered),
    so every test cell prints its ✔ line when it passes."""
    nb = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
    silent = [
        c.metadata["nbgrader"]["grade_id"]
        for c in _grade_cells(nb)
        if 'print(f"✔' not in c.source and 'print("✔' not in c.source
    ]
    assert not silent, f"test cells that print no ✔ line: {silent}"
