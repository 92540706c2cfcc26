"""A graded notebook carries at most the cap of outputs, in the notebook and in its
feedback page, with a note where it was cut, and no score moves."""

from __future__ import annotations

import copy
import json

import nbformat
from nbconvert.exporters import HTMLExporter, NotebookExporter

from autograder.grading.outputs import (
    CUT_KEY,
    NOTE,
    CapOutputs,
    cap_outputs,
    output_weight,
)
from autograder.grading.scoring import OUTCOME_KEY, RecordOutcome, outcome_score

LIMIT = 2**20


def _stream(text: str, name: str = "stdout") -> nbformat.NotebookNode:
    return nbformat.from_dict({"output_type": "stream", "name": name, "text": text})


def _test_cell(outcome: str, text: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("assert check(answer)")
    cell.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "grade_id": "test_answer",
        "points": 3,
        "schema_version": 3,
    }
    cell.metadata[OUTCOME_KEY] = outcome
    cell.outputs = [_stream(text)]
    return cell


def _flooded(*texts: str) -> nbformat.NotebookNode:
    """A student cell that printed ``texts``, then a passing test cell."""
    flood = nbformat.v4.new_code_cell("flood()")
    flood.outputs = [_stream(text) for text in texts]
    return nbformat.v4.new_notebook(cells=[flood, _test_cell("ok", "✔ answer checked\n")])


def _weight(nb: nbformat.NotebookNode) -> int:
    return sum(output_weight(o) for cell in nb.cells for o in cell.get("outputs", []))


def test_a_flood_is_cut_to_the_cap_with_a_note_and_the_test_keeps_its_output():
    nb = _flooded("x" * (3 * LIMIT), "after the flood\n")
    removed = cap_outputs(nb, LIMIT)
    flood, test = nb.cells
    assert _weight(nb) <= LIMIT
    assert len(json.dumps(nb)) <= LIMIT
    assert flood.outputs[0].text.startswith("xxx") and len(flood.outputs[0].text) > LIMIT // 2
    assert flood.outputs[-1].text.startswith(NOTE) and f"{removed:,} characters" in (
        flood.outputs[-1].text
    )
    assert "after the flood" not in json.dumps(nb)  # what follows a cut stream goes too
    assert [o.text for o in test.outputs] == ["✔ answer checked\n"]
    assert outcome_score(test) == (3.0, 3.0)


def test_the_measure_is_the_feedback_page_where_characters_are_escaped():
    nb = _flooded("<&>" * LIMIT)
    cap_outputs(nb, LIMIT)
    page = HTMLExporter().from_notebook_node(nb)[0]
    assert len(page.encode()) < LIMIT + 2**19  # the page's own template is about 300 KB
    assert NOTE in page


def test_outputs_within_the_cap_are_untouched():
    nb = _flooded("a few lines\n" * 100)
    before = copy.deepcopy(nb)
    assert cap_outputs(nb, LIMIT) == 0
    assert nb == before


def test_many_small_outputs_count_their_wrapping_and_notes_stay_bounded():
    """Each output costs its HTML wrapping; a cell cut gets a note only while notes fit."""
    cells = []
    for index in range(300):  # 300 cells of 100 outputs, each wrapped in HTML
        cell = nbformat.v4.new_code_cell(f"print({index})")
        cell.outputs = [_stream(str(n), "stderr" if n % 2 else "stdout") for n in range(100)]
        cells.append(cell)
    nb = nbformat.v4.new_notebook(cells=cells)
    limit = 2**18
    cap_outputs(nb, limit)
    assert _weight(nb) <= limit
    notes = [cell for cell in nb.cells if cell.outputs and NOTE in cell.outputs[-1].get("text", "")]
    assert notes and notes[0].outputs[0].text == "0"  # the first cut cell keeps its start
    assert len(notes) < len(cells)  # notes too have their share of the cap


def test_what_the_run_dropped_is_noted_and_its_count_leaves_the_metadata():
    nb = _flooded("kept\n")
    nb.cells[0].metadata[CUT_KEY] = 123_456_789
    cap_outputs(nb, LIMIT)
    assert CUT_KEY not in nb.cells[0].metadata
    assert "123,456,789 characters" in nb.cells[0].outputs[-1].text
    assert nb.cells[0].outputs[0].text == "kept\n"


def test_cap_outputs_runs_when_registered_as_a_class():
    """nbconvert runs a preprocessor only if enabled; listed by class in nbgrader's
    config, a disabled one would silently do nothing."""
    exporter = NotebookExporter()
    exporter.register_preprocessor(CapOutputs)
    out = nbformat.reads(exporter.from_notebook_node(_flooded("y" * 30 * 2**20))[0], 4)
    assert NOTE in out.cells[0].outputs[-1].text
    assert len(nbformat.writes(out)) < 21 * 2**20


def test_record_outcome_keeps_a_bounded_start_of_what_the_kernel_sends(monkeypatch):
    """While the notebook runs, outputs past the bound are cut or dropped and counted."""
    monkeypatch.setattr("autograder.grading.scoring.MAX_OUTPUT_BYTES", LIMIT)
    recorder = RecordOutcome()
    recorder.nb = _flooded()
    recorder.reset_execution_trackers()
    recorder.clear_before_next_output = False  # as nbclient sets it when a cell starts
    outs: list = []
    for _ in range(6):
        content = {"name": "stdout", "text": "z" * LIMIT}
        msg = {
            "msg_type": "stream",
            "header": {"msg_type": "stream"},
            "content": content,
            "parent_header": {"msg_id": "m"},
        }
        recorder.output(outs, msg, None, 0)
    kept = sum(len(o.text) for o in outs)
    assert 1.9 * LIMIT < kept <= 2 * LIMIT
    assert recorder.nb.cells[0].metadata[CUT_KEY] == 6 * LIMIT - kept
