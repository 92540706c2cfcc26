"""The kit's language: LABKIT_LANG chooses, Korean messages come from the catalog, a
check's problems are translated line by line from their templates."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import report
from labkit import RunConfig
from labkit.i18n import (
    _,
    fill_template,
    language,
    set_language,
    template_fields,
    translate_line,
    translate_message,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def korean(monkeypatch):
    monkeypatch.setenv("LABKIT_LANG", "ko")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("ko", "ko"), ("ko_KR.UTF-8", "ko"), ("KO", "ko"), ("en", "en"), ("fr", "en"), ("", "en")],
)
def test_language_reads_labkit_lang(value, expected):
    assert language({"LABKIT_LANG": value}) == expected


def test_set_language_sets_the_variable_for_child_processes(monkeypatch):
    monkeypatch.setenv("LABKIT_LANG", "en")
    assert set_language("ko") == "ko"
    assert language() == "ko"
    with pytest.raises(ValueError, match="choose one of en, ko"):
        set_language("xx")


def test_english_is_the_message_itself(monkeypatch):
    monkeypatch.delenv("LABKIT_LANG", raising=False)
    assert _("the full dataset") == "the full dataset"
    assert translate_message("expected exactly 2 epochs in the history, found 1.").startswith(
        "expected"
    )


def test_korean_messages_come_from_the_catalog(korean):
    assert _("the full dataset") == "전체 데이터셋"
    assert _("a message nobody translated") == "a message nobody translated"
    assert "에포크" in RunConfig("fast", "test").describe()


def test_a_problem_is_translated_with_its_own_values(korean):
    line = "resnet18(): Total params: expected 11,181,642, yours 11,181,000 (-642)."
    assert (
        translate_line(line)
        == "resnet18(): Total params: 목표 11,181,642, 여러분 11,181,000 (-642)."
    )
    assert translate_line("  some line no check writes") == "  some line no check writes"


def test_report_is_korean_in_the_korean_edition(korean):
    text = report(["expected exactly 2 epochs in the history, found 1."])
    assert text == "문제 1개:\n- 기록에 정확히 2 에포크가 있어야 하는데 1 에포크가 있습니다."


def test_template_fields_are_as_written():
    assert template_fields("{a} and {b.c:.1%} {{not}} {len(x)!r}") == [
        "{a}",
        "{b.c:.1%}",
        "{len(x)!r}",
    ]


def test_a_printed_line_is_rewritten_by_its_template_with_its_own_padding():
    pairs = [("{name:<10} memory: {n:>8,}", "{name:<10} 메모리: {n:>8,}")]
    line = f"{'INPUT':<10} memory: {150528:>8,}"
    assert fill_template(line, pairs) == f"{'INPUT':<10} 메모리: {150528:>8,}"
    assert fill_template("something else", pairs) is None


def test_the_kits_names_load_on_first_use_and_the_messages_need_no_torch():
    code = (
        "import sys, labkit.i18n; before = 'torch' in sys.modules; "
        "from labkit import fit, History; import labkit; "
        "[getattr(labkit, name) for name in labkit.__all__]; "
        "print(before, 'torch' in sys.modules, fit.__module__, 'fit' in vars(labkit), "
        "set(labkit.__all__) <= set(dir(labkit)))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["False", "True", "labkit.train", "True", "True"]
    with pytest.raises(AttributeError, match="no attribute 'no_such_name'"):
        import labkit

        labkit.no_such_name  # noqa: B018
