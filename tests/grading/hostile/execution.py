"""Execution failures: code that never returns, kills its kernel, exhausts the machine or
floods the outputs, and a model whose loss is NaN.
"""

from __future__ import annotations

from autograder.grading.grade import CRASHED, TIMED_OUT
from tests.grading.hostile import (
    FULL,
    NAN_NET,
    WRONG_CONV,
    Category,
    Lab,
    Outcome,
    Submission,
    insert_after,
    notebook,
    scored,
)

CATEGORY = Category("execution")

CORRECT_CONV = """
def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1
"""


def _shows_cell_timeout(outcome: Outcome) -> list[str]:
    found = "CellTimeoutError" in outcome.outputs
    return [] if found else ["the autograded notebook does not show the cell timeout"]


CATEGORY.add(
    "exec-infinite-loop",
    "conv_output_size never returns",
    lambda lab: notebook(
        lab.solved(conv_output_size=WRONG_CONV.replace("return size", "while True:\n        pass"))
    ),
    scores=scored(0, 3, 2),
    checks=(_shows_cell_timeout,),
)


def _swallows_interrupt(lab: Lab) -> Submission:
    cell = CORRECT_CONV + "\n\nimport time\n\nwhile True:\n    try:\n        time.sleep(0.05)\n"
    cell += "    except KeyboardInterrupt:\n        pass\n"
    return notebook(lab.solved(conv_output_size=cell))


CATEGORY.add(
    "exec-swallows-interrupt",
    "a loop that catches KeyboardInterrupt",
    _swallows_interrupt,
    status=TIMED_OUT,
    detail="stopped after",
)

CATEGORY.add(
    "exec-os-exit",
    "os._exit(0) kills the kernel",
    lambda lab: notebook(lab.solved(conv_output_size="import os\n\nos._exit(0)\n" + CORRECT_CONV)),
    status=CRASHED,
    flagged=True,
)

CATEGORY.add(
    "exec-sys-exit",
    "sys.exit() before the answer",
    lambda lab: notebook(
        lab.solved(conv_output_size="import sys\n\nsys.exit('bye')\n" + CORRECT_CONV)
    ),
    scores=scored(0, 3, 2),
)


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
    return notebook(nb)


CATEGORY.add(
    "exec-memory-bomb",
    "fills /tmp with 2 GiB, then asks for 100 GiB of memory",
    _memory_bomb,
    scores=FULL,
    flagged=None,
    markers=("TMP-FILLED",),
)


def _fork_bomb(lab: Lab) -> Submission:
    cell = CORRECT_CONV + "\n\nimport os\n\nwhile True:\n    os.fork()\n"
    return notebook(lab.solved(conv_output_size=cell))


CATEGORY.add(
    "exec-fork-bomb",
    "while True: os.fork()",
    _fork_bomb,
    scores=scored(2, 3, 2),
    flagged=True,
)


def _print_flood(lab: Lab) -> Submission:
    cell = CORRECT_CONV + "\n\nfor line in range(100_000):\n    print(f'line {line}')\n"
    return notebook(lab.solved(conv_output_size=cell))


def _output_is_capped(outcome: Outcome) -> list[str]:
    lines = outcome.outputs.count("\n")
    return [] if lines < 5000 else [f"the autograded outputs hold {lines} lines (not capped)"]


CATEGORY.add(
    "exec-print-flood",
    "prints 100,000 lines",
    _print_flood,
    scores=FULL,
    checks=(_output_is_capped,),
)

CATEGORY.add(
    "exec-nan-loss",
    "the model outputs NaN, so the loss is NaN",
    lambda lab: notebook(lab.solved(tiny_net=NAN_NET)),
    scores=scored(2, 3, 0),
)
