"""Student-facing text names the course's slides as students know them: "the course
slides" (Korean: 강의 슬라이드). The word "seed" is kept for random seeds alone
(``seed_everything(0)``, ``seed=1234``, "random seed")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STUDENT_FACING = (
    "README*.md",
    "docs/**/*.md",
    "data/README.md",
    "solutions/**/*.ipynb",
    "notebooks/**/*.ipynb",
    "autograder/checks/**/*.py",
    "autograder/checks/targets/*.json",
    "labkit/**/*.py",
    "labkit/**/*.po",
    "scripts/*",
    "translations/**/*.po",
)
_WORD = re.compile(r"(?i)(?<![\w-])seed(s|'s|s')?(?![\w(])|\bSEED_|seed-style")
# Random seeds, as code and as prose: removed from a line before the word is looked for.
_RANDOM = re.compile(
    r"(?i)random[ -]seeds?|\bseed=seed\b|seed_everything|manual_seed|\.seed\(|=seed\b"
    r"|\bseed(=|: int| \+ i\b)"
    r"|\bseeds? 0(?!\d)|seeds 0-|--seeds|\b(one|1|per|each|more|\d+\+?|two runs of one) seeds?\b"
    r"|\bby seed\b|\bthe seeds'|args\.seeds|GPU_SEEDS|_seeds\(|\(seeds: |`+seed`+|\bfor seed in\b"
    r"|\(seed[),]|, seed\b|\bseed, "
)


def internal_words(text: str) -> list[str]:
    """The lines of ``text`` that say "seed" other than for a random seed."""
    return [line.strip() for line in text.splitlines() if _WORD.search(_RANDOM.sub("", line))]


def _files() -> list[Path]:
    found = {path for pattern in STUDENT_FACING for path in ROOT.glob(pattern) if path.is_file()}
    return sorted(found)


@pytest.mark.parametrize(
    "line",
    [
        "as the seed slides do",
        "The seed's three examples",
        "matches the seed's table (tanh too)",
        "SEED_X = torch.tensor(",
        "the seed-style loop",
        "ILSVRC winners (seed 003)",
        "Seed 001 quotes AlexNet",
    ],
)
def test_the_internal_word_is_found(line):
    assert internal_words(line) == [line]


@pytest.mark.parametrize(
    "line",
    [
        "seed_everything(0)",
        "problems = check_basic_block(BasicBlock, hidden_cases, seed=1234)",
        "Set the random seed of Python, NumPy and PyTorch",
        "torch.manual_seed(0)",
        "2 epochs on all of CIFAR-10, seed 0, fp32",
        "over 20 seeds: the difference within one seed",
    ],
)
def test_random_seeds_are_not_internal_words(line):
    assert internal_words(line) == []


def test_student_facing_files_say_the_course_slides():
    files = _files()
    assert any(p.suffix == ".ipynb" for p in files) and any(p.name == "README.md" for p in files)
    found = {
        f"{path.relative_to(ROOT)}: {line[:120]}"
        for path in files
        for line in internal_words(path.read_text(encoding="utf-8"))
    }
    assert not found, "say 'the course slides' (or 'the Day N slides'):\n" + "\n".join(
        sorted(found)
    )
