"""Tests for the run-size knob (labkit.config), the training loop (labkit.train) and
the training-run check (autograder.checks.training), on a tiny generated dataset:
8x8 grey images whose class is whether they are dark or bright.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from autograder.checks.training import chance_threshold, check_training_run, snapshot
from labkit import train as train_module
from labkit.config import RunConfig
from labkit.data import ImageData
from labkit.train import (
    EpochStats,
    FastPath,
    History,
    choose_fast_path,
    evaluate,
    fit,
    fuse_step,
    native_bf16,
    predict,
    random_crop_flip,
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


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"NBGRADER_EXECUTION": "autograde"}, "graded by nbgrader"),
        ({"LABKIT_RUN": "auto", "NBGRADER_EXECUTION": "validate"}, "graded by nbgrader"),
        ({"CI": "true"}, "running in CI"),
        ({"CI": "1", "LABKIT_RUN": ""}, "running in CI"),
    ],
)
def test_auto_is_fast_when_graded_or_in_ci_even_on_a_gpu(monkeypatch, env, reason):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    config = RunConfig.from_env(env)
    assert (config.size, config.reason) == ("fast", reason)


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
        source="generated in tests/labkit/test_training.py",
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


@pytest.fixture(scope="module")
def run():
    """One real training run, shared: (data, model, snapshot before, history, printed)."""
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


# ---- the optimizer's fused step -----------------------------------------------------------------


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


def _stepped(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    for group in optimizer.param_groups:
        for p in group["params"]:
            p.grad = torch.ones_like(p)
    optimizer.step()
    return optimizer


@pytest.mark.parametrize(
    ("build", "fused"),
    [
        (lambda params: torch.optim.SGD(params, lr=0.1, momentum=0.9), True),
        (lambda params: torch.optim.AdamW(params, lr=0.1), True),
        (lambda params: torch.optim.Adam(params, lr=0.1, fused=True), True),
        (lambda params: torch.optim.Adam(params, lr=0.1, fused=False), False),
        (lambda params: torch.optim.Adam(params, lr=0.1, foreach=True), False),
        (lambda params: torch.optim.RMSprop(params, lr=0.1), False),  # no fused kernel to ask for
        (lambda params: _stepped(torch.optim.Adam(params, lr=0.1)), False),  # state laid out
        (lambda params: torch.optim.SGD([torch.zeros(2, dtype=torch.long)], lr=0.1), False),
    ],
    ids=[
        "sgd",
        "adamw",
        "adam-fused-as-built",
        "adam-for-loop-as-built",
        "adam-foreach-as-built",
        "rmsprop",
        "adam-already-stepped",
        "integer-parameter",
    ],
)
def test_fuse_step_only_where_the_choice_is_torchs_and_nothing_has_stepped(build, fused):
    optimizer = build(nn.Linear(3, 2).parameters())
    before = [dict(group, params=None) for group in optimizer.param_groups]
    assert fuse_step(optimizer) is fused
    after = [dict(group, params=None) for group in optimizer.param_groups]
    if fused:
        assert all(group["fused"] for group in after)
    else:
        assert after == before  # left exactly as built


def test_fuse_step_leaves_an_optimizer_alone_where_torch_has_no_fused_kernel(monkeypatch):
    monkeypatch.setattr(train_module, "_fused_kernel_devices", lambda: {"cuda"})  # an older torch
    optimizer = torch.optim.Adam(nn.Linear(3, 2).parameters())  # on the CPU
    assert fuse_step(optimizer) is False
    assert optimizer.param_groups[0]["fused"] is None


def _count_device_reads(monkeypatch) -> list[str]:
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


def _scaled_steps(optimizer: torch.optim.Optimizer, model: nn.Module, monkeypatch) -> list[str]:
    """Four fp16-style steps through a GradScaler, as ``fit`` takes them, the third with an
    overflowed loss; the reads from the device (``.item()`` and the like) made meanwhile."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # fit's fp16 is CUDA's; same code
    x, y = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3
    with monkeypatch.context() as patch:
        reads = _count_device_reads(patch)
        for step in range(4):
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(x), y) * (math.inf if step == 2 else 1.0)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
    assert scaler.get_scale() == 2.0**9  # the overflow halved the scale
    return reads


