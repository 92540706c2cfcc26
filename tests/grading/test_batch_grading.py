"""Batch grading of real submissions: in parallel, on a Dask cluster, and stopped and resumed.

Each test compares what a batch leaves in the course folder (every grade cell's scores in
the gradebook, the CSV's statuses, scores and details, the autograded notebooks, the
feedback pages with run times masked) with what the serial driver or an uninterrupted
batch leaves.
"""

from __future__ import annotations

import csv
import html
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import dask
import nbformat
import psutil
import pytest
from distributed import LocalCluster, Nanny, Scheduler, SpecCluster
from nbgrader.api import Gradebook

from autograder.grading.course import (
    REPO_ROOT,
    generate_feedback,
    generate_release,
    make_course_root,
    nbgrader,
)
from autograder.grading.entry import DRIVER_VARIABLE
from autograder.grading.grade import FAILED, GRADED, INVALID, grade_assignment, last_error
from autograder.grading.ledger import read_journal, read_record
from autograder.grading.samples import answered, write_samples
from tests.grading.hostile import ASSIGNMENT as PROBE_LAB
from tests.grading.hostile import NOTEBOOK as PROBE_NOTEBOOK
from tests.grading.hostile import PROBE, leftover_processes, load_lab

DAY01 = "day01_conv_arithmetic"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning"),  # nbgrader's own
]


def _gradebook_cells(root: Path, assignment: str) -> dict[tuple[str, ...], tuple]:
    """(student, notebook, cell) -> every value nbgrader keeps for that grade or comment."""
    cells = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as book:
        for submission in book.assignment_submissions(assignment):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    key = (submission.student_id, notebook.name, grade.name, "grade")
                    cells[key] = (
                        grade.auto_score,
                        grade.manual_score,
                        grade.extra_credit,
                        grade.needs_manual_grade,
                    )
                for comment in notebook.comments:
                    key = (submission.student_id, notebook.name, comment.name, "comment")
                    cells[key] = (comment.auto_comment, comment.manual_comment)
    return cells


def _csv(root: Path, assignment: str) -> list[dict[str, str]]:
    with (root / f"grades-{assignment}.csv").open(encoding="utf-8") as handle:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(handle)]


def _page_text(path: Path) -> str:
    """A feedback page's text, with numbers masked: run times and the split of a stream
    into outputs differ from run to run, nothing else may."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", path.read_text(encoding="utf-8")))
    return " ".join(re.sub(r"\d+(\.\d+)?", "0", text).split())


def _files(root: Path, folder: str) -> dict[str, str]:
    base = root / folder
    return {
        p.relative_to(base).as_posix(): _page_text(p) if p.suffix == ".html" else ""
        for p in sorted(base.rglob("*"))
        if p.is_file()
    }


def _state(root: Path, assignment: str) -> dict[str, object]:
    return {
        "gradebook": _gradebook_cells(root, assignment),
        "csv": _csv(root, assignment),
        "autograded": sorted(_files(root, "autograded")),
        "feedback": _files(root, "feedback"),
    }


def _assert_same(actual: dict, expected: dict) -> None:
    for part in expected:
        assert actual[part] == expected[part], part


@pytest.fixture(scope="module")
def day01(tmp_path_factory) -> Path:
    """A course folder with Day 1's sample submissions, not graded yet (copy it)."""
    root = make_course_root(tmp_path_factory.mktemp("day01") / "course", [DAY01])
    write_samples(DAY01, root, REPO_ROOT)
    return root


@pytest.fixture(scope="module")
def day01_serial_root(day01, tmp_path_factory) -> Path:
    """Day 1's samples graded by the serial driver (copy it before changing it)."""
    root = tmp_path_factory.mktemp("serial") / "course"
    shutil.copytree(day01, root)
    results = grade_assignment(DAY01, root, timeout=900)
    assert {r.status for r in results} == {GRADED, INVALID}, results
    return root


@pytest.fixture(scope="module")
def day01_serial(day01_serial_root) -> dict:
    return _state(day01_serial_root, DAY01)


def _pages(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes() for p in (root / "feedback").rglob("*.html")
    }


