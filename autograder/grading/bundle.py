"""The student bundle: the part of the kit that may be published, proved free of answers.

``python -m autograder bundle [ASSIGNMENT ...] [--out DIR]`` regenerates ``notebooks/``
and copies the student side of those labs (all by default) to ``DIR``
(``build/student`` by default):

- ``notebooks/`` (nbgrader's release), ``labkit/``, ``pyproject.toml``, ``.gitignore``,
  ``data/README.md`` and a README with an "Open in Colab" badge per lab;
- of ``autograder/``, its ``__init__.py`` (``report``) and ``checks/`` whole (the checks
  and their targets, which the notebooks import): never ``grading/``, the pipeline
  around nbgrader (driver, samples, scan, sandbox).

Then it scans every file it wrote and fails, listing each finding, if any holds an
nbgrader marker (``BEGIN SOLUTION``, ``BEGIN HIDDEN TESTS``...), a line of a
solution or hidden-test region of any ``solutions/`` notebook (a single line for a
region of one or two lines, else three in a row; lines that the labs also show
outside those regions do not count), or, for a released notebook, anything
``find_leaks`` finds against its source. A later lab that shows an earlier lab's
answer as given code (Day 5 builds on Day 4's ``BasicBlock``) is reported as a note:
publish it only once the earlier lab is due.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat

from autograder.grading.colab import REPOSITORY, colab_url
from autograder.grading.course import (
    MARKERS,
    REPO_ROOT,
    assignments,
    find_leaks,
    notebook_names,
    split_regions,
)
from autograder.translation.catalog import LANGUAGE

__all__ = ["STUDENT_PACKAGE", "bundle_leaks", "scan_bundle", "write_bundle"]

MARK = ".labkit-student-bundle"  # written into the bundle: only such a folder is replaced
_COPIED = ("pyproject.toml", ".gitignore", "data/README.md")
# What students may read of the autograder: the report helper and the checks.
STUDENT_PACKAGE = ("autograder/__init__.py", "autograder/checks")
_WINDOW = 3


def _title(notebook: Path) -> str:
    for cell in nbformat.read(notebook, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.startswith("# "):
            return cell.source.splitlines()[0][2:].strip()
    return notebook.stem


def _readme(out: Path) -> str:
    rows = []
    for notebook in sorted((out / "notebooks").glob("day*/*.ipynb")):
        assignment, name = notebook.parent.name, notebook.name
        badge = (
            f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"({colab_url(assignment, name)})"
        )
        link = f"[`notebooks/{assignment}/{name}`](notebooks/{assignment}/{name})"
        if (out / "notebooks" / LANGUAGE / assignment / name).is_file():
            link += f" ([한국어판](notebooks/{LANGUAGE}/{assignment}/{name}))"
        rows.append(f"| {_title(notebook)} | {link} | {badge} |")
    return "\n".join(
        [
            "# CNN labs: from convolution arithmetic to ResNet",
            "",
            "Day-by-day PyTorch labs. Fill in each TODO; the cell below it checks your work",
            "and tells you the first layer, shape or number that differs.",
            "",
            "| lab | notebook | Colab |",
            "|---|---|---|",
            *rows,
            "",
            "**On Colab**: open a lab from its badge and run its first code cell, which",
            "installs torchsummary and this kit.",
            "",
            "**On your machine** (Python 3.10+):",
            "",
            "```bash",
            f"git clone https://github.com/{REPOSITORY}.git && cd {REPOSITORY.split('/')[-1]}",
            "python -m venv .venv && .venv/bin/pip install -e '.[grading]'",
            ".venv/bin/jupyter lab",
            "```",
            "",
            "`LABKIT_RUN=fast|full` sizes the training runs (fast on a CPU, full on a GPU by",
            "default); each notebook prints which it used. Where the datasets come from, and",
            "how to provide them offline: [`data/README.md`](data/README.md).",
            "",
        ]
    )


def _prepare(out: Path) -> None:
    """Make ``out`` an empty folder (but for a ``.git``), refusing any folder that is not
    a bundle written before."""
    out = out.resolve()
    if out == REPO_ROOT or out in REPO_ROOT.parents:
        raise ValueError(f"{out} holds the course repository: choose another --out")
    if REPO_ROOT in out.parents and REPO_ROOT / "build" not in (out, *out.parents):
        raise ValueError(f"{out} is inside the repository but not under build/")
    if out.exists():
        if any(out.iterdir()) and not (out / MARK).is_file():
            raise ValueError(f"{out} exists and is not a student bundle (no {MARK})")
        for child in out.iterdir():  # all but .git: the bundle may be a published clone
            if child.name == ".git":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    out.mkdir(parents=True, exist_ok=True)


def write_bundle(out: Path, root: Path = REPO_ROOT, labs: list[str] | None = None) -> list[Path]:
    """Copy the student side of the course in ``root`` to ``out`` (replacing an older
    bundle there), with the labs ``labs`` (all by default); return the files written.
    Regenerating ``notebooks/`` and the proof (``scan_bundle``) are separate steps."""
    notebooks = root / "notebooks"
    released = sorted(p.name for p in notebooks.iterdir() if p.is_dir() and p.name != LANGUAGE)
    unknown = sorted(set(labs or []) - set(released))
    if unknown:
        raise ValueError(f"no such lab in {root / 'notebooks'}: {', '.join(unknown)}")
    _prepare(out)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints")
    for lab in labs or released:
        shutil.copytree(notebooks / lab, out / "notebooks" / lab, ignore=ignore)
        if (notebooks / LANGUAGE / lab).is_dir():  # the Korean edition
            shutil.copytree(
                notebooks / LANGUAGE / lab, out / "notebooks" / LANGUAGE / lab, ignore=ignore
            )
    shutil.copytree(root / "labkit", out / "labkit", ignore=ignore)
    for relative in STUDENT_PACKAGE:
        source, target = root / relative, out / relative
        if source.is_dir():
            shutil.copytree(source, target, ignore=ignore)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for relative in _COPIED:
        if (root / relative).is_file():
            (out / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, out / relative)
    (out / "README.md").write_text(_readme(out), encoding="utf-8")
    (out / MARK).write_text("written by `python -m autograder bundle`\n", encoding="utf-8")
    return sorted(p for p in out.rglob("*") if p.is_file() and ".git" not in p.parts)


def _significant(lines: list[str]) -> list[str]:
    stripped = (line.strip() for line in lines)
    return [line for line in stripped if line and not line.startswith("#")]


def _day(assignment: str) -> int:
    return int(assignment[3:5])


def _secret_windows(root: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    """(assignment, where, lines) for every run of solution or hidden-test lines that
    must not appear in the bundle: a region's lines, ``_WINDOW`` at a time, where each
    line is one the lab never shows outside its regions."""
    windows = []
    for assignment in assignments(root):
        for name in notebook_names(assignment, root):
            cells = nbformat.read(root / "solutions" / assignment / name, as_version=4).cells
            hidden: set[str] = set()
            public: set[str] = set()
            regions: list[tuple[str, list[str]]] = []
            for index, cell in enumerate(cells):
                inside, outside = split_regions(cell.source)
                hidden |= inside
                public |= outside
                region: list[str] | None = None
                for line in cell.source.splitlines():
                    if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
                        region = []
                    elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
                        if region:
                            regions.append((f"{assignment}/{name} cell {index}", region))
                        region = None
                    elif region is not None:
                        region.append(line)
            secret = {line for line in hidden - public if len(line) > 12}
            for where, region in regions:
                lines = _significant(region)
                size = min(_WINDOW, len(lines))
                for start in range(len(lines) - size + 1):
                    window = tuple(lines[start : start + size])
                    if all(line in secret for line in window):
                        windows.append((assignment, where, window))
    return windows


def _text_lines(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        return [
            line
            for cell in nbformat.read(path, as_version=4).cells
            for line in cell.source.splitlines()
        ]
    return path.read_text(encoding="utf-8", errors="replace").splitlines()


def scan_bundle(out: Path, root: Path = REPO_ROOT) -> tuple[list[str], list[str]]:
    """(leaks, notes) found in the bundle at ``out``, each as ``path: what``.

    A leak is a marker, or a solution or hidden-test line of a lab, anywhere except in
    a later lab's notebook; ``[]`` means the bundle holds none. A later lab that shows
    an earlier lab's answer as given code (Day 5 builds on Day 4's ``BasicBlock``) is a
    note: publish it only once the earlier lab is due."""
    out = Path(out)
    windows = _secret_windows(root)
    leaks, notes = [], []
    for path in sorted(p for p in out.rglob("*") if p.is_file() and ".git" not in p.parts):
        relative = path.relative_to(out).as_posix()
        raw = path.read_bytes().decode("utf-8", errors="replace")
        leaks += [f"{relative}: contains '{m}'" for m in MARKERS if m in raw]
        try:
            joined = "\n" + "\n".join(_significant(_text_lines(path))) + "\n"
        except Exception as error:  # an unreadable notebook is itself a finding
            leaks.append(f"{relative}: cannot be read ({type(error).__name__})")
            continue
        parts = relative.split("/")
        lab = parts[1] if parts[0] == "notebooks" and len(parts) == 3 else None
        if parts[0] == "notebooks" and len(parts) == 4 and parts[1] == LANGUAGE:
            lab = parts[2]  # the Korean edition of a lab
        found: dict[str, tuple[str, str]] = {}
        for assignment, where, window in windows:
            if where not in found and "\n" + "\n".join(window) + "\n" in joined:
                found[where] = (assignment, window[0] if len(window) == 1 else f"{window[0]} ...")
        for where, (assignment, line) in found.items():
            if lab is not None and lab != assignment and _day(lab) > _day(assignment):
                notes.append(
                    f"{relative} shows the answer of {where} ({line!r}): "
                    f"publish {lab} only once {assignment} is due"
                )
            else:
                leaks.append(f"{relative}: solution or hidden test of {where}: {line!r}")
        source = root / "solutions" / (lab or "") / parts[-1]
        if lab is not None and path.suffix == ".ipynb" and source.is_file():
            leaks += [f"{relative}: {leak}" for leak in find_leaks(source, path)]
    return leaks, notes


def bundle_leaks(out: Path, root: Path = REPO_ROOT) -> list[str]:
    """The leaks of ``scan_bundle``: ``[]`` when the bundle holds no answer."""
    return scan_bundle(out, root)[0]