@pytest.mark.parametrize("fused", [None, False], ids=["left-to-torch", "for-loop-as-built"])
def test_a_fused_step_takes_the_grad_scalers_scale_without_a_host_sync(monkeypatch, fused):
    torch.manual_seed(0)
    reference_model, model = nn.Linear(4, 3), nn.Linear(4, 3)
    model.load_state_dict(reference_model.state_dict())
    reference = torch.optim.Adam(reference_model.parameters(), lr=0.1, fused=True)  # torch's
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1, fused=fused)
    assert fuse_step(optimizer) is (fused is None)
    assert _scaled_steps(reference, reference_model, monkeypatch) == []
    reads = _scaled_steps(optimizer, model, monkeypatch)
    if fused is None:
        assert reads == []  # the kernel skips the overflowed step on the device
    else:
        assert "item" in reads  # the GradScaler reads the overflow flag to decide
    for a, b in zip(reference_model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # 3 steps taken, the overflowed one skipped, by both


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


# ---- the fast path: precision, layout, autocast, host syncs ------------------------------------


def _cpu_flags(monkeypatch, **flags: bool) -> None:
    """Pretend the CPU has exactly ``flags`` (``avx512_bf16=True``, ...)."""
    monkeypatch.setattr(train_module, "_cpu_capability", lambda name: flags.get(name, False))


def _cuda_device(monkeypatch, capability: tuple[int, int], name: str) -> None:
    """Pretend a CUDA GPU of ``capability`` is the current device."""
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: name)


@pytest.mark.parametrize(
    ("flags", "why"),
    [
        ({"avx512_bf16": True}, "this CPU has AVX512-BF16 (no AMX)"),
        ({"amx_bf16": True}, "this CPU has AMX-BF16"),
        ({"avx512_bf16": True, "amx_bf16": True}, "this CPU has AVX512-BF16 and AMX-BF16"),
    ],
)
def test_auto_is_bf16_on_a_cpu_with_native_bf16(monkeypatch, flags, why):
    _cpu_flags(monkeypatch, **flags)
    fast = choose_fast_path("cpu")
    assert (fast.precision, fast.channels_last, fast.uses_grad_scaler) == ("bf16", True, False)
    assert fast.reason == why
    assert fast.describe().startswith(f"cpu, bf16 autocast ({why})")


@pytest.mark.parametrize(
    ("seconds", "precision", "said"),
    [
        ([0.10, 0.30], "bf16", "a trial step took 100 ms in bf16, 300 ms in fp32"),
        ([0.10, 0.11], "fp32", "110 ms in fp32: bf16 is not 1.2x faster here"),
        ([12.5, 10.0], "fp32", "12 s in bf16, 10 s in fp32: bf16 is not 1.2x faster"),
    ],
)
def test_auto_on_a_bf16_cpu_keeps_bf16_only_where_a_trial_step_is_faster(
    monkeypatch, seconds, precision, said
):
    _cpu_flags(monkeypatch, amx_bf16=True)
    asked = []

    def trial(paths):
        asked.append([(p.precision, p.channels_last) for p in paths])
        return seconds

    fast = choose_fast_path("cpu", trial=trial)
    assert asked == [[("bf16", True), ("fp32", True)]]
    assert fast.precision == precision
    assert said in fast.reason and "AMX-BF16" in fast.reason


def test_no_trial_where_the_choice_is_clear(monkeypatch):
    def trial(paths):
        raise AssertionError("no trial expected")

    _cpu_flags(monkeypatch)  # no native bf16: fp32
    assert choose_fast_path("cpu", trial=trial).precision == "fp32"
    _cpu_flags(monkeypatch, avx512_bf16=True)  # an explicit choice
    assert choose_fast_path("cpu", "bf16", trial=trial).precision == "bf16"
    assert choose_fast_path("cpu", "fp32", trial=trial).precision == "fp32"
    _cuda_device(monkeypatch, (9, 0), "H100")  # tensor cores: bf16 without asking
    assert choose_fast_path("cuda", trial=trial).precision == "bf16"


