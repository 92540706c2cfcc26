"""Corrupt files: a truncated or empty file, a notebook without cells, a wrong kernel, a
wrong file name, a link in place of the notebook.
"""

from __future__ import annotations

import nbformat

from autograder.grading.grade import INVALID
from tests.grading.hostile import (
    ASSIGNMENT,
    FULL,
    NOTEBOOK,
    Category,
    Lab,
    Submission,
    notebook,
    scored,
)

CATEGORY = Category("corrupt")

CATEGORY.add(
    "corrupt-truncated-json",
    "the first 5,000 characters of the file",
    lambda lab: Submission({NOTEBOOK: nbformat.writes(lab.solved())[:5000]}),
    status=INVALID,
    detail="not a valid notebook",
)

CATEGORY.add(
    "corrupt-empty-file",
    "0 bytes",
    lambda lab: Submission({NOTEBOOK: b""}),
    status=INVALID,
    detail="not a valid notebook",
)

CATEGORY.add(
    "corrupt-empty-notebook",
    "a valid notebook without cells",
    lambda lab: notebook(nbformat.v4.new_notebook()),
    scores=scored(),
)


def _wrong_kernel(lab: Lab) -> Submission:
    nb = lab.solved()
    nb.metadata["kernelspec"] = {"display_name": "R", "language": "R", "name": "ir"}
    nb.metadata["language_info"] = {"name": "R"}
    return notebook(nb)


CATEGORY.add(
    "corrupt-wrong-kernel",
    "kernelspec R (ir)",
    _wrong_kernel,
    scores=FULL,
)

CATEGORY.add(
    "corrupt-wrong-name",
    'saved as "probe (1).ipynb"',
    lambda lab: Submission({"probe (1).ipynb": lab.solved()}),
    scores=FULL,
    detail="renamed",
)


def _symlinked(lab: Lab) -> Submission:
    """The notebook is a link to the instructor's solution (a zip can carry links)."""
    return Submission({}, links={NOTEBOOK: lab.root / "solutions" / ASSIGNMENT / NOTEBOOK})


CATEGORY.add(
    "corrupt-symlinked-notebook",
    "probe.ipynb is a link to the instructor's solution",
    _symlinked,
    status=INVALID,
    detail="link",
)
