"""Tests for labkit.summary: torchsummary's table as data, without side effects."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json

import numpy as np
import pytest
import torch
import torchvision
from torch import nn
from torchsummary import summary

from labkit.summary import (
    SummaryRow,
    SummaryTable,
    capture_summary,
    count_parameters,
    meta_summary,
    parse_summary,
)

INPUT = (3, 16, 16)


def tiny_cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 4, kernel_size=3, padding=1, bias=False),  # 108 params
        nn.BatchNorm2d(4),  # 8
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(4 * 2 * 2, 5),  # 85
    )


class Scaled(nn.Module):
    """A convolution times a learned per-channel gain: a parameter torchsummary cannot see."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 2, kernel_size=3)  # 54 + 2
        self.gain = nn.Parameter(torch.ones(2, 1, 1))  # 2, neither weight nor bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x) * self.gain


def _mb(count: int) -> float:
    """torchsummary's size in MB of ``count`` float32 numbers, as printed (2 decimals)."""
    return round(count * 4 / 1024**2, 2)


# ---- parse_summary ------------------------------------------------------------------------------


def test_capture_summary_parses_every_row_of_a_tiny_cnn():
    table = capture_summary(tiny_cnn(), INPUT)

    assert table.rows == (
        SummaryRow("Conv2d", 1, "[-1, 4, 16, 16]", 108),
        SummaryRow("BatchNorm2d", 2, "[-1, 4, 16, 16]", 8),
        SummaryRow("ReLU", 3, "[-1, 4, 16, 16]", 0),
        SummaryRow("AdaptiveAvgPool2d", 4, "[-1, 4, 2, 2]", 0),
        SummaryRow("Flatten", 5, "[-1, 16]", 0),
        SummaryRow("Linear", 6, "[-1, 5]", 85),
    )
    assert table.rows[0].key == ("Conv2d", "[-1, 4, 16, 16]", 108)
    assert "Conv2d-1" in table.text and "Total params: 201" in table.text


def test_capture_summary_parses_the_totals():
    table = capture_summary(tiny_cnn(), (3, 64, 64))  # big enough for non-zero sizes in MB

    assert table.total_params == table.trainable_params == 201  # 108 + 8 + 85
    assert table.non_trainable_params == 0
    outputs = 3 * (4 * 64 * 64) + 16 + 16 + 5  # conv, bn, relu; pool, flatten; linear
    assert table.input_mb == _mb(3 * 64 * 64) == 0.05
    assert table.forward_backward_mb == _mb(2 * outputs)
    assert table.forward_backward_mb > 0
    assert table.params_mb == _mb(table.total_params)
    assert table.total_mb == pytest.approx(
        table.input_mb + table.forward_backward_mb + table.params_mb, abs=0.015
    )


def test_parse_summary_of_printed_text_matches_capture():
    model = tiny_cnn().eval()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary(model, INPUT, device="cpu")
    parsed = parse_summary(out.getvalue())

    captured = capture_summary(model, INPUT)
    assert parsed.rows == captured.rows
    assert dataclasses.replace(parsed, text="") == dataclasses.replace(captured, text="")


def test_parse_summary_counts_frozen_layers_as_non_trainable():
    model = tiny_cnn()
    model[0].weight.requires_grad_(False)
    table = capture_summary(model, INPUT)

    assert table.total_params == 201
    assert table.trainable_params == 201 - 108
    assert table.non_trainable_params == 108


def test_parse_summary_reads_comma_grouped_numbers():
    table = capture_summary(nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 1500)), INPUT)

    assert table.rows[-1] == SummaryRow("Linear", 2, "[-1, 1500]", 768 * 1500 + 1500)
    assert table.total_params == 1_153_500


@pytest.mark.parametrize(
    "text",
    ["", "hello", "Layer (type)  Output Shape  Param #\n  Conv2d-1  [-1, 4, 16, 16]  108\n"],
)
def test_parse_summary_rejects_text_that_is_not_a_summary(text):
    with pytest.raises(ValueError, match="does not look like torchsummary output"):
        parse_summary(text)


def test_parse_summary_names_the_missing_total_line():
    text = capture_summary(tiny_cnn(), INPUT).text
    truncated = text.split("Estimated Total Size")[0]  # output cut off before the last total

    with pytest.raises(ValueError, match="does not look like torchsummary output") as info:
        parse_summary(truncated)
    message = str(info.value)
    assert "total_mb" in message or "Estimated Total Size" in message
    assert "total_params" not in message and "Total params" not in message  # those were there


