"""One student graded in a scratch copy of the course: the unit of work of a batch.

A batch (``autograder.grading.batch``) grades several students at once, in threads on
this machine or on the workers of a Dask cluster. nbgrader's gradebook takes one writer
at a time and a worker may be another machine, so a task never touches the course
folder: it gets what it needs as data (``CourseFiles``: the nbgrader config, the
assignment's source and release, the gradebook without any submission; ``Task``: the
submission's files and the student's earlier rows), builds a course of its own in a
temporary folder, grades there with ``grade._grade_one`` exactly as the serial driver
does (preflight, scan, sandboxed ``nbgrader autograde``, the gradebook and freshness
checks), writes the student's feedback, and returns an ``Outcome``: the ``Result``,
the student's gradebook rows and the files grading produced (autograded notebooks,
feedback, the archive and quarantine of the submission, the normalised submission).
The coordinator alone writes them into the course.

The kernel is sandboxed on whatever machine runs the task, with the scratch course and
the coordinator's course folder (where this machine sees it) hidden, and told how many
threads it may use (``OMP_NUM_THREADS``): several kernels share the machine's cores.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from autograder.grading import grade, sandbox
from autograder.grading.course import REPO_ROOT, generate_feedback
from autograder.grading.grade import FAILED, Result, last_error
from autograder.grading.rows import Rows, export_rows, import_rows
from autograder.grading.tree import Tree, digest, read_tree, write_tree

__all__ = ["OUTPUT_FOLDERS", "CourseFiles", "Interrupted", "Outcome", "Task", "run_task"]

# The course folders grading writes a student's files in, as <folder>/<student>/<assignment>.
OUTPUT_FOLDERS = ("autograded", "feedback", "archive", "quarantine", "submitted")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_SCRATCH = "labkit-grade-"  # + the grader's pid: a killed grader's scratch is found and removed


class Interrupted(Exception):
    """The batch is stopping: this task's result would not be recorded."""


@dataclass(frozen=True)
class CourseFiles:
    """What any worker needs of the course to grade one assignment."""

    assignment: str
    expected: tuple[str, ...]  # the assignment's notebook files
    config: bytes  # nbgrader_config.py
    source: Tree  # solutions/<assignment>/ (autograde copies its other files)
    release: Tree  # notebooks/<assignment>/ (preflight and the scan compare to it)
    gradebook: bytes  # the course gradebook without any submission
    hide: tuple[str, ...] = ()  # the coordinator's folders kernels must not see


@dataclass(frozen=True)
class Task:
    """One student's submission, and how to grade it."""

    student: str
    submission: Tree  # submitted/<student>/<assignment>/ as handed in
    digest: str  # of ``submission``
    previous: Rows | None  # the student's rows in the course gradebook (manual grades)
    timeout: float
    sandboxed: bool
    feedback: bool
    threads: int | None = None  # per kernel; None: as the worker decides
    data_env: dict[str, str] = field(default_factory=dict)  # the coordinator's LABKIT_* paths


@dataclass(frozen=True)
class Outcome:
    """What grading one student produced, for the coordinator to write."""

    result: Result
    rows: Rows | None  # the student's gradebook rows after grading
    graded_digest: str  # of the submission once preflight normalised it
    files: dict[str, Tree]  # OUTPUT_FOLDERS -> <folder>/<student>/<assignment>/ as a tree
    notes: tuple[str, ...] = ()
    host: str = ""
    worker: str = ""  # the Dask worker's address; "" for a thread of the coordinator


def _remove_stale_scratch() -> None:
    """Remove the scratch courses of graders that were killed (their process is gone)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_SCRATCH}*-*"):
        pid = path.name.removeprefix(_SCRATCH).split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)


def data_environment(data_env: dict[str, str]) -> dict[str, str]:
    """The data folders a kernel here is told about: this machine's own LABKIT_* setting,
    else the coordinator's path when it exists here too (a shared folder)."""
    chosen = {}
    for name, path in data_env.items():
        here = os.environ.get(name)
        if here:
            chosen[name] = here
        elif Path(path).is_dir():
            chosen[name] = path
    return chosen


def _write_course(root: Path, course: CourseFiles, task: Task) -> None:
    root.mkdir(parents=True)
    (root / "nbgrader_config.py").write_bytes(course.config)
    write_tree(course.source, root / "solutions" / course.assignment)
    write_tree(course.release, root / "notebooks" / course.assignment)
    (root / "gradebook.db").write_bytes(course.gradebook)
    write_tree(task.submission, root / "submitted" / task.student / course.assignment)
    if task.previous is not None:
        import_rows(root / "gradebook.db", course.assignment, task.student, task.previous)


def run_task(task: Task, course: CourseFiles, stopping: threading.Event | None = None) -> Outcome:
    """Grade ``task``'s student in a scratch course; ``stopping`` set: give up before
    starting another nbgrader run (``Interrupted``)."""
    student, assignment = task.student, course.assignment
    notes: list[str] = []
    _remove_stale_scratch()
    with tempfile.TemporaryDirectory(prefix=f"{_SCRATCH}{os.getpid()}-") as scratch:
        root = Path(scratch) / "course"
        _write_course(root, course, task)
        env = data_environment(task.data_env)
        threads = task.threads or max(1, os.cpu_count() or 1)
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
        batch = grade._Batch(assignment, root, list(course.expected), task.timeout, [], env)
        if task.sandboxed:
            why_not = sandbox.available()
            if why_not:
                raise RuntimeError(f"the grading sandbox is unavailable here: {why_not}")
            hidden = [root, *(Path(p) for p in course.hide), REPO_ROOT]
            hidden = [p for p in dict.fromkeys(hidden) if p.is_dir()]
            batch.env.update(sandbox.kernel_environment(Path(scratch) / "kernel", hidden))
            batch.nbgrader_args = [f"--Execute.kernel_name={sandbox.KERNEL_NAME}"]
        if stopping is not None and stopping.is_set():
            raise Interrupted(student)
        try:
            result = grade._grade_one(batch, student)
        except Exception as error:  # one submission never stops the batch
            detail = f"the grader itself failed on this submission: {type(error).__name__}: "
            result = Result(student, FAILED, detail=detail + str(error)[:300])
        if stopping is not None and stopping.is_set():
            raise Interrupted(student)
        if task.feedback and (root / "autograded" / student / assignment).is_dir():
            error = generate_feedback(assignment, root, student)
            if error:
                notes.append(f"nbgrader generate_feedback failed: {last_error(error)}")
        # as the serial driver: a page that would quote hidden tests is deleted, and flagged
        result = grade.withhold_leaking_feedback(assignment, root, list(course.expected), result)
        files = {name: read_tree(root / name / student / assignment) for name in OUTPUT_FOLDERS}
        return Outcome(
            result=result,
            rows=export_rows(root / "gradebook.db", assignment, student),
            graded_digest=digest(files["submitted"]),
            files=files,
            notes=tuple(notes),
            host=socket.gethostname(),
        )