def test_the_trial_times_a_copy_and_leaves_the_run_alone():
    data = tiny_rgb_data()
    model, first, _ = _recording_cnn()
    model.append(nn.Dropout(0.5))  # draws from the global RNG in training mode
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = data.train_images[:16].float()
    labels = data.train_labels[:16]
    paths = [choose_fast_path("cpu", p) for p in ("bf16", "fp32")]
    rng = torch.get_rng_state()

    seconds = train_module._time_training_steps(model, images, labels, paths)

    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in model.parameters())
    assert first.seen == []  # the copy ran, not the model


def test_a_model_is_timed_once_per_batch_shape(monkeypatch):
    runs = []
    monkeypatch.setattr(
        train_module, "_trial_steps", lambda model, images, *a: runs.append(len(images)) or [1, 2]
    )
    model = tiny_cnn()
    paths = [choose_fast_path("cpu", p) for p in ("bf16", "fp32")]
    images, labels = torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    for _ in range(2):
        assert train_module._time_training_steps(model, images, labels, paths) == [1, 2]
    train_module._time_training_steps(model, images[:4], labels[:4], paths)
    train_module._time_training_steps(tiny_cnn(), images, labels, paths)
    assert runs == [8, 4, 8]


def test_auto_is_fp32_on_a_cpu_that_only_emulates_bf16(monkeypatch):
    _cpu_flags(monkeypatch, avx512_f=True, avx2=True)  # AVX512 but no BF16: emulated
    assert native_bf16("cpu")[0] is False
    fast = choose_fast_path("cpu")
    assert fast.precision == "fp32"
    assert "emulated" in fast.reason
    asked = choose_fast_path("cpu", "bf16")  # an explicit choice is kept, with a warning
    assert asked.precision == "bf16"
    assert asked.reason.startswith("as asked, but") and "emulated" in asked.reason


def test_cpu_bf16_needs_onednn(monkeypatch):
    _cpu_flags(monkeypatch, avx512_bf16=True, amx_bf16=True)
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert choose_fast_path("cpu").precision == "fp32"


def test_auto_on_a_t4_is_fp16_with_a_grad_scaler(monkeypatch):
    # A T4 answers torch.cuda.is_bf16_supported() with True, but only emulates bf16.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    _cuda_device(monkeypatch, (7, 5), "Tesla T4")
    fast = choose_fast_path(torch.device("cuda"))
    assert (fast.device, fast.precision, fast.uses_grad_scaler) == ("cuda", "fp16", True)
    assert "Tesla T4" in fast.reason and "7.5" in fast.reason
    assert "fp16 autocast with a GradScaler" in fast.describe()


@pytest.mark.parametrize(("capability", "name"), [((8, 0), "A100"), ((9, 0), "H100")])
def test_auto_on_ampere_and_later_is_bf16(monkeypatch, capability, name):
    _cuda_device(monkeypatch, capability, name)
    fast = choose_fast_path("cuda:0")
    assert (fast.precision, fast.uses_grad_scaler) == ("bf16", False)
    assert "bf16 tensor cores" in fast.reason


def test_explicit_choices_are_kept(monkeypatch):
    _cuda_device(monkeypatch, (9, 0), "H100")
    assert choose_fast_path("cuda", "fp16").precision == "fp16"
    assert choose_fast_path("cuda", "fp32", channels_last=False) == FastPath(
        "cuda", "fp32", False, "as asked"
    )
    assert choose_fast_path("cpu", "fp32").precision == "fp32"
    assert "contiguous (NCHW)" in choose_fast_path("cpu", "fp32", False).describe()


