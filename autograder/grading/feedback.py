"""Feedback that never shows a hidden test, not even through an output.

nbgrader's ``ClearHiddenTests`` removes hidden tests from the cells' source, but
an output can still carry them: a traceback's context lines, or student code
that prints the source of the cell calling it (IPython keeps it in ``In``).
``RedactHiddenOutputs`` runs before ``ClearHiddenTests`` in
``GenerateFeedback.preprocessors``: it collects the hidden test lines from the
autograded notebook and blanks every output line that contains one, or one of the
BEGIN/END HIDDEN TESTS markers.
"""

from __future__ import annotations

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

__all__ = ["REDACTED", "RedactHiddenOutputs", "hidden_lines", "redact"]

REDACTED = "[line removed: it quotes a hidden test]"
_BEGIN, _END = "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"
_MIN_LENGTH = 12  # shorter lines (")", "assert x") are too common to identify a test


def hidden_lines(nb) -> set[str]:
    """The stripped lines inside BEGIN/END HIDDEN TESTS regions of ``nb``'s cells, and
    the markers themselves when there are such regions."""
    lines, inside = set(), False
    for cell in nb.cells:
        for line in cell.source.splitlines():
            if _BEGIN in line:
                inside = True
            elif _END in line:
                inside = False
            elif inside and len(line.strip()) >= _MIN_LENGTH:
                lines.add(line.strip())
    return (lines | {_BEGIN, _END}) if lines else lines


def redact(text: str, secret: set[str]) -> str:
    """``text`` with each line that contains a secret line replaced."""
    out = [REDACTED if any(s in line for s in secret) else line for line in text.split("\n")]
    return "\n".join(out)


def _redact_value(value, secret: set[str]):
    if isinstance(value, str):
        return redact(value, secret)
    if isinstance(value, list):
        return [_redact_value(v, secret) for v in value]
    return value


class RedactHiddenOutputs(Preprocessor):
    """Blank every output line that quotes a hidden test."""

    # nbconvert's preprocessors are off unless enabled: registered by class in
    # GenerateFeedback.preprocessors, this one would silently do nothing.
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        secret = hidden_lines(nb)
        if not secret:
            return nb, resources
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                if "text" in output:
                    output["text"] = _redact_value(output["text"], secret)
                if "traceback" in output:
                    output["traceback"] = _redact_value(output["traceback"], secret)
                if "evalue" in output:
                    output["evalue"] = _redact_value(output["evalue"], secret)
                for mime, value in output.get("data", {}).items():
                    if mime.startswith("text/"):
                        output["data"][mime] = _redact_value(value, secret)
        return nb, resources
