"""The grading driver's own bookkeeping, without running nbgrader."""

from __future__ import annotations

import json

from autograder.grading import grade
from autograder.grading.grade import FAILED, INVALID, Result


def test_a_grader_error_on_one_submission_does_not_stop_the_batch(tmp_path, monkeypatch):
    for student in ("ada", "bob", "cy"):
        (tmp_path / "submitted" / student / "day00").mkdir(parents=True)
    monkeypatch.setattr(grade, "generate_release", lambda *args: None)
    monkeypatch.setattr(grade, "notebook_names", lambda *args: ["lab.ipynb"])

    def grade_one(batch, student):
        if student == "bob":
            raise OSError("disk full while archiving")
        return Result(student, INVALID, detail="not a notebook")

    monkeypatch.setattr(grade, "_grade_one", grade_one)
    results = grade.grade_assignment("day00", tmp_path, use_sandbox=False)

    assert [(r.student, r.status) for r in results] == [
        ("ada", INVALID),
        ("bob", FAILED),
        ("cy", INVALID),
    ]
    assert "OSError: disk full while archiving" in results[1].detail
    recorded = json.loads((tmp_path / "grades-day00.json").read_text(encoding="utf-8"))
    assert [row["status"] for row in recorded] == [INVALID, FAILED, INVALID]
