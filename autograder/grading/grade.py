"""Grade every submission of an assignment, one student at a time.

For each ``submitted/<student>/<assignment>/`` the driver:

1. archives and normalises the submission (``autograder.grading.preflight``); a file that
   is not a notebook is reported ``invalid`` and kept;
2. flags code that reaches for the grader (``autograder.grading.scan``), and afterwards
   what the kernel's guard saw change (``autograder.grading.guard``);
3. runs ``nbgrader autograde`` for that student alone, in its own process, with the
   kernel inside bubblewrap (``autograder.grading.sandbox``);
4. checks the gradebook: scores of other students must not move, and the
   autograded notebook must be fresh;
5. records its own status beside nbgrader's score, so that an ungraded or stale
   submission never looks like a real 0 or a real grade.

One wall-clock cap (``timeout``) covers all of it: steps 1 and 2 run in a child process
(``autograder.grading.intake``) that is killed at the cap, nbgrader gets what is left
but a few seconds kept for step 4, and a student who reaches the cap anywhere is
reported ``timed out`` while the batch goes on.

Feedback is generated with hidden tests removed from sources, test cells reduced to
their checks' reports, and student HTML sanitised (``autograder.grading.feedback``,
``autograder.grading.feedback_html``). A notebook whose outputs quote hidden tests,
however re-encoded, gets no feedback file and is flagged for review.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry

from autograder.grading import intake, sandbox
from autograder.grading.course import (
    REPO_ROOT,
    generate_feedback,
    generate_release,
    nbgrader,
    notebook_names,
    run_capped,
)
from autograder.grading.feedback import find_leaks
from autograder.grading.scoring import guard_flags

__all__ = [
    "CRASHED",
    "FAILED",
    "GRADED",
    "INVALID",
    "TAMPERED",
    "TIMED_OUT",
    "Result",
    "format_results",
    "grade_assignment",
    "last_error",
    "read_results",
    "student_problem",
    "withhold_leaking_feedback",
]

GRADED, INVALID, FAILED, CRASHED, TIMED_OUT, TAMPERED = (
    "graded",
    "invalid",
    "failed",
    "crashed",
    "timed out",
    "tampered",
)


@dataclass(frozen=True)
class Result:
    student: str
    status: str
    score: float | None = None
    max_score: float | None = None
    detail: str = ""
    seconds: float = 0.0
    flags: tuple[str, ...] = ()


def _scores(gradebook_path: Path) -> dict[tuple[str, ...], tuple]:
    """Every recorded grade: (assignment, student, notebook, cell) -> scores."""
    if not gradebook_path.exists():
        return {}
    scores = {}
    with Gradebook(f"sqlite:///{gradebook_path}") as gradebook:
        for assignment in gradebook.assignments:
            for submission in gradebook.assignment_submissions(assignment.name):
                for notebook in submission.notebooks:
                    for grade in notebook.grades:
                        key = (assignment.name, submission.student_id, notebook.name, grade.name)
                        scores[key] = (grade.auto_score, grade.manual_score, grade.extra_credit)
    return scores


_EXCEPTION = re.compile(r"^(\w+\.)*\w*(Error|Exception|Exit|Interrupt)\b.*")


def last_error(output: str) -> str:
    """The exception that stopped nbgrader ("DeadKernelError: Kernel died"), else the last
    line that mentions an error: nbgrader's own last line only says "see the traceback"."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    raised = [line for line in lines if _EXCEPTION.match(line)]
    errors = [line for line in lines if "error" in line.lower() or "exception" in line.lower()]
    return (raised or errors or lines or ["no output"])[-1][:300]


# nbgrader matches --student as a glob pattern, and ids become folder names: letters
# (any script) and digits, with . _ - @ + allowed after the first character.
_ID_PUNCTUATION = "._-@+"


def student_problem(submitted: Path, student: str, assignment: str) -> str | None:
    """Why ``submitted/<student>/<assignment>`` cannot be graded as that student's own
    work, decided before anything is read or written (an odd id, a link), or None."""
    for position, char in enumerate(student):
        if not (char.isalnum() or (position and char in _ID_PUNCTUATION)):
            where = "starts with" if position == 0 else f"has, at position {position + 1},"
            return (
                f"student id {student!r} {where} {unicodedata.name(char, 'a control character')} "
                f"({char!r}); ids are letters and digits, with {' '.join(_ID_PUNCTUATION)} "
                "after the first character: rename the folder under submitted/ and grade again"
            )
    for path in (submitted / student, submitted / student / assignment):
        if path.is_symlink():
            return f"{path.relative_to(submitted.parent)} is a link, not a folder: not graded"
    return None


def _silent_passes(path: Path) -> list[str]:
    """Graded test cells that ran without a single output: a passing test prints its
    ✔ line, so a silent one was blanked or skipped."""
    nb = nbformat.read(path, as_version=4)
    return [
        cell.metadata["nbgrader"]["grade_id"]
        for cell in nb.cells
        if cell.metadata.get("nbgrader", {}).get("grade")
        and cell.cell_type == "code"
        and not cell.get("outputs")
    ]


