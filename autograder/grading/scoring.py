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
"""

from __future__ import annotations

from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.preprocessors import Execute, SaveAutoGrades

__all__ = ["OUTCOME_KEY", "RecordOutcome", "ScoreByOutcome", "outcome_score"]

OUTCOME_KEY = "labkit_outcome"  # in a code cell's metadata: "ok" or "raised"


class RecordOutcome(Execute):
    """nbgrader's ``Execute``, recording in each code cell whether it raised."""

    def on_cell_executed(self, **kwargs) -> None:
        super().on_cell_executed(**kwargs)
        status = kwargs["execute_reply"]["content"].get("status")
        kwargs["cell"].metadata[OUTCOME_KEY] = "ok" if status == "ok" else "raised"


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
