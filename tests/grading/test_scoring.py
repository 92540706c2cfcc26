"""Scores of autograded test cells come from whether they raised, never from outputs."""

from __future__ import annotations

import nbformat
import pytest

from autograder.grading.scoring import OUTCOME_KEY, RecordOutcome, outcome_score


def _test_cell(
    outcome: str | None, outputs: list | None = None, **nbgrader
) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("assert check(answer)")
    cell.metadata["nbgrader"] = {
        "grade": True,
        "solution": False,
        "locked": True,
        "grade_id": "test_answer",
        "points": 3,
        **nbgrader,
    }
    if outcome is not None:
        cell.metadata[OUTCOME_KEY] = outcome
    cell.outputs = [nbformat.from_dict(o) for o in outputs or []]
    return cell


PARTIAL = {"output_type": "execute_result", "execution_count": 1, "metadata": {},
           "data": {"text/plain": "3"}}  # fmt: skip
STDERR = {"output_type": "stream", "name": "stderr", "text": "UserWarning: ...\n"}
ERROR = {"output_type": "error", "ename": "AssertionError", "evalue": "", "traceback": []}


@pytest.mark.parametrize(
    ("outcome", "outputs", "score"),
    [
        ("ok", [], 3.0),
        ("ok", [STDERR], 3.0),  # a warning on stderr costs nothing
        ("ok", [ERROR], 3.0),  # an error output printed by student code is not a raise
        ("raised", [PARTIAL], 0.0),  # a forged execute_result buys nothing
        ("raised", [], 0.0),
        (None, [], 0.0),  # never ran, or the kernel died: no points
        (None, [PARTIAL], 0.0),
    ],
)
def test_a_test_cell_scores_by_its_outcome_alone(outcome, outputs, score):
    assert outcome_score(_test_cell(outcome, outputs)) == (score, 3.0)


def test_solution_cells_keep_nbgraders_rules():
    cell = _test_cell(None, solution=True, checksum="not the cell's")
    assert outcome_score(cell) == (None, 3.0)  # answered: nbgrader leaves it to a person


def test_record_outcome_reads_the_kernels_reply_not_the_outputs():
    recorder = RecordOutcome()
    for status, expected in (("ok", "ok"), ("error", "raised"), ("aborted", "raised")):
        cell = nbformat.v4.new_code_cell("x = 1")
        reply = {"content": {"status": status, "ename": "E", "evalue": "", "traceback": []}}
        recorder.on_cell_executed(cell=cell, cell_index=0, execute_reply=reply)
        assert cell.metadata[OUTCOME_KEY] == expected
