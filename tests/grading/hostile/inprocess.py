"""In-process attacks: scores forged through outputs, trace functions, frames and shell
internals, magics, a locked cell retyped, a TODO answered with the library's own code,
and student ids that nbgrader would read as glob patterns.

Most of these hide from the scan on purpose (names built from strings): the kernel's
guard, the scoring by outcome and the driver's checks must catch them on their own.
"""

from __future__ import annotations

import nbformat

from autograder.grading.grade import INVALID
from tests.grading.hostile import (
    CONV,
    FULL,
    NAN_NET,
    NO_BN_NET,
    TABLE,
    TRAIN,
    Category,
    Lab,
    Submission,
    cell_of,
    insert_after,
    notebook,
    scored,
)

CATEGORY = Category("inprocess")

# A wrong answer that, each time the checks call it, emits an execute_result of 2: nbgrader
# read the first execute_result of a test cell as its score, whatever the cell raised.
DISPLAYHOOK_CONV = """
import sys as s

emit = getattr(s, "display" + "hook")


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    emit(2.0)
    return size
"""


def _displayhook_score(lab: Lab) -> Submission:
    return notebook(lab.solved(conv_output_size=DISPLAYHOOK_CONV))


CATEGORY.add(
    "inproc-displayhook-score",
    "a wrong conv_output_size that emits an execute_result of 2 whenever a check calls it",
    _displayhook_score,
    scores=scored(0, 3, 2),
    flagged=None,  # the score alone must hold, flagged or not
)

# A trace function, installed under names the scan cannot read, that empties `problems`
# in the notebook's namespace on every line the test cells run.
TRACE_CONV = """
import sys as s


def _empty(frame, event, arg):
    space = getattr(frame, "f_" + "globals")
    if "problems" in space:
        space["problems"] = []
    return _empty


getattr(s, "set" + "trace")(_empty)


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    return size
"""


def _trace_locals(lab: Lab) -> Submission:
    return notebook(lab.solved(conv_output_size=TRACE_CONV))


CATEGORY.add(
    "inproc-trace-rewrites-locals",
    "a trace function (named by strings) empties the checks' `problems`",
    _trace_locals,
    scores=scored(0, 3, 2),
    flagged=True,
    flag="grading guard",
    cheats_for=(CONV,),
)


def _hash_in_string(lab: Lab) -> Submission:
    """The patch follows a '#' inside a string on the same line: a scan that cut lines at
    '#' saw nothing after it."""
    nb = lab.solved(tiny_net=NO_BN_NET)
    insert_after(
        nb,
        "tiny_net",
        'import autograder.checks.tables as t\n\nnote = "#"; t.compare_tables = lambda *a, **k: []',
    )
    return notebook(nb)


CATEGORY.add(
    "inproc-hash-in-string",
    "no BatchNorm; the table check patched after a '#' inside a string",
    _hash_in_string,
    scores=scored(2, 0, 2),
    flagged=True,
    cheats_for=(TABLE,),
)

# The model patches the table check through its callers' frame globals whenever a check
# runs it: the guard puts the check back before each cell and names the change.
FRAME_NET = (
    NO_BN_NET
    + """

import sys as s

_frame = getattr(s, "_get" + "frame")


def _patch_from_the_caller() -> None:
    frame = _frame(1)
    while frame is not None:
        space = getattr(frame, "f_" + "globals")
        if "compare_tables" in space:
            space["compare_tables"] = lambda *a, **k: []
            space["count_parameters"] = lambda model: 490
        frame = getattr(frame, "f_" + "back")


_forward = TinyNet.forward


def forward(self, x):
    _patch_from_the_caller()
    return _forward(self, x)


TinyNet.forward = forward
"""
)


def _frame_globals(lab: Lab) -> Submission:
    return notebook(lab.solved(tiny_net=FRAME_NET))


CATEGORY.add(
    "inproc-frame-globals",
    "no BatchNorm; forward() patches the table check through its callers' frame globals",
    _frame_globals,
    scores=scored(2, 0, 2),
    flagged=True,
    flag="grading guard",
    cheats_for=(TABLE,),
)

# An AST transformer, reached through the shell's singleton, that turns every assert
# into `pass` in the cells that follow.
AST_TRANSFORMER = """
import ast

from IPython.core.interactiveshell import InteractiveShell


class NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()


InteractiveShell.instance().ast_transformers.append(NoAsserts())
"""


