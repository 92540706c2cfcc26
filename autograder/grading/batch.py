"""Grade a whole class: several students at once, here or on a Dask cluster, resumably.

``grade_batch`` is what ``python -m autograder grade`` runs. It grades the same way as
the serial driver (``grade._grade_one`` is the unit of work), but:

- **in parallel**: each student is a ``task.Task`` graded in a scratch copy of the
  course with a gradebook of its own (nbgrader's SQLite gradebook takes one writer at
  a time), by ``workers`` threads here (each drives its own nbgrader process and
  sandboxed kernel) or by the workers of a Dask cluster (``autograder.grading.cluster``).
  Only this process, the coordinator, writes the course: the autograded notebooks,
  feedback, archive and quarantine land in the course's own folders, and the student's
  rows are merged into the course gradebook through nbgrader's API
  (``autograder.grading.rows``);
- **resumably**: each student's result is recorded the moment it is in the course
  (``autograder.grading.ledger``); run again, a batch grades only the students whose
  submission (or lab) changed or whose grading did not finish. A task that fails to
  come back (its worker died, the task raised) is retried once, then reported
  ``failed`` with the cause, unrecorded, so that the next run tries it again;
- **visibly**: a tqdm bar shows students done of the total, the time left and the
  count per status.

The final table and ``grades-<assignment>.csv``/``.json`` are the serial driver's.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from tqdm import tqdm

from autograder.grading import course, grade, sandbox
from autograder.grading.grade import FAILED, INVALID, Result
from autograder.grading.ledger import (
    Record,
    course_digest,
    is_current,
    log,
    read_record,
    write_record,
)
from autograder.grading.rows import export_rows, import_rows, template_gradebook
from autograder.grading.task import CourseFiles, Interrupted, Outcome, Task, run_task
from autograder.grading.tree import Tree, digest, read_tree, sync_tree, write_tree

__all__ = [
    "DATA_VARIABLES",
    "KERNEL_TASKS",
    "GradingError",
    "LocalRunner",
    "NoFitWorker",
    "NotTried",
    "Runner",
    "cores",
    "grade_batch",
    "plan_workers",
]

DATA_VARIABLES = ("LABKIT_CIFAR10", "LABKIT_MNIST", "LABKIT_FASHION_MNIST", "LABKIT_DATA")
ATTEMPTS = 2  # a task that does not come back is retried once
# Threads a sandboxed kernel holds besides torch's own (13 measured with one torch thread:
# ipykernel's, ZeroMQ's, the heartbeat), with room for what a cell starts.
KERNEL_TASKS = 16
_CHANGES_TOLERATED = 3  # a submission rewritten while graded is graded again, this often


def cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def plan_workers(
    workers: int | None,
    available: int | None = None,
    process_cap: int | None = None,
    students: int | None = None,
) -> tuple[int, int]:
    """(workers, threads per kernel) on a machine with ``available`` cores.

    Threads per kernel come from ``OMP_NUM_THREADS`` when it is set (torch reads it),
    else the cores shared among the workers; workers, when not given, are as many as
    the cores hold kernels of that many threads, and no more than the ``students`` to
    grade (one student graded again gets every core). ``process_cap``: the sandbox's cap on
    processes and threads where every sandboxed kernel counts against it together (they
    run as one user: ``sandbox.shared_process_cap``); workers are fewer when more kernels
    would not fit under it.
    """
    available = available or cores()
    setting = os.environ.get("OMP_NUM_THREADS", "")
    fixed = int(setting) if setting.isdigit() and int(setting) > 0 else None
    if workers is not None and workers < 1:
        raise ValueError(f"--workers {workers}: give at least 1 (one student at a time)")

    def threads(count: int) -> int:
        return fixed or max(1, available // count)

    count = workers if workers is not None else max(1, available // (fixed or 1))
    if workers is None and students:
        count = min(count, students)
    while process_cap and count > 1 and count * (KERNEL_TASKS + threads(count)) > process_cap:
        count -= 1
    return count, threads(count)


class GradingError(RuntimeError):
    """Grading cannot start as asked; the message says what to do."""


class NoFitWorker(GradingError):
    """No worker of the cluster can grade (each lacks something it names)."""


class NotTried(Exception):
    """The task did not run to an answer for a reason not its own (what it needed was lost
    with another worker): it is graded again, and this does not count as a try."""


class Runner(Protocol):
    """Where tasks run: threads here (``LocalRunner``) or a Dask cluster."""

    capacity: int  # tasks worth keeping in flight
    description: str  # for the header line

    def submit(self, task: Task) -> object: ...
    def wait(self, handles: list[object], timeout: float) -> set[object]: ...
    def outcome(self, handle: object) -> Outcome: ...  # raises when the task failed (NotTried)
    def lost(self, handles: list[object]) -> dict[object, str]: ...  # handle -> why
    def stop(self) -> None: ...  # Ctrl-C: abandon what runs, quickly
    def close(self) -> None: ...


class LocalRunner:
    """``workers`` threads here, each grading one student at a time (the work itself is
    nbgrader's process and its kernel, so threads suffice)."""

    def __init__(self, workers: int, threads: int, course_files: CourseFiles) -> None:
        self.capacity = workers
        self.description = (
            f"{workers} worker{'s' * (workers > 1)} on this machine "
            f"({cores()} cores, {threads} thread{'s' * (threads > 1)} per kernel; "
            "--workers N to change)"
        )
        self._course = course_files
        self._stopping = threading.Event()
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="grade")
        self._futures: set[concurrent.futures.Future] = set()

    def submit(self, task: Task) -> object:
        future = self._pool.submit(run_task, task, self._course, self._stopping)
        self._futures.add(future)
        return future

    def wait(self, handles: list[object], timeout: float) -> set[object]:
        done, _ = concurrent.futures.wait(
            handles, timeout, return_when=concurrent.futures.FIRST_COMPLETED
        )  # type: ignore[arg-type]
        self._futures -= done
        return set(done)

    def outcome(self, handle: object) -> Outcome:
        return handle.result()  # type: ignore[attr-defined]

    def lost(self, handles: list[object]) -> dict[object, str]:
        return {}

    def stop(self) -> None:
        self._stopping.set()
        for future in self._futures:
            future.cancel()
        # Kill until every task has returned: one may start nbgrader just after a kill.
        while any(not future.done() for future in self._futures):
            course.stop_running()
            time.sleep(0.1)
        self._pool.shutdown(wait=True)

    def close(self) -> None:
        self._pool.shutdown(wait=True)


