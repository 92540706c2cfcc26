"""The two cells that open every lab: an "Open in Colab" badge and the setup cell.

Colab has torch, torchvision, matplotlib, numpy, pillow and tqdm, but neither
torchsummary nor this kit. The setup cell installs what is missing, and only
that: in JupyterLab with the kit installed, under nbgrader and in the grading
sandbox everything imports, and the cell only looks (three ``find_spec`` calls).
A graded or validated kernel never installs: when something is missing there
(``NBGRADER_EXECUTION``, or ``PIP_NO_INDEX``, which the sandbox sets), the cell
says so and stops instead of calling pip.

The published repository (the student bundle, ``python -m autograder bundle``) is
named once, in ``REPOSITORY``; badges and the setup cell are generated from it.
``python -m autograder colab [ASSIGNMENT ...]`` writes them into
``solutions/`` (idempotently: re-run it after changing ``REPOSITORY``); then
``python -m autograder release`` carries them into ``notebooks/``.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat import NotebookNode

__all__ = [
    "BADGE_ID",
    "BRANCH",
    "REPOSITORY",
    "SETUP_ID",
    "apply_colab_cells",
    "badge_source",
    "colab_cell_problems",
    "colab_url",
    "kit_source",
    "setup_source",
]

# The public GitHub repository that holds the student bundle, and its branch.
REPOSITORY = "cnn-labkit/cnn-labs"
BRANCH = "main"

BADGE_ID = "colab-badge"
SETUP_ID = "colab-setup"
SETUP_GRADE_ID = "colab_setup"
# A read-only cell for nbgrader: students cannot edit it in JupyterLab, grading
# restores its source from the gradebook, and the cheat scan skips it.
SETUP_NBGRADER = {
    "grade": False,
    "grade_id": SETUP_GRADE_ID,
    "locked": True,
    "schema_version": 3,
    "solution": False,
    "task": False,
}
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"


def kit_source(repository: str = REPOSITORY, branch: str = BRANCH) -> str:
    """The pip requirement that installs the kit from the published repository."""
    return f"cnn-labkit @ git+https://github.com/{repository}@{branch}"


def colab_url(
    assignment: str, name: str, repository: str = REPOSITORY, branch: str = BRANCH
) -> str:
    """Colab's address for the student notebook ``notebooks/<assignment>/<name>``."""
    return (
        f"https://colab.research.google.com/github/{repository}/blob/{branch}"
        f"/notebooks/{assignment}/{name}"
    )


def badge_source(assignment: str, name: str, repository: str = REPOSITORY) -> str:
    return (
        f"[![Open In Colab]({BADGE_IMAGE})]({colab_url(assignment, name, repository)})\n"
        "\n"
        "**On Colab**, run the next cell first: it installs torchsummary and this kit (about\n"
        "a minute). *Runtime > Change runtime type > GPU* makes the training sections fast.\n"
        "In JupyterLab with the kit installed, the cell changes nothing."
    )


_SETUP_TEMPLATE = """\
# Installs what Colab lacks (torchsummary and this kit), and only what is missing:
# where they are installed (JupyterLab with the kit, grading) it installs nothing.
import importlib.util
import os
import subprocess
import sys

PUBLISHED_KIT = "{kit}"
KIT_SOURCE = os.environ.get("LABKIT_PIP_SOURCE", PUBLISHED_KIT)  # or set it to another copy
PACKAGES = {{"torchsummary": "torchsummary", "labkit": KIT_SOURCE, "autograder": KIT_SOURCE}}
missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None]
if missing and (os.environ.get("NBGRADER_EXECUTION") or os.environ.get("PIP_NO_INDEX")):
    raise ModuleNotFoundError(
        f"{{', '.join(missing)}} not installed, and a graded or offline kernel installs "
        f"nothing: install {{KIT_SOURCE!r}} where this kernel runs."
    )
if missing:
    print(f"installing {{', '.join(missing)}} from {{KIT_SOURCE}} ...")
    to_install = sorted({{PACKAGES[name] for name in missing}})
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", *to_install], check=True)
    importlib.invalidate_caches()
else:
    print("setup: torchsummary, labkit and autograder are installed; nothing to install")"""


def setup_source(repository: str = REPOSITORY) -> str:
    return _SETUP_TEMPLATE.format(kit=kit_source(repository))


def _badge_cell(assignment: str, name: str) -> NotebookNode:
    cell = nbformat.v4.new_markdown_cell(badge_source(assignment, name))
    cell.id = BADGE_ID
    return cell


def _setup_cell() -> NotebookNode:
    cell = nbformat.v4.new_code_cell(setup_source())
    cell.id = SETUP_ID
    cell.metadata["nbgrader"] = dict(SETUP_NBGRADER)
    return cell


def _is_colab_cell(cell: NotebookNode) -> bool:
    grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
    return cell.get("id") in (BADGE_ID, SETUP_ID) or grade_id == SETUP_GRADE_ID


def apply_colab_cells(path: Path) -> bool:
    """Put the badge and setup cells at the top of the solution notebook ``path``
    (``solutions/<assignment>/<name>``), replacing older versions of them wherever they
    are. Returns whether the file changed; an up-to-date notebook is not rewritten."""
    path = Path(path)
    assignment = path.parent.name
    if not colab_cell_problems(path, assignment):
        return False
    # Read just before writing: others may be editing other cells of this notebook.
    nb = nbformat.read(path, as_version=4)
    rest = [cell for cell in nb.cells if not _is_colab_cell(cell)]
    nb.cells = [_badge_cell(assignment, path.name), _setup_cell(), *rest]
    nbformat.validate(nb)
    nbformat.write(nb, path)
    return True


def colab_cell_problems(path: Path, assignment: str | None = None) -> list[str]:
    """What is wrong with the badge and setup cells of notebook ``path`` (a solution or
    its release; ``[]`` when both are in place and current)."""
    path = Path(path)
    assignment = assignment or path.parent.name
    nb = nbformat.read(path, as_version=4)
    fix = f"run `python -m autograder colab {assignment}`, then `python -m autograder release`"
    found = sum(_is_colab_cell(cell) for cell in nb.cells)
    if found == 0:
        return [f"{path}: no Colab badge and setup cell: {fix}"]
    if len(nb.cells) < 2 or found != 2:
        return [f"{path}: {found} Colab badge/setup cells, expected 2 at the top: {fix}"]
    badge, setup = nb.cells[0], nb.cells[1]
    problems = []
    if badge.cell_type != "markdown" or badge.source != badge_source(assignment, path.name):
        problems.append(f"{path}: cell 0 is not the current Colab badge: {fix}")
    if setup.cell_type != "code" or setup.source != setup_source():
        problems.append(f"{path}: cell 1 is not the current setup cell: {fix}")
    meta = setup.metadata.get("nbgrader", {})
    if any(meta.get(key) != value for key, value in SETUP_NBGRADER.items()):
        problems.append(f"{path}: the setup cell is not a read-only nbgrader cell: {fix}")
    return problems