def _shell_instance(lab: Lab) -> Submission:
    nb = lab.solved(conv_output_size=DISPLAYHOOK_CONV.replace("    emit(2.0)\n", ""))
    insert_after(nb, "conv_output_size", AST_TRANSFORMER)
    return notebook(nb)


CATEGORY.add(
    "inproc-shell-ast-transformer",
    "a wrong conv_output_size; InteractiveShell.instance() gets an AST transformer that "
    "drops every assert",
    _shell_instance,
    scores=scored(0, 3, 2),
    flagged=True,
    flag="grading guard",
    cheats_for=(CONV,),
)


def _history(lab: Lab) -> Submission:
    """A right answer that prints the running cell's source, hidden tests included, from
    the shell's history each time a check calls it."""
    nb = lab.solved()
    cell = cell_of(nb, "conv_output_size")
    cell.source = (
        "import IPython\n\n_history = IPython.get_ipython().history_manager\n\n\n"
        + cell.source.replace(
            '    """Height (or width) of a convolution\'s output."""\n',
            '    """Height (or width) of a convolution\'s output."""\n'
            "    print(_history.input_hist_raw[-1])\n",
        )
    )
    return notebook(nb)


CATEGORY.add(
    "inproc-history-manager",
    "a right conv_output_size that prints the running cell from the history manager",
    _history,
    scores=FULL,
    flagged=True,
    feedback=False,
)


def _xmode(lab: Lab) -> Submission:
    """%xmode Verbose, then a wrong answer: a verbose traceback would show test source."""
    nb = lab.solved(conv_output_size=DISPLAYHOOK_CONV.replace("    emit(2.0)\n", ""))
    insert_after(nb, "conv_output_size", "%xmode Verbose")
    return notebook(nb)


CATEGORY.add(
    "inproc-xmode-verbose",
    "%xmode Verbose before a wrong conv_output_size",
    _xmode,
    scores=scored(0, 3, 2),
    flagged=True,
    flag="grading guard",
)

# The student's model gives NaN; the locked training cell is deleted and retyped to train
# another network into `model` and `history`.
# A right TinyNet, as the shared NaN one is but for its last factor.
RIGHT_NET = NAN_NET.replace(' * float("nan")', "")
RETYPED_TRAINING = (
    RIGHT_NET.replace("TinyNet", "GoodNet")
    + """

model = GoodNet(num_classes=data.num_classes)
before = snapshot(model)
history = fit(model, data, torch.optim.SGD(model.parameters(), lr=0.1), epochs=2, batch_size=16)
"""
)


def _locked_retyped(lab: Lab) -> Submission:
    nb = lab.solved(tiny_net=NAN_NET)
    train = cell_of(nb, "train_tiny_net")
    data_code = train.source.split("model = TinyNet")[0]
    at = nb.cells.index(train)
    retyped = nbformat.v4.new_code_cell(data_code + RETYPED_TRAINING.strip())
    retyped.id = "retyped"
    nb.cells[at] = retyped
    return notebook(nb)


CATEGORY.add(
    "inproc-locked-cell-retyped",
    "a NaN TinyNet; the locked training cell deleted and retyped to train another net",
    _locked_retyped,
    scores=scored(2, 3, 2),
    flagged=True,
    detail="deleted locked cell 'train_tiny_net' put back",
    cheats_for=(TRAIN,),
)

LIBRARY_NET = "from torchvision.models.resnet import conv3x3\n" + RIGHT_NET.replace(
    "nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)", "conv3x3(3, 8)"
)


def _library(lab: Lab) -> Submission:
    return notebook(lab.solved(tiny_net=LIBRARY_NET))


CATEGORY.add(
    "inproc-library-answer",
    "TinyNet's convolution taken from torchvision's ResNet (conv3x3)",
    _library,
    scores=FULL,
    flagged=True,
    flag="library's own torchvision.models.resnet.conv3x3",
)


def _solved(lab: Lab) -> Submission:
    return notebook(lab.solved())


for student, character in (
    ("names-glob*", "ASTERISK"),
    ("names-[ab]", "LEFT SQUARE BRACKET"),
    ("names-trailing-space ", "SPACE"),
):
    CATEGORY.add(
        student,
        f"a right answer, under a student id with {character.lower()}",
        _solved,
        status=INVALID,
        detail=character,
    )
