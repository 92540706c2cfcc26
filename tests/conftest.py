"""Shared test helpers: a solution notebook's model code, executable and mutable.

``solution_namespace`` runs a solution's definition cells (for Day 4, the default:
``conv3x3``/``conv1x1``, ``BasicBlock``, ``ResNet``, ``resnet18``, ``resnet34``) in a
fresh namespace, after optional text replacements, so that a test can build a mutant
of the reference solution by editing one line of its source.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_NOTEBOOK = ROOT / "solutions" / "day04_resnet" / "resnet.ipynb"
SOLUTION_NAMES = ("conv3x3", "conv1x1", "BasicBlock", "ResNet", "resnet18", "resnet34")

# What the setup cell provides to the definition cells; the setup cell itself is not run
# (it seeds the global RNG, reads the environment and prints).
_PRELUDE = "import torch\nfrom torch import nn\n"


def _defines_only(source: str) -> bool:
    """True for a cell made only of functions and classes (no training, no data loading)."""
    body = ast.parse(source).body
    definitions = (ast.FunctionDef, ast.ClassDef)
    return any(isinstance(node, definitions) for node in body) and all(
        isinstance(node, (*definitions, ast.Import, ast.ImportFrom)) for node in body
    )


@functools.lru_cache(maxsize=4)
def solution_cells(path: Path = SOLUTION_NOTEBOOK) -> tuple[str, ...]:
    """The solution notebook's definition cells, in notebook order."""
    notebook = nbformat.read(path, as_version=4)
    cells = tuple(
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "code" and _defines_only(cell.source)
    )
    assert cells, f"no definition cells found in {path}"
    return cells


def solution_namespace(
    replace: Mapping[str, str] | None = None,
    path: Path = SOLUTION_NOTEBOOK,
    names: tuple[str, ...] = SOLUTION_NAMES,
) -> dict:
    """Execute the definition cells of the solution at ``path`` (Day 4's by default),
    after replacing text, and return the namespace, which must define ``names``.

    Each key of ``replace`` must occur exactly once in those cells, so that a mutant
    cannot silently turn into the unmodified solution when the notebook changes.
    """
    cells = list(solution_cells(path))
    for old, new in (replace or {}).items():
        count = sum(cell.count(old) for cell in cells)
        assert count == 1, f"{old!r} occurs {count} times in the solution's cells, expected once"
        cells = [cell.replace(old, new) for cell in cells]
    # torchsummary names a row after str(type(module)): classes need a module name.
    namespace: dict = {"__name__": "__main__"}
    exec(compile(_PRELUDE, "<prelude>", "exec"), namespace)
    for i, source in enumerate(cells):
        exec(compile(source, f"{path.name}[definition cell {i}]", "exec"), namespace)
    missing = [name for name in names if name not in namespace]
    assert not missing, f"the solution's cells do not define {missing}"
    return namespace


@pytest.fixture(name="solution_namespace")
def solution_namespace_fixture() -> Callable[..., dict]:
    """``solution_namespace(replace=None, path=..., names=...)``: see the module function."""
    return solution_namespace


@pytest.fixture(scope="session")
def solution() -> dict:
    """The unmodified solution's namespace (shared: do not mutate it)."""
    return solution_namespace()
