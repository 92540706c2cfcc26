"""A test's changes to the environment do not reach the next test (the root conftest's
``_environment_kept``): kernels started later inherit the environment."""

from __future__ import annotations

import os

import pytest
from distributed import Nanny, Scheduler, SpecCluster

THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
AT_START = {name: os.environ.get(name) for name in THREADS}  # read at collection


@pytest.mark.slow
def test_starting_a_nanny_sets_single_threading_in_this_process():
    """What the next test undoes: Dask's Nanny changes the environment of the process
    that starts it (its ``pre-spawn-environ``), and never puts it back."""
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": ":0"}}
    worker = {"cls": Nanny, "options": {"nthreads": 1}}
    with SpecCluster(workers={"a": worker}, scheduler=scheduler) as cluster:
        cluster.wait_for_workers(1)
    assert {name: os.environ.get(name) for name in THREADS} == dict.fromkeys(THREADS, "1")


@pytest.mark.slow
def test_the_next_test_finds_the_environment_as_it_was():
    assert {name: os.environ.get(name) for name in THREADS} == AT_START
