"""The grading driver's own bookkeeping, without running nbgrader."""

from __future__ import annotations

import json
import time

import nbformat

from autograder.grading import grade
from autograder.grading.grade import FAILED, INVALID, TIMED_OUT, Result


def test_a_grader_error_on_one_submission_does_not_stop_the_batch(tmp_path, monkeypatch):
    for student in ("ada", "bob", "cy"):
        (tmp_path / "submitted" / student / "day00").mkdir(parents=True)
    monkeypatch.setattr(grade, "generate_release", lambda *args: None)
    monkeypatch.setattr(grade, "notebook_names", lambda *args: ["lab.ipynb"])

    def grade_one(batch, student):
        if student == "bob":
            raise OSError("disk full while archiving")
        return Result(student, INVALID, detail="not a notebook")

    monkeypatch.setattr(grade, "_grade_one", grade_one)
    results = grade.grade_assignment("day00", tmp_path, use_sandbox=False)

    assert [(r.student, r.status) for r in results] == [
        ("ada", INVALID),
        ("bob", FAILED),
        ("cy", INVALID),
    ]
    assert "OSError: disk full while archiving" in results[1].detail
    recorded = json.loads((tmp_path / "grades-day00.json").read_text(encoding="utf-8"))
    assert [row["status"] for row in recorded] == [INVALID, FAILED, INVALID]


def test_odd_ids_and_linked_folders_are_refused_before_anything_is_touched(tmp_path, monkeypatch):
    submitted = tmp_path / "submitted"
    for student in ("ada", "kim*", "a[b]", "lee ", ".dot", "김민준"):
        (submitted / student / "day00").mkdir(parents=True)
    (submitted / "eve").symlink_to(submitted / "ada")  # eve's folder is ada's
    (submitted / "max").mkdir()
    (submitted / "max" / "day00").symlink_to(submitted / "ada" / "day00")
    monkeypatch.setattr(grade, "generate_release", lambda *args: None)
    monkeypatch.setattr(grade, "notebook_names", lambda *args: ["lab.ipynb"])
    graded: list[str] = []

    def grade_one(batch, student):
        graded.append(student)
        return Result(student, INVALID, detail="not a notebook")

    monkeypatch.setattr(grade, "_grade_one", grade_one)
    results = {r.student: r for r in grade.grade_assignment("day00", tmp_path, use_sandbox=False)}

    assert sorted(graded) == ["ada", "김민준"]  # only these reach preflight and nbgrader
    assert "ASTERISK" in results["kim*"].detail
    assert "LEFT SQUARE BRACKET" in results["a[b]"].detail
    assert "SPACE" in results["lee "].detail and "position 4" in results["lee "].detail
    assert "starts with FULL STOP" in results[".dot"].detail
    assert "is a link" in results["eve"].detail
    assert "max/day00 is a link" in results["max"].detail
    assert not (tmp_path / "archive").exists()  # nothing archived, moved or written


def _course(root, submissions: dict[str, nbformat.NotebookNode]) -> grade._Batch:
    """A course folder with a one-cell release and these students' notebooks."""
    release = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("answer = 42")])
    (root / "notebooks" / "day00").mkdir(parents=True)
    nbformat.write(release, root / "notebooks" / "day00" / "lab.ipynb")
    for student, nb in submissions.items():
        folder = root / "submitted" / student / "day00"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / "lab.ipynb")
    return grade._Batch("day00", root, ["lab.ipynb"], 4.0, [], {})


def test_a_submission_slow_to_check_times_out_within_the_cap(tmp_path):
    """Preflight and the scan run under the student's cap: a line the scan would take
    many seconds on (16 MB; it reads about a megabyte a second) ends as timed out when
    the cap is reached, and nothing is lost."""
    slow = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(f'note = "{"torch." * 2_700_000}"')]
    )
    batch = _course(tmp_path, {"mallory": slow})
    start = time.monotonic()
    result = grade._grade_one(batch, "mallory")
    took = time.monotonic() - start
    assert result.status == TIMED_OUT, result
    assert "stopped after 4 s, while checking the submission" in result.detail
    assert took < batch.timeout + 2 and result.seconds < batch.timeout + 2
    kept = nbformat.read(tmp_path / "submitted" / "mallory" / "day00" / "lab.ipynb", 4)
    assert kept.cells[0].source == slow.cells[0].source
    assert list((tmp_path / "archive" / "mallory" / "day00").iterdir())


def test_preflight_and_scan_answer_from_their_own_process(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import socket")])
    nb.metadata["kernelspec"] = {"name": "R", "display_name": "R", "language": "R"}
    batch = _course(tmp_path, {"ada": nb})
    checked = grade._intake(batch, "ada", time.time() + 60)
    assert checked["error"] is None
    assert checked["changes"] == ["lab.ipynb: kernel 'R' -> python3"]
    assert len(checked["flags"]) == 1 and "uses the network" in checked["flags"][0]


def test_intake_reads_the_edition_the_kernel_then_speaks(tmp_path):
    """The Korean edition's metadata gives the kernel LABKIT_LANG=ko; anything else is en."""
    korean = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    korean.metadata["labkit"] = {"language": "ko"}
    odd = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    odd.metadata["labkit"] = {"language": "--rm -rf"}
    batch = _course(tmp_path, {"ada": korean, "bob": odd})
    assert grade._intake(batch, "ada", time.time() + 60)["language"] == "ko"
    assert grade._intake(batch, "bob", time.time() + 60)["language"] == "en"