def test_feedback_written_in_process_is_what_nbgrader_generate_feedback_writes(
    day01_serial_root, tmp_path
):
    """The driver builds feedback pages in its own process (``generate_feedback``): byte
    for byte the pages the command writes, and its errors say what was missing."""
    root = tmp_path / "course"
    shutil.copytree(day01_serial_root, root)
    written = _pages(root)
    graded = {row["student"] for row in _csv(root, DAY01) if row["status"] == GRADED}
    assert {Path(page).parts[1] for page in written} == graded
    shutil.rmtree(root / "feedback")
    run = nbgrader(["generate_feedback", DAY01, "--force"], root)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _pages(root) == written
    error = generate_feedback(DAY01, root, "nobody")
    assert "No notebooks were matched" in last_error(error), error
    assert "nobody" in error


def test_parallel_workers_leave_what_the_serial_driver_leaves(day01, day01_serial, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(day01, root)
    grade_assignment(DAY01, root, timeout=900, workers=2)
    _assert_same(_state(root, DAY01), day01_serial)
    assert all(read_record(root, DAY01, row["student"]) for row in day01_serial["csv"])


def test_a_dask_cluster_leaves_what_the_serial_driver_leaves(day01, day01_serial, tmp_path):
    root = tmp_path / "course"
    shutil.copytree(day01, root)
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0"
    ) as cluster:
        grade_assignment(DAY01, root, timeout=900, cluster=cluster.scheduler_address)
        workers = set(cluster.scheduler_info["workers"])
    _assert_same(_state(root, DAY01), day01_serial)
    recorded = [e for e in read_journal(root, DAY01) if e["event"] == "recorded"]
    assert {e["worker"] for e in recorded} <= workers
    assert len(recorded) == len(day01_serial["csv"])


def _probe_course(root: Path, students: dict[str, str]) -> Path:
    """A probe-lab course: each student hands in the "solved" or "untouched" notebook,
    or "corrupt" (truncated JSON)."""
    make_course_root(root, [PROBE_LAB], source=PROBE)
    generate_release(PROBE_LAB, root)
    lab = load_lab(root, port=0)
    for student, kind in students.items():
        folder = root / "submitted" / student / PROBE_LAB
        folder.mkdir(parents=True)
        nb = answered(lab.source, lab.release) if kind == "solved" else lab.release
        text = nbformat.writes(nb)
        (folder / PROBE_NOTEBOOK).write_text(text[:2000] if kind == "corrupt" else text)
    return root


def test_a_worker_that_lacks_the_data_is_named_and_gets_no_student(tmp_path):
    root = _probe_course(tmp_path / "course", {"ada": "untouched", "bob": "corrupt"})
    missing = "/nonexistent/cifar10"
    unfit = {"cls": Nanny, "options": {"nthreads": 1, "env": {"LABKIT_CIFAR10": missing}}}
    fit = {"cls": Nanny, "options": {"nthreads": 1}}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    with SpecCluster(workers={"unfit": unfit}, scheduler=scheduler, worker=fit) as cluster:
        address = cluster.scheduler_address
        alone = {r.student: r for r in grade_assignment(PROBE_LAB, root, cluster=address)}
        assert {r.status for r in alone.values()} == {FAILED}
        for result in alone.values():
            assert "LABKIT_CIFAR10" in result.detail and missing in result.detail, result
        assert read_record(root, PROBE_LAB, "ada") is None

        cluster.scale(2)
        cluster.wait_for_workers(2)
        unfit_address = cluster.workers["unfit"].worker_address
        results = {r.student: r for r in grade_assignment(PROBE_LAB, root, cluster=address)}
    assert results["ada"].status == GRADED and results["bob"].status == INVALID
    recorded = {e["student"]: e["worker"] for e in read_journal(root, PROBE_LAB)
                if e["event"] == "recorded"}  # fmt: skip
    assert set(recorded) == {"ada", "bob"}
    assert unfit_address not in recorded.values()


def _grading(student: str | None, seen: set[int]) -> tuple[psutil.Process, str] | None:
    """(the Dask worker process, the student) of an ``nbgrader autograde`` not in ``seen``
    that a worker process of this test runs now (of ``student`` when given), else None."""
    me = os.getpid()
    for process in psutil.Process(me).children(recursive=True):
        try:
            words = process.cmdline()
            worker = next((p for p in process.parents() if p.ppid() == me), None)
        except psutil.Error:
            continue
        graded = next((w.split("=", 1)[1] for w in words if w.startswith("--student=")), None)
        fresh = process.pid not in seen and student in (None, graded)
        if "autograde" in words and graded and worker and fresh:
            seen.add(process.pid)
            return worker, graded
    return None


