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
"""

from __future__ import annotations

import os
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


def pytest_configure(config):
    os.environ.setdefault("LABKIT_RUN", "grade")
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
