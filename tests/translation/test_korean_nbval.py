"""Each lab's Korean edition runs top to bottom under nbval, as the English solution
notebook does (``pytest --nbval-lax solutions``): the solution notebook translated with
the lab's catalog, in a folder of its own. Its kit lines come out in Korean."""

from __future__ import annotations

import os
import subprocess
import sys

import nbformat
import pytest

from autograder.grading.course import REPO_ROOT, assignments, notebook_names
from autograder.translation.catalog import lab_catalog_path, read_catalog
from autograder.translation.edition import translate_notebook

LABS = [(a, n) for a in assignments() for n in notebook_names(a)]


@pytest.mark.slow
@pytest.mark.parametrize(("assignment", "name"), LABS, ids=[f"{a}/{n}" for a, n in LABS])
def test_korean_solution_runs_under_nbval(assignment, name, tmp_path):
    source = nbformat.read(REPO_ROOT / "solutions" / assignment / name, as_version=4)
    po = read_catalog(lab_catalog_path(assignment))
    path = tmp_path / assignment / name
    path.parent.mkdir()
    nbformat.write(translate_notebook(source, assignment, name, po), path)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "LABKIT_DATA": os.environ.get("LABKIT_DATA", str(REPO_ROOT / "data")),
    }
    env.pop("LABKIT_LANG", None)  # the notebook's own language cell sets it
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", str(path), "-p", "no:cacheprovider", "-q"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
