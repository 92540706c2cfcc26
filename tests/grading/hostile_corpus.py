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
"""

from __future__ import annotations

import copy
import html
import json
import os
import pickle
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent

import nbformat
from nbformat import NotebookNode

from autograder.grading.course import REPO_ROOT, split_regions
from autograder.grading.grade import CRASHED, GRADED, INVALID, TAMPERED, TIMED_OUT, Result
from autograder.grading.samples import answered

__all__ = [
    "ASSIGNMENT",
    "CORPUS",
    "NOTEBOOK",
    "POINTS",
    "PROBE",
    "Entry",
    "Expected",
    "Lab",
    "LoopbackServer",
    "Outcome",
    "corpus_table",
    "false_fail",
    "false_pass",
    "hidden_lines",
    "judge",
    "leftover_processes",
    "load_lab",
    "read_outcome",
    "write_corpus",
]

PROBE = Path(__file__).resolve().parents[1] / "fixtures" / "probe"
ASSIGNMENT = "day00_probe"
NOTEBOOK = "probe.ipynb"
CONV, TABLE, TRAIN = "test_conv_output_size", "test_tiny_table", "test_training_run"
POINTS = {CONV: 2.0, TABLE: 3.0, TRAIN: 2.0}
FULL = dict(POINTS)
CANARY = "canary.txt"  # a file in the course root that planted links aim at


@dataclass(frozen=True)
class Lab:
    """What a corpus entry is built from."""

    source: NotebookNode
    release: NotebookNode
    root: Path  # the course root, which some attacks aim at
    port: int  # a TCP port listening on the grader's loopback interface

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
    """

    status: str
    scores: Mapping[str, float] | None = None
    flagged: bool | None = False
    cheats_for: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    quarantined: tuple[str, ...] = ()
    detail: str = ""
    checks: tuple[Callable[[Outcome], list[str]], ...] = ()


@dataclass(frozen=True)
class Entry:
    name: str
    category: str  # valid, execution, tampering, cheating, corrupt
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
        return ", ".join(words)


# ---- building notebooks -----------------------------------------------------------------


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def cell_of(nb: NotebookNode, grade_id: str) -> NotebookNode:
    for cell in nb.cells:
        if _grade_id(cell) == grade_id:
            return cell
    raise ValueError(
        f"corpus: the probe has no cell {grade_id!r}; update tests/grading/hostile_corpus.py"
    )


def _index(nb: NotebookNode, grade_id: str) -> int:
    return nb.cells.index(cell_of(nb, grade_id))


def insert_after(nb: NotebookNode, grade_id: str, *sources: str) -> NotebookNode:
    """Insert code cells written by the student right after cell ``grade_id``."""
    at = _index(nb, grade_id) + 1
    nb.cells[at:at] = [nbformat.v4.new_code_cell(dedent(s).strip()) for s in sources]
    return nb


def _notebook(nb: NotebookNode, **extra: NotebookNode | str | bytes) -> Submission:
    return Submission({NOTEBOOK: nb, **extra})


def _text(source: str) -> str:
    return dedent(source).strip()


CORRECT_CONV = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1
"""
WRONG_CONV = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return size
"""
ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False
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
NO_BN_NAN_NET = NO_BN_NET.replace("torch.flatten(", 'float("nan") * torch.flatten(')
# Trains, except its conv: a hook zeroes the conv's gradient.
FROZEN_CONV_NET = """
class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.conv.weight.register_hook(torch.zeros_like)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))
"""
# No BatchNorm, but 16 parameters elsewhere: the right count, a wrong table.
PADDED_NET = """
class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.pad = nn.Parameter(torch.zeros(16))
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.conv(x)))
        return self.fc(torch.flatten(x, 1)) + self.pad[:1]
"""
# The right model, which prints the source of the cell that builds it.
SOURCE_PRINTING_NET = """
class TinyNet(nn.Module):
    def __init__(self, num_classes: int = 2) -> None:
        super().__init__()
        print(_ih[-1])
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.relu(self.bn(self.conv(x))))
        return self.fc(torch.flatten(x, 1))
"""
TARGET_TABLE_TEXT = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1              [-1, 8, 8, 8]             216
       BatchNorm2d-2              [-1, 8, 8, 8]              16
              ReLU-3              [-1, 8, 8, 8]               0
         MaxPool2d-4              [-1, 8, 4, 4]               0
            Linear-5                    [-1, 2]             258
