"""The glossary's Korean terms are used in every translation, and never their rivals."""

from __future__ import annotations

import pytest

from autograder.translation.catalog import catalogs, read_catalog
from autograder.translation.glossary import read_glossary, term_problems

TERMS = read_glossary()
CATALOGS = catalogs()


def test_the_glossary_has_the_course_terms():
    korean = {t.english: t.korean for t in TERMS}
    assert korean["convolution"] == "합성곱"
    assert korean["padding"] == "패딩"
    assert korean["stride"] == "스트라이드"
    assert korean["batch normalization"] == "배치 정규화"
    assert korean["residual block"] == "잔차 블록"
    assert all(t.korean not in t.rivals for t in TERMS)


@pytest.mark.parametrize("label", list(CATALOGS))
def test_translations_use_the_glossary(label):
    path, _ = CATALOGS[label]
    found = [
        f"{(e.msgctxt or e.msgid)[:50]}: {problem}"
        for e in read_catalog(path)
        if e.msgstr and not e.obsolete
        for problem in term_problems(e.msgid, e.msgstr, TERMS)
    ]
    assert not found, "\n".join(found)


def test_a_rival_term_is_caught():
    problems = term_problems("Add padding of 1.", "컨볼루션에 덧대기 1을 더합니다.", TERMS)
    assert "'덧대기' where the glossary says '패딩'" in problems
    assert "'padding' is not translated as '패딩'" in problems
    assert any("컨볼루션" in p for p in problems)


def test_terms_in_code_are_not_prose():
    english = "Pass `padding=1` and `nn.BatchNorm2d(planes)`; see {stride}."
    assert term_problems(english, "`padding=1`과 `nn.BatchNorm2d(planes)`를 넘기세요.", TERMS) == []
    assert term_problems("Two residual blocks", "잔차 블록 두 개", TERMS) == []
