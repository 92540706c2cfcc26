"""The committed Korean notebooks: generated from the English release and the catalogs,
graded as the same assignment (same cells, ids and nbgrader metadata), with their own
badge, the language cell, and no solution text."""

from __future__ import annotations

import copy

import nbformat
import pytest

from autograder.grading.course import REPO_ROOT, assignments, find_leaks, notebook_names
from autograder.grading.preflight import EDITIONS, edition_language
from autograder.translation.catalog import lab_catalog_path, read_catalog, translation_of
from autograder.translation.edition import (
    LANGUAGE_CELL_ID,
    RestoreEditionText,
    edition_path,
    translate_notebook,
)
from autograder.translation.extract import public_source
from labkit.i18n import LANGUAGES
from tests.translation import code_without_words

LABS = [(a, n) for a in assignments() for n in notebook_names(a)]
IDS = [f"{a}/{n}" for a, n in LABS]


def _read(path):
    return nbformat.read(path, as_version=4)


def _pair(assignment, name):
    return _read(REPO_ROOT / "notebooks" / assignment / name), _read(edition_path(assignment, name))


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_committed_korean_notebook_is_what_the_catalog_generates(assignment, name):
    english = _read(REPO_ROOT / "notebooks" / assignment / name)
    po = read_catalog(lab_catalog_path(assignment))
    fresh = nbformat.writes(translate_notebook(english, assignment, name, po)) + "\n"
    committed = edition_path(assignment, name).read_text(encoding="utf-8")
    assert fresh == committed, (
        f"notebooks/ko/{assignment}/{name} is not what the catalog generates: "
        "run `python -m autograder release` and commit notebooks/"
    )


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_korean_notebook_has_the_same_graded_cells(assignment, name):
    english, korean = _pair(assignment, name)
    ours = [c for c in korean.cells if c.get("id") != LANGUAGE_CELL_ID]
    assert [c.get("id") for c in ours] == [c.get("id") for c in english.cells]
    assert [c.cell_type for c in ours] == [c.cell_type for c in english.cells]
    assert [c.metadata for c in ours] == [c.metadata for c in english.cells]
    graded = [c.metadata["nbgrader"]["grade_id"] for c in ours if "nbgrader" in c.metadata]
    assert graded and len(set(graded)) == len(graded)


def test_code_without_words_tells_code_that_prints_other_values():
    english = 'print(f"{n:,} images in {len(batches)} batches")'
    assert code_without_words(english) == code_without_words(
        'print(f"배치 {len(batches)}개에 {n:,}장")'
    )
    for changed in (
        'print(f"{n:.1f} images in {len(batches)} batches")',  # a format spec
        'print(f"{m:,} images in {len(batches)} batches")',  # a field
        'print(f"{n!r:,} images in {len(batches)} batches")',  # a conversion
        'print(f"{n:,} images")',  # a field dropped
        'print(f"{n:,} images in {len(batches)} batches", end="")',  # the code around it
    ):
        assert code_without_words(changed) != code_without_words(english), changed
    assert code_without_words('print("one batch" ') is None


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_korean_code_differs_only_in_printed_text(assignment, name):
    """Same code in every cell: only the words of string literals differ (f-strings keep
    their fields), and the code still parses."""
    english, korean = _pair(assignment, name)
    by_id = {c.get("id"): c for c in english.cells}
    for cell in korean.cells:
        if cell.cell_type != "code" or cell.get("id") == LANGUAGE_CELL_ID:
            continue
        before = by_id[cell.get("id")].source
        if before == cell.source:
            continue
        assert code_without_words(before) is not None, f"{cell.get('id')}: changed, not Python"
        assert code_without_words(cell.source) == code_without_words(before), cell.get("id")


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_korean_notebook_says_it_is_korean_and_opens_itself_on_colab(assignment, name):
    _, korean = _pair(assignment, name)
    assert korean.metadata["labkit"] == {"language": "ko"}
    assert edition_language(korean) == "ko"
    code = [c for c in korean.cells if c.cell_type == "code"]
    assert code[1].get("id") == LANGUAGE_CELL_ID or code[0].get("id") == LANGUAGE_CELL_ID
    assert 'set_language("ko")' in next(c for c in code if c.get("id") == LANGUAGE_CELL_ID).source
    badges = [c.source for c in korean.cells if "colab.research.google.com/github" in c.source]
    assert badges and all(f"notebooks/ko/{assignment}/{name}" in b for b in badges)


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_korean_notebook_has_no_leaks(assignment, name):
    leaks = find_leaks(REPO_ROOT / "solutions" / assignment / name, edition_path(assignment, name))
    assert not leaks, leaks


@pytest.mark.parametrize("assignment", assignments())
def test_every_translation_reaches_the_korean_notebook(assignment):
    found = translation_of(read_catalog(lab_catalog_path(assignment)))
    text = "".join(
        cell.source
        for name in notebook_names(assignment)
        for cell in _read(edition_path(assignment, name)).cells
    )
    badge = (f"notebooks/{assignment}/", f"notebooks/ko/{assignment}/")  # the Korean badge
    missing = [
        msgid[:60] for (_, msgid), korean in found.items() if korean.replace(*badge) not in text
    ]
    assert not missing, f"translated but not in the Korean notebook: {missing}"


def test_an_unknown_language_in_the_metadata_is_english():
    nb = nbformat.v4.new_notebook()
    assert edition_language(nb) == "en"
    nb.metadata["labkit"] = {"language": "../../etc"}
    assert edition_language(nb) == "en"
    nb.metadata["labkit"] = "ko"
    assert edition_language(nb) == "en"
    assert EDITIONS == LANGUAGES


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_locked_cells_put_back_from_the_gradebook_speak_the_edition(assignment, name):
    """While grading, nbgrader puts back locked cells from the gradebook: the English
    source, hidden tests included. For a Korean submission they are then the Korean
    edition's cells again, hidden tests kept as they were."""
    source = _read(REPO_ROOT / "solutions" / assignment / name)  # what the gradebook holds
    korean = {c.id: c for c in _read(edition_path(assignment, name)).cells}
    submitted = copy.deepcopy(source)
    submitted.metadata["labkit"] = {"language": "ko"}
    resources = {"nbgrader": {"assignment": assignment, "notebook": name.removesuffix(".ipynb")}}
    restored, _ = RestoreEditionText().preprocess(submitted, resources)
    locked = [c for c in restored.cells if c.metadata.get("nbgrader", {}).get("locked")]
    assert locked
    translated = 0
    for cell, original in zip(restored.cells, source.cells, strict=True):
        if cell not in locked or cell.cell_type != "code":
            continue
        assert public_source(cell.source) == public_source(korean[cell.id].source), cell.id
        hidden = set(original.source.splitlines()) - set(public_source(original.source).split("\n"))
        assert hidden <= set(cell.source.splitlines()), f"{cell.id}: hidden tests changed"
        translated += cell.source != original.source
    english, _ = RestoreEditionText().preprocess(copy.deepcopy(source), resources)
    assert english == source  # an English submission is left alone
    assert translated, "no locked cell of the lab prints translated text"
