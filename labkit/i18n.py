"""The language the kit speaks: English, or Korean for the Korean edition of the labs.

``LABKIT_LANG`` chooses (``en`` or ``ko``; anything else is English). The Korean
notebooks set it in their first cell after setup (``set_language("ko")``), and the
grading driver sets it for a submission whose notebook metadata says
``{"labkit": {"language": "ko"}}``, so that check messages and feedback follow the
edition. Messages live in one gettext catalog for the kit and its checks,
``labkit/locale/<language>/LC_MESSAGES/labkit.po``; an untranslated or fuzzy entry
stays English. ``python -m autograder translations update`` extracts into it every
``_("...")`` of ``labkit/`` and ``autograder/``, and the message templates (f-strings)
of ``autograder/checks/``: a check's problems are translated line by line as
``report`` formats them, each line matched against its template
(``translate_message``), so the checks themselves stay plain Python.

    from labkit.i18n import _

    print(_("epoch {epoch}/{epochs}: ...").format(epoch=epoch, epochs=epochs))
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "DOMAIN",
    "LANGUAGES",
    "LOCALE_DIR",
    "_",
    "catalog_path",
    "fill_template",
    "language",
    "set_language",
    "template_fields",
    "translate_line",
    "translate_message",
]

LANGUAGES = ("en", "ko")
DOMAIN = "labkit"
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
VARIABLE = "LABKIT_LANG"


def language(env: Mapping[str, str] | None = None) -> str:
    """``"ko"`` when ``LABKIT_LANG`` names Korean (``ko``, ``ko_KR.UTF-8``), else ``"en"``."""
    value = (os.environ if env is None else env).get(VARIABLE, "").strip().lower()
    code = value.replace("-", "_").split("_")[0].split(".")[0]
    return code if code in LANGUAGES else "en"


def set_language(code: str) -> str:
    """Speak ``code`` (``"en"`` or ``"ko"``) from now on, in this process and the ones it
    starts; return the language now in use."""
    if code not in LANGUAGES:
        raise ValueError(f"language {code!r}: choose one of {', '.join(LANGUAGES)}")
    os.environ[VARIABLE] = code
    return language()


def catalog_path(code: str) -> Path:
    return LOCALE_DIR / code / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def _translations(code: str) -> dict[str, str]:
    path = catalog_path(code)
    if not path.is_file():
        return {}
    try:
        import polib
    except ImportError:  # the kit still works, in English
        return {}
    return {
        entry.msgid: entry.msgstr
        for entry in polib.pofile(str(path))
        if entry.msgstr and not entry.obsolete and "fuzzy" not in entry.flags
    }


def _(message: str) -> str:
    """``message`` in the kit's language (itself when it has no translation)."""
    code = language()
    if code == "en":
        return message
    return _translations(code).get(message, message)


_FIELD = re.compile(r"\{[^{}]*\}")


def template_fields(template: str) -> list[str]:
    """The replacement fields of a format or f-string template, as written: ``{epoch}``,
    ``{got - want:+,}``, ``{1 / n:.0%}`` (doubled braces are text)."""
    return _FIELD.findall(template.replace("{{", "\0").replace("}}", "\1"))


@functools.cache
def _pattern(template: str) -> re.Pattern[str]:
    text = template.replace("{{", "\0").replace("}}", "\1")
    parts = _FIELD.split(text)
    literal = [re.escape(p.replace("\0", "{").replace("\1", "}")) for p in parts]
    return re.compile("(.*?)".join(literal) + r"\Z", re.DOTALL)


def _literal_size(template: str) -> int:
    return len(_FIELD.sub("", template))


@functools.cache
def _templates(code: str) -> list[tuple[str, str]]:
    """(English template, translation) of the catalog's f-string entries, the longest
    literal text first: the most specific template wins a line."""
    pairs = [(k, v) for k, v in _translations(code).items() if template_fields(k)]
    return sorted(pairs, key=lambda pair: -_literal_size(pair[0]))


def _fill(template: str, values: dict[str, str]) -> str:
    out = template.replace("{{", "\0").replace("}}", "\1")
    out = _FIELD.sub(lambda m: values[m.group(0)], out)
    return out.replace("\0", "{").replace("\1", "}")


def fill_template(line: str, pairs: list[tuple[str, str]]) -> str | None:
    """``line`` made by one of ``pairs``' English templates, rewritten by its translation
    with the line's own values put back in; None when no template made it."""
    for template, translation in pairs:
        found = _pattern(template).match(line)
        if found is None:
            continue
        values = dict(zip(template_fields(template), found.groups(), strict=True))
        fields = _FIELD.findall(translation.replace("{{", "\0").replace("}}", "\1"))
        if set(fields) - set(values):
            return None  # a translation that names another field: stay English
        return _fill(translation, values)
    return None


def translate_line(line: str) -> str:
    """A line a check composed from an f-string template, in the kit's language: its
    template's translation with the line's own values put back in."""
    code = language()
    if code == "en" or not line.strip():
        return line
    plain = _translations(code).get(line)
    if plain is not None:
        return plain
    filled = fill_template(line, _templates(code))
    return line if filled is None else filled


def translate_message(message: str) -> str:
    """A check's problem (one or more lines) in the kit's language, line by line."""
    if language() == "en":
        return message
    return "\n".join(translate_line(line) for line in message.split("\n"))
