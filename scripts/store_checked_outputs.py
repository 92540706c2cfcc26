"""Run solution notebooks and keep the outputs of cells tagged ``nbval-check-output``.

Committed notebooks carry no outputs, except the cells nbval compares on purpose
(the Day 4 ``summary`` table, say). After changing such a cell, run

    LABKIT_RUN=fast python scripts/store_checked_outputs.py solutions/day04_resnet/resnet.ipynb

and commit the notebook: every other cell's outputs and execution counts are cleared.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

TAG = "nbval-check-output"


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
    nbformat.write(original, path)
    print(f"{path}: stored the outputs of {TAG} cells")


if __name__ == "__main__":
    os.environ.setdefault("LABKIT_RUN", "fast")
    for name in sys.argv[1:]:
        store(Path(name))