@dataclass
class _Batch:
    assignment: str
    root: Path
    expected: list[str]
    timeout: float
    nbgrader_args: list[str]
    env: dict[str, str]


# Of a student's cap, what is kept for the driver's own checks once nbgrader is done
# (the gradebook, and the autograded notebook, whose outputs are capped).
_CHECKS_S = 3.0


def _intake(batch: _Batch, student: str, deadline: float) -> dict | None:
    """Preflight and scan (``intake.inspect``) in a child process killed at ``deadline``:
    their answer, or None when the cap was reached first."""
    folder = batch.root / "submitted" / student / batch.assignment
    release = batch.root / "notebooks" / batch.assignment
    paths = [str(folder), str(release), str(batch.root)]
    command = [sys.executable, "-c", intake.COMMAND, *paths, *batch.expected]
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(python_path)}
    try:
        run = run_capped(command, batch.root, max(deadline - time.time(), 0.1), env)
    except subprocess.TimeoutExpired:
        return None
    if run.returncode != 0:
        raise RuntimeError(f"preflight or scan stopped: {last_error(run.stderr)}")
    return json.loads(run.stdout)


def _grade_one(batch: _Batch, student: str) -> Result:
    start = time.time()
    deadline = start + batch.timeout
    checked = _intake(batch, student, deadline)
    if checked is None:
        detail = f"stopped after {batch.timeout:.0f} s, while checking the submission"
        return Result(student, TIMED_OUT, detail=detail, seconds=time.time() - start)
    notes = checked["changes"]
    if checked["error"]:
        return Result(student, INVALID, detail=checked["error"])
    flags = tuple(checked["flags"])

    gradebook = batch.root / "gradebook.db"
    before = _scores(gradebook)
    backup = batch.root / "backups" / f"gradebook-before-{student}.db"
    backup.parent.mkdir(exist_ok=True)
    shutil.copy2(gradebook, backup)
    args = ["autograde", batch.assignment, f"--student={student}", "--force"]
    run, left = None, deadline - time.time() - _CHECKS_S
    if left > 0:
        with contextlib.suppress(subprocess.TimeoutExpired):
            # The kernel speaks the submission's edition (its check messages, the kit's lines).
            env = {**batch.env, "LABKIT_LANG": checked.get("language", "en")}
            run = nbgrader(args + batch.nbgrader_args, batch.root, left, env)
    seconds = time.time() - start

    after = _scores(gradebook)
    others = {k for k in set(before) | set(after) if k[1] != student}
    own_manual = {
        k for k in after if k[1] == student and after[k][1] != before.get(k, (0, None))[1]
    }
    if any(before.get(k) != after.get(k) for k in others) or own_manual:
        shutil.copy2(backup, gradebook)
        detail = "the gradebook changed outside this student's autograded scores; restored"
        return Result(student, TAMPERED, detail=detail, seconds=seconds, flags=flags)
    if run is None:
        detail = f"stopped after {batch.timeout:.0f} s"
        return Result(student, TIMED_OUT, detail=detail, seconds=seconds, flags=flags)

    outputs = [batch.root / "autograded" / student / batch.assignment / n for n in batch.expected]
    fresh = all(p.exists() and p.stat().st_mtime >= start - 1 for p in outputs)
    log = run.stderr + run.stdout
    if run.returncode != 0 or not fresh:
        dead = "DeadKernelError" in log or "Kernel died" in log or "kernel died" in log
        status = CRASHED if dead else FAILED
        return Result(student, status, detail=last_error(log), seconds=seconds, flags=flags)
    flags += tuple(
        flag for path in outputs for flag in guard_flags(nbformat.read(path, as_version=4))
    )
    silent = [cell for path in outputs for cell in _silent_passes(path)]
    if silent:
        detail = f"test cells ran without output (blanked?): {', '.join(silent)}"
        return Result(student, TAMPERED, detail=detail, seconds=seconds, flags=flags)
    return Result(student, GRADED, detail="; ".join(notes), seconds=seconds, flags=flags)


def _with_scores(assignment: str, root: Path, results: list[Result]) -> list[Result]:
    if all(r.status != GRADED for r in results):
        return results
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
            fields = {**asdict(result), "score": submission.score}
            scored.append(Result(**{**fields, "max_score": submission.max_score}))
    return scored


