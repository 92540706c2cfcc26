"""Grading survives hostile and broken submissions.

The corpus (``tests/grading/hostile/``, one module per category) holds broken, tampering,
cheating, corrupt and sandbox-probing submissions of the fast probe lab, submissions that
attack the feedback or whoever reads it, in-process attacks the kernel's guard must catch,
and valid ones written in different styles. It is graded once, sandboxed, with short caps,
while a watcher records what kernels write on this machine; every entry is then checked
against what it expects. The valid submissions and a few others are graded a second time in
the same course folder: nothing may move.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from nbconvert.exporters import NotebookExporter
from nbgrader.api import Gradebook

from autograder.grading import sandbox
from autograder.grading.batch import cores
from autograder.grading.course import (
    REPO_ROOT,
    assignments,
    generate_release,
    make_course_root,
    notebook_names,
)
from autograder.grading.feedback import WITHHELD, KeepCheckReports, WithholdLeakedFeedback
from autograder.grading.grade import GRADED, TAMPERED, format_results, grade_assignment, last_error
from autograder.grading.preflight import normalise, prepare_submission
from autograder.grading.samples import answered
from autograder.grading.scan import scan_notebook
from tests.grading.hostile import (
    ASSIGNMENT,
    CATEGORIES,
    CORPUS,
    NOTEBOOK,
    PROBE,
    HostWrites,
    Lab,
    LoopbackServer,
    Outcome,
    corpus_table,
    false_fail,
    false_pass,
    hidden_lines,
    judge,
    leftover_processes,
    load_lab,
    plant_outside,
    processes_after_cells,
    read_outcome,
    write_corpus,
)

CELL_TIMEOUT_S = "12"  # per cell: the infinite loop hits it, not the 120 s default
SUBMISSION_TIMEOUT_S = 45  # per submission: a probe submission takes about 10 s
REGRADED = (
    "valid-solution",
    "valid-restyled",
    "valid-colab-extras",
    "exec-nan-loss",
    "corrupt-truncated-json",
)
# Every kind of submission the corpus must cover, and the entry that covers it.
REQUIRED = {
    "infinite loop": "exec-infinite-loop",
    "a loop that swallows KeyboardInterrupt": "exec-swallows-interrupt",
    "os._exit": "exec-os-exit",
    "sys.exit": "exec-sys-exit",
    "memory bomb": "exec-memory-bomb",
    "fork bomb": "exec-fork-bomb",
    "100,000 printed lines": "exec-print-flood",
    "NaN loss": "exec-nan-loss",
    "deleted test cells": "tamper-deleted-tests",
    "edited test cells": "tamper-edited-test",
    "copied test cells": "tamper-copied-test",
    "metadata-stripped test cells": "tamper-stripped-metadata",
    "a changed schema_version": "tamper-metadata-edited",
    "skip-execution tags": "tamper-skip-tags",
    "an IPython input transformer": "tamper-transformer-hidden",
    "always-equal objects": "cheat-always-equal",
    "monkeypatched torch": "cheat-torch-patch",
    "summary functions": "cheat-fake-summary",
    "checker functions": "cheat-checker-rebind",
    "reading solutions/ or the gradebook": "cheat-read-grading-files",
    "writing the gradebook": "cheat-write-gradebook",
    "network access": "cheat-network",
    "detecting the grading run": "cheat-detect-grading",
    "planted pickles": "cheat-planted-pickle",
    "a student's own torchsummary.py": "cheat-shadow-modules",
    "truncated JSON": "corrupt-truncated-json",
    "a wrong kernel": "corrupt-wrong-kernel",
    "an empty notebook": "corrupt-empty-notebook",
    "a wrong file name": "corrupt-wrong-name",
    "a score forged with an execute_result": "inproc-displayhook-score",
    "a trace function that rewrites the checks' locals": "inproc-trace-rewrites-locals",
    "a patch after a '#' inside a string": "inproc-hash-in-string",
    "frame globals reached from a forward()": "inproc-frame-globals",
    "InteractiveShell.instance() and an AST transformer": "inproc-shell-ast-transformer",
    "the history manager": "inproc-history-manager",
    "a line magic (%xmode Verbose)": "inproc-xmode-verbose",
    "a locked cell deleted and retyped": "inproc-locked-cell-retyped",
    "a TODO answered with the library's own code": "inproc-library-answer",
    "a student id with *": "names-glob*",
    "a student id with [...]": "names-[ab]",
    "a student id with a trailing space": "names-trailing-space ",
    "hidden tests printed with zero-width characters": "feedback-hidden-zero-width",
    "hidden tests displayed as HTML entities": "feedback-hidden-html-entities",
    "hidden tests raised with ANSI codes": "feedback-hidden-ansi",
    "a test cell flooded with student output": "feedback-chatty-test",
    "a forged pass line": "feedback-forged-pass-line",
    "<script> in a markdown cell": "feedback-script",
    "<iframe src=file:...> in an HTML output": "feedback-iframe-file",
    "a <style> hiding the failing test behind a fake score": "feedback-style-fake-score",
    "an onerror= handler on an img": "feedback-img-onerror",
    "1.2 GB written into the kernel's runtime folder": "sandbox-fill-runtime",
    "reading an earlier student's files": "sandbox-read-earlier",
    "hundreds of MB of output": "sandbox-output-flood",
    "processes from a later hook or a thread": "sandbox-escaping-processes",
    "a submission slow to scan": "sandbox-slow-scan",
    "a file elsewhere on the machine": "sandbox-read-planted",
}


def _cell_scores(root: Path) -> dict[str, dict[str, float]]:
    """Every student's score per graded cell, straight from the gradebook."""
    scores: dict[str, dict[str, float]] = {}
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        for submission in gradebook.assignment_submissions(ASSIGNMENT):
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    scores.setdefault(submission.student_id, {})[grade.name] = grade.score
    return scores