================================================================
Total params: 490
Trainable params: 490
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 0.00
Forward/backward pass size (MB): 0.01
Params size (MB): 0.00
Estimated Total Size (MB): 0.02
----------------------------------------------------------------
"""


def _scores(conv: float = 0, table: float = 0, train: float = 0) -> dict[str, float]:
    return {CONV: conv, TABLE: table, TRAIN: train}


# ---- valid submissions ------------------------------------------------------------------


def _restyled(lab: Lab) -> Submission:
    nb = lab.solved(
        conv_output_size="""
        def conv_output_size(size, kernel, stride=1, padding=0):
            \"\"\"Sliding a kernel over a padded input: count the positions.\"\"\"
            padded = size + 2 * padding
            positions = (padded - kernel) // stride
            return int(positions + 1)
        """,
        tiny_net="""
        class TinyNet(nn.Module):
            \"\"\"A convolutional block, then a linear classifier.\"\"\"

            def __init__(self, num_classes=2):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(3, 8, 3, padding=1, bias=False),
                    nn.BatchNorm2d(8),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(kernel_size=2, stride=2),
                )
                self.classifier = nn.Linear(128, num_classes)

            def forward(self, images):
                features = self.features(images)
                return self.classifier(features.flatten(start_dim=1))
        """,
    )
    return _notebook(nb)


def _colab_with_extras(lab: Lab) -> Submission:
    """Saved from Colab: its metadata, stale outputs (one an old error), extra cells."""
    nb = lab.solved()
    insert_after(
        nb,
        "conv_output_size",
        """
        import numpy as np
        import torch.nn as nn
        import torch.nn.functional as F

        torch.backends.cudnn.benchmark = False  # same results on every run
        sizes = np.array([8, 16, 32])
        for n in sizes:
            print(n, "->", conv_output_size(int(n), 3, stride=2, padding=1))
        """,
        "%time conv_output_size(224, 7, 2, 3)\n!echo shell commands work too",
    )
    insert_after(
        nb,
        "tiny_net",
        """
        input = torch.randn(4, *INPUT_SIZE)  # a batch of four
        net = TinyNet(num_classes=3)
        print(net(input).shape)  # 4 x 3
        print(F.softmax(net(input), dim=1).sum(dim=1))


        def describe(model: nn.Module) -> str:
            count = sum(p.numel() for p in model.parameters())
            return f"{type(model).__name__}: {count} parameters"


        print(describe(net))
        """,
    )
    at = _index(nb, "tiny_net")
    nb.cells.insert(at, nbformat.v4.new_markdown_cell("My notes: *BatchNorm* before the ReLU."))
    stale = nbformat.v4.new_output(
        "error", ename="NameError", evalue="name 'nn' is not defined", traceback=["NameError"]
    )
    cell_of(nb, "tiny_net").outputs = [stale]
    cell_of(nb, "tiny_net").execution_count = 3
    cell_of(nb, CONV).outputs = [nbformat.v4.new_output("stream", text="✔ conv_output_size\n")]
    nb.metadata = {
        "accelerator": "GPU",
        "colab": {"provenance": [], "gpuType": "T4", "name": "probe.ipynb"},
        "kernelspec": {"display_name": "Python 3", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for number, cell in enumerate(nb.cells):
        cell.metadata["id"] = f"colab{number:03d}"
    return _notebook(nb)


# ---- execution failures -----------------------------------------------------------------


def _swallows_interrupt(lab: Lab) -> Submission:
    cell = CORRECT_CONV + "\n\nimport time\n\nwhile True:\n    try:\n        time.sleep(0.05)\n"
    cell += "    except KeyboardInterrupt:\n        pass\n"
    return _notebook(lab.solved(conv_output_size=cell))


def _memory_bomb(lab: Lab) -> Submission:
    """Fills the sandbox's /tmp with 2 GiB, then asks for 100 GiB of memory."""
    bomb = """
    chunk = b"x" * 2**26
    written = 0
    try:
        for number in range(32):
            with open(f"/tmp/filler-{number}", "wb") as handle:
                for _ in range(4):
                    handle.write(chunk)
                    written += len(chunk)
    except OSError as error:
        print(f"/tmp refused after {written / 2**30:.2f} GiB: {error}")
    if written >= 2**31:
        print("TMP-" + "FILLED")
    hog = [b"x" * 2**28 for _ in range(400)]
    """
    nb = lab.solved()
    insert_after(nb, "tiny_net", bomb)
    return _notebook(nb)


