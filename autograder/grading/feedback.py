"""What feedback shows of a graded test cell, and feedback that is not written at all.

Student code runs inside the test cells (the checks call it), so anything a test cell
printed may be the student's: text that quotes the hidden tests, re-encoded so that no
line of it matches (zero-width characters, HTML entities, ANSI colour codes), or a fake
report. Matching the hidden lines in the output and redacting them cannot keep up
with the encodings, so feedback keeps only what the check itself wrote:

* ``KeepCheckReports``: a graded test cell (nbgrader ``grade``, not ``solution``) shows
  its error (exception name and message: the check's ``report(...)``) or, when it
  passed, its own pass line (what the ``print("✔ ...")`` in its source prints), nothing
  else it printed or displayed;
* ``find_leaks``: the hidden test lines found in a notebook's outputs once the text is
  normalised (Unicode NFKC; invisible, control and combining characters and ANSI escape
  sequences removed; HTML entities unescaped until nothing changes; whitespace
  removed). The driver deletes such a notebook's feedback and flags it
  (``autograder/grading/grade.py``); ``WithholdLeakedFeedback`` replaces the notebook
  by a notice when ``nbgrader generate_feedback`` runs by hand or from formgrader.

Normalising undoes re-encoding, not every transformation (base64, a line printed in
halves): the guarantee is that a test cell shows only its check's report; an output
of the student's own cells shows what the student wrote.
"""

from __future__ import annotations

import ast
import html
import re
import unicodedata
from collections.abc import Iterator

import nbformat
from nbconvert.preprocessors import Preprocessor
from nbformat import NotebookNode
from traitlets import Bool

__all__ = [
    "PASS_MARK",
    "WITHHELD",
    "KeepCheckReports",
    "WithholdLeakedFeedback",
    "check_report",
    "find_leaks",
    "hidden_lines",
    "is_graded_test",
    "normalise",
    "pass_line_patterns",
]

PASS_MARK = "✔"
WITHHELD = (
    "**Feedback withheld.** This notebook's outputs quote the hidden tests, so its "
    "feedback is not shown. Your score is above; ask your instructor to review it."
)
_BEGIN, _END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
_MIN_LENGTH = 12  # shorter lines (")", "assert x") are too common to identify a test
_ROUNDS = 64  # text still changing after this many rounds of decoding is hiding something
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_TAG = re.compile(r"<[^<>]*>")
# Characters that print as nothing: format (zero-width space, joiners, BOM, soft hyphen),
# control, combining marks, and the Hangul fillers that Unicode calls default-ignorable.
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cc", "Mn", "Me"})
_FILLERS = frozenset("\u115f\u1160\u3164\uffa0")
_PLACEHOLDER = ".{0,120}"  # a value formatted into a pass line
_PIXELS = frozenset({"image/png", "image/jpeg"})
# More text than this in one cell's outputs is not decoded (64 rounds of it would stall
# the grader): it is withheld as if it quoted the hidden tests.
_MAX_TEXT = 10_000_000


def _visible(char: str) -> bool:
    if char.isspace():
        return True  # removed at the end, with all whitespace
    return unicodedata.category(char) not in _INVISIBLE_CATEGORIES and char not in _FILLERS


def normalise(text: str) -> str | None:
    """``text`` decoded the ways a determined student re-encodes it, whitespace removed:
    what to search for a hidden line. None when it is still changing after 64 rounds
    (entities inside entities, to outlast the decoder)."""
    for _ in range(_ROUNDS):
        decoded = html.unescape(unicodedata.normalize("NFKC", text))
        decoded = _ANSI.sub("", decoded)
        decoded = "".join(c for c in decoded if _visible(c))
        if decoded == text:
            return "".join(text.split())
        text = decoded
    return None


def _trusted(cell: NotebookNode) -> bool:
    """A cell whose source comes from the gradebook, not from the student."""
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade") or meta.get("locked")) and not meta.get("solution")


def _regions(source: str) -> Iterator[tuple[bool, str]]:
    """(inside a hidden region?, line) for each line of ``source``."""
    inside = False
    for line in source.splitlines():
        if _BEGIN in line:
            inside = True
        elif _END in line:
            inside = False
        else:
            yield inside, line


def hidden_lines(nb: NotebookNode) -> set[str]:
    """The hidden test lines of ``nb``'s grade and locked cells, normalised, that appear
    nowhere outside a hidden region (those are in the release anyway), and the
    markers, when there are hidden tests at all."""
    hidden, public = set(), set()
    for cell in nb.cells:
        if _trusted(cell):
            for inside, line in _regions(cell.source):
                (hidden if inside else public).add(normalise(line) or "")
    secret = {line for line in hidden - public if len(line) >= _MIN_LENGTH}
    return (secret | {normalise(_BEGIN), normalise(_END)}) if secret else secret


