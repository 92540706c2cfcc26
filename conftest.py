"""Test-session setup shared by ``tests/`` and the nbval run over ``solutions/``.

The labs train on CIFAR-10. Without real images (``LABKIT_CIFAR10`` unset and no
``data/cifar10``), the session generates stand-ins, points ``LABKIT_CIFAR10`` at
them and says so in the header; tests marked ``realdata`` then skip.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
STANDINS = ROOT / "build" / "standins" / "cifar10"


def _real_cifar10() -> str | None:
    if os.environ.get("LABKIT_CIFAR10"):
        return os.environ["LABKIT_CIFAR10"]
    default = ROOT / "data" / "cifar10"
    return str(default) if default.is_dir() else None


def pytest_configure(config):
    real = _real_cifar10()
    if real is not None:
        os.environ["LABKIT_CIFAR10"] = real
    else:
        sys.path.insert(0, str(ROOT / "tests"))
        from standins import write_standins

        os.environ["LABKIT_CIFAR10"] = str(write_standins(STANDINS))
        os.environ["LABKIT_STANDINS"] = "1"


def pytest_report_header(config):
    if os.environ.get("LABKIT_STANDINS"):
        return (
            f"CIFAR-10: NO REAL DATA, using generated stand-ins in {os.environ['LABKIT_CIFAR10']} "
            "(set LABKIT_CIFAR10 to a CIFAR-10 folder for the real thing)"
        )
    return f"CIFAR-10: {_real_cifar10()}"
