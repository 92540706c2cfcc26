"""Preflight and scan of one submission, in a child process the driver can stop.

Both read what the student wrote: a notebook of hundreds of megabytes, or one line
that a pattern of the scan takes minutes on, would hold the whole batch if they ran in
the driver. So ``grade`` runs them here, in a process of their own, under what is left
of the student's wall-clock cap, and kills it when the cap is reached; the student is
then reported ``timed out`` like one whose notebook ran too long, and the batch goes on.

``python -c`` runs ``main`` with the submission folder, the release folder, the course
root and the notebook names; it prints one JSON object: ``error`` (why the submission
cannot be graded, or null), ``changes`` (what preflight changed), ``flags`` (what
the scan flagged) and ``language`` (the edition the notebook says it is: ``ko`` for the
Korean one, whose check messages the kernel then prints in Korean; ``en`` otherwise).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat

from autograder.grading.preflight import EDITIONS, edition_language, prepare_submission
from autograder.grading.scan import scan_notebook

__all__ = ["COMMAND", "EDITIONS", "edition_language", "inspect", "main"]

# labkit.i18n.LANGUAGES (a test keeps them equal), without importing the kit and torch
# into this short-lived process.

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
        return {"error": checked.error, "changes": checked.changes, "flags": [], "language": "en"}
    notebooks = [nbformat.read(folder / name, as_version=4) for name in names]
    flags = [
        flag
        for name, nb in zip(names, notebooks, strict=True)
        for flag in scan_notebook(nb, release=nbformat.read(release / name, as_version=4))
    ]
    language = edition_language(notebooks[0]) if notebooks else "en"
    return {"error": None, "changes": checked.changes, "flags": flags, "language": language}


def main(argv: list[str]) -> None:
    """``FOLDER RELEASE ROOT NAME...``: print ``inspect``'s answer as JSON."""
    folder, release, root, *names = argv
    found = inspect(Path(folder), Path(release), Path(root), names)
    sys.stdout.write(json.dumps(found))
