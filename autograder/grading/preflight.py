"""Make a submission safe to hand to nbgrader, and say what was changed.

Before grading, every submission folder is archived (nothing is ever lost), then
normalised against the release notebook:

- a single notebook under another name ("resnet (1).ipynb") is renamed; a notebook
  that is a link (to another student's file, to the solutions) is refused;
- the kernel is the course's Python kernel, whatever the file says;
- grade cells copied in the notebook UI are unmarked (the first copy stays), cells
  that claim a grade id the lab does not have are unmarked, and every grade cell
  gets its nbgrader metadata and type back from the release; a cell whose metadata
  was stripped gets it back when its cell id is the release's;
- a grade cell or a locked cell deleted by the student is put back, after the cell it
  followed in the release (nbgrader's own ``add_missing_cells`` fails with a KeyError
  when that cell is gone too, as in a notebook pasted into a fresh one);
- tags that make nbclient skip a cell or ignore its error are removed;
- any other file in the folder (a student's own ``torchsummary.py``, a planted
  pickle) is moved to ``quarantine/`` so that it cannot shadow a module.

The sources of locked cells present are nbgrader's job: it restores them from the
gradebook, hidden tests included.

A Korean-edition submission (``{"labkit": {"language": "ko"}}``) is normalised against
the same English release, grade ids and all; which of its cells are the release's own,
unchanged, is decided against the Korean text (``mark_edition_cells``).
"""

from __future__ import annotations

import copy
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from autograder.grading import budget

__all__ = [
    "EDITIONS",
    "SKIPPING_TAGS",
    "TRANSFORMS",
    "Preflight",
    "edition_language",
    "normalise",
    "prepare_submission",
]

EDITIONS = ("en", "ko")
SKIPPING_TAGS = frozenset({"skip-execution", "raises-exception"})
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


@dataclass
class Preflight:
    """What preflight found: ``error`` (cannot be graded) or the changes it made."""

    error: str | None = None
    changes: list[str] = field(default_factory=list)


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _read(path: Path) -> NotebookNode | str:
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as error:
        return (
            f"{path.name} is not a valid notebook ({type(error).__name__}); the file is kept: "
            "ask the student to download it again from Jupyter (File > Download)"
        )
    return nb


def use_course_kernel(nb: NotebookNode, _release: NotebookNode) -> list[str]:
    """The kernel is the course's Python kernel, whatever the file says."""
    name = nb.metadata.get("kernelspec", {}).get("name")
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    return [] if name == KERNELSPEC["name"] else [f"kernel {name!r} -> python3"]


def remove_skipping_tags(nb: NotebookNode, _release: NotebookNode) -> list[str]:
    """Tags that make nbclient skip a cell or ignore its error are removed."""
    changes = []
    for index, cell in enumerate(nb.cells):
        tags = cell.metadata.get("tags", [])
        if SKIPPING_TAGS & set(tags):
            cell.metadata["tags"] = [t for t in tags if t not in SKIPPING_TAGS]
            changes.append(f"cell {index}: removed tags {sorted(SKIPPING_TAGS & set(tags))}")
    return changes


