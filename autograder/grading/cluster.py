"""Grade on the workers of a Dask cluster (``grade ASSIGNMENT --cluster ADDRESS``).

The coordinator sends the same per-student tasks as a local batch
(``autograder.grading.task``) to a Dask scheduler; any worker runs them in a scratch
course of its own and returns the ``Outcome`` (result, gradebook rows, files), which
the coordinator writes into the course. A worker gets tasks only once
``check_worker`` found it fit: the kit's packages at the coordinator's version,
nbgrader, bubblewrap (the sandbox applies on every worker) and the data folders the
coordinator uses. An unfit worker is named with what it lacks and its students go to
the others; with no fit worker at all, every student is reported ``failed`` with the
reasons. Workers that join later are checked when they appear.

Each task is pinned to one fit worker with a thread free, so that no student waits on a
worker behind another one (if that worker died, Dask would count it against both). The
coordinator asks the scheduler which workers are alive when it hands out a student, when
a task fails, and at most a second before it counts the free threads. When the worker a
task is pinned to has left (a dead worker comes back from its nanny under a new address),
the task counts as not finished: it is retried once elsewhere, then reported ``failed``,
as a local task that raised. Dask's scheduler also retries a task whose worker died
(``allowed-failures``, 3 by default); the instructor's guide shows how to leave that to
the kit. The course files are sent to the fit workers once; when the last worker holding
them dies, they are sent again to the fit workers alive, and the tasks that lost them are
graded again without counting a try.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import sys
import time
from concurrent.futures import CancelledError
from dataclasses import replace
from pathlib import Path

import dask
from distributed import Client, Future, get_worker
from tqdm import tqdm

from autograder.grading import sandbox
from autograder.grading.batch import GradingError, NoFitWorker, NotTried, cores, plan_workers
from autograder.grading.course import REPO_ROOT
from autograder.grading.task import CourseFiles, Outcome, Task, data_environment, run_task
from autograder.grading.tree import digest

__all__ = ["ClusterRunner", "check_worker", "grade_on_worker", "kit_fingerprint"]

_REFRESH_S = 10.0  # how often the coordinator looks for workers that joined or left
_CURRENT_S = 1.0  # how old that list may be when it counts the free threads
_NO_WORKER_S = 120.0  # how long it waits for a fit worker before giving up
_INSTALL = "install the kit there as here (pip install -c constraints.txt -e '.[grading]')"


def kit_fingerprint() -> str:
    """A digest of the kit's code (``autograder/`` and ``labkit/``): coordinator and
    workers must grade with the same checks."""
    tree = {}
    for package in ("autograder", "labkit"):
        for path in sorted((REPO_ROOT / package).rglob("*.py")):
            tree[path.relative_to(REPO_ROOT).as_posix()] = path.read_bytes()
    return digest(tree)


def check_worker(
    sandboxed: bool, data_env: dict[str, str], fingerprint: str, dask_worker: object = None
) -> list[str]:
    """What this machine lacks to grade as the coordinator does ([] when nothing).
    ``Client.run`` passes the worker itself as ``dask_worker``."""
    problems = []
    nthreads = _nthreads(dask_worker) if dask_worker is not None else 1
    cap = sandbox.shared_process_cap() if sandboxed else None
    fits, _ = plan_workers(nthreads, process_cap=cap)
    if fits < nthreads:
        problems.append(
            f"it grades {nthreads} students at once, but only {fits} sandboxed kernels fit "
            f"under the sandbox's cap of {cap} processes and threads, "
            f"which all kernels share: start it with `dask worker --nthreads {fits}`"
        )
    for module in ("nbgrader", "nbconvert", "ipykernel", "torch", "labkit"):
        try:
            __import__(module)
        except ImportError as error:
            problems.append(f"the kit's packages: {error}; {_INSTALL}")
    if fingerprint != kit_fingerprint():
        problems.append(f"the kit's code in {REPO_ROOT} differs from the coordinator's; {_INSTALL}")
    if shutil.which("alembic", path=str(Path(sys.executable).parent)) is None:
        problems.append(f"nbgrader's alembic script is not beside {sys.executable}; {_INSTALL}")
    if sandboxed:
        why_not = sandbox.available()
        if why_not:
            problems.append(f"the grading sandbox: {why_not}")
    found = data_environment(data_env)
    for name, path in data_env.items():
        here = found.get(name)
        if here is None:
            problems.append(
                f"the data: {name} is not set here and {path} (the coordinator's) does not "
                f"exist here: set {name} before starting `dask worker`"
            )
        elif not Path(here).is_dir():
            problems.append(f"the data: {name} is {here} here, which does not exist")
    return problems


def _nthreads(worker: object) -> int:
    """How many tasks a Dask worker runs at once."""
    return max(1, getattr(worker, "state", worker).nthreads)


def grade_on_worker(task: Task, course: CourseFiles) -> Outcome:
    """``run_task`` on a Dask worker; each kernel gets the cores over the worker's threads
    (or ``OMP_NUM_THREADS`` where the worker was started with it)."""
    worker = get_worker()
    threads = task.threads or plan_workers(_nthreads(worker), cores())[1]
    outcome = run_task(replace(task, threads=threads), course)
    return replace(outcome, worker=worker.address)


def _reason(error: BaseException) -> str:
    text = f"{type(error).__name__}: {error}"[:300]
    if isinstance(error, ImportError) or "No module named" in text:
        return f"the kit's packages: {text}; {_INSTALL}"
    return f"the check could not run: {text}"


class ClusterRunner:
    """Tasks on the fit workers of the Dask scheduler at ``address``."""

    def __init__(
        self,
        address: str,
        course: CourseFiles,
        sandboxed: bool,
        data_env: dict[str, str],
        wait_s: float = 60.0,
    ) -> None:
        connect = dask.config.get("distributed.comm.timeouts.connect")
        try:
            self.client = Client(address, timeout=connect, set_as_default=False)
        except OSError as error:
            raise GradingError(
                f"cannot reach the Dask scheduler at {address} ({error}): start one with "
                "`dask scheduler`, then `dask worker ADDRESS` on each grading machine "
                "(docs/instructor-guide.md)"
            ) from error
        self.address = address
        self._sandboxed, self._data_env = sandboxed, data_env
        self._fingerprint = kit_fingerprint()
        self._course = course
        self._course_future: Future | None = None
        self.fit: dict[str, int] = {}  # address -> threads
        self.unfit: dict[str, str] = {}  # address -> what it lacks
        self._alive: set[str] = set()
        self._pinned: dict[Future, list[str]] = {}
        self._checked_at = 0.0
        try:
            self.client.wait_for_workers(1, timeout=wait_s)
        except TimeoutError:
            self.client.close()
            raise NoFitWorker(
                f"no Dask worker joined the scheduler at {address} within {wait_s:.0f} s: "
                f"start `dask worker {address}` on each grading machine"
            ) from None
        self._refresh()
        if not self.fit:
            self.client.close()
            raise NoFitWorker(self._unfit_text())

    def _unfit_text(self) -> str:
        named = "; ".join(f"{worker}: {why}" for worker, why in sorted(self.unfit.items()))
        return f"no Dask worker at {self.address} can grade: {named or 'none is connected'}"

    @property
    def description(self) -> str:
        text = f"{len(self._live_fit())} Dask workers ({self.capacity} threads) at {self.address}"
        if self.unfit:
            text += f"; {len(self.unfit)} unfit: " + "; ".join(
                f"{worker}: {why}" for worker, why in sorted(self.unfit.items())
            )
        return text

    @property
    def capacity(self) -> int:
        if time.monotonic() - self._checked_at > _CURRENT_S:
            self._refresh()
        return sum(self.fit[w] for w in self._live_fit())

    def _least_busy(self) -> str:
        """The live fit worker with the most threads free: each task is pinned to one, so
        that no worker holds a student waiting behind another (Dask would queue it there,
        and count a try against it if that worker died)."""
        busy = collections.Counter(w for pinned in self._pinned.values() for w in pinned)
        candidates = self._live_fit() or sorted(self.fit)  # none alive: wait() says so
        return max(candidates, key=lambda w: (self.fit[w] - busy[w], w))

    def _live_fit(self) -> list[str]:
        return sorted(w for w in self.fit if w in self._alive)

    def _refresh(self) -> None:
        """Learn which workers are connected; check the ones not seen before."""
        workers = self.client.scheduler_info(n_workers=-1)["workers"]
        self._alive = set(workers)
        new = [w for w in workers if w not in self.fit and w not in self.unfit]
        if new:
            answers = self.client.run(
                check_worker,
                self._sandboxed,
                self._data_env,
                self._fingerprint,
                workers=new,
                on_error="return",
            )
            for worker in new:
                answer = answers.get(worker, ["it did not answer the check"])
                problems = [_reason(answer)] if isinstance(answer, BaseException) else answer
                if problems:
                    self.unfit[worker] = "; ".join(problems)
                    tqdm.write(f"  Dask worker {worker} cannot grade: {self.unfit[worker]}")
                else:
                    self.fit[worker] = int(workers[worker].get("nthreads", 1))
        self._checked_at = time.monotonic()

    def _course_on_cluster(self) -> Future:
        """The course files, sent once to every fit worker (again if all holders left, to
        the fit workers alive now: a dead worker's address makes the scheduler fail)."""
        if self._course_future is not None and self._course_future.status == "finished":
            return self._course_future
        deadline = time.monotonic() + _NO_WORKER_S
        while True:
            self._refresh()
            workers = self._live_fit()
            if workers:
                try:
                    self._course_future = self.client.scatter(
                        self._course, broadcast=True, workers=workers, hash=False
                    )
                    return self._course_future
                except (KeyError, OSError):  # a worker left since the refresh
                    pass
            if time.monotonic() > deadline:
                raise NoFitWorker(
                    f"no fit Dask worker at {self.address} took the course files for "
                    f"{_NO_WORKER_S:.0f} s; {self._unfit_text()}"
                )
            time.sleep(1)

    def submit(self, task: Task) -> object:
        course = self._course_on_cluster()
        self._refresh()  # a worker that died a moment ago takes no student
        workers = [self._least_busy()]
        future = self.client.submit(
            grade_on_worker,
            task,
            course,
            key=f"grade-{task.student}-{os.urandom(4).hex()}",
            workers=workers,
            allow_other_workers=False,
            pure=False,
        )
        self._pinned[future] = workers
        return future

    def wait(self, handles: list[object], timeout: float) -> set[object]:
        deadline = time.monotonic() + timeout
        lonely_since = None
        while True:
            done = {h for h in handles if h.done()}  # type: ignore[attr-defined]
            if done:
                for handle in done:
                    self._pinned.pop(handle, None)  # type: ignore[call-overload]
                return done
            if time.monotonic() - self._checked_at > _REFRESH_S:
                self._refresh()
            if self.capacity == 0:
                lonely_since = lonely_since or time.monotonic()
                if time.monotonic() - lonely_since > _NO_WORKER_S:
                    raise NoFitWorker(
                        f"every fit Dask worker left the scheduler at {self.address} "
                        f"for {_NO_WORKER_S:.0f} s; {self._unfit_text()}"
                    )
            elif time.monotonic() > deadline:
                return set()
            time.sleep(0.2)

    def outcome(self, handle: object) -> Outcome:
        try:
            return handle.result()  # type: ignore[attr-defined]
        except CancelledError as error:
            course = self._course_future
            if course is not None and course.status != "finished":
                raise NotTried(
                    "the course files it needed were lost with a worker that died"
                ) from error
            raise
        except Exception:
            with contextlib.suppress(Exception):  # the task's own error is what counts
                self._refresh()  # its worker may have died: hand out nothing more to it
            raise

    def lost(self, handles: list[object]) -> dict[object, str]:
        gone = {}
        for handle in handles:
            allowed = self._pinned.get(handle, [])  # type: ignore[call-overload]
            if allowed and not set(allowed) & self._alive:
                self.client.cancel([handle])
                self._pinned.pop(handle, None)  # type: ignore[call-overload]
                gone[handle] = f"every worker it could run on left ({', '.join(allowed)})"
        return gone

    def stop(self) -> None:
        self.client.cancel(list(self._pinned), force=True)
        self.close()

    def close(self) -> None:
        self.client.close()
