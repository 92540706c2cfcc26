"""The batch driver's own machinery, without running nbgrader: folders as data, gradebook
rows, the ledger, the worker plan, retries, resuming and the progress bar.

``tests/grading/test_batch_grading.py`` grades real submissions with it.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import dask
import nbformat
import pytest
from nbgrader.api import Gradebook
from traitlets.config import Configurable

from autograder.grading import batch, cluster, entry, sandbox
from autograder.grading.course import REPO_ROOT, alembic_head, course_config, patch_alembic_head
from autograder.grading.entry import DRIVER_VARIABLE, GradeWithDriver
from autograder.grading.grade import CRASHED, FAILED, GRADED, Result
from autograder.grading.ledger import (
    Record,
    course_digest,
    is_current,
    ledger_dir,
    log,
    read_journal,
    read_record,
    write_record,
)
from autograder.grading.rows import export_rows, import_rows, template_gradebook
from autograder.grading.scoring import RecordOutcome
from autograder.grading.task import Outcome, Task
from autograder.grading.tree import Link, digest, read_tree, sync_tree, write_tree

pytestmark = pytest.mark.filterwarnings("ignore::sqlalchemy.exc.SAWarning")  # nbgrader's own

ASSIGNMENT = "day00_lab"
POINTS = {"test_a": 2.0, "test_b": 3.0}


# ---- folders as data ------------------------------------------------------------------


def test_a_tree_keeps_links_as_links_and_never_reads_through_them(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not the student's")
    folder = tmp_path / "submission"
    (folder / "sub").mkdir(parents=True)
    (folder / "lab.ipynb").write_bytes(b"{}")
    (folder / "sub" / "notes.txt").write_bytes(b"mine")
    (folder / "stolen").symlink_to(secret)
    (folder / "everything").symlink_to(tmp_path)
    os.mkfifo(folder / "pipe")  # reading it would block the grader

    tree = read_tree(folder)

    assert tree == {
        "everything": Link(str(tmp_path)),
        "lab.ipynb": b"{}",
        "stolen": Link(str(secret)),
        "sub/notes.txt": b"mine",
    }
    copy = tmp_path / "copy"
    write_tree(tree, copy)
    assert read_tree(copy) == tree
    assert os.readlink(copy / "stolen") == str(secret)


def test_a_digest_changes_with_any_byte_name_or_link_target():
    base = {"lab.ipynb": b"{}", "link": Link("a")}
    assert digest(base) == digest(dict(reversed(base.items())))
    for changed in (
        {"lab.ipynb": b"{ }", "link": Link("a")},
        {"lab2.ipynb": b"{}", "link": Link("a")},
        {"lab.ipynb": b"{}", "link": Link("b")},
        {"lab.ipynb": b"{}", "link": b"a"},
        {"lab.ipynb": b"{}"},
    ):
        assert digest(changed) != digest(base), changed


def test_a_tree_is_never_written_outside_its_folder(tmp_path):
    folder = tmp_path / "course" / "autograded"
    for tree in (
        {"../../escaped.txt": b"x"},
        {"inner": Link(str(tmp_path)), "inner/escaped.txt": b"x"},
    ):
        with pytest.raises(ValueError, match="outside"):
            write_tree(tree, folder)
    assert not (tmp_path / "escaped.txt").exists()


def test_sync_tree_replaces_changed_files_and_removes_the_rest(tmp_path):
    folder = tmp_path / "submission"
    write_tree({"lab.ipynb": b"old", "stray.py": b"x", "deep/data.bin": b"y"}, folder)
    sync_tree({"lab.ipynb": b"new"}, folder)
    assert read_tree(folder) == {"lab.ipynb": b"new"}
    assert not (folder / "deep").exists()


# ---- gradebook rows -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab_gradebook(tmp_path_factory) -> Path:
    """A gradebook holding one assignment: notebook ``lab`` with two graded test cells
    and one solution cell, as ``nbgrader generate_assignment`` would record it. Made once
    (a new gradebook runs nbgrader's ``alembic`` script, which sits beside this Python);
    ``new_gradebook`` copies it."""
    path = tmp_path_factory.mktemp("gradebook") / "gradebook.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
        with Gradebook(f"sqlite:///{path}") as book:
            book.add_assignment(ASSIGNMENT)
            book.add_notebook("lab", ASSIGNMENT)
            for name, points in POINTS.items():
                book.add_grade_cell(name, "lab", ASSIGNMENT, max_score=points, cell_type="code")
            book.add_solution_cell("answer", "lab", ASSIGNMENT)
    return path


@pytest.fixture
def new_gradebook(lab_gradebook) -> Callable[[Path], Path]:
    def copy(path: Path) -> Path:
        shutil.copy2(lab_gradebook, path)
        return path

    return copy


def _grade_in(path: Path, student: str, scores: dict[str, float], manual: float | None = None):
    """Write a submission as nbgrader autograde does (and a manual grade, optionally)."""
    with Gradebook(f"sqlite:///{path}") as book:
        book.update_or_create_student(student, first_name=student.title())
        submission = book.update_or_create_submission(ASSIGNMENT, student)
        for notebook in submission.notebooks:
            for grade in notebook.grades:
                grade.auto_score = scores[grade.name]
                grade.manual_score = manual if grade.name == "test_a" else None
                grade.needs_manual_grade = manual is not None
            for comment in notebook.comments:
                comment.auto_comment = f"{student} answered"
        book.db.commit()


def _cells(path: Path) -> dict[tuple[str, str], tuple]:
    with Gradebook(f"sqlite:///{path}") as book:
        return {
            (submission.student_id, grade.name): (
                grade.auto_score,
                grade.manual_score,
                grade.needs_manual_grade,
            )
            for submission in book.assignment_submissions(ASSIGNMENT)
            for notebook in submission.notebooks
            for grade in notebook.grades
        }


def test_rows_move_one_student_between_gradebooks_by_name(tmp_path, new_gradebook):
    scratch = new_gradebook(tmp_path / "scratch.db")
    course = new_gradebook(tmp_path / "course.db")
    _grade_in(scratch, "ada", {"test_a": 2, "test_b": 0}, manual=1.5)
    _grade_in(scratch, "bob", {"test_a": 0, "test_b": 3})
    _grade_in(course, "ada", {"test_a": 0, "test_b": 0})
    _grade_in(course, "cy", {"test_a": 2, "test_b": 3})
    with Gradebook(f"sqlite:///{course}") as book:
        kept_id = book.find_submission(ASSIGNMENT, "ada").id

    rows = export_rows(scratch, ASSIGNMENT, "ada")
    json.dumps(rows)  # plain data: it travels to and from Dask workers and into records
    import_rows(course, ASSIGNMENT, "ada", rows)
    once = _cells(course)
    import_rows(course, ASSIGNMENT, "ada", rows)
    import_rows(course, ASSIGNMENT, "bob", export_rows(scratch, ASSIGNMENT, "bob"))

    assert once == {k: v for k, v in _cells(course).items() if k[0] != "bob"}
    assert _cells(course) == {
        **{k: v for k, v in _cells(scratch).items()},
        ("cy", "test_a"): (2, None, False),
        ("cy", "test_b"): (3, None, False),
    }
    with Gradebook(f"sqlite:///{course}") as book:
        ada = book.find_submission(ASSIGNMENT, "ada")
        assert ada.id == kept_id  # updated in place: the formgrader's links stay valid
        assert ada.score == 2 + 1.5 - 2  # the manual grade replaces test_a's auto score
        assert {c.auto_comment for nb in ada.notebooks for c in nb.comments} == {"ada answered"}
        assert book.find_student("bob").first_name == "Bob"
    assert export_rows(scratch, ASSIGNMENT, "nobody") is None


def test_a_template_gradebook_keeps_the_lab_and_drops_every_submission(tmp_path, new_gradebook):
    course = new_gradebook(tmp_path / "course.db")
    for student in ("ada", "bob"):
        _grade_in(course, student, {"test_a": 2, "test_b": 3})
    template = tmp_path / "template.db"
    template_gradebook(course, template)
    assert _cells(template) == {}
    with Gradebook(f"sqlite:///{template}") as book:
        assert [c.name for c in book.find_notebook("lab", ASSIGNMENT).grade_cells] == list(POINTS)
    import_rows(template, ASSIGNMENT, "ada", export_rows(course, ASSIGNMENT, "ada"))
    assert _cells(template) == {k: v for k, v in _cells(course).items() if k[0] == "ada"}


# ---- the ledger ------------------------------------------------------------------------------


def test_a_record_holds_under_the_handed_in_or_the_normalised_submission(tmp_path):
    result = Result("ada", GRADED, 5, 7, "renamed", 12.5, ("reads os.environ",))
    write_record(tmp_path, ASSIGNMENT, Record("ada", "as-handed-in", "normalised", "c1", result))
    record = read_record(tmp_path, ASSIGNMENT, "ada")
    assert record.result == result and record.recorded
    assert is_current(record, "as-handed-in", "c1")
    assert is_current(record, "normalised", "c1")
    assert not is_current(record, "handed-in-again", "c1")
    assert not is_current(record, "as-handed-in", "lab-changed")
    assert not is_current(None, "as-handed-in", "c1")
    (ledger_dir(tmp_path, ASSIGNMENT) / "bob.json").write_text('{"student": "bob", "subm')
    assert read_record(tmp_path, ASSIGNMENT, "bob") is None  # torn: graded again


def test_the_journal_skips_a_line_torn_by_a_kill(tmp_path):
    log(tmp_path, ASSIGNMENT, "started", "ada", digest="d1")
    with (ledger_dir(tmp_path, ASSIGNMENT) / "journal.jsonl").open("a") as journal:
        journal.write('{"time": "2026-01-01", "event": "reco')
    assert [(e["event"], e["student"]) for e in read_journal(tmp_path, ASSIGNMENT)] == [
        ("started", "ada")
    ]


def test_the_course_digest_follows_the_lab_and_the_config(tmp_path):
    (tmp_path / "solutions" / ASSIGNMENT).mkdir(parents=True)
    (tmp_path / "nbgrader_config.py").write_text("c = 1\n")
    (tmp_path / "solutions" / ASSIGNMENT / "lab.ipynb").write_text("{}")
    first = course_digest(tmp_path, ASSIGNMENT)
    (tmp_path / "solutions" / ASSIGNMENT / "lab.ipynb").write_text('{"changed": 1}')
    second = course_digest(tmp_path, ASSIGNMENT)
    (tmp_path / "nbgrader_config.py").write_text("c = 2\n")
    assert len({first, second, course_digest(tmp_path, ASSIGNMENT)}) == 3


# ---- workers and threads ------------------------------------------------------------------


def test_workers_follow_the_cores_and_the_threads_each_kernel_uses(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert batch.plan_workers(None, available=8) == (8, 1)
    assert batch.plan_workers(1, available=8) == (1, 8)
    assert batch.plan_workers(3, available=8) == (3, 2)
    assert batch.plan_workers(16, available=8) == (16, 1)
    # one student (graded again, or from the formgrader's button) gets every core
    assert batch.plan_workers(None, available=8, students=1) == (1, 8)
    assert batch.plan_workers(None, available=8, students=3) == (3, 2)
    assert batch.plan_workers(2, available=8, students=1) == (2, 4)  # as asked
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert batch.plan_workers(None, available=8) == (4, 2)
    assert batch.plan_workers(None, available=1) == (1, 2)
    assert batch.plan_workers(2, available=8) == (2, 2)
    with pytest.raises(ValueError, match="at least 1"):
        batch.plan_workers(0, available=8)


def test_workers_are_fewer_when_their_kernels_would_not_fit_the_sandboxs_process_cap(
    monkeypatch,
):
    """Sandboxed kernels run as one user, whose processes and threads the sandbox caps
    all together: kernels beyond the cap would fail to start threads, and crash."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    per_kernel = batch.KERNEL_TASKS
    assert batch.plan_workers(None, available=2, process_cap=64) == (2, 1)
    assert batch.plan_workers(None, available=8, process_cap=64) == (3, 2)
    assert batch.plan_workers(16, available=16, process_cap=128) == (7, 2)
    for cap in (64, 128, 256):
        for cores in (1, 2, 8, 16, 32):
            workers, threads = batch.plan_workers(None, available=cores, process_cap=cap)
            assert workers * (per_kernel + threads) <= cap or workers == 1
    assert batch.plan_workers(None, available=4, process_cap=10) == (1, 4)  # never none


def test_kernels_share_the_process_cap_only_when_they_share_a_user(monkeypatch):
    """As root each kernel runs as a user of its own (from its launcher's pid), and its cap
    is its own: a worker may grade a student per core. Otherwise the kernels run as the
    grader, and a worker checked for more kernels than fit under one cap is told so."""
    assert sandbox.kernel_user(41) != sandbox.kernel_user(42)
    assert sandbox.is_kernel_user(sandbox.kernel_user(4_194_304 - 1))
    assert not sandbox.is_kernel_user(0) and not sandbox.is_kernel_user(65534)
    worker = SimpleNamespace(state=SimpleNamespace(nthreads=16))
    fingerprint = cluster.kit_fingerprint()

    def cap_problems() -> list[str]:
        found = cluster.check_worker(True, {}, fingerprint, dask_worker=worker)
        return [problem for problem in found if "processes and threads" in problem]

    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    assert sandbox.shared_process_cap() is None
    assert cap_problems() == []
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert sandbox.shared_process_cap() == sandbox.MAX_PROCESSES
    (problem,) = cap_problems()
    fits, _ = batch.plan_workers(16, process_cap=sandbox.MAX_PROCESSES)
    assert f"--nthreads {fits}`" in problem and fits < 16


def test_the_sandbox_tells_the_kernel_how_many_threads_it_may_use(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("MKL_NUM_THREADS", "1")
    monkeypatch.setenv("LABKIT_SECRET_TOKEN", "x")
    env = sandbox.kernel_env()
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert "LABKIT_SECRET_TOKEN" not in env


def test_the_sandbox_passes_the_submissions_language(monkeypatch):
    monkeypatch.setenv("LABKIT_LANG", "ko")
    assert sandbox.kernel_env()["LABKIT_LANG"] == "ko"


# ---- the coordinator, with tasks that do not run nbgrader -----------------------------


class FakeGrading:
    """Stands in for ``task.run_task``: scores from the notebook's bytes (b"2,3" is 2 and 3
    points), raises for the students in ``raises`` (a dead worker, as the coordinator
    sees it), and counts calls per student."""

    def __init__(self, raises: dict[str, int] | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.raises = raises or {}  # student -> how many first calls raise

    def __call__(self, task: Task, course, stopping=None) -> Outcome:
        student = task.student
        self.calls[student] = self.calls.get(student, 0) + 1
        if self.calls[student] <= self.raises.get(student, 0):
            raise ConnectionResetError(f"worker lost while grading {student}")
        notebook = task.submission["lab.ipynb"]
        a, b = (float(x) for x in notebook.split(b","))
        rows = {
            "student": {"first_name": None, "last_name": None, "email": None, "lms_user_id": None},
            "timestamp": None,
            "extension": None,
            "notebooks": {
                "lab": {
                    "flagged": False,
                    "late_submission_penalty": None,
                    "grades": {"test_a": [a, None, None, False], "test_b": [b, None, None, False]},
                    "comments": {"answer": [None, None]},
                }
            },
        }
        files = {
            "autograded": {"lab.ipynb": notebook},
            "feedback": {"lab.html": b"<p>" + notebook + b"</p>"},
            "archive": {"20260101-000000/lab.ipynb": notebook},
            "quarantine": {},
            "submitted": task.submission,
        }
        result = Result(student, GRADED, seconds=1.0)
        return Outcome(result, rows, task.digest, files, host="test")


@pytest.fixture
def course(tmp_path, monkeypatch, new_gradebook) -> Path:
    """A course folder with the lab's gradebook and three submissions; nbgrader is
    never run (the release is taken as done)."""
    root = tmp_path / "course"
    (root / "solutions" / ASSIGNMENT).mkdir(parents=True)
    (root / "notebooks" / ASSIGNMENT).mkdir(parents=True)
    (root / "nbgrader_config.py").write_text("c = get_config()  # noqa: F821\n")
    new_gradebook(root / "gradebook.db")
    for student, answer in {"ada": b"2,3", "bob": b"0,3", "cy": b"2,0"}.items():
        hand_in(root, student, answer)
    monkeypatch.setattr(batch.grade, "generate_release", lambda *args: None)
    monkeypatch.setattr(batch.grade, "notebook_names", lambda *args: ["lab.ipynb"])
    return root


def hand_in(root: Path, student: str, notebook: bytes) -> None:
    folder = root / "submitted" / student / ASSIGNMENT
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "lab.ipynb").write_bytes(notebook)


def _grade(root: Path, **options) -> dict[str, Result]:
    results = batch.grade_batch(ASSIGNMENT, root, use_sandbox=False, workers=2, **options)
    return {r.student: r for r in results}


def test_each_student_is_merged_recorded_and_not_graded_again(course, monkeypatch):
    fake = FakeGrading()
    monkeypatch.setattr(batch, "run_task", fake)

    results = _grade(course)

    assert {s: (r.status, r.score, r.max_score) for s, r in results.items()} == {
        "ada": (GRADED, 5, 5),
        "bob": (GRADED, 3, 5),
        "cy": (GRADED, 2, 5),
    }
    assert (course / "feedback" / "bob" / ASSIGNMENT / "lab.html").read_bytes() == b"<p>0,3</p>"
    assert (course / "autograded" / "cy" / ASSIGNMENT / "lab.ipynb").read_bytes() == b"2,0"
    assert (course / "archive" / "ada" / ASSIGNMENT / "20260101-000000" / "lab.ipynb").exists()
    assert sorted(p.stem for p in ledger_dir(course, ASSIGNMENT).glob("*.json")) == [
        "ada",
        "bob",
        "cy",
    ]

    again = _grade(course)
    assert fake.calls == {"ada": 1, "bob": 1, "cy": 1}  # nothing changed: nothing graded
    assert again == results  # the table and CSV hold the recorded results

    hand_in(course, "bob", b"2,3")  # bob hands in again
    changed = _grade(course)
    assert fake.calls == {"ada": 1, "bob": 2, "cy": 1}
    assert changed["bob"].score == 5
    csv_rows = (course / f"grades-{ASSIGNMENT}.csv").read_text().splitlines()
    assert len(csv_rows) == 4  # a header and one row per student: nobody counted twice
    archived = course / "archive" / "bob" / ASSIGNMENT
    assert sorted(p.name for p in archived.iterdir()) == ["20260101-000000", "20260101-000000-2"]

    _grade(course, resume=False)
    assert fake.calls == {"ada": 2, "bob": 3, "cy": 2}


def test_a_task_that_does_not_come_back_is_retried_once_then_failed(course, monkeypatch):
    fake = FakeGrading(raises={"bob": 99, "cy": 1})
    monkeypatch.setattr(batch, "run_task", fake)

    results = _grade(course)

    assert results["cy"].status == GRADED and fake.calls["cy"] == 2
    assert results["bob"].status == FAILED and fake.calls["bob"] == 2
    assert "did not finish in 2 tries" in results["bob"].detail
    assert "ConnectionResetError: worker lost while grading bob" in results["bob"].detail
    assert read_record(course, ASSIGNMENT, "bob") is None  # not recorded: the next run retries
    events = [(e["event"], e["student"]) for e in read_journal(course, ASSIGNMENT)]
    assert events.count(("retry", "bob")) == 2 and events.count(("retry", "cy")) == 1

    fake.raises = {}
    assert _grade(course)["bob"].status == GRADED
    assert fake.calls == {"ada": 1, "bob": 3, "cy": 2}


def test_named_students_are_graded_again_and_listed_with_the_recorded_ones(course, monkeypatch):
    fake = FakeGrading()
    monkeypatch.setattr(batch, "run_task", fake)
    _grade(course)
    hand_in(course, "dee", b"1,1")  # handed in since: not graded, not listed
    results = _grade(course, only=["bob"])
    assert fake.calls == {"ada": 1, "bob": 2, "cy": 1}
    assert list(results) == ["ada", "bob", "cy"]
    assert results["bob"].status == GRADED and results["bob"].score == 3
    with (course / f"grades-{ASSIGNMENT}.csv").open() as handle:
        assert [row["student"] for row in csv.DictReader(handle)] == ["ada", "bob", "cy"]
    with pytest.raises(batch.GradingError, match="for zed"):
        _grade(course, only=["zed"])
    assert fake.calls == {"ada": 1, "bob": 2, "cy": 1}


def test_results_that_cannot_be_written_fail_that_student_only(course, monkeypatch):
    fake = FakeGrading()
    monkeypatch.setattr(batch, "run_task", fake)
    real_import = batch.import_rows

    def import_rows(gradebook, assignment, student, rows):
        if student == "bob":
            raise OSError("disk full")
        real_import(gradebook, assignment, student, rows)

    monkeypatch.setattr(batch, "import_rows", import_rows)
    results = _grade(course)
    assert results["bob"].status == FAILED and "OSError: disk full" in results["bob"].detail
    assert results["ada"].status == results["cy"].status == GRADED
    assert read_record(course, ASSIGNMENT, "bob") is None  # graded again by the next run
    monkeypatch.setattr(batch, "import_rows", real_import)
    assert _grade(course)["bob"].status == GRADED
    assert fake.calls == {"ada": 1, "bob": 2, "cy": 1}


def test_the_progress_bar_shows_done_of_total_and_counts_by_status(course, monkeypatch, capsys):
    monkeypatch.setattr(batch, "run_task", FakeGrading(raises={"cy": 99}))
    _grade(course, progress=True)
    bar = capsys.readouterr().err
    assert "3/3" in bar
    assert "failed 1, graded 2" in bar


def test_an_unreachable_cluster_says_how_to_start_one(course, monkeypatch):
    monkeypatch.setattr(batch, "run_task", FakeGrading())
    with (
        dask.config.set({"distributed.comm.timeouts.connect": "1s"}),
        pytest.raises(batch.GradingError, match="dask scheduler"),
    ):
        batch.grade_batch(ASSIGNMENT, course, use_sandbox=False, cluster="tcp://127.0.0.1:9")
    assert read_journal(course, ASSIGNMENT) == []


def test_a_cluster_task_goes_to_a_live_worker_with_a_thread_free():
    """Never behind another student on one worker, never to a worker that left."""
    from autograder.grading.cluster import ClusterRunner

    runner = ClusterRunner.__new__(ClusterRunner)  # no scheduler: only the choice
    runner.fit = {"tcp://a": 1, "tcp://b": 1, "tcp://c": 2}
    runner._alive = {"tcp://a", "tcp://b", "tcp://c"}
    runner._pinned = {"f1": ["tcp://c"], "f2": ["tcp://c"], "f3": ["tcp://b"]}
    assert runner._least_busy() == "tcp://a"
    runner._alive.discard("tcp://a")  # it died; its nanny brings it back under a new address
    runner._pinned.pop("f1")
    assert runner._least_busy() == "tcp://c"
    runner._pinned["f4"] = ["tcp://c"]
    runner._alive = {"tcp://b", "tcp://c", "tcp://a2"}
    runner.fit["tcp://a2"] = 1
    assert runner._least_busy() == "tcp://a2"


# ---- autograde only through the driver ----------------------------------------------------


def test_only_the_drivers_nbgrader_runs_execute_notebooks(monkeypatch):
    monkeypatch.delenv(DRIVER_VARIABLE, raising=False)
    outside = course_config().Autograde
    assert outside.sanitize_preprocessors == outside.autograde_preprocessors == [GradeWithDriver]
    monkeypatch.setenv(DRIVER_VARIABLE, "1")
    driver = course_config().Autograde
    assert driver.autograde_preprocessors[0] is RecordOutcome  # executes, in the sandbox
    # nbgrader's own, with the edition's words put back into the cells it restores
    sanitize = [p.__name__ for p in driver.sanitize_preprocessors]
    assert sanitize[sanitize.index("OverwriteCells") + 1] == "RestoreEditionText"
    assert GradeWithDriver not in driver.sanitize_preprocessors
    assert GradeWithDriver not in driver.autograde_preprocessors
    # outside an nbgrader run it names the kit's command
    with pytest.raises(RuntimeError, match="python -m autograder grade ASSIGNMENT"):
        GradeWithDriver().preprocess(nbformat.v4.new_notebook(), {})


def test_the_course_config_loads_without_torch():
    """Every nbgrader run (one per student, and feedback) loads the course config: it must
    not import torch and matplotlib, seconds each time, for steps that never use them."""
    code = (
        "import sys; from traitlets.config.loader import PyFileConfigLoader; "
        f"PyFileConfigLoader('nbgrader_config.py', path={str(REPO_ROOT)!r}).load_config(); "
        "print(sorted(m for m in ('torch', 'matplotlib', 'torchvision') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), DRIVER_VARIABLE: "1"}
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "[]", run.stdout


def test_a_new_gradebook_gets_alembics_head_without_an_alembic_process(tmp_path, monkeypatch):
    """nbgrader stamps each gradebook it creates with the migrations' head, which it asks
    an ``alembic heads`` process for (1.7 s of CPU); the kit's nbgrader runs read it from
    the migration scripts instead, and fall back to that process when they are unclear."""
    import nbgrader.api
    import nbgrader.dbutil

    from autograder.grading.course import _NBGRADER_MAIN

    monkeypatch.setattr(nbgrader.api, "get_alembic_version", nbgrader.api.get_alembic_version)
    scripts = str(Path(sys.executable).parent)  # where nbgrader's alembic script is
    monkeypatch.setenv("PATH", os.pathsep.join([scripts, os.environ.get("PATH", "")]))
    asked = nbgrader.api.get_alembic_version()  # the alembic process, as nbgrader asks it
    assert alembic_head() == asked
    assert "patch_alembic_head()" in _NBGRADER_MAIN

    calls = []
    monkeypatch.setattr(nbgrader.api.sp, "check_output", lambda *a, **k: calls.append(a) or b"")
    patch_alembic_head()
    with Gradebook(f"sqlite:///{tmp_path / 'gradebook.db'}"):
        pass
    with sqlite3.connect(tmp_path / "gradebook.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(asked,)]
    assert calls == []

    versions = tmp_path / "alembic" / "versions"  # two heads: unclear, so alembic is asked
    versions.mkdir(parents=True)
    for name, parent in (("aaa", "None"), ("bbb", "'aaa'"), ("ccc", "'aaa'")):
        (versions / f"{name}.py").write_text(f"revision = '{name}'\ndown_revision = {parent}\n")
    monkeypatch.setattr(nbgrader.dbutil, "ALEMBIC_DIR", str(versions.parent))
    assert alembic_head() is None
    nbgrader.api.get_alembic_version()
    assert len(calls) == 1 and "heads" in calls[0][0]


def _passes(converter: Configurable, student: str) -> list:
    """nbgrader's two passes over the student's notebook, with nbgrader's resources; the
    converter owns the exporter, which owns the preprocessors."""
    resources = {"nbgrader": {"assignment": ASSIGNMENT, "student": student, "notebook": "lab"}}
    submitted = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import os")])
    exporter = Configurable(parent=converter)
    return [
        GradeWithDriver(parent=exporter).preprocess(submitted, resources)[0]
        for _ in ("sanitize", "autograde")
    ]


def test_outside_the_driver_nbgrader_writes_what_the_driver_autograded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nbgrader converts in the course root
    graded = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("graded")])
    calls = []

    def driver_result(assignment, student, root):
        calls.append((assignment, student, root))
        if student == "ada":
            folder = root / "autograded" / student / assignment
            folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(graded, folder / "lab.ipynb")
            return Result(student, GRADED, 7.0, 7.0, flags=("the guard saw a change",))
        if student == "bob":
            return Result(student, CRASHED, detail="DeadKernelError: Kernel died")
        raise RuntimeError("the kit's driver could not grade cy: disk full")

    monkeypatch.setattr(entry, "driver_result", driver_result)
    converter = Configurable()
    assert _passes(converter, "ada") == [graded, graded]
    with pytest.raises(
        RuntimeError, match=re.escape("bob: crashed (DeadKernelError: Kernel died); it autograded")
    ):
        _passes(converter, "bob")
    with pytest.raises(RuntimeError, match="could not grade cy: disk full"):
        _passes(converter, "cy")
    # the driver graded each student once, for both passes (and any other notebook);
    # the next nbgrader run (the button pressed again) grades again
    assert calls == [(ASSIGNMENT, s, tmp_path) for s in ("ada", "bob", "cy")]
    assert _passes(Configurable(), "ada") == [graded, graded]
    assert len(calls) == 4