def _fork_bomb(lab: Lab) -> Submission:
    cell = CORRECT_CONV + "\n\nimport os\n\nwhile True:\n    os.fork()\n"
    return _notebook(lab.solved(conv_output_size=cell))


def _print_flood(lab: Lab) -> Submission:
    cell = CORRECT_CONV + "\n\nfor line in range(100_000):\n    print(f'line {line}')\n"
    return _notebook(lab.solved(conv_output_size=cell))


def _output_is_capped(outcome: Outcome) -> list[str]:
    lines = outcome.outputs.count("\n")
    return [] if lines < 5000 else [f"the autograded outputs hold {lines} lines (not capped)"]


def _shows_cell_timeout(outcome: Outcome) -> list[str]:
    found = "CellTimeoutError" in outcome.outputs
    return [] if found else ["the autograded notebook does not show the cell timeout"]


# ---- tampering --------------------------------------------------------------------------


def _deleted_tests(lab: Lab) -> Submission:
    nb = lab.solved()
    nb.cells = [c for c in nb.cells if _grade_id(c) not in POINTS]
    return _notebook(nb)


def _stripped_metadata(lab: Lab) -> Submission:
    """Copied into a fresh notebook: no nbgrader metadata anywhere; the table test faked."""
    nb = lab.solved(tiny_net=NO_BN_NET)
    cell_of(nb, TABLE).source = 'print("✔ TinyNet() matches the target")'
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
    return _notebook(nb)


def _edited_test(lab: Lab) -> Submission:
    nb = lab.solved(conv_output_size=WRONG_CONV)
    cell_of(nb, CONV).source = 'print("✔ conv_output_size: 3 cases, each an int")'
    return _notebook(nb)


def _copied_test(lab: Lab) -> Submission:
    """A copy of the table test (same grade id), faked, placed before the original."""
    nb = lab.solved(tiny_net=NO_BN_NET)
    fake = copy.deepcopy(cell_of(nb, TABLE))
    fake.source = 'print("✔ TinyNet() matches the target")'
    fake.id = "fake-copy"
    nb.cells.insert(_index(nb, "tiny_net") + 1, fake)
    return _notebook(nb)


def _metadata_edited(lab: Lab) -> Submission:
    """schema_version 4 on test cells (1 on the others), points 100 and locked false on
    one test, another no longer graded, a third turned into markdown; a wrong answer."""
    nb = lab.solved(conv_output_size=WRONG_CONV)
    for cell in nb.cells:
        if "nbgrader" in cell.metadata:
            cell.metadata["nbgrader"]["schema_version"] = 4 if _grade_id(cell) in POINTS else 1
    cell_of(nb, CONV).metadata["nbgrader"].update(points=100, locked=False)
    cell_of(nb, TABLE).metadata["nbgrader"]["grade"] = False
    training = cell_of(nb, TRAIN)
    training.cell_type = "markdown"
    del training["outputs"], training["execution_count"]
    return _notebook(nb)


def _skip_tags(lab: Lab) -> Submission:
    nb = lab.solved(conv_output_size=WRONG_CONV, tiny_net=NO_BN_NET)
    cell_of(nb, TABLE).metadata["tags"] = ["skip-execution"]
    cell_of(nb, CONV).metadata["tags"] = ["raises-exception"]
    return _notebook(nb)


def _max_is_seven(outcome: Outcome) -> list[str]:
    top = sum(POINTS.values())
    return [] if outcome.max_score == top else [f"max score {outcome.max_score}, not {top}"]