@dataclass
class Graded:
    """The corpus graded once: its course folder, each entry's outcome, and what the
    grader's network and disk saw meanwhile."""

    root: Path
    outcomes: dict[str, Outcome]
    server: LoopbackServer
    writes: HostWrites


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Iterator[Graded]:
    """The corpus, written to a fresh course folder and graded once, sandboxed."""
    why_not = sandbox.available()
    if why_not:
        pytest.skip(f"the grading sandbox cannot run here: {why_not}")
    root = make_course_root(tmp_path_factory.mktemp("hostile"), [ASSIGNMENT], source=PROBE)
    scratch = tmp_path_factory.mktemp("grader-tmp")  # the driver's work folder goes here
    server, outside = LoopbackServer(), plant_outside()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("LABKIT_CELL_TIMEOUT", CELL_TIMEOUT_S)
        env.setattr(tempfile, "tempdir", str(scratch))
        generate_release(ASSIGNMENT, root)
        write_corpus(load_lab(root, server.port, outside))
        writes = HostWrites([scratch, root, outside.parent, Path("/dev/shm")])
        try:
            # Single-thread kernels, one more than the cores: several entries mostly wait
            # (a cell that sleeps until its cap, a fork bomb held until the cell ends), so
            # the corpus took 155 to 164 s this way against 192 to 198 s with one per core,
            # side by side. Each kernel runs as a user of its own, so the fork bomb's
            # neighbours still start.
            results = grade_assignment(
                ASSIGNMENT,
                root,
                timeout=SUBMISSION_TIMEOUT_S,
                use_sandbox=True,
                workers=cores() + 1,
            )
        finally:
            writes.close()
    server.close()
    print(format_results(results))
    by_name = {r.student: r for r in results}
    outcomes = {e.name: read_outcome(e, root, by_name) for e in CORPUS}
    print(corpus_table(list(outcomes.values())))
    yield Graded(root, outcomes, server, writes)
    shutil.rmtree(outside, ignore_errors=True)


def _without_hidden_tests(source: str) -> str:
    kept, hidden = [], False
    for line in source.splitlines():
        hidden = (hidden or "BEGIN HIDDEN TESTS" in line) and "END HIDDEN TESTS" not in line
        if not hidden and "HIDDEN TESTS" not in line:
            kept.append(line)
    return "\n".join(kept)