def _course_files(assignment: str, root: Path, expected: list[str]) -> CourseFiles:
    with tempfile.TemporaryDirectory(prefix="labkit-template-") as work:
        template = Path(work) / "gradebook.db"
        template_gradebook(root / "gradebook.db", template)
        gradebook = template.read_bytes()
    return CourseFiles(
        assignment=assignment,
        expected=tuple(expected),
        config=(root / "nbgrader_config.py").read_bytes(),
        source=read_tree(root / "solutions" / assignment),
        release=read_tree(root / "notebooks" / assignment),
        gradebook=gradebook,
        hide=(str(root),),
    )


def _write_archive(tree: Tree, archive: Path) -> None:
    """Each archived copy (``<time>/...``) under a name not taken in the course yet."""
    copies: dict[str, Tree] = collections.defaultdict(dict)
    for relative, content in tree.items():
        stamp, _, rest = relative.partition("/")
        copies[stamp][rest] = content
    for stamp, files in copies.items():
        target, suffix = archive / stamp, 1
        while target.exists():
            suffix += 1
            target = archive / f"{stamp}-{suffix}"
        write_tree(files, target)


@dataclass(frozen=True)
class _Settings:
    """How every student of this run is graded."""

    timeout: float
    feedback: bool
    sandboxed: bool
    threads: int | None  # per kernel; None: each cluster worker decides
    data_env: dict[str, str]