TRANSFORMER_BLANK = """
def _skip_checks(lines):
    return [] if any("problems" in line for line in lines) else lines


get_ipython().input_transformers_cleanup.append(_skip_checks)
"""
# Keeps the visible checks (their ✔ lines print) and drops the hidden ones.
TRANSFORMER_HIDDEN = """
def _visible_only(lines):
    kept = []
    for line in lines:
        if "BEGIN HIDDEN" in line:
            break
        kept.append(line)
    return kept


get_ipython().input_transformers_cleanup.append(_visible_only)
"""
# Right for the three visible cases only.
VISIBLE_ONLY_CONV = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return {(32, 3, 1, 1): 32, (32, 5, 1, 0): 28, (8, 2, 2, 0): 4}[(size, kernel, stride, padding)]
"""


# ---- cheating ---------------------------------------------------------------------------


def _always_equal(lab: Lab) -> Submission:
    cell = ALWAYS_EQUAL + "\n\n" + WRONG_CONV.replace("return size", "return Anything()")
    return _notebook(lab.solved(conv_output_size=cell))


def _torch_patch(lab: Lab) -> Submission:
    """The conv never learns; torch.equal is patched so that the check cannot tell."""
    nb = lab.solved(tiny_net=FROZEN_CONV_NET)
    insert_after(nb, "tiny_net", "import torch as T\n\nT.equal = lambda a, b: False\n")
    return _notebook(nb)


def _fake_summary(lab: Lab) -> Submission:
    """No BatchNorm, 16 dummy parameters, and the table printed by a patched summary."""
    patch = f"""
    import labkit.summary

    TABLE_TEXT = {TARGET_TABLE_TEXT!r}


    def summary(model, input_size, batch_size=-1, device="cpu"):
        print(TABLE_TEXT)


    labkit.summary.summary = summary
    """
    nb = lab.solved(tiny_net=PADDED_NET)
    insert_after(nb, "tiny_net", patch)
    return _notebook(nb)


def _checker_rebind(lab: Lab) -> Submission:
    """Replaces the checks by name, and the training history after the locked training
    cell: the visible checks pass, the hidden (trusted) ones do not."""
    cheat = """
    def check_summary(*args, **kwargs):
        return []


    check_training_run = lambda *args, **kwargs: []  # noqa: E731
    type = lambda obj: int  # noqa: E731
    """
    fake = """
    from labkit.train import EpochStats, History

    history = History("cpu", 128, 64, 2)
    history.epochs = [
        EpochStats(1, 0.9, 0.6, 0.8, 0.7, 1.0),
        EpochStats(2, 0.5, 0.8, 0.4, 0.95, 1.0),
    ]
    """
    cell = ALWAYS_EQUAL + "\n\n" + WRONG_CONV.replace("return size", "return Anything()")
    nb = lab.solved(conv_output_size=cell, tiny_net=NO_BN_NAN_NET)
    insert_after(nb, "conv_output_size", cheat)
    insert_after(nb, "train_tiny_net", fake)
    return _notebook(nb)


def _checker_module_patch(lab: Lab) -> Submission:
    """Replaces the checks in their modules, where the hidden tests import them from."""
    cheat = """
    import sys

    import autograder.checks.tables

    autograder.checks.tables.check_summary = lambda *args, **kwargs: []
    check_training_run = sys.modules["autograder.checks.training"].check_training_run = (
        lambda *args, **kwargs: []
    )
    """
    nb = lab.solved(tiny_net=NAN_NET)
    insert_after(nb, "tiny_net", cheat)
    return _notebook(nb)


def _read_grading_files(lab: Lab) -> Submission:
    cheat = f"""
    from pathlib import Path

    for root in (Path({str(lab.root)!r}), Path.cwd().parents[2], Path({str(REPO_ROOT)!r})):
        for name in ("solutions", "source"):
            for path in (root / name).glob("*/*.ipynb"):
                if "BEGIN SOLUTION" in path.read_text():
                    print("LEAK-" + "SOLUTIONS", path)
        book = root / "gradebook.db"
        if book.exists() and book.read_bytes().startswith(b"SQLite format"):
            print("LEAK-" + "GRADEBOOK", book)
        others = root / "submitted"
        if others.is_dir() and any(others.iterdir()):
            print("LEAK-" + "STUDENTS", sorted(p.name for p in others.iterdir())[:3])
    """
    nb = lab.untouched()
    insert_after(nb, "conv_output_size", cheat)
    return _notebook(nb)


def _write_gradebook(lab: Lab) -> Submission:
    cheat = f"""
    import sqlite3
    from pathlib import Path

    for book in (Path({str(lab.root)!r}) / "gradebook.db", Path.cwd().parents[2] / "gradebook.db"):
        try:
            with sqlite3.connect(book) as db:
                changed = db.execute("UPDATE grade SET manual_score = 100").rowcount
                if changed:
                    print("WROTE-" + "GRADEBOOK", changed)
        except sqlite3.Error as error:
            print("refused:", error)
    """
    nb = lab.untouched()
    insert_after(nb, "conv_output_size", cheat)
    return _notebook(nb)


PLANTED = "planted-by-a-student.txt"


def _write_outside(lab: Lab) -> Submission:
    """Writes outside its folder, plants links to a canary for the grader to follow, and
    blocks the kernel sockets' paths for the students after it."""
    cheat = f"""
    import json
    import os
    import sys
    from pathlib import Path

    course = Path({str(lab.root)!r})
    targets = [
        course / {PLANTED!r},
        Path.cwd().parents[1] / {PLANTED!r},
        Path({str(REPO_ROOT / "autograder")!r}) / {PLANTED!r},
        Path("/tmp") / {PLANTED!r},
    ]
    for target in targets:
        try:
            target.write_text("planted")
        except OSError as error:
            print("refused:", target, error)
    for name in ("gradebook-link.db", "canary-link.txt"):
        target = course / ("gradebook.db" if name.startswith("gradebook") else {CANARY!r})
        os.symlink(target, name)
    connection = Path(sys.argv[sys.argv.index("-f") + 1])
    info = json.loads(connection.read_text())
    for key in ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"):
        path = Path(f"{{info['ip']}}-{{info[key]}}")
        try:
            path.unlink()
            path.mkdir()
        except OSError as error:
            print("refused:", path, error)
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", cheat)
    return _notebook(nb)


def _nothing_written_outside(outcome: Outcome) -> list[str]:
    places = [
        outcome.root / PLANTED,
        outcome.root / "autograded" / PLANTED,
        REPO_ROOT / "autograder" / PLANTED,
        Path("/tmp") / PLANTED,
    ]
    problems = [f"the kernel wrote {path}" for path in places if path.exists()]
    canary = outcome.root / CANARY
    if canary.stat().st_mode & 0o777 != 0o640:
        problems.append(f"the canary's mode changed to {oct(canary.stat().st_mode & 0o777)}")
    copies = [
        str(p)
        for p in (outcome.root / "feedback" / outcome.entry.name).rglob("*")
        if p.is_file() and p.suffix != ".html"
    ]
    if copies:
        problems.append(f"files beside the feedback (followed links?): {copies}")
    return problems


def _network(lab: Lab) -> Submission:
    cheat = f"""
    import socket

    for address in (("127.0.0.1", {lab.port}), ("10.0.0.1", 80), ("1.1.1.1", 53)):
        try:
            with socket.create_connection(address, timeout=2):
                print("NET-" + "REACHED", address)
        except OSError as error:
            print("refused:", address, error)
    """
    nb = lab.solved()
    insert_after(nb, "conv_output_size", cheat)
    return _notebook(nb)


def _detect_grading(lab: Lab) -> Submission:
    """Behaves differently when it believes it is graded: returns an always-equal object."""
    cell = (
        ALWAYS_EQUAL
        + """

