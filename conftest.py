"""Test-session setup shared by ``tests/`` and the nbval run over ``solutions/``.

The labs train on CIFAR-10 (and Day 2 on MNIST). Without real images
(``LABKIT_CIFAR10`` unset and no ``data/cifar10``), the session generates stand-ins,
points ``LABKIT_CIFAR10`` at them and says so in the header; tests marked
``realdata`` then skip. MNIST likewise (``LABKIT_MNIST``, ``data/mnist``): the
variable is set either way, so that sandboxed grading kernels are told where it is.

The notebooks run at the size grading uses (``LABKIT_RUN=grade``, the token size) unless
``LABKIT_RUN`` says otherwise: every cell runs, on less data. ``LABKIT_RUN=fast make
test`` runs them at the size a student's CPU gets.

Every test leaves the process's environment as it found it (``_environment_kept``).

``make test`` runs on two pytest-xdist workers: the modules that grade whole classes in one
lane, every other file in the other (``GRADING_LANE``, ``pytest_xdist_make_scheduler``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
STANDINS = ROOT / "build" / "standins" / "cifar10"
MNIST_STANDINS = ROOT / "build" / "standins" / "mnist"


def _real_cifar10() -> str | None:
    if os.environ.get("LABKIT_CIFAR10"):
        return os.environ["LABKIT_CIFAR10"]
    default = ROOT / "data" / "cifar10"
    return str(default) if default.is_dir() else None


def _real_mnist() -> str | None:
    if os.environ.get("LABKIT_MNIST"):
        return os.environ["LABKIT_MNIST"]
    default = ROOT / "data" / "mnist"
    return str(default) if (default / "train").is_dir() else None


def _share_the_cores(workers: int) -> None:
    """In a pytest-xdist worker: torch threads for this process and what it starts (nbval's
    kernels, a notebook server's), unless ``OMP_NUM_THREADS`` says. The grading lane's
    kernels fill every core on their own, so each worker gets cores / (2 x workers): one
    thread on two cores. Torch's default, a thread per core in each of two busy processes,
    made training cells three to seven times slower and burned 40% more CPU time in all,
    the threads waiting on each other."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    from autograder.grading.batch import cores  # what the grading lane's kernels count

    threads = str(max(1, cores() // (2 * workers)))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = threads
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(threads))


def pytest_configure(config):
    os.environ.setdefault("LABKIT_RUN", "grade")
    if hasattr(config, "workerinput"):
        _share_the_cores(config.workerinput["workercount"])
    mnist = _real_mnist()
    if mnist is not None:
        os.environ["LABKIT_MNIST"] = mnist
    else:
        from tests.standins import write_mnist_standins

        os.environ["LABKIT_MNIST"] = str(write_mnist_standins(MNIST_STANDINS))
        os.environ["LABKIT_MNIST_STANDINS"] = "1"

    real = _real_cifar10()
    if real is not None:
        os.environ["LABKIT_CIFAR10"] = real
    else:
        from tests.standins import write_standins

        os.environ["LABKIT_CIFAR10"] = str(write_standins(STANDINS))
        os.environ["LABKIT_STANDINS"] = "1"


# The modules that grade whole classes keep both cores busy on their own (one kernel per
# core); the rest mostly keep one core busy (a browser, a server, a notebook, a unit test).
# ``make test`` runs two pytest workers (``-n 2 --dist loadscope``): one takes this lane,
# its modules one after the other, while the other takes every other file, each file
# whole so that its fixtures are built once. (xdist's own ``--dist loadgroup`` cannot do
# this here: it renames ``item._nodeid``, which pytest 9 no longer reads.)
GRADING_LANE = ("tests/grading/test_hostile.py", "tests/grading/test_grading.py")


def _lane(nodeid: str) -> str:
    path = nodeid.split("::", 1)[0]
    return "grading" if path in GRADING_LANE else path


def pytest_xdist_make_scheduler(config, log):
    """Under ``--dist loadscope``, a unit of work is a lane: a file, or the grading lane."""
    if config.getoption("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class LaneScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _lane(nodeid)

    return LaneScheduling(config, log)


def pytest_collection_modifyitems(config, items):
    """In a worker, the grading lane comes first: it is the longest, so it starts first
    (with ``--no-loadscope-reorder``, work is handed out in collection order)."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: _lane(item.nodeid) != "grading")


def pytest_report_header(config):
    lines = [f"CIFAR-10: {_real_cifar10()}", f"MNIST: {os.environ.get('LABKIT_MNIST')}"]
    lines.append(f"notebooks run at LABKIT_RUN={os.environ['LABKIT_RUN']}")
    if os.environ.get("LABKIT_STANDINS"):
        lines[0] = (
            f"CIFAR-10: NO REAL DATA, using generated stand-ins in {os.environ['LABKIT_CIFAR10']} "
            "(set LABKIT_CIFAR10 to a CIFAR-10 folder for the real thing)"
        )
    if os.environ.get("LABKIT_MNIST_STANDINS"):
        lines[1] = (
            f"MNIST: NO REAL DATA, using generated stand-ins in {os.environ['LABKIT_MNIST']} "
            "(set LABKIT_MNIST to an MNIST folder for the real thing)"
        )
    return lines


@pytest.fixture(autouse=True)
def _environment_kept():
    """Put back whatever a test changed in ``os.environ`` without monkeypatch. Dask's
    Nanny sets OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS to 1 in the
    process that starts it, and every kernel started later inherits them: after the
    cluster tests, the notebooks under nbval trained on one thread of two."""
    kept = os.environ.copy()
    yield
    if os.environ != kept:
        os.environ.clear()
        os.environ.update(kept)
