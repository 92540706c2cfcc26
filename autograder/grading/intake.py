"""Preflight and scan of one submission, in a child process the driver can stop.

Both read what the student wrote: a notebook of hundreds of megabytes, or one line
that a pattern of the scan takes minutes on, would hold the whole batch if they ran in
the driver. So ``grade`` runs them here, in a process of their own, under what is left
of the student's wall-clock cap, and kills it when the cap is reached; the student is
then reported ``timed out`` like one whose notebook ran too long, and the batch goes on.

``python -c`` runs ``main`` with the submission folder, the release folder, the course
root and the notebook names; it prints one JSON object: ``error`` (why the submission
cannot be graded, or null), ``changes`` (what preflight changed) and ``flags`` (what
the scan flagged).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

from autograder.grading.preflight import prepare_submission
from autograder.grading.scan import scan_notebook

__all__ = ["COMMAND", "inspect", "main"]

# As `python -c`: nbformat imports jsonschema, which builds rfc3987_syntax's grammar at
# import (a second or more); nothing here checks the "iri" format it serves.
COMMAND = (
    "import sys; sys.modules['rfc3987_syntax'] = None; "
    "from autograder.grading.intake import main; main(sys.argv[1:])"
)


def inspect(folder: Path, release: Path, root: Path, names: list[str]) -> dict:
    """Archive and normalise ``folder`` (preflight), then scan its notebooks against the
    release: ``{"error": ..., "changes": [...], "flags": [...]}``."""
    checked = prepare_submission(folder, release, root)
    if checked.error:
        return {"error": checked.error, "changes": checked.changes, "flags": []}
    flags = [
        flag
        for name in names
        for flag in scan_notebook(
            nbformat.read(folder / name, as_version=4),
            release=nbformat.read(release / name, as_version=4),
        )
    ]
    return {"error": None, "changes": checked.changes, "flags": flags}


def main(argv: list[str]) -> None:
    """``FOLDER RELEASE ROOT NAME...``: print ``inspect``'s answer as JSON."""
    folder, release, root, *names = argv
    found = inspect(Path(folder), Path(release), Path(root), names)
    sys.stdout.write(json.dumps(found))
