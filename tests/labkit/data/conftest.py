"""Shared fixture for the tests of labkit.data: each test sees none of the user's data.

The small datasets those tests read are written by the functions of ``builders``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit.data import CIFAR10, FASHION_MNIST, MNIST, loaders


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No dataset variables, no Debian packages, and a data root of our own: no test sees
    the user's data."""
    for spec in (CIFAR10, MNIST, FASHION_MNIST):
        monkeypatch.delenv(spec.env_var, raising=False)
    monkeypatch.setattr(loaders, "SYSTEM_DATASETS", tmp_path / "no-system-datasets")
    data_root = tmp_path / "data-root"
    data_root.mkdir()
    monkeypatch.setenv("LABKIT_DATA", str(data_root))
    return data_root
