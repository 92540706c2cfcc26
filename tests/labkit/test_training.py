"""Tests for the run-size knob (labkit.config) and the training loop (labkit.train), on
a tiny generated dataset (``tests.conftest.tiny_data``): 8x8 grey images whose class is
whether they are dark or bright.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math

import pytest
import torch
from torch import nn

from autograder.checks.training import chance_threshold, check_training_run, snapshot
from labkit import train as train_module
from labkit.config import RunConfig
from labkit.fastpath import fuse_step
from labkit.train import History, evaluate, fit, predict, random_crop_flip
from tests.conftest import (
    count_device_reads,
    cpu_flags,
    recording_cnn,
    tiny_cnn,
    tiny_data,
    tiny_rgb_data,
    tiny_run,
)

# ---- RunConfig.from_env -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "size"), [("fast", "fast"), ("full", "full"), (" FULL ", "full"), ("Fast", "fast")]
)
def test_labkit_run_picks_the_size(value, size):
    config = RunConfig.from_env({"LABKIT_RUN": value, "NBGRADER_EXECUTION": "autograde"})
    assert config.size == size
    assert config.reason == f"LABKIT_RUN={size}"
    assert config.epochs == 2


def test_run_sizes():
    fast = RunConfig.from_env({"LABKIT_RUN": "fast"})
    assert (fast.train_per_class, fast.test_per_class) == (300, 100)
    assert "300 train + 100 test images per class" in fast.describe()
    full = RunConfig.from_env({"LABKIT_RUN": "full"})
    assert (full.train_per_class, full.test_per_class) == (None, None)
    assert "the full dataset" in full.describe()
    grade = RunConfig.from_env({"LABKIT_RUN": "grade"})
    assert (grade.train_per_class, grade.test_per_class) == (150, 20)
    assert "a token size for grading" in grade.describe()
    assert "token" not in fast.describe() + full.describe()


@pytest.mark.parametrize(
    ("env", "size", "reason"),
    [
        ({"NBGRADER_EXECUTION": "autograde"}, "grade", "graded by nbgrader"),
        ({"LABKIT_RUN": "auto", "NBGRADER_EXECUTION": "validate"}, "grade", "graded by nbgrader"),
        ({"CI": "true", "NBGRADER_EXECUTION": "autograde"}, "grade", "graded by nbgrader"),
        ({"CI": "true"}, "fast", "running in CI"),
        ({"CI": "1", "LABKIT_RUN": ""}, "fast", "running in CI"),
    ],
)
def test_auto_is_small_when_graded_or_in_ci_even_on_a_gpu(monkeypatch, env, size, reason):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    config = RunConfig.from_env(env)
    assert (config.size, config.reason) == (size, reason)


@pytest.mark.parametrize(("gpu", "size"), [(True, "full"), (False, "fast")])
def test_auto_elsewhere_follows_the_gpu(monkeypatch, gpu, size):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert RunConfig.from_env({"CI": "false"}).size == size
    assert RunConfig.from_env({}).size == size


def test_from_env_reads_the_process_environment(monkeypatch):
    monkeypatch.setenv("LABKIT_RUN", "full")
    assert RunConfig.from_env().size == "full"
    monkeypatch.setenv("LABKIT_RUN", "fast")
    assert RunConfig.from_env().size == "fast"
    monkeypatch.setenv("LABKIT_RUN", "grade")
    assert RunConfig.from_env().size == "grade"


@pytest.mark.parametrize("value", ["huge", "fastest", "1"])
def test_invalid_run_size_is_a_value_error_naming_it(value):
    with pytest.raises(ValueError, match=f"LABKIT_RUN='{value}' is not a run size"):
        RunConfig.from_env({"LABKIT_RUN": value, "NBGRADER_EXECUTION": "1"})


# ---- random_crop_flip ---------------------------------------------------------------------------


def _placements(original: torch.Tensor, out: torch.Tensor, padding: int) -> list[tuple]:
    """Every (dy, dx, flipped) whose crop of the zero-padded original equals ``out``."""
    _, h, w = original.shape
    padded = torch.nn.functional.pad(original, (padding,) * 4)
    found = []
    for dy in range(2 * padding + 1):
        for dx in range(2 * padding + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            for flipped, candidate in ((False, crop), (True, crop.flip(-1))):
                if torch.equal(candidate, out):
                    found.append((dy, dx, flipped))
    return found


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32])
def test_random_crop_flip_crops_and_flips_each_image_on_its_own(dtype):
    generator = torch.Generator().manual_seed(0)
    # pixels 1..255, so that the zero padding shows wherever it is cropped in
    images = torch.randint(1, 256, (32, 2, 5, 6), generator=generator).to(dtype)
    original = images.clone()

    out = random_crop_flip(images, padding=2, generator=generator)

    assert out.shape == images.shape and out.dtype == dtype
    assert torch.equal(images, original)  # the input is not modified
    placements = []
    for i in range(len(images)):
        found = _placements(images[i], out[i], padding=2)
        assert found, f"image {i} is not a shifted (and maybe flipped) crop of its input"
        placements.append(found[0])
    # each image draws its own offset and flip
    assert len(set(placements)) > 5
    assert {flipped for _, _, flipped in placements} == {False, True}
    assert any(p[:2] != (2, 2) for p in placements)  # some are shifted


def test_random_crop_flip_without_padding_only_flips():
    generator = torch.Generator().manual_seed(1)
    images = torch.randint(0, 256, (16, 3, 4, 4), generator=generator, dtype=torch.uint8)

    out = random_crop_flip(images, padding=0, generator=generator)

    flipped = [torch.equal(o, i.flip(-1)) for o, i in zip(out, images, strict=True)]
    kept = [torch.equal(o, i) for o, i in zip(out, images, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_random_crop_flip_is_repeatable_with_a_generator():
    images = torch.randint(0, 256, (8, 1, 6, 6), dtype=torch.uint8)
    first = random_crop_flip(images, generator=torch.Generator().manual_seed(5))
    second = random_crop_flip(images, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first, second)


# ---- fit on a tiny dataset ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def run():
    """One real training run, shared: (data, model, snapshot before, history, printed)."""
    return tiny_run()


def test_fit_records_two_epochs(run):
    history = run.history
    assert type(history) is History
    assert [e.epoch for e in history.epochs] == [1, 2]
    assert (history.num_train, history.num_test, history.num_classes) == (128, 64, 2)
    assert history.device == "cpu"
    assert len(history.step_losses) == 2 * 128 // 16
    for stats in history.epochs:
        for value in (stats.train_loss, stats.test_loss, stats.train_acc, stats.test_acc):
            assert type(value) is float and math.isfinite(value)
        assert 0 <= stats.train_acc <= 1 and 0 <= stats.test_acc <= 1
        assert stats.seconds > 0
    assert history.seconds == pytest.approx(sum(e.seconds for e in history.epochs))
    assert run.printed[0].startswith("fit on cpu, ")  # what it chose, then one line per epoch
    assert [line.split(":")[0] for line in run.printed[1:]] == ["epoch 1/2", "epoch 2/2"]
    assert history.precision in ("bf16", "fp32")  # bf16 if native and faster (a trial step)
    assert f"cpu, {history.precision}" in run.printed[0]
    assert history.channels_last is True


def test_fit_learns(run):
    history = run.history
    assert history.train_loss[1] < history.train_loss[0]
    assert history.epochs[1].test_loss < history.epochs[0].test_loss
    assert history.test_acc[-1] > chance_threshold(2, 64) > 0.5
    assert sum(history.step_losses[-4:]) < sum(history.step_losses[:4])
    # each epoch's train loss is the mean of its steps (all batches are full here)
    assert history.train_loss[0] == pytest.approx(sum(history.step_losses[:8]) / 8, rel=1e-5)


def test_fit_history_matches_a_fresh_evaluation(run):
    loss, accuracy = evaluate(run.model, run.data)
    assert accuracy == pytest.approx(run.history.test_acc[-1])
    assert loss == pytest.approx(run.history.epochs[-1].test_loss)
    logits = predict(run.model, run.data.test_images, run.data)
    assert logits.shape == (64, 2)


def test_fit_steps_the_scheduler_once_per_epoch():
    """MultiStepLR with milestones in epochs: the third epoch trains at a tenth of the rate."""
    seen = []

    class Watch(nn.Module):  # records the learning rate each training step runs at
        def __init__(self, optimizer_ref: list) -> None:
            super().__init__()
            self.net, self.ref = tiny_cnn(), optimizer_ref

        def forward(self, x):
            if self.training:
                seen.append(self.ref[0].param_groups[0]["lr"])
            return self.net(x)

    ref: list = []
    model = Watch(ref)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    ref.append(optimizer)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=[2], gamma=0.1)
    with contextlib.redirect_stdout(io.StringIO()):
        fit(model, tiny_data(), optimizer, epochs=3, batch_size=64, progress=False,
            precision="fp32", scheduler=scheduler)  # fmt: skip
    steps = len(seen) // 3
    assert seen[: 2 * steps] == [0.1] * (2 * steps)
    assert seen[2 * steps :] == pytest.approx([0.01] * steps)
    assert scheduler.last_epoch == 3


def test_fit_drops_a_last_batch_of_one():
    data = tiny_data()
    data = dataclasses.replace(
        data, train_images=data.train_images[:33], train_labels=data.train_labels[:33]
    )
    model = tiny_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, data, optimizer, epochs=1, batch_size=16, progress=False)
    assert history.num_train == 33
    assert len(history.step_losses) == 2  # 16 + 16, and the batch of 1 that BatchNorm refuses


# ---- fit with the optimizer's fused step --------------------------------------------------------


def _fit_quietly(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Two fp32 epochs of ``model`` on the tiny data, seed 0; the lines ``fit`` printed."""
    out = io.StringIO()
    with torch.random.fork_rng(devices=[]), contextlib.redirect_stdout(out):
        torch.manual_seed(0)
        fit(model, tiny_data(), optimizer, batch_size=16, progress=False, precision="fp32")
    return out.getvalue().splitlines()


