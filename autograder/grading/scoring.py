"""A test cell's score depends on one thing: whether it raised.

nbgrader scores an autograded test cell from its outputs: an ``error`` output or any
text on stderr gives 0, and the first ``execute_result`` that reads as a number gives
that much partial credit. Outputs are what student code controls: a student function
that the checks call can emit an ``execute_result`` (through ``sys.displayhook``) and
turn a failing cell into full marks, or print a warning to stderr and lose an honest
cell's points.

So the grading run replaces two of nbgrader's autograde preprocessors:

- ``RecordOutcome`` executes the notebook as nbgrader's ``Execute`` does and writes,
  in each code cell's metadata, whether the kernel's reply to that cell said it raised
  (the reply's status, not anything the cell printed). It runs in the grader's
  process, outside the sandbox, so student code cannot write that metadata.
- ``ScoreByOutcome`` saves scores as nbgrader's ``SaveAutoGrades`` does, except that an
  autograded test cell gets all its points when it did not raise and none when it
  raised or has no recorded outcome (it never ran, or the kernel died).

Solution cells and manually graded cells keep nbgrader's rules.

``RecordOutcome`` also asks the kernel's guard for its verdict after every cell that did
not raise, through the request's ``user_expressions`` (evaluated by the kernel after the
cell, not by the cell), and keeps it in the cell's metadata; ``guard_flags`` reads them
for the driver.

``RecordOutcome``, being the grader's hand on the running kernel, also keeps two limits
that student code cannot lift from inside: before and after each cell it ends every
process in the sandbox's PID namespace but the kernel (``sandbox.end_strays``), and it
stops keeping a cell's outputs once the notebook holds several times the output cap
(``autograder.grading.outputs``; ``CapOutputs`` then cuts to the cap itself).

At the token size (``autograder.grading.budget``), ``RecordOutcome`` does not run the
cells that no test reads: each gets a one-line output saying so, and the outcome
``skipped``.
"""

from __future__ import annotations

import ast
import json

import nbformat
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, SaveAutoGrades

from autograder.grading import budget, guard, sandbox
from autograder.grading.outputs import CUT_KEY, MAX_OUTPUT_BYTES, fit_output, output_weight

__all__ = [
    "GUARD_KEY",
    "OUTCOME_KEY",
    "RecordOutcome",
    "ScoreByOutcome",
    "guard_answer",
    "guard_flags",
    "outcome_score",
]

OUTCOME_KEY = "labkit_outcome"  # in a code cell's metadata: "ok", "raised" or "skipped"
GUARD_KEY = "labkit_guard"  # the guard's verdict after a cell that did not raise


# While it runs, a notebook keeps outputs up to this many times the cap (test cells a
# little more, so that a flood before them does not cost their ✔ lines).
_KEPT_WHILE_RUNNING = 2
_KEPT_FOR_TESTS = 3