def restore_stripped_metadata(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """A cell whose nbgrader metadata was stripped gets it back when its cell id is a
    release grade cell's and no other cell claims that grade id."""
    changes = []
    by_cell_id = {c.get("id"): c for c in release.cells if _grade_id(c) and c.get("id")}
    marked = {_grade_id(c) for c in nb.cells}
    for index, cell in enumerate(nb.cells):
        twin = by_cell_id.get(cell.get("id"))
        if "nbgrader" not in cell.metadata and twin is not None and _grade_id(twin) not in marked:
            cell.metadata["nbgrader"] = copy.deepcopy(twin.metadata["nbgrader"])
            marked.add(_grade_id(twin))
            changes.append(f"cell {index}: stripped metadata of {_grade_id(twin)!r} restored")
    return changes


def unmark_foreign_grade_cells(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Grade cells copied in the notebook UI (the first copy stays) and cells that claim a
    grade id the lab does not have lose their nbgrader metadata."""
    changes = []
    graded = {_grade_id(c) for c in release.cells if _grade_id(c)}
    seen: set[str] = set()
    for index, cell in enumerate(nb.cells):
        if "nbgrader" not in cell.metadata:
            continue
        grade_id = _grade_id(cell)
        if grade_id not in graded or grade_id in seen:
            why = "a copy of" if grade_id in seen else "an unknown"
            changes.append(f"cell {index}: {why} grade cell {grade_id!r}, unmarked")
            del cell.metadata["nbgrader"]
        else:
            seen.add(grade_id)
    return changes


def restore_grade_metadata(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Every grade cell gets its nbgrader metadata and its cell type back from the release."""
    changes = []
    graded = {_grade_id(c): c for c in release.cells if _grade_id(c)}
    for index, cell in enumerate(nb.cells):
        original = graded.get(_grade_id(cell))
        if original is None:
            continue
        grade_id = _grade_id(cell)
        if cell.metadata["nbgrader"] != original.metadata["nbgrader"]:
            changes.append(f"cell {index}: nbgrader metadata of {grade_id!r} restored")
            cell.metadata["nbgrader"] = copy.deepcopy(original.metadata["nbgrader"])
        if cell.cell_type != original.cell_type:
            changes.append(f"cell {index}: type of {grade_id!r} restored to {original.cell_type}")
            cell.cell_type = original.cell_type
            if original.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
            else:
                cell.pop("outputs", None)
                cell.pop("execution_count", None)
    return changes


def restore_deleted_locked_cells(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Put back the release's grade cells and locked cells (the cell that trains the
    model a test then inspects) that ``nb`` lacks, each after the last cell present that
    preceded it in the release (at the end when none is)."""
    changes = []
    order = [c for c in release.cells if _grade_id(c)]
    ids = {c.get("id") for c in nb.cells}
    for position, original in enumerate(order):
        grade_id = _grade_id(original)
        meta = original.metadata["nbgrader"]
        if not (meta.get("grade") or meta.get("locked")) or any(
            _grade_id(c) == grade_id for c in nb.cells
        ):
            continue
        earlier = {_grade_id(c) for c in order[:position]}
        at = max((i + 1 for i, c in enumerate(nb.cells) if _grade_id(c) in earlier), default=None)
        restored = copy.deepcopy(original)
        if restored.get("id") in ids:
            restored.id = f"restored-{grade_id}"[:64]
        ids.add(restored.get("id"))
        nb.cells.insert(len(nb.cells) if at is None else at, restored)
        kind = "grade" if meta.get("grade") else "locked"
        changes.append(f"deleted {kind} cell {grade_id!r} put back")
    return changes


def mark_release_cells(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Mark the code cells that run as the release wrote them (``budget.RELEASE_KEY``):
    locked cells (nbgrader puts back their source) and other cells whose source is a
    release cell's, unchanged. Only these may be left unrun while grading; a cell the
    student wrote or changed always runs. A mark the student wrote is removed first."""
    sources = {c.source.strip() for c in release.cells if c.cell_type == "code"}
    locked = {_grade_id(c) for c in release.cells if c.metadata.get("nbgrader", {}).get("locked")}
    for cell in nb.cells:
        cell.metadata.pop(budget.RELEASE_KEY, None)
        if cell.cell_type != "code" or cell.metadata.get("nbgrader", {}).get("solution"):
            continue
        if (_grade_id(cell) in locked - {None}) or cell.source.strip() in sources:
            cell.metadata[budget.RELEASE_KEY] = True
    return []


# In this order: a copy is unmarked only after stripped metadata came back, a grade
# cell is put back only when no cell (restored or kept) holds its grade id, and the
# release's cells are marked once every cell is in place.
TRANSFORMS = (
    use_course_kernel,
    remove_skipping_tags,
    restore_stripped_metadata,
    unmark_foreign_grade_cells,
    restore_grade_metadata,
    restore_deleted_locked_cells,
    mark_release_cells,
)


def normalise(nb: NotebookNode, release: NotebookNode) -> list[str]:
    """Bring ``nb``'s metadata in line with ``release`` (each of ``TRANSFORMS`` in turn);
    return what was changed."""
    return [change for transform in TRANSFORMS for change in transform(nb, release)]


def edition_language(nb: NotebookNode) -> str:
    """The edition a notebook says it is (``{"labkit": {"language": "ko"}}``); only the
    kit's languages count, anything else is English. It chooses the language of the
    messages alone: both editions are graded from the same gradebook."""
    meta = nb.metadata.get("labkit")
    code = meta.get("language") if isinstance(meta, dict) else None
    return code if isinstance(code, str) and code in EDITIONS else "en"


def mark_edition_cells(nb: NotebookNode, release: NotebookNode, assignment: str, name: str):
    """Mark the release's cells again, as ``mark_release_cells`` does, with the text of
    the edition ``nb`` says it is: a Korean submission's cells that the Korean release
    wrote, unchanged, may be left unrun while grading, as the English ones may. The
    grade ids, locked cells and hidden tests stay the English release's."""
    language = edition_language(nb)
    if language == "en":
        return
    from autograder.translation.edition import edition_release  # it imports course

    mark_release_cells(nb, edition_release(release, assignment, name, language))


def _archive(folder: Path, archive: Path) -> None:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = archive / stamp
    suffix = 1
    while target.exists():
        suffix += 1
        target = archive / f"{stamp}-{suffix}"
    # Links are kept as links: following one could copy /dev/zero or a secret.
    shutil.copytree(folder, target, symlinks=True)


def prepare_submission(folder: Path, release_dir: Path, root: Path) -> Preflight:
    """Archive, check and normalise ``submitted/<student>/<assignment>/`` in place."""
    student, assignment = folder.parent.name, folder.name
    expected = sorted(p.name for p in release_dir.glob("*.ipynb"))
    _archive(folder, root / "archive" / student / assignment)
    result = Preflight()

    found = sorted(p.name for p in folder.glob("*.ipynb"))
    if len(expected) == 1 and expected[0] not in found and len(found) == 1:
        (folder / found[0]).rename(folder / expected[0])
        result.changes.append(f"renamed {found[0]!r} to {expected[0]!r}")
        found = expected
    linked = [name for name in found if (folder / name).is_symlink()]
    if linked or folder.is_symlink():
        result.error = f"{', '.join(linked) or folder.name} is a link, not a file: not graded"
        return result
    missing = [name for name in expected if name not in found]
    if missing:
        shown = ", ".join(found) or "no notebooks"
        result.error = f"missing {', '.join(missing)} (found: {shown})"
        return result

    stray = [p for p in folder.iterdir() if p.name not in expected]
    if stray:
        quarantine = root / "quarantine" / student / assignment
        quarantine.mkdir(parents=True, exist_ok=True)
        for path in stray:
            target = quarantine / path.name
            if target.exists():
                shutil.rmtree(target) if target.is_dir() else target.unlink()
            shutil.move(str(path), target)
        result.changes.append(f"moved to quarantine: {', '.join(sorted(p.name for p in stray))}")

    for name in expected:
        nb = _read(folder / name)
        if isinstance(nb, str):
            result.error = nb
            return result
        release = nbformat.read(release_dir / name, as_version=4)
        before = nbformat.writes(nb)
        changes = normalise(nb, release)
        mark_edition_cells(nb, release, assignment, name)
        # The release marks change no score and are not reported, but must be written.
        if changes or nbformat.writes(nb) != before:
            _replace(folder / name, nb)
            result.changes += [f"{name}: {change}" for change in changes]
    return result


def _replace(path: Path, nb: NotebookNode) -> None:
    """Write ``nb`` over ``path`` all at once: preflight can be killed at any moment (it
    runs under the student's wall-clock cap), and a half-written notebook would be
    graded as corrupt next time."""
    partial = path.with_name(f".{path.name}.preflight")
    nbformat.write(nb, partial)
    os.replace(partial, path)
