"""The catalogs against the English: nothing stale, and a change to the English is
caught (stale), carried over by ``translations update`` (fuzzy) and kept out of the
Korean notebooks until revised; untranslated text passes, shown in English."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import nbformat
import polib
import pytest

from autograder.__main__ import main
from autograder.grading.course import REPO_ROOT, assignments
from autograder.translation.catalog import (
    catalogs,
    lab_catalog_path,
    lab_messages,
    merge,
    read_catalog,
    status,
    translation_of,
    write_catalog,
)
from autograder.translation.edition import translate_notebook
from autograder.translation.extract import MARKDOWN, PRINTED, printed_strings
from labkit.i18n import template_fields

CATALOGS = catalogs()


@pytest.mark.parametrize("label", list(CATALOGS))
def test_no_catalog_is_stale(label):
    path, messages = CATALOGS[label]
    found = status(read_catalog(path), messages)
    assert not found.stale, (
        f"{path.relative_to(REPO_ROOT)}: stale entries (run `python -m autograder "
        "translations update`, revise the fuzzy ones):\n" + "\n".join(found.stale)
    )


@pytest.mark.parametrize("label", list(CATALOGS))
def test_catalog_is_as_update_writes_it(label, tmp_path):
    """`translations update` on the committed catalog changes nothing (CI has no diff)."""
    path, messages = CATALOGS[label]
    if not path.is_file():
        pytest.skip(f"{label} has no catalog yet: `python -m autograder translations update`")
    write_catalog(merge(read_catalog(path), messages), tmp_path / "fresh.po")
    assert (tmp_path / "fresh.po").read_text(encoding="utf-8") == path.read_text("utf-8")


def _fields(template: str) -> set[str]:
    """The fields, with the text of string literals inside them left out: a field may
    hold words to translate (``{'course slides':<50}``)."""
    return {re.sub(r"'[^']*'", "''", field) for field in template_fields(template)}


@pytest.mark.parametrize("label", list(CATALOGS))
def test_translations_keep_every_field(label):
    """A printed f-string or a message template keeps its fields (``{params:,}``)."""
    path, _ = CATALOGS[label]
    wrong = [
        e.msgid[:60]
        for e in read_catalog(path)
        if e.msgstr and _fields(e.msgid) != _fields(e.msgstr)
    ]
    assert not wrong, f"translations that lose or add a field: {wrong}"


def test_every_lab_has_markdown_and_printed_strings_to_translate():
    for assignment in assignments():
        kinds = {m.kind for m in lab_messages(assignment)}
        assert kinds == {MARKDOWN, PRINTED}, assignment


def test_a_lab_without_a_catalog_is_untranslated_not_stale(tmp_path):
    messages = lab_messages("day04_resnet")
    found = status(read_catalog(tmp_path / "none.po"), messages)
    assert found.stale == [] and found.translated == 0
    assert len(found.untranslated) == len(messages)


def test_printed_strings_skip_solutions_and_hidden_tests():
    source = (
        'print("setup done")\n'
        "### BEGIN SOLUTION\n"
        'print("the answer is 42")\n'
        "### END SOLUTION\n"
        'print(f"✔ {name} matches torchvision\'s block")\n'
        "### BEGIN HIDDEN TESTS\n"
        'print("hidden inputs")\n'
        "### END HIDDEN TESTS\n"
        'print("a" "b")  # two literals: not one message\n'
    )
    assert printed_strings(source) == ["setup done", "✔ {name} matches torchvision's block"]


def _lab_with_changed_cell(tmp_path: Path) -> tuple[Path, str]:
    """A copy of the repository's Day 4 (solutions/, its catalog) with one markdown
    cell's English changed; returns the root and that cell's id."""
    assignment = "day04_resnet"
    for folder in ("solutions", "translations"):
        target = tmp_path / folder
        target.mkdir(parents=True, exist_ok=True)
    shutil.copytree(REPO_ROOT / "solutions" / assignment, tmp_path / "solutions" / assignment)
    shutil.copytree(REPO_ROOT / "translations", tmp_path / "translations", dirs_exist_ok=True)
    path = tmp_path / "solutions" / assignment / "resnet.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.get("id") == "cell-04")
    cell.source = cell.source.replace("hence `bias=False`", "so `bias=False`")
    nbformat.write(nb, path)
    return tmp_path, "cell-04"


def test_changed_english_is_stale_then_fuzzy_and_kept_out_of_the_edition(tmp_path):
    root, cell_id = _lab_with_changed_cell(tmp_path)
    path = lab_catalog_path("day04_resnet", root)
    messages = lab_messages("day04_resnet", root)
    before = read_catalog(path)
    old = next(e for e in before if e.msgctxt == f"resnet.ipynb#{cell_id}")
    assert old.msgstr, "the Day 4 catalog translates this cell"

    stale = status(before, messages).stale
    assert any(cell_id in line and "new English" in line for line in stale), stale
    assert any(cell_id in line and "obsolete" in line for line in stale), stale

    updated = merge(before, messages)
    entry = next(e for e in updated if e.msgctxt == f"resnet.ipynb#{cell_id}" and not e.obsolete)
    assert "fuzzy" in entry.flags
    assert entry.msgstr == old.msgstr  # the translator starts from the old translation
    assert entry.previous_msgid == old.msgid  # and sees what the English was
    assert "so `bias=False`" in entry.msgid
    after = status(updated, messages)
    assert [line for line in after.stale if cell_id in line] == [
        line for line in after.stale if "fuzzy" in line
    ]
    assert len(after.stale) == 1

    nb = nbformat.read(root / "solutions" / "day04_resnet" / "resnet.ipynb", as_version=4)
    korean = translate_notebook(nb, "day04_resnet", "resnet.ipynb", updated)
    cell = next(c for c in korean.cells if c.get("id") == cell_id)
    assert cell.source == entry.msgid  # English until revised, never a stale translation


def test_untranslated_is_counted_not_stale():
    po = polib.POFile()
    messages = lab_messages("day04_resnet")
    for message in messages:
        po.append(polib.POEntry(msgctxt=message.msgctxt, msgid=message.msgid, msgstr=""))
    found = status(po, messages)
    assert found.stale == []
    assert len(found.untranslated) == len({(m.msgctxt, m.msgid) for m in messages})
    assert translation_of(po) == {}


def test_update_command_writes_a_new_labs_catalog(tmp_path, monkeypatch, capsys):
    """Any dayNN_topic folder under solutions/ gets a catalog, without code changes."""
    shutil.copytree(REPO_ROOT / "solutions" / "day04_resnet", tmp_path / "solutions" / "day07_new")
    (tmp_path / "labkit").mkdir()
    (tmp_path / "autograder").mkdir()
    monkeypatch.setattr("autograder.__main__.REPO_ROOT", tmp_path)
    assert main(["translations", "update", "day07_new"]) == 0
    path = lab_catalog_path("day07_new", tmp_path)
    assert len(read_catalog(path)) == len(lab_messages("day04_resnet"))
    assert main(["translations", "check"]) == 0  # untranslated: shown in English, not stale
    count = len({(m.msgctxt, m.msgid) for m in lab_messages("day04_resnet")})
    assert f"day07_new.po: 0 translated, {count} untranslated" in capsys.readouterr().out