@pytest.mark.parametrize(
    ("precision", "channels_last", "message"),
    [
        ("fp64", True, "precision='fp64': use one of 'auto', 'bf16', 'fp16', 'fp32'"),
        ("BF16", True, "precision='BF16'"),
        ("fp16", True, "precision='fp16' is for GPUs; on cpu use 'bf16'"),
        ("auto", "yes", "channels_last='yes': use True or False"),
    ],
)
def test_impossible_choices_are_value_errors(precision, channels_last, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        choose_fast_path("cpu", precision, channels_last)


def test_other_devices_train_in_fp32():
    fast = choose_fast_path("meta")
    assert fast.precision == "fp32"
    with fast.autocast():  # a no-op context for fp32, on any device
        pass


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


def _recording_cnn() -> tuple[nn.Sequential, Recorder, Recorder]:
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


@pytest.mark.parametrize(
    ("precision", "channels_last", "dtype"),
    [("bf16", True, torch.bfloat16), ("fp32", False, torch.float32), ("fp32", True, torch.float32)],
)
def test_fit_uses_autocast_and_channels_last_as_chosen(precision, channels_last, dtype):
    data = tiny_rgb_data()
    model, first, after_conv = _recording_cnn()
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
    model, first, after_conv = _recording_cnn()
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
    _cpu_flags(monkeypatch, avx512_bf16=True)
    monkeypatch.setattr(train_module, "_time_training_steps", lambda *args: [0.5, 0.4])
    model, _, after_conv = _recording_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with contextlib.redirect_stdout(io.StringIO()):
        history = fit(model, data, optimizer, epochs=1, batch_size=32, progress=False)
    assert history.precision == "fp32"  # the trial found bf16 slower
    after_conv.seen.clear()
    predict(model, data.test_images, data)  # "auto": as fit chose, not bf16
    assert {d for d, _, _ in after_conv.seen} == {torch.float32}
    other, _, other_conv = _recording_cnn()
    predict(other, data.test_images, data)  # never fitted: bf16, native here
    assert {d for d, _, _ in other_conv.seen} == {torch.bfloat16}


def test_fit_reads_the_device_once_per_epoch_not_per_step(monkeypatch):
    """No ``.item()`` (or float(), bool(), ...) per step: each one waits for the GPU."""
    data = tiny_data()
    model = tiny_cnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    reads = _count_device_reads(monkeypatch)
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


# ---- check_training_run -------------------------------------------------------------------------


def _with_epochs(history: History, *changes: dict) -> History:
    """A copy of ``history`` with each epoch's fields replaced by the matching dict."""
    epochs = [
        dataclasses.replace(stats, **change)
        for stats, change in zip(history.epochs, changes, strict=True)
    ]
    return dataclasses.replace(history, epochs=epochs)


def test_a_real_run_passes(run):
    assert check_training_run(run.history, run.before, run.model, epochs=2) == []
    assert check_training_run(run.history, run.before, run.model, epochs=2, data=run.data) == []


def test_one_epoch_recorded(run):
    history = dataclasses.replace(run.history, epochs=run.history.epochs[:1])
    assert check_training_run(history, run.before, run.model) == [
        "expected exactly 2 epochs in the history, found 1."
    ]


@pytest.mark.parametrize("field", ["train_loss", "test_loss", "train_acc", "test_acc"])
@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_a_loss_or_accuracy_that_is_not_finite(run, field, value):
    history = _with_epochs(run.history, {}, {field: value})
    assert check_training_run(history, run.before, run.model) == [
        f"epoch 2: {field} is {value!r}, not a finite number."
    ]


def test_a_recorded_value_that_is_not_a_number(run):
    history = _with_epochs(run.history, {"train_loss": torch.tensor(0.5)}, {})
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem.startswith("epoch 1: train_loss is tensor(0.5000)")


def test_loss_that_does_not_go_down(run):
    history = _with_epochs(run.history, {"train_loss": 0.60}, {"train_loss": 0.65})
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem.startswith("the training loss did not go down: epoch 1 0.6000, epoch 2 0.6500.")


def test_accuracy_at_chance(run):
    history = _with_epochs(run.history, {}, {"test_acc": 0.6})
    (problem,) = check_training_run(history, run.before, run.model)
    assert problem == (
        "test accuracy 60.0% after epoch 2 is not above chance (50%; needs more than "
        "68.8% on 64 test images)."
    )


def test_parameters_that_did_not_change(run):
    problems = check_training_run(run.history, snapshot(run.model), run.model)
    assert problems == ["no parameter changed during training."]


def test_some_parameters_that_did_not_change(run):
    before = {**run.before, "5.bias": run.model[5].bias.detach().clone()}
    (problem,) = check_training_run(run.history, before, run.model)
    assert problem == (
        "1 of 6 parameter tensors never changed during training "
        "(a layer forward() never uses?): 5.bias"
    )


def test_a_snapshot_of_another_model(run):
    before = snapshot(nn.Linear(2, 2))
    assert check_training_run(run.history, before, run.model) == [
        "the model's parameters are not the ones snapshotted before training."
    ]


class AlwaysEqual:
    """Equal to everything: passes any ``==`` check a lazy test would make."""

    def __eq__(self, other: object) -> bool:
        return True

    __hash__ = None


class HistoryLike(History):
    pass


@pytest.mark.parametrize(
    ("fake", "kind"),
    [
        (AlwaysEqual(), "AlwaysEqual"),
        ({"epochs": [1, 2], "train_loss": [0.9, 0.1]}, "dict"),
        (None, "NoneType"),
    ],
)
def test_an_object_that_is_not_a_history(run, fake, kind):
    assert check_training_run(fake, run.before, run.model) == [
        f"expected the History that fit() returns, got {kind}."
    ]


def test_a_history_subclass_is_not_accepted(run):
    fake = HistoryLike(
        **{f.name: getattr(run.history, f.name) for f in dataclasses.fields(History)}
    )
    assert check_training_run(fake, run.before, run.model) == [
        "expected the History that fit() returns, got HistoryLike."
    ]


def test_recorded_accuracy_that_evaluation_does_not_reproduce(run):
    _, accuracy = evaluate(run.model, run.data)
    assert accuracy > 0.9  # so that 0.8 is above chance and far from it
    history = _with_epochs(run.history, {}, {"test_acc": 0.8})

    assert check_training_run(history, run.before, run.model) == []  # only data= can tell
    assert check_training_run(history, run.before, run.model, data=run.data) == [
        f"evaluating the trained model gives {accuracy:.1%} test accuracy, but the "
        "history records 80.0%."
    ]


def test_a_history_built_by_hand_is_evaluated_in_fp32(run, monkeypatch):
    """Day 2's own loop builds its History: re-evaluation must compute as that loop did."""
    assert (History("cpu", 1, 1, 2).precision, History("cpu", 1, 1, 2).channels_last) == (
        "fp32",
        False,
    )
    calls = []
    monkeypatch.setattr(
        "autograder.checks.training.evaluate",
        lambda model, data, **kwargs: calls.append(kwargs) or evaluate(model, data, **kwargs),
    )
    by_hand = dataclasses.replace(run.history, precision="fp32", channels_last=False)
    check_training_run(by_hand, run.before, run.model, data=run.data)
    check_training_run(run.history, run.before, run.model, data=run.data)
    assert calls == [
        {"precision": "fp32", "channels_last": False},
        {"precision": run.history.precision, "channels_last": True},
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"precision": "fp8"}, "the history's precision is 'fp8', not 'bf16', 'fp16' or 'fp32'."),
        ({"precision": AlwaysEqual()}, "the history's precision is <"),
        ({"channels_last": 1}, "the history's channels_last is 1, not True or False."),
        ({"precision": "fp16"}, "evaluating the trained model as the history records failed"),
    ],
)
def test_a_history_whose_settings_cannot_be_reproduced(run, change, problem):
    history = dataclasses.replace(run.history, **change)
    (found,) = check_training_run(history, run.before, run.model, data=run.data)
    assert found.startswith(problem)


