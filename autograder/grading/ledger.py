"""What a batch has graded already, kept so that a stopped batch resumes.

Grading a class takes hours; a batch can be stopped at any point (Ctrl-C, a killed
worker, a killed or rebooted coordinator). Each student's result is recorded the moment
its files and gradebook rows are in the course, in
``grading/<assignment>/<student>.json`` under the course root, written atomically (a
temporary file, then ``os.replace``): a record is whole or absent. A record names what
it graded: the submission as handed in (``submission``), as preflight left it once
normalised (``graded``), and the assignment's source and nbgrader config (``course``).
Run again, ``grade`` skips a student whose record matches the folder's contents and the
course, and grades everyone else: a changed submission, a changed lab, or a student
whose grading did not finish.

``journal.jsonl`` beside the records is an append-only log of what the coordinator did
(``started``, ``retry``, ``recorded``, ``changed``), one JSON object a line, for the
instructor and for the tests that prove no student is graded twice; a torn last line
(the coordinator killed while writing it) is skipped when read.
"""

from __future__ import annotations

import datetime
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from autograder.grading.grade import Result
from autograder.grading.tree import digest, read_tree, write_file

__all__ = [
    "Record",
    "course_digest",
    "is_current",
    "ledger_dir",
    "log",
    "read_journal",
    "read_record",
    "write_record",
]


@dataclass(frozen=True)
class Record:
    """One student's recorded result and what it was computed from."""

    student: str
    submission: str  # digest of submitted/<student>/<assignment>/ as handed in
    graded: str  # digest of that folder once preflight normalised it
    course: str  # course_digest when it was graded
    result: Result
    host: str = ""
    recorded: str = ""  # when, UTC, ISO 8601


def ledger_dir(root: Path, assignment: str) -> Path:
    return root / "grading" / assignment


def course_digest(root: Path, assignment: str) -> str:
    """A digest of what grading an assignment depends on in the course folder: the
    assignment's source (its tests) and the nbgrader config."""
    tree = {f"solutions/{k}": v for k, v in read_tree(root / "solutions" / assignment).items()}
    tree["nbgrader_config.py"] = (root / "nbgrader_config.py").read_bytes()
    return digest(tree)


def read_record(root: Path, assignment: str, student: str) -> Record | None:
    """The student's record, or None (none yet, or unreadable: then graded again)."""
    path = ledger_dir(root, assignment) / f"{student}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = data.pop("result")
        result["flags"] = tuple(result["flags"])
        return Record(**data, result=Result(**result))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_record(root: Path, assignment: str, record: Record) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    stamped = record if record.recorded else replace(record, recorded=now)
    text = json.dumps(asdict(stamped), indent=1, ensure_ascii=False) + "\n"
    write_file(ledger_dir(root, assignment) / f"{record.student}.json", text.encode())


def is_current(record: Record | None, submission: str, course: str) -> bool:
    """Whether ``record`` holds the grade of this submission under this course."""
    return (
        record is not None
        and record.course == course
        and submission in (record.submission, record.graded)
    )


def log(root: Path, assignment: str, event: str, student: str, **details: object) -> None:
    """Append one event to the journal (one write, flushed to disk)."""
    folder = ledger_dir(root, assignment)
    folder.mkdir(parents=True, exist_ok=True)
    entry = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        "event": event,
        "student": student,
        **details,
    }
    line = (json.dumps(entry, ensure_ascii=False) + "\n").encode()
    descriptor = os.open(folder / "journal.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def read_journal(root: Path, assignment: str) -> list[dict]:
    """Every whole line of the journal, oldest first."""
    path = ledger_dir(root, assignment) / "journal.jsonl"
    if not path.exists():
        return []
    entries = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entries.append(json.loads(line))
        except ValueError:
            continue  # a line torn by a kill
    return entries