class _Batch:
    """The coordinator of one run: hands out tasks, writes what comes back into the
    course, records it, and keeps count."""

    def __init__(self, assignment: str, root: Path, course_key: str, settings: _Settings) -> None:
        self.assignment, self.root, self.course_key = assignment, root, course_key
        self.settings = settings
        self.done: dict[str, Result] = {}
        self.graded_now = 0
        self.bar: tqdm | None = None
        self._attempts: collections.Counter[str] = collections.Counter()
        self._changes: collections.Counter[str] = collections.Counter()

    def task(self, student: str) -> Task:
        """The student's task, with the submission as it is now."""
        files = read_tree(self.root / "submitted" / student / self.assignment)
        return Task(
            student=student,
            submission=files,
            digest=digest(files),
            previous=export_rows(self.root / "gradebook.db", self.assignment, student),
            timeout=self.settings.timeout,
            sandboxed=self.settings.sandboxed,
            feedback=self.settings.feedback,
            threads=self.settings.threads,
            data_env=self.settings.data_env,
        )

    def say(self, line: str) -> None:
        (self.bar.write if self.bar is not None else print)(line)

    def finish(self, result: Result, note: str = "") -> None:
        self.done[result.student] = result
        extra = f"; {note}" if note else ""
        self.say(f"  {result.student}: {result.status} ({result.seconds:.0f} s){extra}")
        if self.bar is not None:
            self.bar.update(1)
            counts = collections.Counter(r.status for r in self.done.values())
            self.bar.set_postfix_str(", ".join(f"{k} {v}" for k, v in sorted(counts.items())))

    def run(self, runner: Runner, students: Iterable[str]) -> None:
        queue = collections.deque(students)
        flying: dict[object, Task] = {}
        while queue or flying:
            while queue and len(flying) < runner.capacity:
                student = queue.popleft()
                try:
                    task = self.task(student)
                except Exception as error:  # an unreadable folder stops only this student
                    detail = f"the submission could not be read: {type(error).__name__}: {error}"
                    self.finish(Result(student, FAILED, detail=detail[:400]))
                    continue
                try:
                    handle = runner.submit(task)
                except NoFitWorker as error:
                    queue.appendleft(student)
                    self._no_fit_worker(error, queue, flying)
                    return
                self._attempts[student] += 1
                log(self.root, self.assignment, "started", student, digest=task.digest)
                flying[handle] = task
            try:
                finished = runner.wait(list(flying), timeout=2.0)
            except NoFitWorker as error:
                self._no_fit_worker(error, queue, flying)
                return
            for handle in finished:
                task = flying.pop(handle)
                try:
                    outcome = runner.outcome(handle)
                except Interrupted:
                    continue
                except NotTried as error:
                    self._attempts[task.student] -= 1
                    log(self.root, self.assignment, "retry", task.student, cause=str(error))
                    self.say(f"  {task.student}: {error}; grading it again")
                    queue.appendleft(task.student)
                    continue
                except Exception as error:
                    self._failed(task, f"{type(error).__name__}: {error}"[:300], queue)
                    continue
                try:
                    self._apply(task, outcome, queue)
                except Exception as error:  # one student's results never stop the batch
                    detail = (
                        "its results could not be written into the course (graded again by "
                        f"the next run): {type(error).__name__}: {error}"
                    )
                    self.finish(Result(task.student, FAILED, detail=detail[:400]))
            for handle, why in runner.lost(list(flying)).items():
                self._failed(flying.pop(handle), why, queue)

    def _no_fit_worker(
        self, error: NoFitWorker, queue: collections.deque[str], flying: dict[object, Task]
    ) -> None:
        """The cluster has no worker left that can grade: the rest fail, unrecorded."""
        for student in [*queue, *(task.student for task in flying.values())]:
            self.finish(Result(student, FAILED, detail=str(error)))

    def _failed(self, task: Task, cause: str, queue: collections.deque[str]) -> None:
        """The task did not come back: retry once, then report it (unrecorded)."""
        student = task.student
        log(self.root, self.assignment, "retry", student, cause=cause)
        if self._attempts[student] < ATTEMPTS:
            self.say(f"  {student}: grading did not finish ({cause}); trying again")
            queue.appendleft(student)
            return
        detail = f"grading did not finish in {ATTEMPTS} tries (worker died?); last: {cause}"
        self.finish(Result(student, FAILED, detail=detail))

    def _apply(self, task: Task, outcome: Outcome, queue: collections.deque[str]) -> None:
        """Write one student's files and rows into the course, then record the result."""
        student, assignment, root = task.student, self.assignment, self.root
        folder = root / "submitted" / student / assignment
        if digest(read_tree(folder)) != task.digest:
            log(root, assignment, "changed", student, digest=task.digest)
            self._changes[student] += 1
            if self._changes[student] < _CHANGES_TOLERATED:
                self._attempts[student] -= 1  # not the grader's failure
                queue.append(student)
                return
            detail = "the submission kept changing while it was graded: grade again later"
            self.finish(Result(student, FAILED, detail=detail))
            return
        files = outcome.files
        _write_archive(files["archive"], root / "archive" / student / assignment)
        if files["quarantine"]:
            write_tree(files["quarantine"], root / "quarantine" / student / assignment)
        for name in ("autograded", "feedback"):
            if files[name]:
                write_tree(files[name], root / name / student / assignment, replace=True)
        gradebook = root / "gradebook.db"
        backup = root / "backups" / f"gradebook-before-{student}.db"
        backup.parent.mkdir(exist_ok=True)
        shutil.copy2(gradebook, backup)
        import_rows(gradebook, assignment, student, outcome.rows)
        record = Record(
            student, task.digest, outcome.graded_digest, self.course_key, outcome.result,
            host=outcome.host,
        )  # fmt: skip
        write_record(root, assignment, record)
        where = {"host": outcome.host, "worker": outcome.worker}
        log(root, assignment, "recorded", student, digest=task.digest, **where)
        if outcome.graded_digest != task.digest:
            sync_tree(files["submitted"], folder)  # normalised in place, as the serial driver
        self.graded_now += 1
        self.finish(outcome.result, "; ".join(outcome.notes))