# ---- capture_summary leaves the model alone ------------------------------------------------------


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {name: t.detach().clone() for name, t in model.state_dict().items()}


def test_plain_torchsummary_has_the_side_effects_capture_summary_avoids():
    """The control for the tests below: torchsummary itself moves BatchNorm's statistics
    and draws from the global RNG, so those tests check something real."""
    model = tiny_cnn()
    before, rng = _state(model), torch.get_rng_state()
    with contextlib.redirect_stdout(io.StringIO()):
        summary(model, INPUT, device="cpu")
    assert not torch.equal(model[1].running_mean, before["1.running_mean"])
    assert not torch.equal(torch.get_rng_state(), rng)


def test_capture_summary_keeps_batchnorm_statistics_and_weights():
    model = tiny_cnn()
    with torch.no_grad():  # non-default statistics, so that a reset would show too
        model[1].running_mean.uniform_(-1, 1)
        model[1].running_var.uniform_(0.5, 2)
    before = _state(model)

    capture_summary(model, INPUT)

    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, value in before.items():
        assert torch.equal(after[name], value), name
    assert int(model[1].num_batches_tracked) == 0


@pytest.mark.parametrize("training", [True, False])
def test_capture_summary_preserves_the_training_mode(training):
    model = tiny_cnn().train(training)

    capture_summary(model, INPUT)

    assert [m.training for m in model.modules()] == [training] * len(list(model.modules()))


def test_capture_summary_restores_the_global_rng():
    model = tiny_cnn()
    torch.manual_seed(1234)
    state = torch.get_rng_state()

    capture_summary(model, INPUT)

    assert torch.equal(torch.get_rng_state(), state)


def test_capture_summary_does_not_depend_on_the_rng_or_mode():
    model = tiny_cnn()
    first = capture_summary(model.train(), INPUT)
    torch.manual_seed(99)
    second = capture_summary(model.eval(), INPUT)
    assert first == second


class TrainingExtras(nn.Module):
    """Returns an extra output in training mode, as Inception's auxiliary head does."""

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        return (x, x) if self.training else x


def test_capture_summary_runs_the_model_in_eval_mode():
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3), TrainingExtras()).train()

    table = capture_summary(model, INPUT)

    assert table.rows[-1] == SummaryRow("TrainingExtras", 3, "[-1, 3]", 0)
    assert model[2].training


DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
    ),
]


@pytest.mark.parametrize("device", DEVICES)
def test_capture_summary_leaves_the_model_on_its_device(device):
    model = tiny_cnn().to(device)
    params = list(model.parameters())
    pointers = [p.data_ptr() for p in params]

    table = capture_summary(model, INPUT)

    assert table.total_params == 201
    assert all(p.device.type == device for p in model.parameters())
    assert all(b.device.type == device for b in model.buffers())
    assert list(model.parameters()) == params  # the same tensors, not copies
    assert [p.data_ptr() for p in params] == pointers


# ---- count_parameters ---------------------------------------------------------------------------


def test_count_parameters_sees_what_torchsummary_misses():
    model = Scaled()

    assert capture_summary(model, (3, 8, 8)).total_params == 56  # conv weight + bias only
    assert count_parameters(model) == 56 + 2


def test_count_parameters_counts_shared_and_frozen_parameters_once():
    shared = nn.Linear(4, 4)  # 20 params, called twice below
    model = nn.Sequential(shared, nn.ReLU(), shared)
    assert count_parameters(model) == 20
    assert capture_summary(model, (4,)).total_params == 40  # torchsummary counts each call

    frozen = tiny_cnn().requires_grad_(False)
    assert count_parameters(frozen) == 201


# ---- to_dict / from_dict ------------------------------------------------------------------------


def test_summary_table_round_trips_through_a_dict_and_json():
    table = capture_summary(tiny_cnn(), (3, 64, 64))

    data = json.loads(json.dumps(table.to_dict()))
    restored = SummaryTable.from_dict(data)

    assert restored == dataclasses.replace(table, text="")  # the printed text is not stored
    assert restored.rows == table.rows  # row numbers come back from the order
    assert data["rows"][0] == ["Conv2d", "[-1, 4, 64, 64]", 108]
    assert isinstance(restored.total_params, int)
    assert SummaryTable.from_dict(restored.to_dict()) == restored