def test_a_student_whose_worker_is_killed_is_retried_once_then_failed_then_resumed(tmp_path):
    """Dask workers killed outright (SIGKILL) while their kernels run a student's cells, on
    a scheduler set up as the instructor's guide says (the kit, not Dask, retries)."""
    students = {"ada": "solved", "bob": "untouched", "cy": "solved"}
    root = _probe_course(tmp_path / "course", students)
    # Scratch courses where processes left behind are found by path; short, as the
    # kernels' ipc socket paths must be.
    scratch = Path(tempfile.mkdtemp(prefix="labkit-kill-"))
    worker = {"cls": Nanny, "options": {"nthreads": 1, "env": {"TMPDIR": str(scratch)}}}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    kills: list[tuple[str, int]] = []  # (student, worker pid)

    def kill_the_worker_grading(student: str | None, seen: set[int]) -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (found := _grading(student, seen)) is None:
            time.sleep(0.1)
        if found is not None:
            time.sleep(1)  # its kernel is running the student's cells by now
            process, graded = found
            kills.append((graded, process.pid))
            process.send_signal(signal.SIGKILL)

    def kill_twice() -> None:
        seen: set[int] = set()
        kill_the_worker_grading(None, seen)
        if kills:
            kill_the_worker_grading(kills[0][0], seen)  # again, on the retry

    try:
        with (
            dask.config.set({"distributed.scheduler.allowed-failures": 0}),
            SpecCluster(workers={"a": worker, "b": worker}, scheduler=scheduler) as cluster,
        ):
            killer = threading.Thread(target=kill_twice, daemon=True)
            killer.start()
            address = cluster.scheduler_address
            first = {r.student: r for r in grade_assignment(PROBE_LAB, root, cluster=address)}
            killer.join(timeout=5)
            assert len(kills) == 2, kills
            victim = kills[0][0]
            assert kills[1][0] == victim
            assert not any(psutil.pid_exists(pid) for _, pid in kills)
            alive = {w.pid for w in cluster.workers.values()}
            assert len(alive) == 2 and not alive & {pid for _, pid in kills}  # restarted
            assert _no_leftovers(scratch) == []  # the killed workers' nbgrader and kernels

            failed = first[victim]
            assert failed.status == FAILED, failed
            assert "did not finish in 2 tries" in failed.detail, failed
            assert "KilledWorker" in failed.detail, failed
            assert read_record(root, PROBE_LAB, victim) is None  # the next run grades it
            for student in set(students) - {victim}:
                assert first[student].status == GRADED, first[student]

            before = len(read_journal(root, PROBE_LAB))
            # The same command again grades only the failed student.
            again = grade_assignment(PROBE_LAB, root, cluster=address, resume=True)
            second = {r.student: r for r in again}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    for student, kind in students.items():
        result = second[student]
        assert result.status == GRADED, result
        assert result.score == (result.max_score if kind == "solved" else 0), result
    journal = read_journal(root, PROBE_LAB)
    assert [(e["event"], e["student"]) for e in journal[before:]] == [
        ("started", victim),
        ("recorded", victim),
    ]
    events = {s: [e["event"] for e in journal if e["student"] == s] for s in students}
    causes = {
        s: [e["cause"] for e in journal if e["student"] == s and "cause" in e] for s in students
    }
    print(f"killed {kills}; journal: {events}; retried because: {causes}")
    assert events[victim].count("retry") == 2, events
    assert all("KilledWorker" in cause for cause in causes[victim]), causes
    for student in students:
        # recorded once; a student whose result or input data died with a worker (not
        # its own doing) is graded again without counting a try, and only so
        assert events[student].count("recorded") == 1, events
        assert events[student].count("started") == events[student].count("retry") + 1, events
    for student in set(students) - {victim}:
        assert all("lost with a worker that died" in cause for cause in causes[student]), causes
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as book:
        scores = {s.student_id: s.score for s in book.assignment_submissions(PROBE_LAB)}
    assert scores == {s: second[s].score for s in students}
    assert [row["student"] for row in _csv(root, PROBE_LAB)] == sorted(students)