def test_fit_steps_an_optimizer_left_to_torch_with_its_fused_kernel(monkeypatch):
    fused_calls = []
    fused_adam = torch._fused_adam_

    def counted(*args, **kwargs):
        fused_calls.append(len(args[0]))  # the parameters updated by this one call
        return fused_adam(*args, **kwargs)

    monkeypatch.setattr(torch, "_fused_adam_", counted)
    model = tiny_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    printed = _fit_quietly(model, optimizer)
    assert printed[0].endswith(", fused Adam step"), printed[0]
    assert [group["fused"] for group in optimizer.param_groups] == [True]
    # 8 steps an epoch, each one call for all 6 parameters (the conv's, the norm's, the linear's)
    assert fused_calls == [6] * 16


def test_the_fused_step_is_the_update_the_optimizer_was_built_for():
    torch.manual_seed(0)
    first, second = tiny_cnn(), tiny_cnn()
    for model in (first, second):
        # A bias before batch norm has no gradient but rounding noise, which Adam scales up
        # to steps of the learning rate: left in, it would differ by more than rounding.
        model[0].bias = None
    second.load_state_dict(first.state_dict())
    left_to_torch = torch.optim.Adam(first.parameters(), lr=1e-2)
    for_loop = torch.optim.Adam(second.parameters(), lr=1e-2, fused=False)
    assert _fit_quietly(first, left_to_torch)[0].endswith(", fused Adam step")
    assert "fused" not in _fit_quietly(second, for_loop)[0]  # a choice made is kept
    assert for_loop.param_groups[0]["fused"] is False
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # only rounding apart