def _strings(value: object) -> Iterator[str]:
    """Every string in an output: values, and keys too (metadata can carry text); not
    PNG or JPEG data, which the page shows as pixels (and only when it is base64)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            if key not in _PIXELS:
                yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _cell_name(cell: NotebookNode, index: int) -> str:
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    return f"cell {index + 1}" + (f" ({grade_id})" if grade_id else "")


def find_leaks(nb: NotebookNode) -> list[str]:
    """Which cells' outputs quote hidden tests, however re-encoded, and how many lines;
    ``[]`` when none does. Says which cells and how many lines, never the lines."""
    secret = hidden_lines(nb)
    if not secret:
        return []
    problems = []
    for index, cell in enumerate(nb.cells):
        raw = "\n".join(_strings([dict(o) for o in cell.get("outputs", [])]))
        if not raw:
            continue
        if len(raw) > _MAX_TEXT:
            problems.append(f"{_cell_name(cell, index)} prints more than {_MAX_TEXT:,} characters")
            continue
        texts = [normalise(raw), normalise(_TAG.sub("", html.unescape(raw)))]
        if None in texts:
            problems.append(f"{_cell_name(cell, index)} prints text encoded over and over")
            continue
        found = {line for line in secret if any(line in text for text in texts)}
        if found:
            lines = f"{len(found)} hidden test line{'s' if len(found) > 1 else ''}"
            problems.append(f"{_cell_name(cell, index)} quotes {lines}")
    return problems


def is_graded_test(cell: NotebookNode) -> bool:
    """A test cell that scores points: nbgrader ``grade``, not a ``solution``."""
    meta = cell.metadata.get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("grade")) and not meta.get("solution")


def _template(node: ast.expr) -> str | None:
    """The regular expression that the string ``node`` builds, its formatted values as
    placeholders; None when ``node`` is not a string expression."""
    if isinstance(node, ast.Constant):
        return re.escape(node.value) if isinstance(node.value, str) else None
    if isinstance(node, ast.JoinedStr):
        parts = [_template(v) if isinstance(v, ast.Constant) else _PLACEHOLDER for v in node.values]
        return "".join(p or "" for p in parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = _template(node.left), _template(node.right)
        return (left or _PLACEHOLDER) + (right or _PLACEHOLDER)
    return None


def pass_line_patterns(source: str) -> list[re.Pattern[str]]:
    """The lines that the cell's own ``print("✔ ...")`` calls can print."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    patterns = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "print"
            and node.args
            and (template := _template(node.args[0]))
            and template.startswith(re.escape(PASS_MARK))
        ):
            patterns.append(re.compile(template))
    return patterns


def _error(name: str, message: str) -> NotebookNode:
    """An error output that is only ``name: message``: no traceback lines, where code
    around the failing line could show."""
    return nbformat.v4.new_output(
        "error", ename=name, evalue=message, traceback=[f"{name}: {message}"]
    )


def check_report(cell: NotebookNode) -> list[NotebookNode]:
    """What feedback shows of graded test cell ``cell``: its error as ``name: message``,
    or, when it raised none, its pass line. Student code can print a line that looks
    like the pass line, so one is shown only when exactly one printed line fits the
    cell's own ``print("✔ ...")`` (a second one is a forgery) and the cell did not
    raise (a lone one may be a forgery printed before the check failed)."""
    patterns = pass_line_patterns(cell.source)
    printed = "".join(
        o.get("text", "")
        for o in cell.get("outputs", [])
        if o.get("output_type") == "stream" and o.get("name") == "stdout"
    )
    passes = [line for line in printed.splitlines() if any(p.fullmatch(line) for p in patterns)]
    errors = [
        _error(str(o.get("ename", "")), str(o.get("evalue", "")))
        for o in cell.get("outputs", [])
        if o.get("output_type") == "error"
    ]
    if errors or len(passes) != 1:
        return errors
    return [nbformat.v4.new_output("stream", name="stdout", text=passes[0] + "\n")]


class KeepCheckReports(Preprocessor):
    """Graded test cells keep their check's report and pass line, nothing else."""

    # nbconvert's preprocessors are off unless enabled: registered by class in
    # GenerateFeedback.preprocessors, this one would silently do nothing.
    enabled = Bool(True).tag(config=True)

    def preprocess_cell(self, cell, resources, index):
        if is_graded_test(cell):
            cell.outputs = check_report(cell)
        return cell, resources


class WithholdLeakedFeedback(Preprocessor):
    """A notebook whose outputs quote hidden tests becomes a notice (the driver deletes
    its feedback file as well); it must run before anything removes outputs."""

    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        leaks = find_leaks(nb)
        if leaks:
            self.log.warning("feedback withheld: %s", "; ".join(leaks))
            nb.cells = [nbformat.v4.new_markdown_cell(WITHHELD)]
        return nb, resources
