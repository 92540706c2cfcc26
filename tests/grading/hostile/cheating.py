"""Cheating: answers that fool the checks (always-equal objects, patched torch, summary or
checker functions), code that reads or writes what it must not (solutions, the gradebook,
files outside its folder, the network), code that behaves differently when graded, and
files planted beside the notebook.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from textwrap import dedent

from autograder.grading.course import REPO_ROOT
from tests.grading.hostile import (
    CANARY,
    CONV,
    FULL,
    NAN_NET,
    NO_BN_NET,
    TABLE,
    TRAIN,
    WRONG_CONV,
    Category,
    Lab,
    Outcome,
    Submission,
    insert_after,
    notebook,
    scored,
)

CATEGORY = Category("cheating")

ALWAYS_EQUAL = """
class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False
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


def _always_equal(lab: Lab) -> Submission:
    cell = ALWAYS_EQUAL + "\n\n" + WRONG_CONV.replace("return size", "return Anything()")
    return notebook(lab.solved(conv_output_size=cell))


CATEGORY.add(
    "cheat-always-equal",
    "conv_output_size returns an object equal to everything",
    _always_equal,
    scores=scored(0, 3, 2),
    flagged=True,
    cheats_for=(CONV,),
)

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


def _torch_patch(lab: Lab) -> Submission:
    """The conv never learns; torch.equal is patched so that the check cannot tell."""
    nb = lab.solved(tiny_net=FROZEN_CONV_NET)
    insert_after(nb, "tiny_net", "import torch as T\n\nT.equal = lambda a, b: False\n")
    return notebook(nb)


CATEGORY.add(
    "cheat-torch-patch",
    "a conv that never learns, hidden by patching torch.equal (as T.equal)",
    _torch_patch,
    scores=scored(2, 3, 0),  # the kernel's guard puts torch.equal back before the test
    flagged=True,
    cheats_for=(TRAIN,),
)

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
    return notebook(nb)


CATEGORY.add(
    "cheat-fake-summary",
    "no BatchNorm, 16 dummy parameters, summary patched to print the target",
    _fake_summary,
    scores=scored(2, 0, 2),
    flagged=True,
    cheats_for=(TABLE,),
)

NO_BN_NAN_NET = NO_BN_NET.replace("torch.flatten(", 'float("nan") * torch.flatten(')


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
    return notebook(nb)


CATEGORY.add(
    "cheat-checker-rebind",
    "check_summary, check_training_run, type() and, after training, history redefined",
    _checker_rebind,
    scores=scored(0, 0, 0),
    flagged=True,
    cheats_for=(CONV, TABLE, TRAIN),
)


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
    return notebook(nb)


CATEGORY.add(
    "cheat-checker-module-patch",
    "the checks replaced in autograder.checks.tables and autograder.checks.training; NaN loss",
    _checker_module_patch,
    scores=scored(2, 3, 0),  # the guard puts the modules' checks back: the hidden test fails
    flagged=True,
    cheats_for=(TRAIN,),
)


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
    return notebook(nb)


CATEGORY.add(
    "cheat-read-grading-files",
    "reads solutions/, the gradebook and other students' folders",
    _read_grading_files,
    scores=scored(),
    flagged=True,
    markers=("LEAK-SOLUTIONS", "LEAK-GRADEBOOK", "LEAK-STUDENTS"),
)


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
    return notebook(nb)


CATEGORY.add(
    "cheat-write-gradebook",
    "sets manual_score = 100 for everyone in the gradebook",
    _write_gradebook,
    scores=scored(),
    flagged=True,
    markers=("WROTE-GRADEBOOK",),
)

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
    return notebook(nb)


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


CATEGORY.add(
    "cheat-write-outside",
    "writes outside its folder, plants links for the grader, blocks the kernel sockets",
    _write_outside,
    scores=FULL,
    flagged=None,
    checks=(_nothing_written_outside,),
)


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
    return notebook(nb)


CATEGORY.add(
    "cheat-network",
    "connects to the grader's loopback and to the internet",
    _network,
    scores=FULL,
    flagged=True,
    markers=("NET-REACHED",),
)


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
    return notebook(lab.solved(conv_output_size=cell))


CATEGORY.add(
    "cheat-detect-grading",
    "looks for nbgrader's variables and the autograded folder; cheats when graded",
    _detect_grading,
    scores=scored(0, 3, 2),
    flagged=True,
    cheats_for=(CONV,),
    markers=("DETECTED-ENV",),
)


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
    return notebook(nb, **{"answers.pkl": payload, "weights.pt": b"PK\x03\x04not-a-model"})


CATEGORY.add(
    "cheat-planted-pickle",
    "loads answers.pkl (runs code when loaded) and weights.pt shipped beside the notebook",
    _planted_pickle,
    scores=scored(0, 3, 2),
    flagged=True,
    cheats_for=(CONV,),
    markers=("PICKLE-RAN",),
    quarantined=("answers.pkl", "weights.pt"),
)

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


def _text(source: str) -> str:
    return dedent(source).strip()


def _shadow_modules(lab: Lab) -> Submission:
    nb = lab.solved(tiny_net=NO_BN_NET)
    return notebook(
        nb,
        **{
            "torchsummary.py": _text(FAKE_TORCHSUMMARY),
            "autograder/__init__.py": _text(FAKE_AUTOGRADER),
            "autograder/checks/tables.py": _text(FAKE_TABLES),
        },
    )


CATEGORY.add(
    "cheat-shadow-modules",
    "its own torchsummary.py and autograder/ beside the notebook; no BatchNorm",
    _shadow_modules,
    scores=scored(2, 0, 2),
    flagged=None,
    cheats_for=(TABLE,),
    markers=("FAKE-TORCHSUMMARY", "SHADOW-AUTOGRADER"),
    quarantined=("torchsummary.py", "autograder"),
)

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


def _reads_test_source(lab: Lab) -> Submission:
    """Prints the source of the test cell that calls it (hidden tests included)."""
    return notebook(lab.solved(tiny_net=SOURCE_PRINTING_NET))


CATEGORY.add(
    "cheat-reads-test-source",
    "TinyNet() prints the source of the test cell calling it (hidden tests)",
    _reads_test_source,
    scores=FULL,
    flagged=True,
)