@pytest.mark.parametrize(("fused", "recorded"), [(None, True), (False, False)])
def test_the_history_records_whether_the_step_was_fused(fused, recorded):
    model = tiny_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=fused)
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, tiny_data(), optimizer, epochs=1, progress=False, precision="fp32")
    assert history.fused_step is recorded


class _HandWrittenSGD:
    """Not a ``torch.optim.Optimizer``: what a student or the probe notebook may pass."""

    def __init__(self, params, lr: float) -> None:
        self.params, self.lr = list(params), lr

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for p in self.params:
            p -= self.lr * p.grad


def test_fit_steps_a_hand_written_optimizer_as_written():
    model = tiny_cnn()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = _HandWrittenSGD(model.parameters(), lr=0.1)
    assert fuse_step(optimizer) is False
    printed = _fit_quietly(model, optimizer)
    assert "fused" not in printed[0], printed[0]
    assert not hasattr(optimizer, "param_groups")
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


# ---- fit and predict on the fast path -----------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "channels_last", "dtype"),
    [("bf16", True, torch.bfloat16), ("fp32", False, torch.float32), ("fp32", True, torch.float32)],
)
def test_fit_uses_autocast_and_channels_last_as_chosen(precision, channels_last, dtype):
    data = tiny_rgb_data()
    model, first, after_conv = recording_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        history = fit(
            model,
            data,
            optimizer,
            epochs=1,
            batch_size=32,
            progress=False,
            precision=precision,
            channels_last=channels_last,
        )
    assert out.getvalue().startswith(f"fit on cpu, {precision}")
    assert (history.precision, history.channels_last) == (precision, channels_last)
    # 4 training batches, then the evaluation's one batch of 64: all computed the same way
    assert len(first.seen) == len(after_conv.seen) == 5
    autocast = precision != "fp32"
    assert set(first.seen) == {(torch.float32, channels_last, autocast)}
    assert {d for d, _, _ in after_conv.seen} == {dtype}
    conv = model[1]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last) is channels_last
    assert conv.weight.dtype == torch.float32  # autocast casts copies; the weights stay fp32


