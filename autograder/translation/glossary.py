"""The course's Korean terms (``translations/ko/glossary.tsv``) and the check that a
translation uses them: where the English says a term in prose, the Korean says the
glossary's term (or keeps the English word, as a name in code), and never one of its
rivals."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from autograder.grading.course import REPO_ROOT

__all__ = ["GLOSSARY", "Term", "prose", "read_glossary", "term_problems"]

GLOSSARY = REPO_ROOT / "translations" / "ko" / "glossary.tsv"


@dataclass(frozen=True)
class Term:
    english: str
    korean: str
    rivals: tuple[str, ...]

    @property
    def pattern(self) -> re.Pattern[str]:
        # a word of prose, plural too; not code (`x.bias`, bias=, conv_bias, `bias`)
        words = r"\s+".join(re.escape(w) for w in self.english.split())
        return re.compile(rf"(?<![\w.`]){words}(e?s)?(?![\w=(`])", re.IGNORECASE)


def read_glossary(path: Path = GLOSSARY) -> list[Term]:
    terms = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        english, korean, rivals, *_ = [*line.split("\t"), "", ""]
        terms.append(Term(english, korean, tuple(r for r in rivals.split(",") if r)))
    return terms


_CODE = re.compile(
    r"```.*?```|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|https?://\S+|\{[^{}]*\}", re.DOTALL
)


def prose(text: str) -> str:
    """``text`` without code blocks, code spans, formulas, links and template fields."""
    return _CODE.sub(" ", text)


def term_problems(english: str, korean: str, terms: list[Term]) -> list[str]:
    """How the translation ``korean`` of ``english`` strays from the glossary."""
    problems = []
    said = prose(english)
    korean = " ".join(korean.split())  # a line break in markdown is a space
    for term in terms:
        for rival in term.rivals:
            if rival in korean:
                problems.append(f"{rival!r} where the glossary says {term.korean!r}")
        # the English word kept in the Korean is a name in code (`stride = in_size // ...`)
        kept = re.search(rf"(?<![A-Za-z]){re.escape(term.english)}", korean, re.IGNORECASE)
        if term.pattern.search(said) and term.korean not in korean and not kept:
            problems.append(f"{term.english!r} is not translated as {term.korean!r}")
    return problems
