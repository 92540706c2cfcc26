"""Tests for the fast path (labkit.fastpath): the precision and layout that
``choose_fast_path`` picks for the hardware, the trial step that decides bf16 on a CPU,
and the optimizer's fused step.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labkit import fastpath as fastpath_module
from labkit.fastpath import (
    TRIAL_MIN_STEPS,
    FastPath,
    choose_fast_path,
    fuse_step,
    native_bf16,
)
from tests.conftest import (
    count_device_reads,
    cpu_flags,
    recording_cnn,
    tiny_cnn,
    tiny_rgb_data,
)

# ---- the optimizer's fused step -----------------------------------------------------------------


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
    monkeypatch.setattr(fastpath_module, "fused_kernel_devices", lambda: {"cuda"})  # an older torch
    optimizer = torch.optim.Adam(nn.Linear(3, 2).parameters())  # on the CPU
    assert fuse_step(optimizer) is False
    assert optimizer.param_groups[0]["fused"] is None


def _scaled_steps(optimizer: torch.optim.Optimizer, model: nn.Module, monkeypatch) -> list[str]:
    """Four fp16-style steps through a GradScaler, as ``fit`` takes them, the third with an
    overflowed loss; the reads from the device (``.item()`` and the like) made meanwhile."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)  # fit's fp16 is CUDA's; same code
    x, y = torch.randn(8, 4, generator=torch.Generator().manual_seed(0)), torch.arange(8) % 3
    with monkeypatch.context() as patch:
        reads = count_device_reads(patch)
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


# ---- the fast path: precision, layout, autocast, the trial step ---------------------------------


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
    cpu_flags(monkeypatch, **flags)
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
    cpu_flags(monkeypatch, amx_bf16=True)
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

    cpu_flags(monkeypatch)  # no native bf16: fp32
    assert choose_fast_path("cpu", trial=trial).precision == "fp32"
    cpu_flags(monkeypatch, avx512_bf16=True)  # an explicit choice
    assert choose_fast_path("cpu", "bf16", trial=trial).precision == "bf16"
    assert choose_fast_path("cpu", "fp32", trial=trial).precision == "fp32"
    _cuda_device(monkeypatch, (9, 0), "H100")  # tensor cores: bf16 without asking
    assert choose_fast_path("cuda", trial=trial).precision == "bf16"


def test_a_run_too_short_for_a_trial_stays_in_fp32_untried(monkeypatch):
    def trial(paths):
        raise AssertionError("no trial expected")

    cpu_flags(monkeypatch, amx_bf16=True)
    fast = choose_fast_path("cpu", trial=trial, steps=TRIAL_MIN_STEPS - 1)
    assert fast.precision == "fp32"
    assert fast.reason.endswith(
        f"but a run of {TRIAL_MIN_STEPS - 1} steps is too short for a bf16 trial to pay off"
    )
    timed = choose_fast_path("cpu", trial=lambda paths: [0.1, 0.3], steps=TRIAL_MIN_STEPS)
    assert timed.precision == "bf16"
    _cuda_device(monkeypatch, (9, 0), "H100")  # a GPU takes bf16 however short the run
    assert choose_fast_path("cuda", trial=trial, steps=2).precision == "bf16"


def test_the_trial_times_a_copy_and_leaves_the_run_alone():
    data = tiny_rgb_data()
    model, first, _ = recording_cnn()
    model.append(nn.Dropout(0.5))  # draws from the global RNG in training mode
    state = {k: v.clone() for k, v in model.state_dict().items()}
    images = data.train_images[:16].float()
    labels = data.train_labels[:16]
    paths = [choose_fast_path("cpu", p) for p in ("bf16", "fp32")]
    rng = torch.get_rng_state()

    seconds = fastpath_module.time_training_steps(model, images, labels, paths)

    assert len(seconds) == 2 and all(s > 0 for s in seconds)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())  # BN stats too
    assert all(p.grad is None for p in model.parameters())
    assert first.seen == []  # the copy ran, not the model


def test_a_model_is_timed_once_per_batch_shape(monkeypatch):
    runs = []
    monkeypatch.setattr(
        fastpath_module, "trial_steps", lambda model, images, *a: runs.append(len(images)) or [1, 2]
    )
    model = tiny_cnn()
    paths = [choose_fast_path("cpu", p) for p in ("bf16", "fp32")]
    images, labels = torch.zeros(8, 1, 8, 8), torch.zeros(8, dtype=torch.long)
    for _ in range(2):
        assert fastpath_module.time_training_steps(model, images, labels, paths) == [1, 2]
    fastpath_module.time_training_steps(model, images[:4], labels[:4], paths)
    fastpath_module.time_training_steps(tiny_cnn(), images, labels, paths)
    assert runs == [8, 4, 8]


def test_auto_is_fp32_on_a_cpu_that_only_emulates_bf16(monkeypatch):
    cpu_flags(monkeypatch, avx512_f=True, avx2=True)  # AVX512 but no BF16: emulated
    assert native_bf16("cpu")[0] is False
    fast = choose_fast_path("cpu")
    assert fast.precision == "fp32"
    assert "emulated" in fast.reason
    asked = choose_fast_path("cpu", "bf16")  # an explicit choice is kept, with a warning
    assert asked.precision == "bf16"
    assert asked.reason.startswith("as asked, but") and "emulated" in asked.reason


def test_cpu_bf16_needs_onednn(monkeypatch):
    cpu_flags(monkeypatch, avx512_bf16=True, amx_bf16=True)
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