def _offline_lab() -> Lab:
    """The probe's source, hidden tests cut, standing in for its release (no nbgrader run):
    enough to build and scan the entries."""
    source = nbformat.read(PROBE / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    release = copy.deepcopy(source)
    for cell in release.cells:
        cell.source = _without_hidden_tests(cell.source)
    return Lab(source, release, Path("/nonexistent/course"), 9)


def test_corpus_covers_every_kind_of_submission():
    names = [e.name for e in CORPUS]
    assert len(names) == len(set(names)), "entry names must be unique"
    bad = [e for e in CORPUS if e.category != "valid"]
    valid = [e for e in CORPUS if e.category == "valid"]
    assert len(bad) >= 30 and len(valid) >= 3, (len(bad), len(valid))
    missing = {kind: name for kind, name in REQUIRED.items() if name not in names}
    assert not missing, f"no corpus entry for: {missing}"
    # Every listed category module holds entries; a new category needs listing only there.
    assert {e.category for e in CORPUS} == set(CATEGORIES)
    assert {
        "valid",
        "execution",
        "tampering",
        "cheating",
        "corrupt",
        "feedback",
        "inprocess",
        "sandbox",
    } <= set(CATEGORIES)


@pytest.mark.parametrize(
    "entry", [e for e in CORPUS if e.expected.flagged is not None], ids=lambda e: e.name
)
def test_scan_flags_cheats_and_never_valid_code(entry):
    built = entry.build(_offline_lab()).files.get(NOTEBOOK)
    if not isinstance(built, nbformat.NotebookNode):
        pytest.skip("not a notebook")
    release = _offline_lab().release
    normalise(built, release)  # as the driver scans it: after preflight
    flags = scan_notebook(built, release=release)
    if entry.expected.flagged is False:
        assert not flags, f"{entry.name} ({entry.what}) flagged: {flags}"
    elif not entry.expected.flag:  # with ``flag``, the driver raises the flag, not the scan
        assert flags, f"{entry.name}: {entry.what}: not flagged"


@pytest.mark.parametrize("assignment", assignments())
def test_scan_never_flags_a_labs_own_solution(assignment):
    """Every lab's solution, submitted as a student would, is not flagged for review."""
    for name in notebook_names(assignment):
        release_path = REPO_ROOT / "notebooks" / assignment / name
        if not release_path.exists():
            pytest.skip(f"{assignment} has no release yet")
        release = nbformat.read(release_path, as_version=4)
        source = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
        assert scan_notebook(answered(source, release), release=release) == []


@pytest.mark.slow
@pytest.mark.parametrize("name", [e.name for e in CORPUS])
def test_entry_graded_as_expected(graded, name):
    outcome = graded.outcomes[name]
    problems = judge(outcome, hidden_lines(graded.root))
    what = f"{name} ({outcome.entry.category}: {outcome.entry.what})"
    assert not problems, f"{what}: expected {outcome.entry.summary}, got {outcome.actual}:\n- " + (
        "\n- ".join(problems)
    )


@pytest.mark.slow
def test_no_false_passes_and_no_false_fails(graded):
    outcomes = graded.outcomes
    passes = [o.entry.name for o in outcomes.values() if false_pass(o)]
    fails = [o.entry.name for o in outcomes.values() if false_fail(o)]
    assert not passes, f"cheats credited unflagged: {passes}"
    assert not fails, f"valid submissions without full marks or flagged: {fails}"


@pytest.mark.slow
def test_status_is_recorded_beside_every_score(graded):
    root, outcomes = graded.root, graded.outcomes
    csv = (root / f"grades-{ASSIGNMENT}.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("student,status,score")
    rows = {line.split(",")[0]: line.split(",") for line in csv[1:]}
    assert set(rows) == set(outcomes)
    for name, outcome in outcomes.items():
        if outcome.result.status != GRADED:
            assert rows[name][2] == "", f"{name}: {outcome.result.status} but a score in the CSV"


@pytest.mark.slow
def test_nothing_reaches_the_graders_network(graded):
    assert graded.server.connections == 0


@pytest.mark.slow
def test_nothing_is_written_on_the_graders_disk_outside_the_students_folders(graded):
    """The filler wrote what it could, the others their files for the next student:
    none of it reached this machine's disk."""
    assert graded.writes.bytes == 0, sorted(graded.writes.sizes.items())[:5]


@pytest.mark.slow
def test_no_process_lives_on_after_its_cell(graded):
    counts = {n: processes_after_cells(o) for n, o in graded.outcomes.items()}
    counted = {name: count for name, count in counts.items() if count is not None}
    assert counted == {"sandbox-escaping-processes": 0}


@pytest.mark.slow
def test_no_process_is_left_behind(graded):
    root = graded.root
    deadline = time.monotonic() + 10
    while (left := leftover_processes(root)) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, "processes left after grading:\n" + "\n".join(left)


@contextlib.contextmanager
def _only(root: Path, names: tuple[str, ...]) -> Iterator[None]:
    """Hold back every submission but ``names`` (grade_assignment grades all it finds)."""
    held = root / "held-back"
    held.mkdir()
    for path in (root / "submitted").iterdir():
        if path.name not in names:
            shutil.move(path, held / path.name)
    try:
        with pytest.MonkeyPatch.context() as env:
            env.setenv("LABKIT_CELL_TIMEOUT", CELL_TIMEOUT_S)
            yield
    finally:
        for path in held.iterdir():
            shutil.move(path, root / "submitted" / path.name)
        held.rmdir()


@pytest.mark.slow
def test_regrading_changes_no_score(graded):
    """Grade a few students again, the others held back: no score may move, theirs included."""
    root, outcomes = graded.root, graded.outcomes
    before = _cell_scores(root)
    with _only(root, REGRADED):
        again = grade_assignment(
            ASSIGNMENT, root, timeout=SUBMISSION_TIMEOUT_S, feedback=False, use_sandbox=True
        )
    first = {name: (outcomes[name].result.status, outcomes[name].result.score) for name in REGRADED}
    assert {r.student: (r.status, r.score) for r in again} == first
    after = _cell_scores(root)
    moved = {s: (before.get(s), after.get(s)) for s in set(before) | set(after)}
    assert not {s: m for s, m in moved.items() if m[0] != m[1]}, "scores moved on regrading"


@pytest.mark.slow
def test_gradebook_written_without_the_sandbox_is_restored(graded):
    """The driver's own guard, behind the sandbox: run unsandboxed, the gradebook writer
    gives everyone 100; the driver restores the gradebook and reports it tampered."""
    root = graded.root
    before = _cell_scores(root)
    with _only(root, ("cheat-write-gradebook",)):
        (result,) = grade_assignment(
            ASSIGNMENT, root, timeout=SUBMISSION_TIMEOUT_S, feedback=False, use_sandbox=False
        )
    assert result.status == TAMPERED, result
    assert "restored" in result.detail
    assert _cell_scores(root) == before


# ---- what the corpus revealed, pinned by fast tests --------------------------------------


def _cell(source: str, cell_id: str, **nbgrader) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.id = cell_id
    if nbgrader:
        cell.metadata["nbgrader"] = {"schema_version": 3, "solution": False, "task": False}
        cell.metadata["nbgrader"].update(nbgrader)
    return cell


def _export(nb: nbformat.NotebookNode, *preprocessors: type) -> nbformat.NotebookNode:
    exporter = NotebookExporter()
    for preprocessor in preprocessors:
        exporter.register_preprocessor(preprocessor)
    return nbformat.reads(exporter.from_notebook_node(nb)[0], as_version=4)


def test_feedback_preprocessors_run_when_registered_as_classes():
    """nbconvert runs a preprocessor only if enabled; by class, ours once was not."""
    source = 'assert ok\nprint("✔ ok")\n### BEGIN HIDDEN TESTS\nassert secret_answer() == 42\n'
    test = _cell(source + "### END HIDDEN TESTS", "t", grade=True, grade_id="t", points=1)
    test.outputs = [nbformat.v4.new_output("stream", name="stdout", text="chatter\n✔ ok\n")]
    nb = nbformat.v4.new_notebook(cells=[test])
    assert _export(nb, KeepCheckReports).cells[0].outputs[0].text == "✔ ok\n"
    test.outputs[0].text += "assert secret_answer() == 42\n"
    assert _export(nb, WithholdLeakedFeedback).cells[0].source == WITHHELD


def test_preflight_puts_back_grade_cells_deleted_or_stripped():
    """nbgrader's add_missing_cells raises KeyError when the cell before a deleted grade
    cell is a locked cell or gone too; preflight puts such cells back itself."""
    release = nbformat.v4.new_notebook(
        cells=[
            _cell("def f(): ...", "answer", grade=False, grade_id="answer", solution=True),
            _cell("assert f()", "test-f", grade=True, grade_id="test_f", locked=True, points=1),
            _cell("run = f()", "train", grade=False, grade_id="train", locked=True),
            _cell("assert run", "test-run", grade=True, grade_id="test_run", locked=True, points=1),
        ]
    )
    student = copy.deepcopy(release)
    del student.cells[3]  # the test after the locked cell
    student.cells[1].metadata.pop("nbgrader")  # stripped, but still its cell id
    changes = normalise(student, release)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in student.cells] == [
        "answer",
        "test_f",
        "train",
        "test_run",
    ], changes
    empty = nbformat.v4.new_notebook()
    normalise(empty, release)
    # every locked cell comes back too: the cell that trains what a test inspects
    assert [c.metadata["nbgrader"]["grade_id"] for c in empty.cells] == [
        "test_f",
        "train",
        "test_run",
    ]


def test_preflight_puts_back_a_deleted_locked_cell_before_a_retyped_one():
    release = nbformat.v4.new_notebook(
        cells=[
            _cell("def f(): ...", "answer", grade=False, grade_id="answer", solution=True),
            _cell("run = f()", "train", grade=False, grade_id="train", locked=True),
            _cell("assert run", "test-run", grade=True, grade_id="test_run", locked=True, points=1),
        ]
    )
    student = copy.deepcopy(release)
    student.cells[1] = nbformat.v4.new_code_cell("run = True  # retyped")
    changes = normalise(student, release)
    assert "deleted locked cell 'train' put back" in changes
    assert [c.source for c in student.cells] == [
        "def f(): ...",
        "run = f()",
        "run = True  # retyped",
        "assert run",
    ]


def test_preflight_refuses_a_notebook_that_is_a_link(tmp_path):
    release = tmp_path / "notebooks" / "lab"
    release.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), release / NOTEBOOK)
    folder = tmp_path / "submitted" / "mallory" / "lab"
    folder.mkdir(parents=True)
    (folder / NOTEBOOK).symlink_to(release / NOTEBOOK)
    assert "is a link" in prepare_submission(folder, release, tmp_path).error