class RecordOutcome(Execute):
    """nbgrader's ``Execute``, recording in each code cell whether it raised and, after
    a cell that did not, the kernel guard's verdict (``autograder.grading.guard``);
    ending strays before and after each cell; dropping outputs past a bound while it
    runs."""

    _kept_weight = 0  # of the outputs kept so far in this notebook
    _skipped: dict[int, budget.SkippedCell] = {}  # noqa: RUF012 (set per notebook)

    def preprocess(self, nb, resources=None, km=None):
        """Work out which cells no test reads (none at CI's size), then run the rest."""
        unread = budget.unread_cells(nb, release_only=True) if budget.skips_unread() else []
        self._skipped = {cell.index: cell for cell in unread}
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        skipped = self._skipped.get(index)
        if skipped is None:
            return super().preprocess_cell(cell, resources, index)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=skipped.note())]
        cell.execution_count = None
        cell.metadata[OUTCOME_KEY] = "skipped"
        return cell, resources

    def reset_execution_trackers(self) -> None:
        """Called as each notebook starts: its outputs are counted from 0."""
        super().reset_execution_trackers()
        self._kept_weight = 0

    def _end_strays(self) -> None:
        provisioner = getattr(self.km, "provisioner", None)
        launcher = getattr(provisioner, "pid", None)
        if launcher:
            killed = sandbox.end_strays(launcher)
            if killed:
                self.log.warning("ended %d processes left in the kernel's sandbox", killed)

    def on_cell_execute(self, **kwargs) -> None:
        """Just before the cell is sent: nothing from earlier cells runs any more, and
        the request asks for the guard's verdict (``_ask_the_guard``)."""
        self._end_strays()
        self._ask_the_guard()

    def _ask_the_guard(self) -> None:
        """Make the kernel client ask for the guard's verdict with every request (once
        per client; nbclient starts one per notebook)."""
        client = self.kc
        if client is None or getattr(client, "_asks_the_guard", False):
            return
        execute = client.execute

        def execute_asking_the_guard(code, *args, **kwargs):
            expressions = dict(kwargs.pop("user_expressions", None) or {})
            expressions[GUARD_KEY] = guard.EXPRESSION
            return execute(code, *args, user_expressions=expressions, **kwargs)

        client.execute = execute_asking_the_guard
        client._asks_the_guard = True

    def on_cell_executed(self, **kwargs) -> None:
        super().on_cell_executed(**kwargs)
        content = kwargs["execute_reply"]["content"]
        cell = kwargs["cell"]
        cell.metadata[OUTCOME_KEY] = "ok" if content.get("status") == "ok" else "raised"
        answer = content.get("user_expressions", {}).get(GUARD_KEY)
        if answer is not None:
            cell.metadata[GUARD_KEY] = guard_answer(answer)
        self._end_strays()  # after every hook the kernel ran for the cell

    def output(self, outs, msg, display_id, cell_index):
        """nbclient's ``output``, except that past the bound an output is cut (a stream
        keeps its start) or dropped, and what was removed is counted in the cell's
        metadata (``CUT_KEY``) for ``CapOutputs`` to note."""
        kept = super().output(outs, msg, display_id, cell_index)
        if kept is None or not outs or outs[-1] is not kept:
            return kept
        cell = self.nb.cells[cell_index]
        test = cell.metadata.get("nbgrader", {}).get("grade")
        bound = MAX_OUTPUT_BYTES * (_KEPT_FOR_TESTS if test else _KEPT_WHILE_RUNNING)
        part, removed = fit_output(kept, bound - self._kept_weight)
        if removed:
            cell.metadata[CUT_KEY] = cell.metadata.get(CUT_KEY, 0) + removed
            if part is None and display_id:  # nbclient keeps its place for later updates
                part = nbformat.v4.new_output("display_data", data={"text/plain": ""})
            outs.pop()
            if part is None:
                return None
            outs.append(part)
        self._kept_weight += output_weight(part)
        return part


def guard_answer(answer: dict) -> dict:
    """The guard's verdict from a ``user_expressions`` answer, or what went wrong."""
    if answer.get("status") != "ok":
        return {"guard": f"no verdict: {answer.get('ename', 'error')}", "changes": []}
    text = answer.get("data", {}).get("text/plain", "")
    try:
        verdict = json.loads(ast.literal_eval(text))
        changes = [str(change) for change in verdict["changes"]]
        return {"guard": str(verdict["guard"]), "changes": changes}
    except (ValueError, SyntaxError, TypeError, KeyError):
        return {"guard": "an answer that is not the guard's", "changes": []}


def guard_flags(nb: NotebookNode) -> list[str]:
    """What the guard's verdicts in an autograded notebook say: every change it found,
    and every graded test cell that passed without a running guard's verdict."""
    flags: list[str] = []
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        graded = meta.get("grade") and not meta.get("solution") and cell.cell_type == "code"
        verdict = cell.metadata.get(GUARD_KEY)
        if graded and cell.metadata.get(OUTCOME_KEY) == "ok":
            if verdict is None:
                flags.append(f"{meta.get('grade_id')}: passed with no answer from the guard")
            elif verdict["guard"] != "running":
                flags.append(f"{meta.get('grade_id')}: the guard says {verdict['guard']}")
        for change in (verdict or {}).get("changes", []):
            flag = f"the grading guard found that {change}"
            if flag not in flags:
                flags.append(flag)
    return flags


def outcome_score(cell: NotebookNode) -> tuple[float | None, float]:
    """(score, max score) of a grade cell: an autograded test cell by its recorded
    outcome alone, any other grade cell as nbgrader scores it."""
    if cell.cell_type != "code" or utils.is_solution(cell):
        return utils.determine_grade(cell)
    points = float(cell.metadata["nbgrader"]["points"])
    return (points if cell.metadata.get(OUTCOME_KEY) == "ok" else 0.0), points


class ScoreByOutcome(SaveAutoGrades):
    """nbgrader's ``SaveAutoGrades``, scoring autograded test cells by ``outcome_score``."""

    def _add_score(self, cell: NotebookNode, resources) -> None:
        grade = self.gradebook.find_grade(
            cell.metadata["nbgrader"]["grade_id"],
            self.notebook_id,
            self.assignment_id,
            self.student_id,
        )
        grade.auto_score, _ = outcome_score(cell)
        # as nbgrader: a manual grade given earlier, or no automatic score, needs review
        grade.needs_manual_grade = grade.manual_score is not None or grade.auto_score is None
        self.gradebook.db.commit()
