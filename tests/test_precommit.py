"""The pre-commit hooks (``.pre-commit-config.yaml``) agree with the committed notebooks:
nbstripout, run as the hook runs it, finds nothing to strip, and ruff formats what
pyproject says it formats."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHECKED = "nbval-check-output"


def _hooks() -> dict[str, dict]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    return {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}


def _notebooks() -> list[Path]:
    return sorted((ROOT / "solutions").glob("*/*.ipynb")) + sorted(
        (ROOT / "notebooks").glob("*/*.ipynb")
    )


def test_hooks_strip_notebooks_and_lint_and_format_with_ruff():
    assert {"nbstripout", "ruff-check", "ruff-format"} <= set(_hooks())


def test_nbstripout_hook_finds_nothing_to_strip():
    """The hook's own command in --verify mode (a dry run that fails on any change)."""
    args = _hooks()["nbstripout"].get("args", [])
    result = subprocess.run(
        [sys.executable, "-m", "nbstripout", "--verify", *args, *map(str, _notebooks())],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode == 0 and not result.stdout.strip(), (
        f"{result.stdout}{result.stderr}\nnbstripout would change these notebooks: tag cells "
        f"whose outputs nbval checks with {CHECKED!r} and 'keep_output' "
        "(scripts/store_checked_outputs.py --tag-only NOTEBOOK); clear every other output"
    )


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_only_checked_cells_keep_outputs_and_counts(path):
    """nbstripout keeps every execution count (nbval needs those of checked cells), so
    this test is what keeps the counts of the other cells out."""
    nb = nbformat.read(path, as_version=4)
    stray = [
        i
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        and (cell.outputs or cell.execution_count is not None)
        and CHECKED not in cell.metadata.get("tags", [])
    ]
    assert not stray, f"cells with outputs or execution counts but no {CHECKED!r} tag: {stray}"


def test_ruff_formats_what_pyproject_formats():
    """notebooks/ is nbgrader's output: excluded from formatting by both."""
    tomllib = pytest.importorskip("tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "notebooks/**" in pyproject["tool"]["ruff"]["format"]["exclude"]
    hook = _hooks()["ruff-format"]
    assert "jupyter" in hook["types_or"] and "notebooks/" in hook["exclude"]
    assert "jupyter" in _hooks()["ruff-check"]["types_or"]