def test_sandbox_working_folder_is_a_private_capped_tmpfs(tmp_path):
    """Whatever the kernel writes in its folder (a link to the gradebook, for nbgrader to
    chmod or copy into the feedback as root) never reaches the course folder."""
    (tmp_path / NOTEBOOK).write_text("{}", encoding="utf-8")
    (tmp_path / "data.csv").write_text("1,2\n", encoding="utf-8")
    config = {"hidden": [], "readable": [], "runtime": str(tmp_path / "runtime")}
    command = sandbox.bwrap_command(config, tmp_path, ["python"], {})
    joined = " ".join(command)
    assert f"--size {sandbox.SCRATCH_BYTES} --tmpfs {tmp_path} " in joined
    assert f"--size {sandbox.SCRATCH_BYTES} --tmpfs /tmp " in joined
    assert f"--ro-bind {tmp_path / 'data.csv'} {tmp_path / 'data.csv'}" in joined
    assert NOTEBOOK not in joined  # the notebook holds the hidden tests
    assert f"--bind {tmp_path} {tmp_path}" not in joined


def test_driver_reports_the_exception_not_nbgraders_last_line():
    log = (
        "    KeyError: 'train_tiny_net'\n[AutogradeApp | ERROR] There was an error processing\n"
        "[AutogradeApp | ERROR] Please see the the above traceback for details"
    )
    assert last_error(log) == "KeyError: 'train_tiny_net'"


def test_scan_tells_rebinding_from_keyword_arguments_and_locals():
    release = nbformat.v4.new_notebook(
        cells=[
            _cell("import torch\nfrom autograder.checks.tables import check_summary", "setup"),
            _cell("history = fit()", "train", grade=False, grade_id="train", locked=True),
            _cell(
                "assert not check_summary(history)",
                "test",
                grade=True,
                grade_id="test",
                locked=True,
                points=1,
            ),
        ]
    )
    valid = copy.deepcopy(release)
    valid.cells.insert(0, _cell("history = []  # before training: not what the test reads", "a"))
    valid.cells.insert(
        3,
        _cell(
            "import torch\nmodel.eval()\nplot_history(\n    history=history,\n)\n\n\n"
            "def again():\n    history = fit()\n    return history",
            "b",
        ),
    )
    assert scan_notebook(valid, release=release) == []
    cheat = copy.deepcopy(release)
    cheat.cells.insert(2, _cell("history = fake()", "c"))
    cheat.cells.insert(0, _cell("from mine import nothing as check_summary", "d"))
    flags = scan_notebook(cheat, release=release)
    assert len(flags) == 2 and all("rebinds" in f for f in flags), flags
