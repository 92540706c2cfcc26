"""``make test``'s two workers: the modules that grade whole classes share one lane, every
other file is a unit of its own (the root conftest's scheduler)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import conftest as root_conftest

ROOT = root_conftest.ROOT


def _config(dist: str) -> SimpleNamespace:
    """The options xdist's scheduler reads, as ``-n 2 --dist <dist>`` sets them."""
    options = {"dist": dist, "tx": ["2*popen"], "loadscopereorder": False}
    return SimpleNamespace(getoption=options.get, getvalue=options.get)


def test_every_module_of_the_grading_lane_exists():
    """A renamed module would leave the lane silently, and the two grading modules would
    then run beside each other, each with a kernel per core."""
    missing = [path for path in root_conftest.GRADING_LANE if not (ROOT / path).is_file()]
    assert not missing, f"conftest.GRADING_LANE names no such file: {missing}"


def test_the_makefile_runs_the_lanes():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "-n 2 --dist loadscope --no-loadscope-reorder" in makefile


def test_the_grading_modules_share_a_unit_and_every_other_file_is_its_own():
    pytest.importorskip("xdist")
    scheduler = root_conftest.pytest_xdist_make_scheduler(_config("loadscope"), log=None)
    scope = scheduler._split_scope
    hostile = "tests/grading/test_hostile.py::test_entry_graded_as_expected[valid-solution]"
    samples = "tests/grading/test_grading.py::test_every_sample_is_accounted_for[day04_resnet]"
    assert scope(hostile) == scope(samples) == "grading"
    batch = "tests/grading/test_batch_grading.py"
    assert scope(f"{batch}::test_a") == scope(f"{batch}::test_b") == batch
    cell = "solutions/day04_resnet/resnet.ipynb::Cell 3"
    assert scope(cell) == scope("solutions/day04_resnet/resnet.ipynb::Cell 4") != "grading"


def test_other_distribution_modes_keep_xdists_own_scheduler():
    assert root_conftest.pytest_xdist_make_scheduler(_config("load"), log=None) is None
