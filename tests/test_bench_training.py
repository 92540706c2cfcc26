"""scripts/bench_training.py: its models are the ones it names, and its quick mode runs.

Only that the benchmark works is tested here, on whatever CIFAR-10 the session has
(stand-ins without the real images): its numbers are for people to read, never asserts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    path = ROOT / "scripts" / "bench_training.py"
    spec = importlib.util.spec_from_file_location("bench_training", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_the_models_are_the_ones_named(bench):
    models = {key: recipe.build() for key, recipe in bench.MODELS.items()}
    assert set(models) == {"resnet18-seed", "resnet18-cifar", "vgg16-bn", "lenet5"}
    x = torch.randn(2, 3, 32, 32)
    for key, model in models.items():
        assert model.eval()(x).shape == (2, 10), key
    assert _params(models["resnet18-seed"]) == 11_181_642  # the seed's summary table
    cifar = models["resnet18-cifar"]
    assert (cifar.conv1.kernel_size, cifar.conv1.stride) == ((3, 3), (1, 1))
    assert isinstance(cifar.maxpool, nn.Identity)
    # VGG-16-BN's 13 convolutions and batch norms, with a classifier sized to 512 x 1 x 1
    vgg = models["vgg16-bn"]
    reference = torchvision.models.vgg16_bn(num_classes=10)
    assert [type(m) for m in vgg.features] == [type(m) for m in reference.features]
    assert vgg.classifier[0].in_features == 512
    assert _params(models["lenet5"]) == 62_006  # Day 2's 61,706 with 3 input channels


def test_quick_mode_runs_and_prints_every_section(bench):
    out = io.StringIO()
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(out):
        bench.main(["--quick", "--models", "lenet5", "resnet18-seed"])
    text = out.getvalue()
    for heading in (
        "== throughput, images/s",
        "== 2-epoch runs of the kit's loop",
        "== one full 2-epoch CIFAR-10 run",
        "== issue 9 targets",
    ):
        assert heading in text, text
    assert "load average" in text
    assert "kit loop: cpu, " in text or "kit loop: cuda, " in text
    for label in ("LeNet-5", "ResNet-18, seed (7x7 stem)"):
        rows = [line for line in text.splitlines() if line.startswith(label)]
        assert len(rows) == 3, rows  # throughput, accuracy, full-run time
        throughput = rows[0]
        assert len(re.findall(r"\d+\.\d\dx", throughput)) == 2, throughput  # two ratios
        assert "nan" not in throughput and "inf" not in throughput
        assert "est." in rows[2]  # quick mode measures no full run
