"""What a graded notebook may carry: at most ``MAX_OUTPUT_BYTES`` of outputs in all.

A cell can print hundreds of megabytes; nbgrader would write them all into the
autograded notebook and the feedback page, which then no browser opens and which fills
the grader's disk. So outputs are capped twice, by the same measure:

- while the notebook runs, ``autograder.grading.scoring.RecordOutcome`` stops keeping a
  cell's outputs once the notebook holds several times the cap (the grader's memory
  stays bounded whatever the kernel sends) and counts what it dropped in the cell's
  metadata (``CUT_KEY``);
- ``CapOutputs``, an autograde preprocessor right after execution and a feedback
  preprocessor after redaction, cuts the notebook to the cap before anything is written:
  test cells' outputs are kept first (their ✔ lines), then the others in order; a cut
  stream keeps its beginning; each cell that lost something ends with a note saying so.

The measure is what an output costs in the feedback page, not only in the notebook:
``<``, ``&`` and quotes are escaped there, an ANSI escape becomes a ``<span>``, and
every output is wrapped in a few hundred bytes of HTML. Scores never depend on outputs
(``autograder.grading.scoring`` reads each test cell's recorded outcome from its
metadata), so cutting outputs never changes a score.
"""

from __future__ import annotations

from collections.abc import Iterator

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool, Integer

__all__ = [
    "CUT_KEY",
    "MAX_OUTPUT_BYTES",
    "NOTE",
    "CapOutputs",
    "cap_outputs",
    "fit_output",
    "note_output",
    "output_size",
    "output_weight",
]

MAX_OUTPUT_BYTES = 20 * 2**20
CUT_KEY = "labkit_output_cut"  # in a code cell's metadata: characters dropped while it ran
NOTE = "[output truncated by the grader: "  # how every note starts
_WRAPPING = 512  # the HTML around one output in the feedback page
_ESCAPED = "<>&\"'"  # each becomes an entity of up to 5 characters
_ANSI = 64  # an escape sequence becomes a <span class="..."> and its </span>
_RICH = ("text/markdown", "text/latex")  # rendered, and so grown, in the feedback
_NOTES_SHARE = 20  # notes may take 1/20 of the cap; past that, cells are cut silently


def _text_weight(text: str) -> int:
    size = len(text) if text.isascii() else len(text.encode("utf-8", "replace"))
    escaped = sum(text.count(char) for char in _ESCAPED)
    return size + 4 * escaped + _ANSI * text.count("\x1b")


def _strings(value) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)


def output_weight(output: NotebookNode) -> int:
    """What ``output`` costs in the notebook or its feedback page, in bytes at most."""
    weight = _WRAPPING
    for key, value in output.items():
        rich = isinstance(value, dict) and any(mime in value for mime in _RICH)
        factor = 8 if key == "data" and rich else 1
        weight += factor * sum(_text_weight(text) for text in _strings(value))
    return weight


def output_size(output: NotebookNode) -> int:
    """The characters of what ``output`` shows (what a note reports as removed)."""
    shown = (output.get(key) for key in ("text", "data", "ename", "evalue", "traceback"))
    return sum(len(text) for value in shown for text in _strings(value))


def note_output(removed: int, limit: int) -> NotebookNode:
    """The note that replaces what was cut from a cell."""
    text = (
        f"{NOTE}the outputs of a graded notebook are kept up to {limit / 2**20:g} MB in all; "
        f"{removed:,} characters of this cell's output were removed here]\n"
    )
    return nbformat.v4.new_output("stream", name="stderr", text=text)


def _cut_text(text: str, budget: int) -> str:
    """The longest start of ``text`` that weighs at most ``budget`` (shrunk in proportion
    to its weight until it fits: a few passes over the text)."""
    cut = text[: max(budget, 0)]
    while cut and (weight := _text_weight(cut)) > budget:
        cut = cut[: len(cut) * budget // weight - 1]
    return cut


def fit_output(output: NotebookNode, room: int) -> tuple[NotebookNode | None, int]:
    """(what of ``output`` fits in ``room``, the characters removed): all of it, or the
    start of a stream, or nothing."""
    if output_weight(output) <= room:
        return output, 0
    text = output.get("text", "") if output.get("output_type") == "stream" else ""
    start = _cut_text(text, room - _WRAPPING) if text else ""
    if not start:
        return None, output_size(output)
    part = nbformat.v4.new_output("stream", name=output["name"], text=start)
    return part, len(text) - len(start)


def _fit(outputs: list[NotebookNode], budget: int) -> tuple[list[NotebookNode], int, int]:
    """(the outputs kept, their weight, the characters removed) within ``budget``: whole
    outputs while they fit, then the start of the next one if it is a stream, then
    nothing (what a cell printed stays in order)."""
    kept, used = [], 0
    for index, output in enumerate(outputs):
        part, removed = fit_output(output, budget - used)
        if part is not None:
            kept.append(part)
            used += output_weight(part)
        if removed:
            return kept, used, removed + sum(output_size(rest) for rest in outputs[index + 1 :])
    return kept, used, 0


def _graded_first(nb: NotebookNode) -> list[NotebookNode]:
    """Code cells, test cells first: their outputs are what the feedback is for."""
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    graded = [cell for cell in code if cell.metadata.get("nbgrader", {}).get("grade")]
    return graded + [cell for cell in code if not cell.metadata.get("nbgrader", {}).get("grade")]


def cap_outputs(nb: NotebookNode, limit: int = MAX_OUTPUT_BYTES) -> int:
    """Cut ``nb``'s outputs to ``limit`` in all, notes included; return the characters
    removed (with those dropped while it ran, as recorded in ``CUT_KEY``)."""
    notes_room = limit // _NOTES_SHARE
    budget = limit - notes_room
    cut: dict[int, int] = {}
    for cell in _graded_first(nb):
        dropped = int(cell.metadata.pop(CUT_KEY, 0) or 0)
        kept, used, removed = _fit(list(cell.get("outputs", [])), budget)
        budget -= used
        if removed or dropped:
            cell.outputs = kept
            cut[id(cell)] = removed + dropped
    total = sum(cut.values())
    for cell in (c for c in nb.cells if id(c) in cut):
        note = note_output(cut[id(cell)], limit)
        notes_room -= output_weight(note)
        if notes_room < 0:
            break
        cell.outputs.append(note)
    return total


class CapOutputs(Preprocessor):
    """Cut a notebook's outputs to ``max_bytes`` in all, leaving a note where it cut."""

    # nbconvert's preprocessors are off unless enabled: registered by class in a list of
    # preprocessors, this one would silently do nothing.
    enabled = Bool(True).tag(config=True)
    max_bytes = Integer(MAX_OUTPUT_BYTES, help="the most bytes of outputs a notebook keeps").tag(
        config=True
    )

    def preprocess(self, nb, resources):
        removed = cap_outputs(nb, self.max_bytes)
        if removed:
            self.log.warning("outputs over %d bytes: %d characters cut", self.max_bytes, removed)
        return nb, resources
