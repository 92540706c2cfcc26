"""The student bundle (``python -m autograder bundle``): what it holds, and the proof
that it holds no solution or hidden test."""

from __future__ import annotations

import shutil

import nbformat
import pytest

from autograder.__main__ import main
from autograder.grading.bundle import MARK, bundle_leaks, scan_bundle, write_bundle
from autograder.grading.course import REPO_ROOT

DAY01, DAY04 = "day01_conv_arithmetic", "day04_resnet"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("student") / "bundle"
    write_bundle(out)
    return out


def test_bundle_of_the_repository_holds_no_solution(bundle):
    assert bundle_leaks(bundle) == []


def test_bundle_holds_the_student_side_only(bundle):
    files = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    for relative in ("pyproject.toml", "README.md", "data/README.md", "labkit/__init__.py"):
        assert relative in files
    for notebook in (REPO_ROOT / "notebooks").glob("day*/*.ipynb"):
        assert notebook.relative_to(REPO_ROOT).as_posix() in files
    assert not any(f.startswith(("solutions/", "tests/", "docs/", "scripts/")) for f in files)
    assert not any(f.endswith(".db") for f in files)
    shipped = {p.relative_to(bundle / "autograder").as_posix() for p in _modules(bundle)}
    checks = {p.relative_to(REPO_ROOT / "autograder").as_posix() for p in _modules(REPO_ROOT)}
    assert shipped == {"__init__.py"} | {m for m in checks if m.startswith("checks/")}
    assert {"checks/tables.py", "checks/targets/__init__.py", "checks/blocks.py"} <= shipped
    assert not (bundle / "autograder" / "grading").exists(), "the grading pipeline was shipped"
    assert any((bundle / "autograder" / "checks" / "targets").glob("*.json"))
    readme = (bundle / "README.md").read_text(encoding="utf-8")
    assert "colab.research.google.com/github/" in readme


def _modules(root):
    return (p for p in (root / "autograder").rglob("*.py") if "__pycache__" not in p.parts)


def _copy(bundle, tmp_path):
    planted = tmp_path / "planted"
    shutil.copytree(bundle, planted)
    return planted


def test_proof_finds_a_solution_notebook(bundle, tmp_path):
    planted = _copy(bundle, tmp_path)
    shutil.copy(
        REPO_ROOT / "solutions" / "day04_resnet" / "resnet.ipynb",
        planted / "notebooks" / "day04_resnet" / "resnet_key.ipynb",
    )
    problems = bundle_leaks(planted)
    assert any(
        p.startswith("notebooks/day04_resnet/resnet_key.ipynb: contains 'BEGIN SOLUTION'")
        for p in problems
    ), problems


def test_proof_finds_solution_code_without_markers(bundle, tmp_path):
    """A solution pasted into a helper module, markers removed."""
    planted = _copy(bundle, tmp_path)
    nb = nbformat.read(REPO_ROOT / "solutions" / "day04_resnet" / "resnet.ipynb", as_version=4)
    cell = next(c for c in nb.cells if "BEGIN SOLUTION" in c.source and "def forward" in c.source)
    pasted = "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)
    (planted / "labkit" / "answers.py").write_text(pasted + "\n", encoding="utf-8")
    problems = bundle_leaks(planted)
    assert any(p.startswith("labkit/answers.py: solution or hidden test of") for p in problems), (
        problems
    )


def test_proof_finds_a_hidden_test_in_a_release(bundle, tmp_path):
    planted = _copy(bundle, tmp_path)
    source = nbformat.read(REPO_ROOT / "solutions" / "day04_resnet" / "resnet.ipynb", as_version=4)
    hidden = next(c.source for c in source.cells if "BEGIN HIDDEN TESTS" in c.source)
    body = hidden.split("### BEGIN HIDDEN TESTS")[1].split("### END HIDDEN TESTS")[0]
    release_path = planted / "notebooks" / "day04_resnet" / "resnet.ipynb"
    release = nbformat.read(release_path, as_version=4)
    release.cells[-1].source += "\n" + body
    nbformat.write(release, release_path)
    problems = bundle_leaks(planted)
    assert any(p.startswith("notebooks/day04_resnet/resnet.ipynb:") for p in problems), problems