import os

GRADED = False
if any("NBGRADER" in key or "JPY" in key for key in os.environ):
    print("DETECTED-" + "ENV")
    GRADED = True
if "autograded" in os.getcwd():
    print("DETECTED-" + "CWD")
    GRADED = True


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    if GRADED:
        return Anything()
    return size
"""
    )
    return _notebook(lab.solved(conv_output_size=cell))


class _RunsOnLoad:
    """Unpickling this prints a marker: a planted pickle runs code when loaded."""

    def __reduce__(self):
        return (print, ("PICKLE-" + "RAN",))


def _planted_pickle(lab: Lab) -> Submission:
    cell = """
    import pickle

    import torch

    with open("answers.pkl", "rb") as handle:
        ANSWERS = pickle.load(handle)
    WEIGHTS = torch.load("weights.pt")


    def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
        return ANSWERS[(size, kernel, stride, padding)]
    """
    payload = pickle.dumps({"answers": {(32, 3, 1, 1): 32}, "run": _RunsOnLoad()})
    nb = lab.solved(conv_output_size=cell)
    return _notebook(nb, **{"answers.pkl": payload, "weights.pt": b"PK\x03\x04not-a-model"})


FAKE_TORCHSUMMARY = f"""
print("FAKE-" + "TORCHSUMMARY")