def test_predict_follows_its_arguments():
    data = tiny_rgb_data()
    model, first, after_conv = recording_cnn()
    logits = predict(model, data.test_images, data, 32, precision="bf16", channels_last=True)
    assert logits.dtype == torch.float32 and logits.shape == (64, 2)
    assert {d for d, _, _ in after_conv.seen} == {torch.bfloat16}
    assert all(cl for _, cl, _ in first.seen)
    first.seen.clear()
    after_conv.seen.clear()
    predict(model, data.test_images, data, precision="fp32", channels_last=False)
    assert first.seen == [(torch.float32, False, False)]
    assert after_conv.seen[0][0] == torch.float32


def test_predict_computes_a_fitted_model_as_fit_chose(monkeypatch):
    data = tiny_rgb_data()
    cpu_flags(monkeypatch, avx512_bf16=True)
    monkeypatch.setattr(train_module, "time_training_steps", lambda *args: [0.5, 0.4])
    model, _, after_conv = recording_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, data, optimizer, epochs=1, batch_size=32, progress=False)
    assert history.precision == "fp32"  # the trial found bf16 slower
    after_conv.seen.clear()
    predict(model, data.test_images, data)  # "auto": as fit chose, not bf16
    assert {d for d, _, _ in after_conv.seen} == {torch.float32}
    other, _, other_conv = recording_cnn()
    predict(other, data.test_images, data)  # never fitted: bf16, native here
    assert {d for d, _, _ in other_conv.seen} == {torch.bfloat16}


def test_fit_reads_the_device_once_per_epoch_not_per_step(monkeypatch):
    """No ``.item()`` (or float(), bool(), ...) per step: each one waits for the GPU."""
    data = tiny_data()
    model = tiny_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    reads = count_device_reads(monkeypatch)
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, data, optimizer, epochs=2, batch_size=8, progress=False)
    steps = len(history.step_losses)
    assert steps == 32
    # per epoch: train loss, train accuracy, the step losses, test loss, test accuracy
    assert len(reads) <= 5 * 2 < steps, reads


def test_fit_in_bf16_learns_and_its_accuracy_is_reproduced():
    data = tiny_data()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = tiny_cnn()
        before = snapshot(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with contextlib.redirect_stdout(io.StringIO()):
            history = fit(
                model, data, optimizer, epochs=2, batch_size=16, progress=False, precision="bf16"
            )
    assert history.train_loss[1] < history.train_loss[0]
    assert history.test_acc[-1] > chance_threshold(2, 64)
    _, accuracy = evaluate(model, data, precision="bf16")
    assert accuracy == history.test_acc[-1]
    assert check_training_run(history, before, model, epochs=2, data=data) == []
