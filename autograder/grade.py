"""Grade every submission of an assignment, one student at a time.

For each ``submitted/<student>/<assignment>/`` the driver checks the notebooks
first (a file that is not a valid notebook is reported as ``invalid`` and left
where it is), then runs ``nbgrader autograde`` for that student alone under a
wall-clock cap, and records its own status beside nbgrader's score: an
ungraded submission never shows as a 0, and a stale autograded notebook from
an earlier run never counts as a fresh grade. Feedback is generated with hidden
tests removed.
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder.course import generate_release, nbgrader, notebook_names

__all__ = [
    "FAILED",
    "GRADED",
    "INVALID",
    "TIMED_OUT",
    "Result",
    "format_results",
    "grade_assignment",
    "preflight",
]

GRADED, INVALID, FAILED, TIMED_OUT = "graded", "invalid", "failed", "timed out"


@dataclass(frozen=True)
class Result:
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    detail: str = ""
    seconds: float = 0.0


def preflight(folder: Path, expected: list[str]) -> str | None:
    """Why the submission in ``folder`` cannot be graded, or None when it can."""
    found = sorted(p.name for p in folder.glob("*.ipynb"))
    missing = [name for name in expected if name not in found]
    if missing:
        return f"missing {', '.join(missing)} (found: {', '.join(found) or 'no notebooks'})"
    for name in expected:
        path = folder / name
        try:
            nb = nbformat.read(path, as_version=4)
            nbformat.validate(nb)
        except Exception as error:
            return (
                f"{name} is not a valid notebook ({type(error).__name__}); the file is kept: "
                "ask the student to download it again from Jupyter (File > Download)"
            )
    return None


def _last_error(output: str) -> str:
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    return (errors or lines or ["no output"])[-1][:300]


def _grade_one(
    assignment: str, student: str, root: Path, expected: list[str], timeout: float
) -> Result:
    start = time.time()
    reason = preflight(root / "submitted" / student / assignment, expected)
    if reason:
        return Result(student, INVALID, detail=reason)
    try:
        run = nbgrader(
            ["autograde", assignment, f"--student={student}", "--force"], root, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return Result(
            student, TIMED_OUT, detail=f"stopped after {timeout:.0f} s", seconds=time.time() - start
        )
    seconds = time.time() - start
    outputs = [root / "autograded" / student / assignment / name for name in expected]
    fresh = all(p.exists() and p.stat().st_mtime >= start - 1 for p in outputs)
    if run.returncode != 0 or not fresh:
        return Result(student, FAILED, detail=_last_error(run.stderr + run.stdout), seconds=seconds)
    return Result(student, GRADED, seconds=seconds)


def _scores(assignment: str, root: Path, results: list[Result]) -> list[Result]:
    scored = []
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for result in results:
            if result.status != GRADED:
                scored.append(result)
                continue
            try:
                submission = gradebook.find_submission(assignment, result.student)
            except MissingEntry:
                scored.append(Result(result.student, FAILED, detail="no grade in the gradebook"))
                continue
            scored.append(
                Result(
                    result.student,
                    GRADED,
                    score=submission.score,
                    max_score=submission.max_score,
                    seconds=result.seconds,
                )
            )
    return scored


def grade_assignment(
    assignment: str, root: Path, timeout: float = 900, feedback: bool = True
) -> list[Result]:
    """Autograde every submission of ``assignment`` in the course at ``root``."""
    generate_release(assignment, root)
    expected = notebook_names(assignment, root)
    submitted = root / "submitted"
    students = (
        sorted(p.name for p in submitted.glob("*") if (p / assignment).is_dir())
        if submitted.is_dir()
        else []
    )
    results = []
    for student in students:
        result = _grade_one(assignment, student, root, expected, timeout)
        print(f"  {student}: {result.status} ({result.seconds:.0f} s)", flush=True)
        results.append(result)
    results = _scores(assignment, root, results)
    if feedback and any(r.status == GRADED for r in results):
        run = nbgrader(["generate_feedback", assignment, "--force"], root)
        if run.returncode != 0:
            print(f"  feedback: nbgrader generate_feedback failed: {_last_error(run.stderr)}")
    _write_csv(assignment, root, results)
    return results


def _write_csv(assignment: str, root: Path, results: list[Result]) -> None:
    path = root / f"grades-{assignment}.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(asdict(results[0])) if results else [])
        writer.writeheader()
        for result in results:
            writer.writerow(asdict(result))
    (root / f"grades-{assignment}.json").write_text(
        json.dumps([asdict(r) for r in results], indent=1), encoding="utf-8"
    )


def format_results(results: list[Result]) -> str:
    """A plain-text table: student, score, max score, status, detail."""
    header = ("student", "score", "max", "status", "detail")
    rows = [
        (
            r.student,
            "-" if r.score is None else f"{r.score:g}",
            "-" if r.max_score is None else f"{r.max_score:g}",
            r.status,
            r.detail,
        )
        for r in results
    ]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    lines.insert(1, "  ".join(["-" * w for w in widths] + ["-" * len(header[4])]))
    return "\n".join(lines)