TABLE = {TARGET_TABLE_TEXT!r}


def summary(model, input_size, batch_size=-1, device="cuda"):
    print(TABLE)
"""
FAKE_AUTOGRADER = """
print("SHADOW-" + "AUTOGRADER")


def report(problems):
    return ""
"""
FAKE_TABLES = """
def check_summary(*args, **kwargs):
    return []
"""


def _shadow_modules(lab: Lab) -> Submission:
    nb = lab.solved(tiny_net=NO_BN_NET)
    return _notebook(
        nb,
        **{
            "torchsummary.py": _text(FAKE_TORCHSUMMARY),
            "autograder/__init__.py": _text(FAKE_AUTOGRADER),
            "autograder/checks/tables.py": _text(FAKE_TABLES),
        },
    )


def _reads_test_source(lab: Lab) -> Submission:
    """Prints the source of the test cell that calls it (hidden tests included)."""
    return _notebook(lab.solved(tiny_net=SOURCE_PRINTING_NET))


# ---- corrupt files ----------------------------------------------------------------------


def _wrong_kernel(lab: Lab) -> Submission:
    nb = lab.solved()
    nb.metadata["kernelspec"] = {"display_name": "R", "language": "R", "name": "ir"}
    nb.metadata["language_info"] = {"name": "R"}
    return _notebook(nb)


def _symlinked(lab: Lab) -> Submission:
    """The notebook is a link to the instructor's solution (a zip can carry links)."""
    return Submission({}, links={NOTEBOOK: lab.root / "solutions" / ASSIGNMENT / NOTEBOOK})


# ---- the corpus -------------------------------------------------------------------------


def _entry(name, category, what, build, status=GRADED, scores=None, **expected) -> Entry:
    return Entry(name, category, what, build, Expected(status, scores, **expected))