def test_nbgrader_autograde_by_hand_grades_through_the_driver(tmp_path):
    root = _probe_course(tmp_path / "course", {"ada": "solved"})
    env = {k: v for k, v in os.environ.items() if k != DRIVER_VARIABLE}
    by_hand = subprocess.run(
        [sys.executable, "-m", "nbgrader", "autograde", PROBE_LAB, "--force"],
        cwd=root, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = by_hand.stdout + by_hand.stderr
    assert by_hand.returncode == 0, output
    # nbgrader's log shows the kit's row for the student, as `grade` prints it
    assert "graded by the kit's driver" in output
    assert re.search(r"\n\s*ada\s+7\s+7\s+graded\n", output), output
    # the driver graded (its journal and record), and nbgrader kept what it autograded
    assert [e["event"] for e in read_journal(root, PROBE_LAB)] == ["started", "recorded"]
    assert read_record(root, PROBE_LAB, "ada").result.status == GRADED
    assert (root / "archive" / "ada" / PROBE_LAB).is_dir()
    autograded = nbformat.read(root / "autograded" / "ada" / PROBE_LAB / PROBE_NOTEBOOK, 4)
    assert any(c.get("outputs") for c in autograded.cells)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as book:
        assert book.find_submission(PROBE_LAB, "ada").score == 7


# ---- stopped and resumed ------------------------------------------------------------------

KILLS = 4
SEED = 20260801


def _grade_command(root: Path) -> list[str]:
    return [sys.executable, "-m", "autograder", "grade", PROBE_LAB, "--root", str(root)]


def _environment(scratch: Path) -> dict[str, str]:
    scratch.mkdir(exist_ok=True)
    # Scratch courses under the test's folder: processes left behind are found by path.
    return {**os.environ, "TMPDIR": str(scratch), "PYTHONPATH": str(REPO_ROOT)}


def _no_leftovers(scratch: Path) -> list[str]:
    deadline = time.monotonic() + 15
    while (left := leftover_processes(scratch)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


def _started(root: Path) -> bool:
    return any(e["event"] == "started" for e in read_journal(root, PROBE_LAB))


def test_a_batch_killed_again_and_again_resumes_to_an_uninterrupted_batchs_grades(tmp_path):
    students = {
        "ada": "solved",
        "bob": "untouched",
        "cy": "solved",
        "dee": "corrupt",
        "eve": "untouched",
        "fay": "solved",
    }
    reference = _probe_course(tmp_path / "reference", students)
    interrupted = tmp_path / "interrupted"
    shutil.copytree(reference, interrupted)
    scratch = tmp_path / "scratch"
    env = _environment(scratch)
    command = [*_grade_command(reference), "--workers", "2"]
    subprocess.run(command, env=env, check=True, capture_output=True, timeout=600)
    expected = _state(reference, PROBE_LAB)

    command = [*_grade_command(interrupted), "--workers", "2"]
    # Ctrl-C (here SIGTERM, as a batch system sends) once grading is under way: the
    # driver stops its nbgrader runs and exits, saying how to resume.
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not _started(interrupted) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1)
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 130, out
    assert _no_leftovers(scratch) == []

    # Then killed outright, at a random moment once that run has started a student (while
    # kernels run, results come back, files and rows are written), or during the release.
    rng = random.Random(SEED)
    delays = []
    for _ in range(KILLS):
        before = len(read_journal(interrupted, PROBE_LAB))
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while len(read_journal(interrupted, PROBE_LAB)) == before and process.poll() is None:
            assert time.monotonic() < deadline, "the batch started no student in 120 s"
            time.sleep(0.2)
        if process.poll() is not None:
            break  # nothing was left to grade
        delays.append(round(rng.uniform(0, 8), 1))
        time.sleep(delays[-1])
        process.kill()
        process.wait()
        assert _no_leftovers(scratch) == [], f"left behind after a kill at {delays[-1]} s"

    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stdout + finished.stderr
    _assert_same(_state(interrupted, PROBE_LAB), expected)

    journal = read_journal(interrupted, PROBE_LAB)
    history = {s: [e["event"] for e in journal if e["student"] == s] for s in students}
    print(f"kills {delays} s after a start; each student's journal: {history}")
    for student, events in history.items():
        assert events.count("recorded") == 1, (student, events)
        assert "started" not in events[events.index("recorded") :], (student, events)
    # The interruptions hit students being graded, who were graded again later.
    assert any(events.count("started") > 1 for events in history.values()), history
