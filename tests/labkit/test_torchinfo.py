"""torchinfo beside torchsummary: the same totals for every architecture of the kit, and
``capture_summary(..., tool="torchinfo")`` reading torchinfo into torchsummary's table.

The architectures are the solutions' own (Days 2 to 6), built by their definition cells,
and the torchvision models the labs use as given code. Small inputs keep it cheap: the
totals do not depend on the image size.
"""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torchinfo
import torchvision
from torch import nn
from torchsummary import summary

from labkit.summary import capture_summary, count_parameters
from tests.conftest import ROOT, solution_namespace

DAY02 = ROOT / "solutions" / "day02_lenet_alexnet" / "lenet_alexnet.ipynb"
DAY03 = ROOT / "solutions" / "day03_vgg" / "vgg.ipynb"
DAY05 = ROOT / "solutions" / "day05_googlenet_resnet" / "googlenet_resnet.ipynb"
DAY06 = ROOT / "solutions" / "day06_depth_study" / "depth_study.ipynb"


def _day(path, name):
    return lambda *args, **kwargs: solution_namespace(path=path, names=(name,))[name](
        *args, **kwargs
    )


ARCHITECTURES = {  # name: (build, one image's size)
    "LeNet-5 (Day 2)": (lambda: _day(DAY02, "LeNet5")(), (1, 32, 32)),
    "AlexNet (Day 2)": (lambda: _day(DAY02, "AlexNet")(), (3, 227, 227)),
    "torchvision AlexNet": (lambda: torchvision.models.alexnet(num_classes=10), (3, 64, 64)),
    "VGG-11 (Day 3)": (lambda: _day(DAY03, "vgg")("vgg11", 10), (3, 32, 32)),
    "VGG-19-BN (Day 3)": (lambda: _day(DAY03, "vgg")("vgg19_bn", 10), (3, 32, 32)),
    "VGG-A-LRN (Day 3)": (lambda: _day(DAY03, "vgg_a_lrn")(10), (3, 32, 32)),
    "VGG-C (Day 3)": (lambda: _day(DAY03, "vgg_c")(10), (3, 32, 32)),
    "VGG-19 for CIFAR (Day 3)": (lambda: _day(DAY03, "vgg19_cifar")(), (3, 32, 32)),
    "ResNet-18 (Day 4)": (lambda: _day(DAY05, "resnet18")(), (3, 64, 64)),
    "ResNet-34 (Day 4)": (lambda: _day(DAY05, "resnet34")(), (3, 64, 64)),
    "GoogLeNet (Day 5)": (lambda: _day(DAY05, "GoogLeNet")(10), (3, 64, 64)),
    "ResNet-50 (Day 5)": (lambda: _day(DAY05, "resnet50")(), (3, 64, 64)),
    "ResNet-101 (Day 5)": (lambda: _day(DAY05, "resnet101")(), (3, 64, 64)),
    "ResNet-152 (Day 5)": (lambda: _day(DAY05, "resnet152")(), (3, 64, 64)),
    "ResNet-20 (Day 6)": (lambda: _day(DAY06, "cifar_resnet")(20), (3, 32, 32)),
    "plain-56 (Day 6)": (lambda: _day(DAY06, "cifar_plain")(56), (3, 32, 32)),
    "ResNet-50, grey (Day 6)": (lambda: _day(DAY06, "resnet")(50, in_channels=1), (1, 28, 28)),
}


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_torchinfo_totals_equal_torchsummarys(name):
    build, size = ARCHITECTURES[name]
    torch.manual_seed(0)
    model = build().eval()
    stats = torchinfo.summary(model, input_size=(2, *size), device="cpu", verbose=0)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), torch.no_grad():
        summary(model, size, device="cpu")
    text = printed.getvalue()
    total = int(text.split("Total params: ")[1].split()[0].replace(",", ""))
    trainable = int(text.split("Trainable params: ")[1].split()[0].replace(",", ""))
    assert (stats.total_params, stats.trainable_params) == (total, trainable)
    assert total == count_parameters(model)


@pytest.mark.parametrize("name", ["ResNet-20 (Day 6)", "GoogLeNet (Day 5)", "AlexNet (Day 2)"])
def test_capture_summary_reads_the_same_table_from_either_tool(name):
    build, size = ARCHITECTURES[name]
    model = build()
    assert capture_summary(model, size, tool="torchinfo").to_dict() == (
        capture_summary(model, size).to_dict()
    )


def test_capture_summary_names_an_unknown_tool():
    with pytest.raises(ValueError, match="torchsummary' or 'torchinfo"):
        capture_summary(nn.Linear(2, 2), (2,), tool="torchstat")


def _bn_moved(run) -> bool:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    before = model[1].running_mean.clone()
    with contextlib.redirect_stdout(io.StringIO()):
        run(model)
    return not torch.equal(before, model[1].running_mean)


def test_torchsummary_moves_batchnorm_statistics_and_torchinfo_does_not():
    """What the labs say: torchsummary's pass runs in the model's (train) mode."""
    assert _bn_moved(lambda m: summary(m, (3, 8, 8), device="cpu"))
    assert not _bn_moved(lambda m: torchinfo.summary(m, (1, 3, 8, 8), device="cpu", verbose=0))
    assert not _bn_moved(lambda m: capture_summary(m, (3, 8, 8)))