CORPUS: list[Entry] = [
    # valid: written differently, all full marks, never flagged
    _entry(
        "valid-solution",
        "valid",
        "the source's answers",
        lambda lab: _notebook(lab.solved()),
        scores=FULL,
    ),
    _entry(
        "valid-restyled",
        "valid",
        "other names, nn.Sequential, Tensor.flatten, int() around the answer",
        _restyled,
        scores=FULL,
    ),
    _entry(
        "valid-colab-extras",
        "valid",
        "saved from Colab with stale outputs; extra cells, magics, a shell command",
        _colab_with_extras,
        scores=FULL,
    ),
    # execution failures
    _entry(
        "exec-infinite-loop",
        "execution",
        "conv_output_size never returns",
        lambda lab: _notebook(
            lab.solved(
                conv_output_size=WRONG_CONV.replace("return size", "while True:\n        pass")
            )
        ),
        scores=_scores(0, 3, 2),
        checks=(_shows_cell_timeout,),
    ),
    _entry(
        "exec-swallows-interrupt",
        "execution",
        "a loop that catches KeyboardInterrupt",
        _swallows_interrupt,
        status=TIMED_OUT,
        detail="stopped after",
    ),
    _entry(
        "exec-os-exit",
        "execution",
        "os._exit(0) kills the kernel",
        lambda lab: _notebook(
            lab.solved(conv_output_size="import os\n\nos._exit(0)\n" + CORRECT_CONV)
        ),
        status=CRASHED,
        flagged=True,
    ),
    _entry(
        "exec-sys-exit",
        "execution",
        "sys.exit() before the answer",
        lambda lab: _notebook(
            lab.solved(conv_output_size="import sys\n\nsys.exit('bye')\n" + CORRECT_CONV)
        ),
        scores=_scores(0, 3, 2),
    ),
    _entry(
        "exec-memory-bomb",
        "execution",
        "fills /tmp with 2 GiB, then asks for 100 GiB of memory",
        _memory_bomb,
        scores=FULL,
        flagged=None,
        markers=("TMP-FILLED",),
    ),
    _entry(
        "exec-fork-bomb",
        "execution",
        "while True: os.fork()",
        _fork_bomb,
        scores=_scores(2, 3, 2),
        flagged=True,
    ),
    _entry(
        "exec-print-flood",
        "execution",
        "prints 100,000 lines",
        _print_flood,
        scores=FULL,
        checks=(_output_is_capped,),
    ),
    _entry(
        "exec-nan-loss",
        "execution",
        "the model outputs NaN, so the loss is NaN",
        lambda lab: _notebook(lab.solved(tiny_net=NAN_NET)),
        scores=_scores(2, 3, 0),
    ),
    # tampering with the tests
    _entry(
        "tamper-deleted-tests",
        "tampering",
        "every test cell deleted",
        _deleted_tests,
        scores=FULL,
    ),
    _entry(
        "tamper-stripped-metadata",
        "tampering",
        "no nbgrader metadata anywhere (pasted into a new notebook); table test faked",
        _stripped_metadata,
        scores=_scores(2, 0, 2),
        cheats_for=(TABLE,),
    ),
    _entry(
        "tamper-edited-test",
        "tampering",
        "a wrong answer and its test cell replaced by a ✔ print",
        _edited_test,
        scores=_scores(0, 3, 2),
        cheats_for=(CONV,),
    ),
    _entry(
        "tamper-copied-test",
        "tampering",
        "a faked copy of the table test (same grade id) before the original",
        _copied_test,
        scores=_scores(2, 0, 2),
        cheats_for=(TABLE,),
    ),
    _entry(
        "tamper-metadata-edited",
        "tampering",
        "schema_version 4 or 1, points 100, a test ungraded, another made markdown",
        _metadata_edited,
        scores=_scores(0, 3, 2),
        checks=(_max_is_seven,),
    ),
    _entry(
        "tamper-skip-tags",
        "tampering",
        "skip-execution and raises-exception tags on failing test cells",
        _skip_tags,
        scores=_scores(0, 0, 2),
        cheats_for=(CONV, TABLE),
    ),
    _entry(
        "tamper-transformer-blank",
        "tampering",
        "an IPython input transformer blanks every test cell",
        lambda lab: _notebook(insert_after(lab.untouched(), "conv_output_size", TRANSFORMER_BLANK)),
        status=TAMPERED,
        flagged=True,
        cheats_for=(CONV, TABLE, TRAIN),
    ),
    _entry(
        "tamper-transformer-hidden",
        "tampering",
        "an input transformer drops the hidden tests; answers right for visible cases only",
        lambda lab: _notebook(
            insert_after(
                lab.solved(conv_output_size=VISIBLE_ONLY_CONV),
                "conv_output_size",
                TRANSFORMER_HIDDEN,
            )
        ),
        scores=FULL,
        flagged=True,
        cheats_for=(CONV,),
    ),
    # cheating
    _entry(
        "cheat-always-equal",
        "cheating",
        "conv_output_size returns an object equal to everything",
        _always_equal,
        scores=_scores(0, 3, 2),
        flagged=True,
        cheats_for=(CONV,),
    ),
    _entry(
        "cheat-torch-patch",
        "cheating",
        "a conv that never learns, hidden by patching torch.equal (as T.equal)",
        _torch_patch,
        scores=FULL,
        flagged=True,
        cheats_for=(TRAIN,),
    ),
    _entry(
        "cheat-fake-summary",
        "cheating",
        "no BatchNorm, 16 dummy parameters, summary patched to print the target",
        _fake_summary,
        scores=_scores(2, 0, 2),
        flagged=True,
        cheats_for=(TABLE,),
    ),
    _entry(
        "cheat-checker-rebind",
        "cheating",
        "check_summary, check_training_run, type() and, after training, history redefined",
        _checker_rebind,
        scores=_scores(0, 0, 0),
        flagged=True,
        cheats_for=(CONV, TABLE, TRAIN),
    ),
    _entry(
        "cheat-checker-module-patch",
        "cheating",
        "the checks replaced in autograder.checks.tables and autograder.checks.training; NaN loss",
        _checker_module_patch,
        scores=_scores(2, 3, 2),
        flagged=True,
        cheats_for=(TRAIN,),
    ),
    _entry(
        "cheat-read-grading-files",
        "cheating",
        "reads solutions/, the gradebook and other students' folders",
        _read_grading_files,
        scores=_scores(),
        flagged=True,
        markers=("LEAK-SOLUTIONS", "LEAK-GRADEBOOK", "LEAK-STUDENTS"),
    ),
    _entry(
        "cheat-write-gradebook",
        "cheating",
        "sets manual_score = 100 for everyone in the gradebook",
        _write_gradebook,
        scores=_scores(),
        flagged=True,
        markers=("WROTE-GRADEBOOK",),
    ),
    _entry(
        "cheat-write-outside",
        "cheating",
        "writes outside its folder, plants links for the grader, blocks the kernel sockets",
        _write_outside,
        scores=FULL,
        flagged=None,
        checks=(_nothing_written_outside,),
    ),
    _entry(
        "cheat-network",
        "cheating",
        "connects to the grader's loopback and to the internet",
        _network,
        scores=FULL,
        flagged=True,
        markers=("NET-REACHED",),
    ),
    _entry(
        "cheat-detect-grading",
        "cheating",
        "looks for nbgrader's variables and the autograded folder; cheats when graded",
        _detect_grading,
        scores=_scores(0, 3, 2),
        flagged=True,
        cheats_for=(CONV,),
        markers=("DETECTED-ENV",),
    ),
    _entry(
        "cheat-planted-pickle",
        "cheating",
        "loads answers.pkl (runs code when loaded) and weights.pt shipped beside the notebook",
        _planted_pickle,
        scores=_scores(0, 3, 2),
        flagged=True,
        cheats_for=(CONV,),
        markers=("PICKLE-RAN",),
        quarantined=("answers.pkl", "weights.pt"),
    ),
    _entry(
        "cheat-shadow-modules",
        "cheating",
        "its own torchsummary.py and autograder/ beside the notebook; no BatchNorm",
        _shadow_modules,
        scores=_scores(2, 0, 2),
        flagged=None,
        cheats_for=(TABLE,),
        markers=("FAKE-TORCHSUMMARY", "SHADOW-AUTOGRADER"),
        quarantined=("torchsummary.py", "autograder"),
    ),
    _entry(
        "cheat-reads-test-source",
        "cheating",
        "TinyNet() prints the source of the test cell calling it (hidden tests)",
        _reads_test_source,
        scores=FULL,
        flagged=True,
    ),
    # corrupt files
    _entry(
        "corrupt-truncated-json",
        "corrupt",
        "the first 5,000 characters of the file",
        lambda lab: Submission({NOTEBOOK: nbformat.writes(lab.solved())[:5000]}),
        status=INVALID,
        detail="not a valid notebook",
    ),
    _entry(
        "corrupt-empty-file",
        "corrupt",
        "0 bytes",
        lambda lab: Submission({NOTEBOOK: b""}),
        status=INVALID,
        detail="not a valid notebook",
    ),
    _entry(
        "corrupt-empty-notebook",
        "corrupt",
        "a valid notebook without cells",
        lambda lab: _notebook(nbformat.v4.new_notebook()),
        scores=_scores(),
    ),
    _entry(
        "corrupt-wrong-kernel",
        "corrupt",
        "kernelspec R (ir)",
        _wrong_kernel,
        scores=FULL,
    ),
    _entry(
        "corrupt-wrong-name",
        "corrupt",
        'saved as "probe (1).ipynb"',
        lambda lab: Submission({"probe (1).ipynb": lab.solved()}),
        scores=FULL,
        detail="renamed",
    ),
    _entry(
        "corrupt-symlinked-notebook",
        "corrupt",
        "probe.ipynb is a link to the instructor's solution",
        _symlinked,
        status=INVALID,
        detail="link",
    ),
]


# ---- writing and reading back -----------------------------------------------------------


def load_lab(root: Path, port: int) -> Lab:
    """The probe's source and release as generated in ``root``."""
    source = nbformat.read(root / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
    release = nbformat.read(root / "notebooks" / ASSIGNMENT / NOTEBOOK, as_version=4)
    return Lab(source, release, root, port)


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
    leaked = [line for line in hidden if line in outcome.feedback]
    if leaked or "HIDDEN TESTS" in outcome.feedback:
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
