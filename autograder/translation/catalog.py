"""The catalogs: where they are, merging the English into them, and what is stale.

An entry is **translated** (a ``msgstr``, not fuzzy), **untranslated** (no ``msgstr``
yet: the Korean edition shows the English text, and the check lets it pass), or
**stale**: its English changed since it was translated (``update`` keeps the old
translation, marks it ``fuzzy`` and records the old English as ``#| msgid``; the
edition shows the English until a translator revises it and removes the flag), the
English has a text the catalog lacks, or the catalog has one the English lost (both:
run ``update``). Stale entries fail ``check`` and the test suite; untranslated ones
are only counted. A lab with no catalog yet (a new lab) is untranslated as a whole:
``update`` creates its catalog, and from then on the catalog is held to the English.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from pathlib import Path

import polib

from autograder.grading.course import REPO_ROOT, assignments, notebook_names
from autograder.translation.extract import Message, kit_messages, notebook_messages
from labkit.i18n import LOCALE_DIR, catalog_path

__all__ = [
    "LANGUAGE",
    "Status",
    "lab_catalog_path",
    "lab_messages",
    "merge",
    "read_catalog",
    "status",
    "translation_of",
    "write_catalog",
]

LANGUAGE = "ko"
_SIMILAR = 0.5  # a vanished string of the same cell this close is the changed one


def lab_catalog_path(assignment: str, root: Path = REPO_ROOT, language: str = LANGUAGE) -> Path:
    return root / "translations" / language / f"{assignment}.po"


def lab_messages(assignment: str, root: Path = REPO_ROOT) -> list[Message]:
    """The translatable text of every notebook of ``assignment``, from ``solutions/``."""
    return [
        message
        for name in notebook_names(assignment, root)
        for message in notebook_messages(root / "solutions" / assignment / name)
    ]


def catalogs(root: Path = REPO_ROOT) -> dict[str, tuple[Path, list[Message]]]:
    """Every catalog with the messages it must hold: one per lab, and the kit's."""
    found = {a: (lab_catalog_path(a, root), lab_messages(a, root)) for a in assignments(root)}
    kit = root / "labkit" / catalog_path(LANGUAGE).relative_to(LOCALE_DIR.parent)
    found["labkit"] = (kit, kit_messages(root))
    return found


def read_catalog(path: Path) -> polib.POFile:
    if path.is_file():
        return polib.pofile(str(path), wrapwidth=0)
    po = polib.POFile(wrapwidth=0)
    po.metadata = {
        "Project-Id-Version": "cnn-labkit",
        "Language": LANGUAGE,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "8bit",
    }
    return po


def write_catalog(po: polib.POFile, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    po.wrapwidth = 0
    path.write_text(str(po) + "\n", encoding="utf-8")


def _key(entry: polib.POEntry | Message) -> tuple[str | None, str]:
    return (entry.msgctxt or None, entry.msgid)


def merge(po: polib.POFile, messages: list[Message]) -> polib.POFile:
    """``po`` brought in line with ``messages``: kept entries as they were, an entry whose
    English changed marked fuzzy with its old translation, new ones empty, vanished
    translations kept as obsolete (``#~``) for reuse. Ordered as the English."""
    old = {_key(e): e for e in po if not e.obsolete}
    wanted = {_key(m) for m in messages}
    used: set[tuple[str | None, str]] = set()
    merged = polib.POFile(wrapwidth=0)
    merged.metadata = dict(po.metadata)
    for message in messages:
        key = _key(message)
        if key in used:
            continue
        entry = old.get(key)
        if entry is None:
            entry = polib.POEntry(msgctxt=message.msgctxt, msgid=message.msgid, msgstr="")
            gone = [
                e
                for k, e in old.items()
                if k[0] == key[0] and k not in wanted and k not in used and e.msgstr
            ]
            ratio = {
                id(e): difflib.SequenceMatcher(None, e.msgid, message.msgid).ratio() for e in gone
            }
            best = max(gone, key=lambda e: ratio[id(e)], default=None)
            if best is not None and (ratio[id(best)] >= _SIMILAR or len(gone) == 1):
                entry.msgstr = best.msgstr
                entry.flags = ["fuzzy"]
                entry.previous_msgid = best.msgid
                used.add(_key(best))
        entry.comment = message.kind
        entry.occurrences = [(message.where, "")]
        merged.append(entry)
        used.add(key)
    for key, entry in old.items():
        if key not in used and entry.msgstr:
            entry.obsolete = True
            merged.append(entry)
    return merged


@dataclass
class Status:
    """What a catalog holds against the English it must translate."""

    translated: int = 0
    untranslated: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            self.translated
            + len(self.untranslated)
            + sum(1 for s in self.stale if not s.startswith("obsolete"))
        )


def _label(entry: polib.POEntry | Message) -> str:
    first = entry.msgid.strip().splitlines()[0] if entry.msgid.strip() else ""
    where = f"{entry.msgctxt}: " if entry.msgctxt else ""
    return f"{where}{first[:70]!r}"


def status(po: polib.POFile, messages: list[Message]) -> Status:
    found = Status()
    entries = {_key(e): e for e in po if not e.obsolete}
    if not len(po):  # no catalog yet: every text untranslated, shown in English
        found.untranslated = [_label(m) for m in messages]
        return found
    wanted = {_key(m) for m in messages}
    for key in dict.fromkeys(_key(m) for m in messages):
        entry = entries.get(key)
        if entry is None:
            found.stale.append(f"new English, not in the catalog: {_label(Message(*key, '', ''))}")
        elif "fuzzy" in entry.flags:
            found.stale.append(f"English changed since it was translated (fuzzy): {_label(entry)}")
        elif not entry.msgstr:
            found.untranslated.append(_label(entry))
        else:
            found.translated += 1
    for key, entry in entries.items():
        if key not in wanted:
            found.stale.append(f"obsolete: no longer in the English: {_label(entry)}")
    return found


def translation_of(po: polib.POFile) -> dict[tuple[str | None, str], str]:
    """The usable translations: ``(msgctxt, msgid) -> msgstr``, without fuzzy or empty ones."""
    return {_key(e): e.msgstr for e in po if e.msgstr and not e.obsolete and "fuzzy" not in e.flags}