def grade_assignment(
    assignment: str,
    root: Path,
    timeout: float = 900,
    feedback: bool = True,
    use_sandbox: bool | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    resume: bool = False,
    progress: bool | None = None,
    only: list[str] | None = None,
) -> list[Result]:
    """Autograde every submission of ``assignment`` in the course at ``root``.

    ``use_sandbox``: None uses bubblewrap when it works here and says so when it
    does not; True requires it; False turns it off.

    With ``workers``, ``cluster``, ``resume`` or ``only`` (these students, again),
    ``autograder.grading.batch`` grades (several students at once, here or on a Dask
    cluster; resumably); otherwise one student at a time, in this course folder.
    """
    if workers is not None or cluster is not None or resume or only is not None:
        from autograder.grading.batch import grade_batch  # it imports this module

        return grade_batch(
            assignment,
            root,
            timeout,
            feedback,
            use_sandbox,
            workers,
            cluster,
            resume,
            progress,
            only,
        )
    root = root.resolve()
    generate_release(assignment, root)
    expected = notebook_names(assignment, root)
    submitted = root / "submitted"
    students = sorted(
        p.name for p in submitted.iterdir() if (p / assignment).is_dir()
    ) if submitted.is_dir() else []  # fmt: skip

    why_not = sandbox.available() if use_sandbox is not False else "turned off"
    if why_not and use_sandbox:
        raise RuntimeError(f"the grading sandbox is required but unavailable: {why_not}")
    if why_not:
        print(
            f"  WARNING: grading WITHOUT a sandbox ({why_not}): student code runs with your rights"
        )

    results = []
    with tempfile.TemporaryDirectory(prefix="labkit-grading-") as work:
        batch = _Batch(assignment, root, expected, timeout, [], {})
        if not why_not:
            hidden = [root] + ([REPO_ROOT] if root != REPO_ROOT else [])
            batch.env = sandbox.kernel_environment(Path(work), hidden)
            batch.nbgrader_args = [f"--Execute.kernel_name={sandbox.KERNEL_NAME}"]
        for student in students:
            problem = student_problem(submitted, student, assignment)
            try:
                result = (
                    Result(student, INVALID, detail=problem)
                    if problem
                    else _grade_one(batch, student)
                )
            except Exception as error:  # one submission never stops the batch
                detail = f"the grader itself failed on this submission: {type(error).__name__}: "
                result = Result(student, FAILED, detail=detail + str(error)[:300])
            print(f"  {student}: {result.status} ({result.seconds:.0f} s)", flush=True)
            results.append(result)
    results = _with_scores(assignment, root, results)
    if feedback and any(r.status == GRADED for r in results):
        error = generate_feedback(assignment, root)
        if error:
            print(f"  feedback: nbgrader generate_feedback failed: {last_error(error)}")
    results = [withhold_leaking_feedback(assignment, root, expected, r) for r in results]
    _write_records(assignment, root, results)
    return results


def withhold_leaking_feedback(
    assignment: str, root: Path, expected: list[str], result: Result
) -> Result:
    """Delete the feedback of each autograded notebook whose outputs quote hidden tests
    (however re-encoded), and flag it first: feedback must never carry them, and an
    instructor should know who tried."""
    flags = []
    for name in expected:
        autograded = Path("autograded") / result.student / assignment / name
        if not (root / autograded).exists():
            continue
        try:
            leaks = find_leaks(nbformat.read(root / autograded, as_version=4))
        except Exception as error:  # unreadable: nbgrader could not have shown it safely
            leaks = [f"it could not be read to look for hidden tests ({type(error).__name__})"]
        if leaks:
            page = root / "feedback" / result.student / assignment / Path(name).with_suffix(".html")
            page.unlink(missing_ok=True)
            flags.append(f"{name}: no feedback written: {'; '.join(leaks)}; review {autograded}")
    return replace(result, flags=(*flags, *result.flags)) if flags else result


def _write_records(assignment: str, root: Path, results: list[Result]) -> None:
    rows = [{**asdict(r), "flags": " | ".join(r.flags)} for r in results]
    fields = list(asdict(Result("", ""))) if not rows else list(rows[0])
    with (root / f"grades-{assignment}.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    (root / f"grades-{assignment}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")


def read_results(assignment: str, root: Path) -> dict[str, Result]:
    """The results the last ``grade`` run listed (``grades-<assignment>.json``), by student."""
    rows = json.loads((root / f"grades-{assignment}.json").read_text(encoding="utf-8"))
    return {
        row["student"]: Result(**{**row, "flags": tuple(filter(None, row["flags"].split(" | ")))})
        for row in rows
    }


def format_results(results: list[Result]) -> str:
    """A plain-text table: student, score, max score, status, detail (and flags)."""
    header = ("student", "score", "max", "status", "detail")
    rows = []
    for r in results:
        detail = r.detail
        if r.flags:
            detail = f"FLAGGED for review ({len(r.flags)}): {r.flags[0]}" + (
                f"; {detail}" if detail else ""
            )
        score = "-" if r.score is None else f"{r.score:g}"
        top = "-" if r.max_score is None else f"{r.max_score:g}"
        rows.append((r.student, score, top, r.status, detail))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(4)]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        lines.append("  ".join([*cells, row[4]]).rstrip())
    lines.insert(1, "  ".join(["-" * w for w in widths] + ["-" * len(header[4])]))
    return "\n".join(lines)