def test_a_fake_history_with_made_up_numbers(run):
    history = History(
        device="cpu",
        num_train=128,
        num_test=64,
        num_classes=2,
        epochs=[
            EpochStats(1, train_loss=0.7, train_acc=0.5, test_loss=0.7, test_acc=0.5, seconds=1.0),
            EpochStats(2, train_loss=0.8, train_acc=0.5, test_loss=0.7, test_acc=0.5, seconds=1.0),
        ],
    )
    problems = check_training_run(history, run.before, run.model)
    assert len(problems) == 2
    assert problems[0].startswith("the training loss did not go down")
    assert problems[1].startswith("test accuracy 50.0% after epoch 2 is not above chance")


def test_chance_threshold():
    assert chance_threshold(10, 1000) == pytest.approx(0.1 + 3 * math.sqrt(0.09 / 1000))
    assert chance_threshold(2, 64) == pytest.approx(0.6875)
    assert chance_threshold(10, 0) == pytest.approx(1.0)  # no test images: nothing passes


def test_snapshot_is_a_detached_copy():
    model = nn.Linear(3, 2)
    before = snapshot(model)
    assert set(before) == {"weight", "bias"}
    with torch.no_grad():
        model.weight.add_(1)
    assert not torch.equal(before["weight"], model.weight)
    assert not before["weight"].requires_grad