def _answer(assignment: str, name: str, grade_id: str) -> str:
    nb = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)


def _append(bundle, assignment: str, name: str, source: str) -> None:
    path = bundle / "notebooks" / assignment / name
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(source))
    nbformat.write(nb, path)


def test_a_later_lab_may_show_an_earlier_answer_but_is_noted(bundle, tmp_path):
    """Day 4 giving Day 1's conv2d_naive as code is a note (publish Day 4 once Day 1 is
    due); Day 1 giving Day 4's BasicBlock away is a leak."""
    planted = _copy(bundle, tmp_path)
    _append(planted, DAY04, "resnet.ipynb", _answer(DAY01, "conv_arithmetic.ipynb", "conv2d_naive"))
    leaks, notes = scan_bundle(planted)
    assert leaks == []
    assert any(
        n.startswith(f"notebooks/{DAY04}/resnet.ipynb shows the answer of {DAY01}/")
        and f"publish {DAY04} only once {DAY01} is due" in n
        for n in notes
    ), notes

    _append(planted, DAY01, "conv_arithmetic.ipynb", _answer(DAY04, "resnet.ipynb", "basic_block"))
    leaks, _ = scan_bundle(planted)
    assert any(
        p.startswith(f"notebooks/{DAY01}/conv_arithmetic.ipynb: solution or hidden test of {DAY04}")
        for p in leaks
    ), leaks


def test_bundle_of_chosen_labs(tmp_path):
    out = tmp_path / "day1"
    write_bundle(out, labs=[DAY01])
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == [DAY01, "ko"]
    assert [p.name for p in (out / "notebooks" / "ko").iterdir()] == [DAY01]
    assert (out / "autograder" / "checks" / "conv.py").is_file()
    assert not (out / "autograder" / "grading").exists()
    assert DAY04 not in (out / "README.md").read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="no such lab"):
        write_bundle(tmp_path / "x", labs=["day09_nothing"])


def test_bundle_command_passes_on_the_repository_and_fails_on_a_leak(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bundle"
    assert main(["bundle", "--no-release", "--out", str(out)]) == 0
    assert "no solution and no hidden test found" in capsys.readouterr().out
    assert (out / MARK).is_file()

    def write_and_plant(target, **kwargs):
        files = write_bundle(target, **kwargs)
        (target / "labkit" / "notes.md").write_text("### BEGIN HIDDEN TESTS\n", encoding="utf-8")
        return files

    monkeypatch.setattr("autograder.__main__.write_bundle", write_and_plant)
    assert main(["bundle", "--no-release", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "NOT PUBLISHABLE" in err and "labkit/notes.md: contains 'BEGIN HIDDEN TESTS'" in err


def test_bundle_never_replaces_a_folder_it_did_not_write(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work", encoding="utf-8")
    with pytest.raises(ValueError, match="not a student bundle"):
        write_bundle(precious)
    with pytest.raises(ValueError, match="course repository"):
        write_bundle(REPO_ROOT)
    with pytest.raises(ValueError, match="not under build/"):
        write_bundle(REPO_ROOT / "notebooks")
    assert (precious / "thesis.tex").read_text(encoding="utf-8") == "years of work"


def test_bundle_rewrite_keeps_the_published_clones_git_folder(tmp_path):
    out = tmp_path / "published"
    write_bundle(out, labs=[DAY01])
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n", encoding="utf-8")
    (out / "stale.txt").write_text("from last week", encoding="utf-8")
    write_bundle(out, labs=[DAY01, DAY04])
    assert (out / ".git" / "HEAD").is_file() and not (out / "stale.txt").exists()
    assert sorted(p.name for p in (out / "notebooks").iterdir()) == [DAY01, DAY04, "ko"]
