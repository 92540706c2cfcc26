"""One submission's rows in nbgrader's gradebook, as data that can travel and be merged.

nbgrader's gradebook is one SQLite file that takes one writer at a time, so a parallel
or distributed batch never lets two nbgrader runs share it: each student is graded
against a scratch gradebook, and the coordinator alone writes the course's.

- ``template_gradebook`` copies the course gradebook without any submission (the
  assignments, their notebooks and cells, and the students stay): small enough to copy
  once per student however many grades the course holds, and quick to check.
- ``export_rows`` reads one student's submission of one assignment (the student's
  details, the submission's timestamp and extension, and per notebook its flags, every
  grade and every comment) into plain data; ``None`` when there is none.
- ``import_rows`` writes such rows into a gradebook through nbgrader's own API, by
  name: the existing submission is updated in place (so its ids, which the formgrader's
  links use, stay) or created, and every grade and comment takes the exported values.
  Importing the same rows twice leaves the same gradebook: a batch resumed after a crash
  never counts a student twice.

The coordinator seeds a scratch gradebook with the student's rows from the course (a
manual grade given earlier must survive an automatic regrade, as with nbgrader alone),
and merges the rows that grading left there back into the course.
"""

from __future__ import annotations

import contextlib
import datetime
import sqlite3
import warnings
from pathlib import Path
from typing import Any

from nbgrader.api import Gradebook, MissingEntry
from sqlalchemy.exc import SAWarning

__all__ = ["Rows", "export_rows", "import_rows", "template_gradebook"]

Rows = dict[str, Any]
_STUDENT_FIELDS = ("first_name", "last_name", "email", "lms_user_id")
# nbgrader's add_submission builds its rows in a way SQLAlchemy warns about, harmlessly
# (nbgrader's own runs print the same); the warnings would bury the batch's output.
warnings.filterwarnings("ignore", category=SAWarning, module="nbgrader.api")
# Children first: SQLite does not cascade unless asked to.
_SUBMISSION_TABLES = ("grade", "comment", "submitted_notebook", "submitted_assignment")


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def template_gradebook(course: Path, target: Path) -> None:
    """Copy the gradebook at ``course`` to ``target`` without any submission."""
    if not course.exists():
        raise FileNotFoundError(f"{course}: no gradebook (run the release first)")
    source = sqlite3.connect(course)
    copy = sqlite3.connect(target)
    try:
        source.backup(copy)  # consistent even while another process reads it
        for table in _SUBMISSION_TABLES:
            copy.execute(f"DELETE FROM {table}")
        copy.commit()
        copy.execute("VACUUM")
    finally:
        copy.close()
        source.close()


def export_rows(gradebook: Path, assignment: str, student: str) -> Rows | None:
    """``student``'s submission of ``assignment`` in the gradebook at ``gradebook``."""
    with Gradebook(_url(gradebook)) as book:
        try:
            submission = book.find_submission(assignment, student)
        except MissingEntry:
            return None
        person = book.find_student(student)
        notebooks = {}
        for notebook in submission.notebooks:
            notebooks[notebook.name] = {
                "flagged": bool(notebook.flagged),
                "late_submission_penalty": notebook.late_submission_penalty,
                "grades": {
                    grade.name: [
                        grade.auto_score,
                        grade.manual_score,
                        grade.extra_credit,
                        bool(grade.needs_manual_grade),
                    ]
                    for grade in notebook.grades
                },
                "comments": {
                    comment.name: [comment.auto_comment, comment.manual_comment]
                    for comment in notebook.comments
                },
            }
        return {
            "student": {field: getattr(person, field) for field in _STUDENT_FIELDS},
            "timestamp": submission.timestamp.isoformat() if submission.timestamp else None,
            "extension": submission.extension.total_seconds() if submission.extension else None,
            "notebooks": notebooks,
        }


def import_rows(gradebook: Path, assignment: str, student: str, rows: Rows | None) -> None:
    """Make ``student``'s submission of ``assignment`` in the gradebook at ``gradebook``
    what ``rows`` says (``None``: no submission)."""
    with Gradebook(_url(gradebook)) as book:
        if rows is None:
            with contextlib.suppress(MissingEntry):
                book.remove_submission(assignment, student)
            return
        try:
            book.find_student(student)
        except MissingEntry:
            details = {k: v for k, v in rows["student"].items() if v is not None}
            book.add_student(student, **details)
        submission = book.update_or_create_submission(assignment, student)
        stamp = rows["timestamp"]
        submission.timestamp = datetime.datetime.fromisoformat(stamp) if stamp else None
        extension = rows["extension"]
        submission.extension = None if extension is None else datetime.timedelta(seconds=extension)
        for notebook in submission.notebooks:
            data = rows["notebooks"].get(notebook.name, {})
            grades, comments = data.get("grades", {}), data.get("comments", {})
            if {g.name for g in notebook.grades} - set(grades) or {
                c.name for c in notebook.comments
            } - set(comments):
                raise ValueError(
                    f"{student}'s grades do not match {assignment}/{notebook.name} in "
                    f"{gradebook}: the assignment changed while it was graded; grade it again"
                )
            notebook.flagged = data["flagged"]
            notebook.late_submission_penalty = data["late_submission_penalty"]
            for grade in notebook.grades:
                values = grades[grade.name]
                grade.auto_score, grade.manual_score, grade.extra_credit = values[:3]
                grade.needs_manual_grade = values[3]
            for comment in notebook.comments:
                comment.auto_comment, comment.manual_comment = comments[comment.name]
        book.db.commit()
