"""Tests for autograder.checks.targets: torchvision's tables and the stored seed table."""

from __future__ import annotations

import json

import pytest
import torchvision
from torch import nn

from autograder.checks.targets import TARGETS_DIR, reference_model, stored_table, target_table
from labkit.summary import count_parameters


@pytest.fixture(scope="module")
def seed_table():
    return stored_table("resnet18-10")


@pytest.fixture(scope="module")
def torchvision_table():
    return target_table("resnet18", 10)


def test_stored_seed_table_has_the_printed_totals(seed_table):
    assert len(seed_table.rows) == 68
    assert seed_table.total_params == 11_181_642
    assert seed_table.trainable_params == 11_181_642
    assert seed_table.non_trainable_params == 0
    assert seed_table.forward_backward_mb == 62.79
    assert seed_table.total_mb == 106.01
    assert [r.index for r in seed_table.rows] == list(range(1, 69))
    assert seed_table.rows[0].key == ("Conv2d", "[-1, 64, 112, 112]", 9408)
    assert seed_table.rows[-1].key == ("Linear", "[-1, 10]", 5130)
    assert sum(r.params for r in seed_table.rows) == seed_table.total_params


def test_stored_seed_table_equals_torchvision_resnet18_row_for_row(seed_table, torchvision_table):
    assert len(torchvision_table.rows) == len(seed_table.rows) == 68
    for stored, derived in zip(seed_table.rows, torchvision_table.rows, strict=True):
        assert stored == derived
    for name in (
        "total_params",
        "trainable_params",
        "non_trainable_params",
        "input_mb",
        "forward_backward_mb",
        "params_mb",
        "total_mb",
    ):
        assert getattr(seed_table, name) == getattr(torchvision_table, name), name


def test_stored_json_is_the_table_as_data():
    data = json.loads((TARGETS_DIR / "resnet18-10.json").read_text(encoding="utf-8"))
    table = stored_table("resnet18-10")
    assert table.to_dict() == {k: v for k, v in data.items() if k in table.to_dict()}


def test_target_table_follows_num_classes_and_input_size():
    table = target_table("resnet18", 100, (3, 64, 64))

    assert len(table.rows) == 68
    assert table.rows[0].key == ("Conv2d", "[-1, 64, 32, 32]", 9408)
    assert table.rows[-2].key == ("AdaptiveAvgPool2d", "[-1, 512, 1, 1]", 0)
    assert table.rows[-1].key == ("Linear", "[-1, 100]", 512 * 100 + 100)
    assert table.total_params == 11_181_642 - 5130 + 51_300
    assert target_table("resnet18", 100, [3, 64, 64]) == table  # any sequence will do


@pytest.mark.parametrize("name", ["resnet1", "not_a_model", "ResNet18"])
def test_unknown_model_name_is_a_value_error(name):
    with pytest.raises(ValueError, match=f"no classification model called '{name}'"):
        target_table(name, 10)
    with pytest.raises(ValueError, match=name):
        reference_model(name)


def test_unknown_stored_table_lists_the_known_ones():
    with pytest.raises(FileNotFoundError) as info:
        stored_table("resnet34-10")
    message = str(info.value)
    assert "'resnet34-10'" in message
    assert "known: " in message and "resnet18-10" in message


@pytest.mark.parametrize(
    ("name", "num_classes", "params"),
    [
        ("resnet18", 10, 11_181_642),
        ("resnet34", 10, 21_289_802),
        ("resnet18", 1000, 11_689_512),
    ],
)
def test_reference_model_parameter_counts(name, num_classes, params):
    model = reference_model(name, num_classes)
    assert isinstance(model, torchvision.models.ResNet)
    assert model.fc.out_features == num_classes
    assert count_parameters(model) == params


def test_reference_model_passes_keyword_arguments():
    def last_bn_weights(model: nn.Module) -> list:
        blocks = [m for m in model.modules() if isinstance(m, torchvision.models.resnet.BasicBlock)]
        assert len(blocks) == 8
        return [block.bn2.weight for block in blocks]

    assert all(
        (w == 0).all()
        for w in last_bn_weights(reference_model("resnet18", 10, zero_init_residual=True))
    )
    assert all((w == 1).all() for w in last_bn_weights(reference_model("resnet18", 10)))


# ---- regressions: bugs found when these tests were written ----


@pytest.mark.parametrize("name", ["resnet", "get_model"])
def test_names_that_are_not_model_builders_are_a_value_error(name):
    with pytest.raises(ValueError):
        reference_model(name, 10)


def test_target_table_accepts_list_keyword_arguments():
    table = target_table(
        "resnet50", 10, (3, 32, 32), replace_stride_with_dilation=[False, True, True]
    )
    assert table.total_params == count_parameters(
        reference_model("resnet50", 10, replace_stride_with_dilation=[False, True, True])
    )
