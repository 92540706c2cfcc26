"""Tests for labkit.profile: FLOPs counted by PyTorch, forward time on a device."""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from labkit.profile import count_flops, time_forward


def test_count_flops_is_two_per_multiply_add():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)  # 8 x 8 output, 27 weights per filter
    assert count_flops(conv, (3, 8, 8)) == 2 * 8 * 8 * 8 * 27
    linear = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert count_flops(linear, (3, 2, 2)) == 2 * 12 * 5


def test_count_flops_matches_the_resnet_papers_multiply_adds_on_the_meta_device():
    with torch.device("meta"):
        model = torchvision.models.resnet18()
    assert round(count_flops(model, (3, 224, 224)) / 2e9, 1) == 1.8  # the course slides' table


def test_count_flops_restores_the_mode_and_leaves_batchnorm_alone():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    count_flops(model, (1, 5, 5))
    assert model.training
    assert model[1].num_batches_tracked.item() == 0  # ran in eval mode


def test_time_forward_is_a_positive_median_and_restores_the_mode():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Dropout()).train()
    seconds = time_forward(model, (3, 16, 16), batch_size=4, repeats=3)
    assert isinstance(seconds, float) and seconds > 0
    assert model.training
    with pytest.raises(ValueError, match="at least one"):
        time_forward(model, (3, 16, 16), repeats=0)
