"""Run solution notebooks and keep the outputs of cells tagged ``nbval-check-output``.

Committed notebooks carry no outputs, except the cells nbval compares on purpose
(the Day 4 ``summary`` table, say). After changing such a cell, run

    LABKIT_RUN=fast python scripts/store_checked_outputs.py solutions/day04_resnet/resnet.ipynb

and commit the notebook: every other cell's outputs and execution counts are cleared.
Each checked cell also gets the tag ``keep_output``, which tells nbstripout (the
pre-commit hook) to keep its outputs; nbval needs its execution count too, so the hook
runs with ``--keep-count``. ``--tag-only`` adds the tags without running anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TAG = "nbval-check-output"
KEEP = "keep_output"  # nbstripout's per-cell opt-out


def tag_checked_cells(nb) -> bool:
    """Give every ``TAG`` cell the ``KEEP`` tag; return whether anything changed."""
    changed = False
    for cell in nb.cells:
        tags = cell.metadata.get("tags", [])
        if TAG in tags and KEEP not in tags:
            cell.metadata["tags"] = [*tags, KEEP]
            changed = True
    return changed


def tag_only(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    if tag_checked_cells(nb):
        nbformat.write(nb, path)
    print(f"{path}: {TAG} cells carry {KEEP}")


def store(path: Path) -> None:
    original = nbformat.read(path, as_version=4)
    executed = nbformat.read(path, as_version=4)
    NotebookClient(
        executed, timeout=900, resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    for before, after in zip(original.cells, executed.cells, strict=True):
        if before.cell_type != "code":
            continue
        keep = TAG in before.metadata.get("tags", [])
        before.outputs = after.outputs if keep else []
        before.execution_count = after.execution_count if keep else None
    tag_checked_cells(original)
    nbformat.write(original, path)
    print(f"{path}: stored the outputs of {TAG} cells")


if __name__ == "__main__":
    os.environ.setdefault("LABKIT_RUN", "fast")
    names = sys.argv[1:]
    run = tag_only if names[:1] == ["--tag-only"] else store
    for name in names[1:] if run is tag_only else names:
        run(Path(name))