def test_from_dict_ignores_extra_keys_and_requires_the_totals():
    data = capture_summary(tiny_cnn(), INPUT).to_dict()
    assert SummaryTable.from_dict({**data, "source": "slides"}).total_params == 201

    del data["total_mb"]
    with pytest.raises(KeyError, match="total_mb"):
        SummaryTable.from_dict(data)


def test_summary_row_prints_like_torchsummary():
    row = SummaryRow("Conv2d", 5, "[-1, 64, 56, 56]", 36864)
    assert str(row).split() == ["Conv2d-5", "[-1,", "64,", "56,", "56]", "36,864"]


def test_totals_are_plain_python_numbers():
    table = capture_summary(tiny_cnn(), INPUT)
    for name in ("total_params", "trainable_params", "non_trainable_params"):
        assert type(getattr(table, name)) is int, name
    for name in ("input_mb", "forward_backward_mb", "params_mb", "total_mb"):
        assert type(getattr(table, name)) is float, name
    assert not any(isinstance(v, np.generic) for v in table.to_dict().values())


# ---- regressions: bugs found when these tests were written ----


def test_parse_summary_does_not_silently_drop_a_row():
    namespace: dict = {}  # no "__name__": the class gets no module, as in a bare exec()
    exec(
        "from torch import nn\n"
        "class Block(nn.Module):\n"
        "    def forward(self, x):\n"
        "        return x\n",
        namespace,
    )
    model = nn.Sequential(nn.Conv2d(3, 2, 1), namespace["Block"](), nn.ReLU())
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        summary(model.eval(), INPUT, device="cpu")
    assert "-2 " in out.getvalue()  # torchsummary printed 3 rows

    try:
        table = parse_summary(out.getvalue())
    except ValueError:
        return  # refusing the text is fine too
    assert [r.index for r in table.rows] == [1, 2, 3]


# ---- meta_summary: the same table, computed on the meta device ----------------------------------


def _frozen_cnn() -> nn.Sequential:
    model = tiny_cnn()
    model[0].weight.requires_grad_(False)
    return model


def _shared_linear() -> nn.Sequential:
    shared = nn.Linear(3 * 16 * 16, 3 * 16 * 16)
    return nn.Sequential(nn.Flatten(), shared, nn.ReLU(), shared)


def _affine_free() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4, affine=False))


@pytest.mark.parametrize(
    ("build", "input_size"),
    [
        (tiny_cnn, INPUT),
        (tiny_cnn, (3, 64, 64)),
        (_frozen_cnn, INPUT),
        (Scaled, (3, 8, 8)),
        (_shared_linear, INPUT),
        (_affine_free, INPUT),
        (lambda: nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 3), TrainingExtras()), INPUT),
        (lambda: torchvision.models.resnet18(num_classes=10), (3, 64, 64)),
        (lambda: torchvision.models.vgg11_bn(num_classes=10), (3, 32, 32)),
    ],
    ids=[
        "tiny",
        "tiny-64",
        "frozen",
        "scaled",
        "shared",
        "affine-free",
        "extras",
        "r18",
        "vgg11bn",
    ],
)
def test_meta_summary_equals_capture_summary(build, input_size):
    assert meta_summary(build, input_size) == capture_summary(build(), input_size)


def test_meta_summary_allocates_no_weights():
    def huge() -> nn.Module:  # 40 GB of float32 weights, were they real
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10**5), nn.Linear(10**5, 10**5))

    table = meta_summary(huge, INPUT)

    assert table.total_params == 768 * 10**5 + 10**5 + 10**10 + 10**5
    assert table.rows[-1] == SummaryRow("Linear", 3, "[-1, 100000]", 10**10 + 10**5)


def test_meta_summary_text_reads_back_as_the_table():
    table = meta_summary(tiny_cnn, (3, 64, 64))
    assert parse_summary(table.text) == table
    assert "Conv2d-1" in table.text and "Total params: 201" in table.text


class NeedsValues(nn.Module):
    """Branches on a value: fine on the CPU, impossible on the meta device."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if x.sum().item() > 0 else -x


def test_meta_summary_fails_where_values_are_needed():
    with pytest.raises(RuntimeError, match="meta"):
        meta_summary(NeedsValues, INPUT)
