"""Sample submissions, built from an assignment's source and release notebooks.

Built rather than stored, so they follow every change to a lab. Each sample says
what grading must make of it; the demo prints that beside the grade and the
tests assert it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from autograder.grading.course import notebook_names

__all__ = [
    "Sample",
    "answered",
    "edition_student",
    "kernels_at_once",
    "replace_in",
    "samples_for",
    "without_cell",
    "write_samples",
]


def _grade_id(cell: NotebookNode) -> str | None:
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def _strip_markers(source: str) -> str:
    return "\n".join(
        line
        for line in source.splitlines()
        if "BEGIN SOLUTION" not in line and "END SOLUTION" not in line
    )


def answered(source: NotebookNode, release: NotebookNode) -> NotebookNode:
    """The release notebook with every solution cell answered as the source does."""
    answers = {
        _grade_id(c): _strip_markers(c.source)
        for c in source.cells
        if c.metadata.get("nbgrader", {}).get("solution")
    }
    student = copy.deepcopy(release)
    for cell in student.cells:
        if _grade_id(cell) in answers:
            cell.source = answers[_grade_id(cell)]
    return student


def replace_in(nb: NotebookNode, grade_id: str, old: str, new: str) -> NotebookNode:
    for cell in nb.cells:
        if _grade_id(cell) == grade_id:
            if cell.source.count(old) != 1:
                raise ValueError(
                    f"sample mutation: {old!r} occurs {cell.source.count(old)} times in cell "
                    f"{grade_id!r}, not once; update the sample to the new solution"
                )
            cell.source = cell.source.replace(old, new)
            return nb
    raise ValueError(f"sample mutation: no cell {grade_id!r}; update the sample to the lab")


def without_cell(nb: NotebookNode, grade_id: str) -> NotebookNode:
    kept = [c for c in nb.cells if _grade_id(c) != grade_id]
    if len(kept) == len(nb.cells):
        raise ValueError(f"sample: no cell {grade_id!r} to delete; update the sample to the lab")
    nb.cells = kept
    return nb


@dataclass(frozen=True)
class Sample:
    student: str
    expected: str  # what grading must make of it, in words
    build: Callable[[NotebookNode, NotebookNode], NotebookNode | str]
    demo: bool = True  # graded by `make demo` (the others with --all-samples)
    runs: bool = True  # its cells run in a kernel (False: refused before any cell runs)


def _common() -> list[Sample]:
    """What every lab is graded against: its solution, its untouched release, a broken file."""
    return [
        Sample("sample-correct", "full marks", lambda s, r: answered(s, r)),
        Sample("sample-untouched", "0 points", lambda s, r: copy.deepcopy(r), demo=False),
        Sample(
            "sample-corrupted",
            "not graded (invalid); the batch goes on",
            lambda s, r: nbformat.writes(answered(s, r))[:5000],
            runs=False,
        ),
    ]


# Mistakes particular to one lab, each with what grading must make of it.
_SPECIFIC: dict[str, list[Sample]] = {
    "day04_resnet": [
        Sample(
            "sample-no-shortcut-bn",
            "loses the BasicBlock and table points; feedback names the missing BatchNorm2d",
            lambda s, r: replace_in(
                answered(s, r),
                "basic_block",
                "                nn.BatchNorm2d(planes * self.expansion),\n",
                "",
            ),
        ),
        Sample(
            "sample-deleted-test-cell",
            "full marks: the deleted test cell is restored and run",
            lambda s, r: without_cell(answered(s, r), "test_resnet34_table"),
        ),
    ],
    "day06_depth_study": [
        Sample(
            "sample-shortcut-never-added",
            "loses the BasicBlock, network and degradation points; feedback names the "
            "missing shortcut",
            lambda s, r: replace_in(
                answered(s, r),
                "basic_block",
                "            out = out + pad_shortcut(x, self.planes, self.stride)  # option A\n",
                "            pass\n",
            ),
        ),
    ],
}


def samples_for(assignment: str, demo_only: bool = False) -> list[Sample]:
    """The sample submissions of ``assignment``: the common three and its own (with
    ``demo_only``, those ``make demo`` grades by default)."""
    samples = _common() + _SPECIFIC.get(assignment, [])
    return [sample for sample in samples if sample.demo or not demo_only]


def kernels_at_once(samples: list[Sample], available: int) -> int:
    """How many samples to grade at once on ``available`` cores: one per core, but no more
    than the samples that run a kernel, so that a lone one gets every core's thread."""
    return max(1, min(available, sum(sample.runs for sample in samples)))


def edition_student(student: str, language: str = "en") -> str:
    """The sample's student name in an edition: ``sample-correct``, ``sample-correct-ko``."""
    return student if language == "en" else f"{student}-{language}"


def write_samples(
    assignment: str,
    root: Path,
    source_root: Path,
    language: str = "en",
    demo_only: bool = False,
) -> list[Sample]:
    """Write each sample to ``root/submitted/<student>/<assignment>/`` (with ``demo_only``,
    only those ``make demo`` grades by default); with ``language`` (``ko``), built from
    that edition's release (``notebooks/ko/``), as ``<student>-ko``: it must be graded
    exactly as the English sample is."""
    samples = samples_for(assignment, demo_only)
    edition = source_root / "notebooks" / ("" if language == "en" else language)
    for name in notebook_names(assignment, source_root):
        source = nbformat.read(source_root / "solutions" / assignment / name, as_version=4)
        release = nbformat.read(edition / assignment / name, as_version=4)
        for sample in samples:
            built = sample.build(source, release)
            student = edition_student(sample.student, language)
            folder = root / "submitted" / student / assignment
            folder.mkdir(parents=True, exist_ok=True)
            text = built if isinstance(built, str) else nbformat.writes(built)
            (folder / name).write_text(text, encoding="utf-8")
    return samples
