"""Target tables: derived from torchvision's reference models (``weights=None``,
so nothing downloads), or read from JSON stored beside this file.

The course's target tables are torchvision's: the course slides' ResNet-18 table is
exactly ``summary(torchvision.models.resnet18(num_classes=10), (3, 224, 224))``,
and ``targets/resnet18-10.json`` keeps that table as the course slides print it.
Derived tables are computed on the ``meta`` device (``labkit.summary.meta_summary``,
which the tests hold equal to torchsummary's): no weights to initialise.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path

import torchvision
from torch import nn

from labkit.summary import SummaryTable, meta_summary

__all__ = ["reference_model", "stored_table", "target_table"]

TARGETS_DIR = Path(__file__).resolve().parent


def reference_model(name: str, num_classes: int = 1000, **kwargs) -> nn.Module:
    """``torchvision.models.<name>(weights=None, num_classes=...)``."""
    known = torchvision.models.list_models(module=torchvision.models)
    if name not in known:
        raise ValueError(
            f"torchvision.models has no classification model called {name!r} "
            f"(known: {', '.join(sorted(known))})"
        )
    return torchvision.models.get_model(name, weights=None, num_classes=num_classes, **kwargs)


def _frozen(value):
    """Lists become tuples, so that keyword arguments can key the cache."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _thawed(value):
    return [_thawed(v) for v in value] if isinstance(value, tuple) else value


@functools.lru_cache(maxsize=32)
def _target(
    name: str, num_classes: int, input_size: tuple[int, ...], kwargs: tuple
) -> SummaryTable:
    options = {key: _thawed(value) for key, value in kwargs}
    return meta_summary(lambda: reference_model(name, num_classes, **options), input_size)


def target_table(
    name: str,
    num_classes: int = 1000,
    input_size: Sequence[int] = (3, 224, 224),
    **kwargs,
) -> SummaryTable:
    """The summary table of torchvision's ``name`` model: what a student's model must match."""
    options = tuple(sorted((key, _frozen(value)) for key, value in kwargs.items()))
    return _target(name, num_classes, tuple(input_size), options)


def stored_table(name: str) -> SummaryTable:
    """A table kept as JSON in ``autograder/checks/targets/`` (for example ``resnet18-10``)."""
    path = TARGETS_DIR / f"{name}.json"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in TARGETS_DIR.glob("*.json"))) or "none"
        raise FileNotFoundError(
            f"no stored target table {name!r} in {TARGETS_DIR} (known: {known})"
        )
    return SummaryTable.from_dict(json.loads(path.read_text(encoding="utf-8")))
