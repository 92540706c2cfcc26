"""Broken, hostile and valid submissions of the probe lab, each with what grading must make of it.

The probe lab (``tests/fixtures/probe/solutions/day00_probe/probe.ipynb``) has three
graded test cells: ``test_conv_output_size`` (2 points), ``test_tiny_table`` (3) and
``test_training_run`` (2). Every entry of ``CORPUS`` is a small record: its name, its
category, how it is built from the lab's source and release, and what the driver must
report for it (``Expected``). ``judge`` turns an entry's graded ``Outcome`` into readable
problems; ``tests/grading/test_hostile.py`` asserts them and ``scripts/bench_grading.py`` counts
them.

A cheat passes only if it gets the points it cheats for without being flagged for review
or reported as tampered: ``false_pass`` says so. An attack that reads, writes or reaches
what it must not prints a marker built at run time (so that it is not in the cell source)
only when it succeeded; the marker must not appear in the autograded notebook's outputs.

This module holds what the entries share: the lab, the entry and expectation records,
the helpers that build notebooks, a few answers used by several categories, and the
registry. The entries live one module per category (``valid``, ``execution``,
``tampering``, ``cheating``, ``corrupt``, ``feedback``, ``inprocess``, ``sandbox``), each
builder right above the entry that uses it:
a module makes ``CATEGORY = Category("<name>")`` and calls ``CATEGORY.add(...)`` per entry.
``CORPUS`` is every entry of the modules listed in ``CATEGORIES``, in that order; a new
entry goes into its category's module, a new category is a new module listed there.
"""

from __future__ import annotations

import copy
import html
import importlib
import json
import os
import re
import socket
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from textwrap import dedent

import nbformat
from nbformat import NotebookNode

from autograder.grading.course import split_regions
from autograder.grading.feedback import normalise
from autograder.grading.grade import GRADED, TAMPERED, Result
from autograder.grading.samples import answered

__all__ = [
    "ASSIGNMENT",
    "CANARY",
    "CATEGORIES",
    "CONV",
    "CORPUS",
    "FULL",
    "NAN_NET",
    "NOTEBOOK",
    "NO_BN_NET",
    "PLANTED",
    "POINTS",
    "PROBE",
    "TABLE",
    "TRAIN",
    "WRONG_CONV",
    "Category",
    "Entry",
    "Expected",
    "HostWrites",
    "Lab",
    "LoopbackServer",
    "Outcome",
    "Submission",
    "cell_of",
    "corpus_table",
    "false_fail",
    "false_pass",
    "grade_id_of",
    "hidden_lines",
    "index_of",
    "insert_after",
    "judge",
    "leftover_processes",
    "load_lab",
    "notebook",
    "plant_outside",
    "processes_after_cells",
    "read_outcome",
    "scored",
    "write_corpus",
]

PROBE = Path(__file__).resolve().parents[2] / "fixtures" / "probe"
ASSIGNMENT = "day00_probe"
NOTEBOOK = "probe.ipynb"
CONV, TABLE, TRAIN = "test_conv_output_size", "test_tiny_table", "test_training_run"
POINTS = {CONV: 2.0, TABLE: 3.0, TRAIN: 2.0}
FULL = dict(POINTS)
CANARY = "canary.txt"  # a file in the course root that planted links aim at
PLANTED = "solutions.txt"  # a readable file in a folder of the machine the kernel needs not


@dataclass(frozen=True)
class Lab:
    """What a corpus entry is built from."""

    source: NotebookNode
    release: NotebookNode
    root: Path  # the course root, which some attacks aim at
    port: int  # a TCP port listening on the grader's loopback interface
    # a folder elsewhere on the machine (outside the repository, the course and every
    # folder the sandbox binds) that holds a readable PLANTED file
    outside: Path = Path("/nonexistent/outside")

    def solved(self, **answers: str) -> NotebookNode:
        """The release answered as the source does, some solution cells (by grade id) replaced."""
        nb = answered(self.source, self.release)
        for grade_id, code in answers.items():
            cell_of(nb, grade_id).source = dedent(code).strip()
        return nb

    def untouched(self) -> NotebookNode:
        return copy.deepcopy(self.release)


