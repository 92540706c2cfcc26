"""scripts/run_solutions.py: a lab run end to end without Jupyter, and its training runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.grading.course import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "run_solutions.py"
PROBE = REPO_ROOT / "tests" / "fixtures" / "probe" / "solutions"

pytestmark = pytest.mark.slow


def _run(solutions: Path, out: Path, *labs: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LABKIT_RUN": "grade"}
    command = [sys.executable, str(SCRIPT), "--solutions", str(solutions), "--out", str(out)]
    if labs:
        command += ["--labs", *labs]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_the_probe_lab_runs_and_its_training_run_is_reported(tmp_path):
    run = _run(PROBE, tmp_path / "out")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "day00_probe: ok;" in run.stdout
    report = json.loads((tmp_path / "out" / "runs.json").read_text(encoding="utf-8"))
    (history,) = report["day00_probe"]["runs"]
    assert history["name"] == "history"
    assert (history["epochs"], history["num_train"]) == (2, 128)  # the first 128 of its 192 images
    assert 0.0 <= history["test_acc"] <= 1.0
    row = "| day00_probe | `history` | cpu | fp32 | 2 | 128 |"
    assert row in run.stdout
    assert "✔" in (tmp_path / "out" / "day00_probe.log").read_text(encoding="utf-8")


def test_a_failing_cell_is_named_and_the_next_lab_still_runs(tmp_path):
    solutions = tmp_path / "solutions"
    broken = nbformat.v4.new_notebook()
    broken.cells = [
        nbformat.v4.new_markdown_cell("# broken"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_code_cell("raise ValueError('this cell fails')"),
        nbformat.v4.new_code_cell("print('never printed')"),
    ]
    (solutions / "day00_broken").mkdir(parents=True)
    nbformat.write(broken, solutions / "day00_broken" / "broken.ipynb")
    (solutions / "day00_probe").symlink_to(PROBE / "day00_probe")
    run = _run(solutions, tmp_path / "out")
    assert run.returncode == 1
    assert (
        "day00_broken: FAILED at code cell 2 (raise ValueError('this cell fails')): "
        "ValueError: this cell fails"
    ) in run.stdout
    assert "day00_probe: ok;" in run.stdout
    assert "never printed" not in (tmp_path / "out" / "day00_broken.log").read_text()


def test_an_unknown_lab_is_named_with_the_labs_there_are(tmp_path):
    run = _run(PROBE, tmp_path / "out", "day09_nothing")
    assert run.returncode != 0
    assert "no solution notebook for day09_nothing; labs: day00_probe" in run.stderr
