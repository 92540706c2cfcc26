"""Each lab's Korean edition runs as the English solution notebook does, cell for cell.

The Korean twin of a solution notebook (translated with the lab's catalog) is checked
three ways, so that every Korean code cell is either run in Korean or shown to be code
that ran in English:

- its code cells are the English ones with only the words of string literals changed,
  f-string fields kept (``test_korean_code_is_the_english_code``), and ``pytest
  --nbval-lax solutions`` runs every English cell;
- the graded Korean samples (``tests/grading/test_grading.py``) run every cell a test
  reads, in Korean;
- here, under nbval, the cells whose output nbval compares (``nbval-check-output``: their
  stored output is translated too) run in Korean, with the setup and language cells and
  every cell they need.

Running the whole twin under nbval trained every lab's models a second time, to check
code that the English run had already run.
"""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest
from nbformat import NotebookNode

from autograder.grading.budget import unread_cells
from autograder.grading.course import REPO_ROOT, assignments, notebook_names
from autograder.translation.catalog import lab_catalog_path, read_catalog
from autograder.translation.edition import LANGUAGE_CELL_ID, translate_notebook
from tests.translation import code_without_words

LABS = [(a, n) for a in assignments() for n in notebook_names(a)]
IDS = [f"{a}/{n}" for a, n in LABS]
CHECKED = "nbval-check-output"


def _twins(assignment: str, name: str) -> tuple[NotebookNode, NotebookNode]:
    """(the English solution notebook, its Korean twin)."""
    source = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
    po = read_catalog(lab_catalog_path(assignment))
    return source, translate_notebook(source, assignment, name, po)


def korean_checked_run(assignment: str, name: str) -> tuple[NotebookNode, list[int]]:
    """The Korean twin cut to the cells nbval compares, the setup and language cells, and
    what they need (``unread_cells``); also the indices, in the twin, of the cells kept."""
    _, korean = _twins(assignment, name)
    setup = next(c for c in korean.cells if c.cell_type == "code")

    def needed(cell: NotebookNode) -> bool:
        compared = CHECKED in cell.metadata.get("tags", [])
        return compared or cell is setup or cell.get("id") == LANGUAGE_CELL_ID

    dropped = {cell.index for cell in unread_cells(korean, needed=needed)}
    kept = [i for i, c in enumerate(korean.cells) if c.cell_type == "code" and i not in dropped]
    korean.cells = [c for i, c in enumerate(korean.cells) if i not in dropped]
    return korean, kept


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_korean_code_is_the_english_code(assignment, name):
    english, korean = _twins(assignment, name)
    by_id = {c.get("id"): c for c in english.cells}
    changed = 0
    for cell in korean.cells:
        if cell.cell_type != "code" or cell.get("id") == LANGUAGE_CELL_ID:
            continue
        before = by_id[cell.get("id")].source
        if cell.source != before:
            changed += 1
            assert code_without_words(before) is not None, f"{cell.get('id')}: not Python"
            assert code_without_words(cell.source) == code_without_words(before), cell.get("id")
    assert changed, f"{assignment}: no printed string translated in the solution's code"


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_the_korean_run_keeps_every_compared_output_and_what_it_needs(assignment, name):
    korean, kept = korean_checked_run(assignment, name)
    _, twin = _twins(assignment, name)
    code = [c for c in twin.cells if c.cell_type == "code"]
    checked = [i for i, c in enumerate(twin.cells) if CHECKED in c.metadata.get("tags", [])]
    assert set(checked) <= set(kept)
    assert twin.cells.index(code[0]) in kept  # the setup cell
    language = next(i for i, c in enumerate(twin.cells) if c.get("id") == LANGUAGE_CELL_ID)
    assert language in kept
    assert len(kept) < len(code)  # the cells no compared output reads are cut
    assert [c for c in korean.cells if c.cell_type == "code"] == [twin.cells[i] for i in kept]


@pytest.mark.slow
@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_korean_compared_outputs_run_under_nbval(assignment, name, tmp_path):
    korean, _ = korean_checked_run(assignment, name)
    path = tmp_path / assignment / name
    path.parent.mkdir()
    nbformat.write(korean, path)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LABKIT_DATA": os.environ.get("LABKIT_DATA", str(REPO_ROOT / "data")),
    }
    env.pop("LABKIT_LANG", None)  # the notebook's own language cell sets it
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(path), "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