def _sandbox_for(use_sandbox: bool | None, cluster: str | None) -> bool:
    """Whether kernels run sandboxed; on a cluster each worker is checked instead."""
    if cluster is not None:
        return use_sandbox is not False
    why_not = sandbox.available() if use_sandbox is not False else "turned off"
    if why_not and use_sandbox:
        raise RuntimeError(f"the grading sandbox is required but unavailable: {why_not}")
    if why_not:
        print(
            f"  WARNING: grading WITHOUT a sandbox ({why_not}): student code runs with your rights"
        )
    return not why_not


def _students(root: Path, assignment: str) -> list[str]:
    submitted = root / "submitted"
    if not submitted.is_dir():
        return []
    return sorted(p.name for p in submitted.iterdir() if (p / assignment).is_dir())


def _plan(
    batch: _Batch, students: list[str], resume: bool, only: set[str] | None = None
) -> tuple[list[str], int]:
    """(students to grade, how many are recorded already); the others go in ``batch.done``.
    ``only``: grade these again; of the others, list only those whose record holds."""
    submitted = batch.root / "submitted"
    todo, resumed = [], 0
    for student in students:
        problem = grade.student_problem(submitted, student, batch.assignment)
        if problem:
            if only is None or student in only:
                batch.done[student] = Result(student, INVALID, detail=problem)
            continue
        chosen = only is not None and student in only
        record = (
            read_record(batch.root, batch.assignment, student) if resume and not chosen else None
        )
        now = digest(read_tree(submitted / student / batch.assignment))
        if record is not None and is_current(record, now, batch.course_key):
            batch.done[student] = record.result
            resumed += 1
        elif only is None or chosen:
            todo.append(student)
    return todo, resumed