@dataclass(frozen=True)
class Submission:
    """The files of one submission folder: a notebook, raw text or bytes, or a link."""

    files: Mapping[str, NotebookNode | str | bytes]
    links: Mapping[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class Expected:
    """What the driver must report. ``scores`` per graded cell (None: no grade at all).

    ``flagged``: True, it must be flagged for review; False, it must not; None, either.
    ``cheats_for``: the cells a cheat aims at; getting all of them unflagged is a false pass.
    ``markers``: printed only by an attack that worked; none may be in the outputs.
    ``feedback``: True, a feedback page must be written; False, none may be; None, either.
    ``flag``: words one of its flags must contain (a flag the driver, not the scan, raises).
    """

    status: str
    scores: Mapping[str, float] | None = None
    flagged: bool | None = False
    cheats_for: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    detail: str = ""
    feedback: bool | None = None
    flag: str = ""
    checks: tuple[Callable[[Outcome], list[str]], ...] = ()


@dataclass(frozen=True)
class Entry:
    name: str
    category: str  # the name of its module's Category: valid, execution, tampering, ...
    what: str
    build: Callable[[Lab], Submission]
    expected: Expected

    @property
    def summary(self) -> str:
        """The expected outcome in a few words, for the corpus table."""
        e = self.expected
        words = [e.status]
        if e.scores is not None:
            words.append(f"{sum(e.scores.values()):g}/{sum(POINTS.values()):g}")
        if e.flagged:
            words.append("flagged")
        if e.markers:
            words.append("no " + ", ".join(e.markers))
        if e.quarantined:
            words.append("quarantined " + ", ".join(e.quarantined))
        if e.feedback is False:
            words.append("no feedback")
        return ", ".join(words)


@dataclass
class Outcome:
    """What grading did with one entry, read back from the course root."""

    entry: Entry
    result: Result | None
    scores: dict[str, float]  # per graded cell, from the gradebook ({} when none)
    max_score: float | None
    outputs: str  # every output of the autograded notebook, as text
    feedback: str  # the feedback HTML, unescaped ("" when none)
    root: Path
    has_feedback: bool = False  # whether a feedback page was written

    @property
    def actual(self) -> str:
        """The outcome in a few words, for the corpus table."""
        if self.result is None:
            return "not in the results"
        words = [self.result.status]
        if self.result.status == GRADED:
            words.append(f"{sum(self.scores.values()):g}/{self.max_score:g}")
        if self.result.flags:
            words.append(f"flagged ({len(self.result.flags)})")
        if not self.has_feedback:
            words.append("no feedback")
        return ", ".join(words)


# ---- building notebooks -----------------------------------------------------------------


def grade_id_of(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def cell_of(nb: NotebookNode, grade_id: str) -> NotebookNode:
    for cell in nb.cells:
        if grade_id_of(cell) == grade_id:
            return cell
    raise ValueError(f"corpus: the probe has no cell {grade_id!r}; update tests/grading/hostile/")


def index_of(nb: NotebookNode, grade_id: str) -> int:
    return nb.cells.index(cell_of(nb, grade_id))


def insert_after(nb: NotebookNode, grade_id: str, *sources: str) -> NotebookNode:
    """Insert code cells written by the student right after cell ``grade_id``."""
    at = index_of(nb, grade_id) + 1
    nb.cells[at:at] = [nbformat.v4.new_code_cell(dedent(s).strip()) for s in sources]
    return nb


def notebook(nb: NotebookNode, **extra: NotebookNode | str | bytes) -> Submission:
    return Submission({NOTEBOOK: nb, **extra})


def scored(conv: float = 0, table: float = 0, train: float = 0) -> dict[str, float]:
    return {CONV: conv, TABLE: table, TRAIN: train}


# ---- answers several categories share ---------------------------------------------------

WRONG_CONV = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return size
"""
# No BatchNorm: trains, but its table lacks a row and 16 parameters.
NO_BN_NET = """
class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.relu(self.conv(x))), 1))
"""
NAN_NET = """
class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1)) * float("nan")
"""


# ---- the registry -----------------------------------------------------------------------


@dataclass
class Category:
    """The entries of one category, in the order its module adds them."""

    name: str
    entries: list[Entry] = field(default_factory=list)

    def add(
        self,
        name: str,
        what: str,
        build: Callable[[Lab], Submission],
        status: str = GRADED,
        scores: Mapping[str, float] | None = None,
        **expected,
    ) -> Entry:
        """Declare an entry (``expected``: the other fields of ``Expected``) and return it."""
        entry = Entry(name, self.name, what, build, Expected(status, scores, **expected))
        self.entries.append(entry)
        return entry


# The category modules, in corpus order; each makes ``CATEGORY = Category(<its name>)``.
# They import from this module, so the list is read once everything above is defined.
CATEGORIES = (
    "valid",
    "execution",
    "tampering",
    "cheating",
    "corrupt",
    "feedback",
    "inprocess",
    "sandbox",
)


def _load_corpus() -> list[Entry]:
    corpus: list[Entry] = []
    for name in CATEGORIES:
        category = importlib.import_module(f"{__name__}.{name}").CATEGORY
        assert category.name == name, f"{name}.py declares the category {category.name!r}"
        corpus += category.entries
    return corpus


CORPUS: list[Entry] = _load_corpus()


# ---- writing and reading back -----------------------------------------------------------


def load_lab(root: Path, port: int, outside: Path | None = None) -> Lab:
    """The probe's source and release as generated in ``root``."""
    source = nbformat.read(root / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    release = nbformat.read(root / "notebooks" / ASSIGNMENT / NOTEBOOK, as_version=4)
    return Lab(source, release, root, port, *([outside] if outside else []))


def plant_outside() -> Path:
    """A fresh folder under /var/tmp (the system temp folder where there is none),
    outside the repository and the course, holding a PLANTED file anyone may read: only
    the sandbox can keep a kernel from it. The caller removes it."""
    parent = Path("/var/tmp") if os.access("/var/tmp", os.W_OK) else Path(tempfile.gettempdir())
    folder = Path(tempfile.mkdtemp(prefix="labkit-planted-", dir=parent))
    folder.chmod(0o755)
    (folder / PLANTED).write_text("the answers to every lab, which no kernel may read\n")
    (folder / PLANTED).chmod(0o644)
    return folder


def write_corpus(lab: Lab, entries: list[Entry] = CORPUS) -> None:
    """Write each entry to ``root/submitted/<name>/day00_probe/`` (and the canary file)."""
    canary = lab.root / CANARY
    canary.write_text("the grader must never follow a student's link to this file\n")
    canary.chmod(0o640)
    for entry in entries:
        built = entry.build(lab)
        folder = lab.root / "submitted" / entry.name / ASSIGNMENT
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in built.files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                path.write_bytes(content)
            else:
                text = content if isinstance(content, str) else nbformat.writes(content)
                path.write_text(text, encoding="utf-8")
        for name, target in built.links.items():
            (folder / name).symlink_to(target)


def _cell_scores(root: Path, student: str) -> tuple[dict[str, float], float | None]:
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gradebook:
        try:
            nb = gradebook.find_submission_notebook(NOTEBOOK[:-6], ASSIGNMENT, student)
        except MissingEntry:
            return {}, None
        return {grade.name: grade.score for grade in nb.grades}, nb.max_score


def _outputs_text(path: Path) -> str:
    if not path.exists():
        return ""
    nb = nbformat.read(path, as_version=4)
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(json.dumps(output, ensure_ascii=False))
            texts.append("".join(output.get("text", "")))
            texts += output.get("traceback", [])
    return "\n".join(texts)


def read_outcome(entry: Entry, root: Path, results: Mapping[str, Result]) -> Outcome:
    scores, max_score = _cell_scores(root, entry.name)
    feedback = root / "feedback" / entry.name / ASSIGNMENT / NOTEBOOK.replace(".ipynb", ".html")
    return Outcome(
        entry=entry,
        result=results.get(entry.name),
        scores=scores,
        max_score=max_score,
        outputs=_outputs_text(root / "autograded" / entry.name / ASSIGNMENT / NOTEBOOK),
        feedback=html.unescape(feedback.read_text(encoding="utf-8")) if feedback.exists() else "",
        root=root,
        has_feedback=feedback.exists(),
    )


def hidden_lines(root: Path) -> set[str]:
    """Lines of the probe's hidden tests that appear nowhere outside them."""
    source = nbformat.read(root / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    hidden, public = set(), set()
    for cell in source.cells:
        inside, outside = split_regions(cell.source)
        hidden |= inside
        public |= outside
    return {line for line in hidden - public if len(line) > 15}


# ---- judging ----------------------------------------------------------------------------


def _got_points(outcome: Outcome, cells: tuple[str, ...]) -> bool:
    return bool(cells) and all(outcome.scores.get(c) == POINTS[c] for c in cells)


def false_pass(outcome: Outcome) -> bool:
    """A cheat that got every point it aimed at, neither flagged nor reported tampered."""
    result = outcome.result
    if result is None or not outcome.entry.expected.cheats_for:
        return False
    caught = result.flags or result.status == TAMPERED
    credited = result.status == GRADED and _got_points(outcome, outcome.entry.expected.cheats_for)
    return credited and not caught


def false_fail(outcome: Outcome) -> bool:
    """A valid submission without full marks, or flagged."""
    result = outcome.result
    if outcome.entry.category != "valid":
        return False
    full = result is not None and result.status == GRADED and outcome.scores == FULL
    return not full or bool(result and result.flags)


def feedback_leaks(outcome: Outcome, hidden: set[str]) -> list[str]:
    """The hidden-test lines ``outcome``'s feedback shows, re-encoded too (invisible
    characters, entities, ANSI codes): normalised before they are looked for."""
    shown = normalise(outcome.feedback) or ""
    leaked = [line for line in hidden if line in outcome.feedback or normalise(line) in shown]
    return leaked + (["HIDDEN TESTS"] if "HIDDEN TESTS" in outcome.feedback else [])


def judge(outcome: Outcome, hidden: set[str]) -> list[str]:
    """Everything about ``outcome`` that differs from what its entry expects."""
    entry, result, want = outcome.entry, outcome.result, outcome.entry.expected
    if result is None:
        return ["no result: the driver skipped it"]
    problems = []
    if result.status != want.status:
        problems.append(f"status {result.status!r} ({result.detail}), expected {want.status!r}")
    if want.scores is not None and result.status == GRADED and outcome.scores != dict(want.scores):
        problems.append(f"scores {outcome.scores}, expected {dict(want.scores)}")
    if (
        want.status == GRADED
        and result.status == GRADED
        and result.score != sum(outcome.scores.values())
    ):
        problems.append(f"the result's score {result.score} is not the gradebook's")
    if want.status != GRADED and result.score is not None:
        problems.append(f"a {result.status} submission shows a score ({result.score})")
    if want.flagged is True and not result.flags:
        problems.append("not flagged for review")
    if want.flagged is False and result.flags:
        problems.append(f"flagged for review: {list(result.flags)}")
    if false_pass(outcome):
        problems.append(f"FALSE PASS: got the points of {want.cheats_for} unflagged")
    shown = [m for m in want.markers if m in outcome.outputs]
    if shown:
        problems.append(f"the attack worked: {shown} in the outputs")
    quarantine = outcome.root / "quarantine" / entry.name / ASSIGNMENT
    missing = [name for name in want.quarantined if not (quarantine / name).exists()]
    if missing:
        problems.append(f"not in quarantine: {missing}")
    if want.detail and want.detail not in result.detail:
        problems.append(f"detail {result.detail!r} does not say {want.detail!r}")
    if want.feedback is True and not outcome.has_feedback:
        problems.append("no feedback page was written")
    if want.feedback is False and outcome.has_feedback:
        problems.append("a feedback page was written")
    if want.flag and not any(want.flag in flag for flag in result.flags):
        problems.append(f"no flag says {want.flag!r}: {list(result.flags)}")
    leaked = feedback_leaks(outcome, hidden)
    if leaked:
        problems.append(f"the feedback shows hidden tests: {leaked[:2]}")
    for check in want.checks:
        problems += check(outcome)
    return problems


def corpus_table(outcomes: list[Outcome], problems: Mapping[str, list[str]] | None = None) -> str:
    """Entry, category, expected and actual outcome (and, given ``problems``, whether as
    expected), one line each."""
    header = ("entry", "category", "expected", "actual") + (("as expected",) if problems else ())
    rows = [header]
    for o in outcomes:
        row = (o.entry.name, o.entry.category, o.entry.summary, o.actual)
        if problems is not None:
            found = problems[o.entry.name]
            row += ("yes" if not found else "NO: " + "; ".join(found),)
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join(
        "  ".join([*(c.ljust(w) for c, w in zip(row[:-1], widths, strict=True)), row[-1]])
        for row in rows
    )


# ---- the grader's machine ---------------------------------------------------------------


def leftover_processes(root: Path) -> list[str]:
    """Processes that belong to grading in ``root``: nbgrader, bwrap, kernels and what
    they started (found by command line or working folder, from /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if str(root) in cmdline or cwd.startswith(str(root)):
            found.append(f"{proc.name}: {cmdline[:150]} (in {cwd})")
    return found


class LoopbackServer:
    """A TCP server on the grader's 127.0.0.1 that counts connections (none may arrive)."""

    def __init__(self) -> None:
        self.connections = 0
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.5)
        self.port = self._socket.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self.connections += 1
            connection.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


class HostWrites:
    """Bytes that kernels wrote on the grader's machine outside the students' own folders,
    sampled while grading runs: every regular file under ``roots`` owned by another user
    than the grader (a sandboxed kernel runs as a user of its own), and any file but the
    grader's connection files (``*.json``) in the driver's runtime folders; each counted at
    the largest size seen. A kernel's own folder is a tmpfs in its sandbox: nothing there is
    on this machine's disk."""

    def __init__(self, roots: list[Path], interval_s: float = 0.5) -> None:
        self.roots = roots
        self.sizes: dict[str, int] = {}
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    def _counts(self, path: str, uid: int) -> bool:
        in_runtime = "runtime" in Path(path).parts and "labkit-grading-" in path
        return uid != os.geteuid() or (in_runtime and not path.endswith(".json"))

    def _sample(self) -> None:
        for root in self.roots:
            for folder, _, files in os.walk(root):
                for name in files:
                    path = os.path.join(folder, name)
                    try:
                        stat = os.lstat(path)
                    except OSError:
                        continue
                    if S_ISREG(stat.st_mode) and self._counts(path, stat.st_uid):
                        self.sizes[path] = max(self.sizes.get(path, 0), stat.st_size)

    def _watch(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


_ALIVE = re.compile(r"processes alive after a cell: (\d+)")


def processes_after_cells(outcome: Outcome) -> int | None:
    """How many processes a submission found still alive from an earlier cell (it prints
    "processes alive after a cell: N"), or None when it printed no such count."""
    counts = [int(n) for n in _ALIVE.findall(outcome.outputs)]
    return max(counts) if counts else None
