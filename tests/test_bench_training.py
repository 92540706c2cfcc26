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
    assert set(models) == {"resnet18-slides", "resnet18-cifar", "vgg16-bn", "lenet5"}
    x = torch.randn(2, 3, 32, 32)
    for key, model in models.items():
        assert model.eval()(x).shape == (2, 10), key
    assert _params(models["resnet18-slides"]) == 11_181_642  # the course slides' summary table
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
        bench.main(["--quick", "--models", "lenet5", "resnet18-slides"])
    text = out.getvalue()
    for heading in (
        "== throughput, images/s",
        "== the machine's ceiling",
        "== one optimizer step, ms",
        "== 2-epoch runs of the kit's loop",
        "== one full 2-epoch CIFAR-10 run",
        "== the kit's targets",
    ):
        assert heading in text, text
    assert "load average" in text
    assert "train + test images; seed 0;" in text  # one seed, unless told: a quick run
    assert "kit loop: cpu, " in text or "kit loop: cuda, " in text
    for label in ("LeNet-5", "ResNet-18, slides' (7x7 stem)"):
        rows = [line for line in text.splitlines() if line.startswith(label)]
        # throughput, ceiling, optimizer step, accuracy, full-run time
        assert len(rows) == 5, rows
        throughput, ceiling, step = rows[0], rows[1], rows[2]
        assert len(re.findall(r"\d+\.\d\dx", throughput)) == 2, throughput  # two ratios
        assert "nan" not in throughput and "inf" not in throughput
        assert re.search(r" (bf16|fp32)\+fused ", throughput), throughput  # SGD, left to torch
        assert re.search(r" SGD +\d+\.\dM +\d+\.\d +\d+\.\d +\d+\.\dx$", step), step
        # GFLOP per image, the ceiling in images/s, both loops' share of it
        assert re.search(r" \d+\.\d{3} +\d+ +\d+% +\d+%$", ceiling), ceiling
        assert "est." in rows[4]  # quick mode measures no full run


def test_ratios_pair_the_loops_round_by_round(bench):
    # Round 2 ran while the machine was slow: both loops dropped, their ratio did not.
    speed = bench.Speed(slides_train=[40.0, 20.0, 44.0], kit_train=[80.0, 41.0, 84.0])
    assert speed.ratios("train") == [2.0, 2.05, 84.0 / 44.0]
    assert speed.ratio("train") == 2.0  # the median round, not median(kit) / median(slides)
    assert speed.spread("train") == "1.91-2.05"


def test_training_flops_count_every_multiply_add_forward_and_backward(bench):
    # LeNet-5's multiply-adds per image, forward: conv1 3->6 5x5 onto 28x28, conv3 6->16
    # 5x5 onto 10x10, conv5 16->120 5x5 onto 1x1, then 120->84->10.
    conv1, conv3, conv5 = 6 * 28 * 28 * 3 * 25, 16 * 10 * 10 * 6 * 25, 120 * 16 * 25
    forward = conv1 + conv3 + conv5 + 120 * 84 + 84 * 10
    # Backward: each layer's gradients for its weights and for its input cost as much as
    # its forward, but nothing asks for the images' gradient.
    assert bench.training_flops("lenet5") == 2 * (3 * forward - conv1)
    # The CIFAR stem keeps 32x32 maps where the course slides' stride-2 stem and max pool make
    # 8x8 ones: about 15 times the arithmetic (0.56 against 0.04 GFLOPs forward).
    slides, cifar = bench.training_flops("resnet18-slides"), bench.training_flops("resnet18-cifar")
    assert 14 < cifar / slides < 16


def test_a_target_above_the_machine_ceiling_says_so(bench):
    speed = bench.Speed(slides_train=[60.0], kit_train=[66.0])
    ok, detail = bench.speed_target(speed, need=2.5, ceiling=99.0)
    assert not ok
    assert detail == (
        "1.10x (need 2.5x: 150 images/s, above this machine's ceiling of 99, "
        "so no loop reaches it here)"
    )
    assert bench.speed_target(speed, need=2.5, ceiling=400.0) == (False, "1.10x (need 2.5x)")
    fast = bench.Speed(slides_train=[30.0], kit_train=[90.0])
    assert bench.speed_target(fast, need=2.5, ceiling=99.0) == (True, "3.00x (need 2.5x)")


def test_the_matmul_rate_is_a_plausible_flop_rate(bench):
    rate = bench.matmul_rate(torch.device("cpu"), "fp32", rounds=1)
    assert 1e9 < rate < 1e14  # between a slow laptop core and far beyond any CPU today
    assert bench.ceiling_precisions(torch.device("cpu"))[0] == "fp32"


def _run(bench, accuracy: float) -> object:
    return bench.Run(accuracy=accuracy, seconds=1.0, num_test=1000, precision="bf16")


def test_accuracy_difference_over_seeds_and_its_standard_error(bench):
    one = bench.Comparison([_run(bench, 0.50)], [_run(bench, 0.48)], measured=False)
    assert one.diffs == pytest.approx([-2.0])
    assert one.standard_error == pytest.approx(100 * (0.49 * 0.51 / 1000) ** 0.5)  # sampling only
    three = bench.Comparison(
        [_run(bench, a) for a in (0.50, 0.40, 0.45)],
        [_run(bench, a) for a in (0.49, 0.42, 0.44)],
        measured=False,
    )
    assert three.diffs == pytest.approx([-1.0, 2.0, -1.0])
    assert three.diff == pytest.approx(0.0)
    assert three.standard_error == pytest.approx(1.0)  # stdev sqrt(3), over sqrt(3) seeds
    assert one.within(1) is False  # 2 points apart
    assert three.within(1) is None  # mean 0, but an error of 1 point leaves it open
    assert three.within(1.5) is True


def test_seeds_must_be_at_least_one(bench, capsys):
    with pytest.raises(SystemExit):
        bench.main(["--seeds", "0"])
    assert "--seeds 0" in capsys.readouterr().err


@pytest.fixture(scope="module")
def layers():
    path = ROOT / "scripts" / "bench_layers.py"
    spec = importlib.util.spec_from_file_location("bench_layers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_layers_finds_each_convolution_with_the_input_it_sees(layers, bench):
    found = layers.conv_inputs(bench.MODELS["vgg16-bn"].build(), batch_size=2)
    assert len(found) == 13
    assert (found[0][0], tuple(found[0][2])) == ("features.0", (2, 3, 32, 32))
    assert tuple(found[-1][2]) == (2, 512, 2, 2)  # after four 2x2 pools
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        layers.main(["--model", "lenet5", "--batch-size", "4", "--rounds", "1"])
    rows = [line for line in out.getvalue().splitlines() if line.startswith("conv")]
    assert [row.split()[0] for row in rows] == ["conv1", "conv3", "conv5"]
    assert "all convolutions" in out.getvalue()