def grade_batch(
    assignment: str,
    root: Path,
    timeout: float = 900,
    feedback: bool = True,
    use_sandbox: bool | None = None,
    workers: int | None = None,
    cluster: str | None = None,
    resume: bool = True,
    progress: bool | None = None,
    only: Iterable[str] | None = None,
) -> list[Result]:
    """Autograde every submission of ``assignment`` in the course at ``root``.

    ``workers``: students graded at once here (None: as many as the cores hold, see
    ``plan_workers``); ``cluster``: the address of a Dask scheduler whose workers grade
    instead; ``resume``: skip students whose recorded result still holds (False grades
    everyone again); ``progress``: show the bar (None: when stderr is a terminal);
    ``only``: grade these students (again), and list the others whose record holds.
    """
    root = root.resolve()
    students = _students(root, assignment)
    chosen = None if only is None else set(only)
    if chosen is not None and chosen - set(students):
        missing = ", ".join(sorted(chosen - set(students)))
        raise GradingError(
            f"no submission of {assignment} under {root / 'submitted'} for {missing}"
        )
    grade.generate_release(assignment, root)
    expected = grade.notebook_names(assignment, root)
    sandboxed = _sandbox_for(use_sandbox, cluster)
    cap = sandbox.shared_process_cap() if sandboxed and cluster is None else None
    to_grade = len(chosen) if chosen is not None else len(students)
    planned, threads = plan_workers(workers, process_cap=cap, students=to_grade)
    if workers is not None and planned < workers:
        print(
            f"  --workers {workers}: only {planned} sandboxed kernels fit under the sandbox's "
            f"cap of {cap} processes and threads, which all kernels share (each holds about "
            f"{KERNEL_TASKS + threads}): grading {planned} students at once"
        )
    settings = _Settings(
        timeout=timeout,
        feedback=feedback,
        sandboxed=sandboxed,
        threads=None if cluster else threads,
        data_env={name: os.environ[name] for name in DATA_VARIABLES if os.environ.get(name)},
    )
    batch = _Batch(assignment, root, course_digest(root, assignment), settings)
    todo, resumed = _plan(batch, students, resume, chosen)
    if resumed and chosen is None:
        print(
            f"  {resumed} of {len(students)} already graded (grading/{assignment}/); "
            "--regrade grades them again"
        )
    start = time.monotonic()
    if todo:
        _grade(batch, todo, len(students), cluster, planned, threads, expected, progress)
        seconds = time.monotonic() - start
        rate = 60 * batch.graded_now / seconds if seconds else 0.0
        print(f"  graded {batch.graded_now} in {seconds:.0f} s ({rate:.1f} a minute)")
    listed = [batch.done[s] for s in students if s in batch.done]
    results = grade._with_scores(assignment, root, listed)
    grade._write_records(assignment, root, results)
    return results


def _grade(
    batch: _Batch,
    todo: list[str],
    total: int,
    cluster: str | None,
    workers: int,
    threads: int,
    expected: list[str],
    progress: bool | None,
) -> None:
    """Grade ``todo`` on a runner, with the bar; Ctrl-C stops the runner first."""
    course_files = _course_files(batch.assignment, batch.root, expected)
    try:
        runner = _runner(cluster, workers, threads, course_files, batch.settings)
    except NoFitWorker as error:
        print(f"  {error}")
        for student in todo:
            batch.finish(Result(student, FAILED, detail=str(error)))
        return
    print(f"  grading {len(todo)} of {total} students with {runner.description}")
    batch.bar = tqdm(
        total=total,
        initial=len(batch.done),
        desc=batch.assignment,
        unit="student",
        disable=not (sys.stderr.isatty() if progress is None else progress),
        dynamic_ncols=True,
        file=sys.stderr,
    )
    try:
        batch.run(runner, todo)
    except KeyboardInterrupt:
        batch.bar.close()
        print(f"  stopping: {batch.graded_now} students graded and recorded in this run")
        runner.stop()
        raise
    else:
        runner.close()
    finally:
        batch.bar.close()
        batch.bar = None


def _runner(
    cluster: str | None,
    workers: int,
    threads: int,
    course_files: CourseFiles,
    settings: _Settings,
) -> Runner:
    if cluster is None:
        return LocalRunner(workers, threads, course_files)
    from autograder.grading.cluster import ClusterRunner  # Dask only when asked for

    return ClusterRunner(cluster, course_files, settings.sandboxed, settings.data_env)
