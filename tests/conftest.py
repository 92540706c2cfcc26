"""Shared test helpers: a solution notebook's model code, executable and mutable.

``solution_namespace`` runs a solution's definition cells (for Day 4, the default:
``conv3x3``/``conv1x1``, ``BasicBlock``, ``ResNet``, ``resnet18``, ``resnet34``) in a
fresh namespace, after optional text replacements, so that a test can build a mutant
of the reference solution by editing one line of its source.

For the training loop, its fast path and the training-run check: ``tiny_data`` (8x8
grey images whose class is whether they are dark or bright), ``tiny_cnn``, one real
``fit`` of them (``tiny_run``), the RGB variants that show layout and autocast
(``tiny_rgb_data``, ``recording_cnn``), and two monkeypatches: ``count_device_reads``
and ``cpu_flags``.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import functools
import io
from collections.abc import Callable, Mapping
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch
from torch import nn

from autograder.checks.training import snapshot
from labkit import fastpath
from labkit.data import ImageData
from labkit.train import fit

ROOT = Path(__file__).resolve().parent.parent
SOLUTION_NOTEBOOK = ROOT / "solutions" / "day04_resnet" / "resnet.ipynb"
SOLUTION_NAMES = ("conv3x3", "conv1x1", "BasicBlock", "ResNet", "resnet18", "resnet34")

# What the setup cell provides to the definition cells; the setup cell itself is not run
# (it seeds the global RNG, reads the environment and prints).
_PRELUDE = (
    "import torch\nimport torch.nn.functional as F\nimport torchvision\nfrom torch import nn\n"
)


def _defines_only(source: str) -> bool:
    """True for a cell made only of functions and classes (no training, no data loading)."""
    body = ast.parse(source).body
    definitions = (ast.FunctionDef, ast.ClassDef)
    return any(isinstance(node, definitions) for node in body) and all(
        isinstance(node, (*definitions, ast.Import, ast.ImportFrom)) for node in body
    )


@functools.lru_cache(maxsize=4)
def solution_cells(path: Path = SOLUTION_NOTEBOOK) -> tuple[str, ...]:
    """The solution notebook's definition cells, in notebook order."""
    notebook = nbformat.read(path, as_version=4)
    cells = tuple(
        cell.source
        for cell in notebook.cells
        if cell.cell_type == "code" and _defines_only(cell.source)
    )
    assert cells, f"no definition cells found in {path}"
    return cells


def solution_namespace(
    replace: Mapping[str, str] | None = None,
    path: Path = SOLUTION_NOTEBOOK,
    names: tuple[str, ...] = SOLUTION_NAMES,
) -> dict:
    """Execute the definition cells of the solution at ``path`` (Day 4's by default),
    after replacing text, and return the namespace, which must define ``names``.

    Each key of ``replace`` must occur exactly once in those cells, so that a mutant
    cannot silently turn into the unmodified solution when the notebook changes.
    """
    cells = list(solution_cells(path))
    for old, new in (replace or {}).items():
        count = sum(cell.count(old) for cell in cells)
        assert count == 1, f"{old!r} occurs {count} times in the solution's cells, expected once"
        cells = [cell.replace(old, new) for cell in cells]
    # torchsummary names a row after str(type(module)): classes need a module name.
    namespace: dict = {"__name__": "__main__"}
    exec(compile(_PRELUDE, "<prelude>", "exec"), namespace)
    for i, source in enumerate(cells):
        exec(compile(source, f"{path.name}[definition cell {i}]", "exec"), namespace)
    missing = [name for name in names if name not in namespace]
    assert not missing, f"the solution's cells do not define {missing}"
    return namespace


@pytest.fixture(name="solution_namespace")
def solution_namespace_fixture() -> Callable[..., dict]:
    """``solution_namespace(replace=None, path=..., names=...)``: see the module function."""
    return solution_namespace


@pytest.fixture(scope="session")
def solution() -> dict:
    """The unmodified solution's namespace (shared: do not mutate it)."""
    return solution_namespace()


# ---- a tiny dataset and model for the training loop and its check -------------------------------


def _bright_or_dark(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 2  # 0: dark, 1: bright
    base = torch.where(labels.view(-1, 1, 1, 1) == 1, 170, 20)
    noise = torch.randint(0, 70, (n, 1, 8, 8), generator=generator)
    return (base + noise).to(torch.uint8), labels


def tiny_data() -> ImageData:
    generator = torch.Generator().manual_seed(0)
    train_images, train_labels = _bright_or_dark(128, generator)
    test_images, test_labels = _bright_or_dark(64, generator)
    return ImageData(
        name="bright-or-dark",
        train_images=train_images,
        train_labels=train_labels,
        test_images=test_images,
        test_labels=test_labels,
        classes=("dark", "bright"),
        mean=(0.5,),
        std=(0.3,),
        source="generated in tests/conftest.py",
    )


def tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )


class Recorder(nn.Module):
    """Records the dtype and memory layout of what reaches it, and the autocast state."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[torch.dtype, bool, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(
            (
                x.dtype,
                x.is_contiguous(memory_format=torch.channels_last),
                torch.is_autocast_enabled("cpu"),
            )
        )
        return x


def tiny_rgb_data() -> ImageData:
    """``tiny_data`` in 3 channels: with one, NCHW and channels_last are the same layout."""
    data = tiny_data()
    return dataclasses.replace(
        data,
        train_images=data.train_images.repeat(1, 3, 1, 1),
        test_images=data.test_images.repeat(1, 3, 1, 1),
        mean=(0.5,) * 3,
        std=(0.3,) * 3,
    )


def recording_cnn() -> tuple[nn.Sequential, Recorder, Recorder]:
    first, after_conv = Recorder(), Recorder()
    model = nn.Sequential(
        first,  # sees the batch as fit hands it to the model
        nn.Conv2d(3, 4, 3, padding=1),
        after_conv,  # sees the convolution's output: bf16 under bf16 autocast
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 2),
    )
    return model, first, after_conv


def tiny_run() -> SimpleNamespace:
    """One real training run of ``tiny_cnn`` on ``tiny_data``: (data, model, snapshot
    before, history, printed). The test modules share it through a ``run`` fixture."""
    data = tiny_data()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # model init and augmentation draw from the global RNG
        model = tiny_cnn()
        before = snapshot(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            history = fit(model, data, optimizer, epochs=2, batch_size=16, progress=False)
    printed = out.getvalue().splitlines()
    return SimpleNamespace(data=data, model=model, before=before, history=history, printed=printed)


def count_device_reads(monkeypatch) -> list[str]:
    """Patch the tensor methods that copy a value to the host (``.item()``, ``float()``,
    ``bool()``, ...): each waits for the GPU. Returns the list their calls are named in."""
    reads: list[str] = []
    for name in ("item", "tolist", "__float__", "__int__", "__bool__"):
        original = getattr(torch.Tensor, name)

        def counted(self, *args, _original=original, _name=name, **kwargs):
            reads.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    return reads


def cpu_flags(monkeypatch, **flags: bool) -> None:
    """Pretend the CPU has exactly ``flags`` (``avx512_bf16=True``, ...)."""
    monkeypatch.setattr(fastpath, "cpu_capability", lambda name: flags.get(name, False))
