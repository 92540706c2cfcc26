"""Checks for Day 6: the ResNet paper's CIFAR-10 networks, plain and residual, and the
gradient signal that tells them apart.

The CIFAR networks (He et al. 2016, section 4.2) have a 3x3 stem, three stages of n
basic blocks with 16, 32 and 64 channels (the first block of stages 2 and 3 halves the
maps) and a 10-way fc layer: 6n + 2 weighted layers. Their shortcuts are the paper's
option A, with no parameters: the identity, subsampled and padded with zero channels
where a stage starts. The reference below is torchvision's ``BasicBlock`` with such a
shortcut; the paper's parameter counts are stored in ``targets/cifar-resnets.json``.
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock as ReferenceBasicBlock
from torchvision.models.resnet import conv3x3

from autograder.checks import student
from autograder.checks.probe import (
    build_module,
    call_order,
    check_output_shapes,
    load_roles,
    randomize_batchnorm,
    run_module,
    with_batchnorms,
)
from autograder.checks.targets import TARGETS_DIR
from labkit.summary import SummaryTable, count_parameters, meta_summary, record_outputs

__all__ = [
    "PAPER_CIFAR",
    "PLAIN_56_OVER_20",
    "RESNET_56_OVER_20",
    "CifarBlockCase",
    "ShortcutCase",
    "check_cifar_block",
    "check_cifar_family",
    "check_degradation",
    "check_gradient_norms",
    "check_pad_shortcut",
    "check_shortcuts_used",
    "cifar_reference",
    "cifar_target",
    "gradient_ratio",
]

ATOL = 1e-5
# The degradation signal at initialisation: the first layer's gradient norm over the
# fc layer's. In a plain network it grows with depth, in a residual one it does not.
# Bounds that hold over random seeds with a wide margin (tests/checks/test_depth.py measures
# them on 5 seeds: plain-56 has 100 to 400 times plain-20's ratio, ResNet-56 1 to 2
# times ResNet-20's).
PLAIN_56_OVER_20 = 10.0  # plain-56's ratio is at least this many times plain-20's
RESNET_56_OVER_20 = 4.0  # ResNet-56's ratio is at most this many times ResNet-20's


def _paper() -> dict[int, dict]:
    data = json.loads((TARGETS_DIR / "cifar-resnets.json").read_text(encoding="utf-8"))
    return {row["depth"]: row for row in data["networks"]}


PAPER_CIFAR: dict[int, dict] = _paper()  # depth -> params ("0.27M"), exact_params, error (%)


# ---- option A: the parameter-free shortcut ------------------------------------------------------


@dataclass(frozen=True)
class ShortcutCase:
    """``pad_shortcut(x, planes, stride)`` on a ``batch x channels x size x size`` input."""

    channels: int
    planes: int
    stride: int = 1
    size: int = 8
    batch: int = 2

    @property
    def call(self) -> str:
        return f"pad_shortcut(x, planes={self.planes}, stride={self.stride})"

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        out = (self.size - 1) // self.stride + 1  # as a 3x3 conv with padding 1 and stride
        return (self.batch, self.planes, out, out)


def _placements(x: torch.Tensor, planes: int, stride: int) -> list[torch.Tensor]:
    """Option A's output, the input's channels at each offset among ``planes`` channels
    (the paper does not say where the zero channels go)."""
    kept = x[:, :, ::stride, ::stride]
    outs = []
    for offset in range(planes - x.shape[1] + 1):
        out = torch.zeros(x.shape[0], planes, *kept.shape[2:], dtype=x.dtype)
        out[:, offset : offset + x.shape[1]] = kept
        outs.append(out)
    return outs


def _shortcut_hint(x: torch.Tensor, out: torch.Tensor, case: ShortcutCase) -> str:
    if case.stride == 1:
        return ""
    pooled = F.avg_pool2d(x, kernel_size=case.stride, stride=case.stride, ceil_mode=True)
    maxed = F.max_pool2d(x, kernel_size=case.stride, stride=case.stride, ceil_mode=True)
    for name, kept in (("average", pooled), ("max", maxed)):
        if kept.shape[2:] == out.shape[2:] and torch.allclose(
            out[:, : x.shape[1]], kept, atol=ATOL
        ):
            return (
                f" It looks like {name} pooling: option A keeps every {case.stride}nd pixel "
                "(x[:, :, ::stride, ::stride]), as the strided convolution samples them."
            )
    return ""


def _check_shortcut_case(fn: Callable, case: ShortcutCase, generator: torch.Generator) -> list[str]:
    x = torch.randn(case.batch, case.channels, case.size, case.size, generator=generator)
    x.requires_grad_(True)
    out, problem = student.call(fn, case.call, x, case.planes, case.stride)
    if problem is not None:
        return [problem]
    if not isinstance(out, torch.Tensor):
        return [f"{case.call} should return a Tensor, got {type(out).__name__}."]
    if tuple(out.shape) != case.output_shape:
        return [
            f"{case.call} on x of shape {tuple(x.shape)}: expected shape {case.output_shape}, "
            f"got {tuple(out.shape)}. The stride keeps every stride-th row and column; the "
            "channels go from x's to planes, the new ones all zeros."
        ]
    value = out.detach()
    if not any(
        torch.equal(value, ref) for ref in _placements(x.detach(), case.planes, case.stride)
    ):
        zeros = case.planes - case.channels
        return [
            f"{case.call} on x of shape {tuple(x.shape)}: the output should be x's "
            f"{case.channels} channels, subsampled, with {zeros} channels of zeros added "
            f"(option A has no parameters).{_shortcut_hint(x.detach(), value, case)}"
        ]
    if not out.requires_grad:
        return [
            f"{case.call}: the output carries no gradient back to x: build it from x "
            "(slicing, F.pad or torch.cat), not under torch.no_grad() or from x.detach()."
        ]
    return []


def check_pad_shortcut(fn: Callable, cases: Sequence[ShortcutCase], seed: int = 0) -> list[str]:
    """``fn(x, planes, stride)`` is option A's shortcut: x subsampled by ``stride``, its
    channels kept and zero channels added up to ``planes``, differentiable in x."""
    generator = torch.Generator().manual_seed(seed)
    return student.first_failures(_check_shortcut_case(fn, c, generator) for c in cases)


# ---- the basic block, residual or plain ---------------------------------------------------------


@dataclass(frozen=True)
class CifarBlockCase:
    """``BasicBlock(inplanes, planes, stride, residual=...)`` on a random input."""

    inplanes: int
    planes: int
    stride: int = 1
    residual: bool = True
    size: int = 8
    batch: int = 2

    @property
    def call(self) -> str:
        return (
            f"BasicBlock({self.inplanes}, {self.planes}, stride={self.stride}, "
            f"residual={self.residual})"
        )

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch, self.inplanes, self.size, self.size)

    @property
    def output_shape(self) -> tuple[int, int, int, int]:
        out = (self.size - 1) // self.stride + 1
        return (self.batch, self.planes, out, out)

    def build(self, block_cls: Callable[..., nn.Module]) -> nn.Module | str:
        return build_module(
            lambda *args: block_cls(*args, residual=self.residual),
            (self.inplanes, self.planes, self.stride),
            self.call,
            "BasicBlock(inplanes, planes, stride=1, residual=True)",
        )


def _block_roles(order, case: CifarBlockCase) -> dict[str, nn.Module] | list[str]:
    convs = [m for m, _ in order if isinstance(m, nn.Conv2d)]
    if any(m.kernel_size == (1, 1) for m in convs):
        return [
            f"{case.call}: forward() uses a 1x1 convolution. The CIFAR networks' shortcut is "
            "option A, without parameters: call pad_shortcut(x, planes, stride)."
        ]
    if len(convs) != 2 or any(m.kernel_size != (3, 3) for m in convs):
        return [f"{case.call}: expected two 3x3 convolutions, forward() uses {len(convs)} conv(s)."]
    described = {"conv1": "conv1", "conv2": "conv2"}
    return with_batchnorms({"conv1": convs[0], "conv2": convs[1]}, order, case.call, described)


def _expected(
    ref: nn.Module, x: torch.Tensor, case: CifarBlockCase
) -> dict[str, list[torch.Tensor]]:
    """The right output (first), and outputs of common mistakes, from the reference layers."""
    relu = torch.relu
    main = ref.bn2(ref.conv2(relu(ref.bn1(ref.conv1(x)))))
    no_first_relu = ref.bn2(ref.conv2(ref.bn1(ref.conv1(x))))
    shortcuts = _placements(x, case.planes, case.stride)
    right = [relu(main + s) for s in shortcuts] if case.residual else [relu(main)]
    mistakes = {
        "the shortcut is added, but a plain block (residual=False) has none": [
            relu(main + s) for s in shortcuts
        ],
        "the shortcut is never added: with residual=True, out = relu(bn2(...) + shortcut)": [
            relu(main)
        ],
        "the ReLU comes before the addition: add the shortcut first, then apply the last ReLU": [
            relu(main) + s for s in shortcuts
        ],
        "the last ReLU is missing": [main + s for s in shortcuts] + [main],
        "the first ReLU (after bn1) is missing": [relu(no_first_relu + s) for s in shortcuts]
        + [relu(no_first_relu)],
    }
    if not case.residual:
        del mistakes[
            "the shortcut is never added: with residual=True, out = relu(bn2(...) + shortcut)"
        ]
        del mistakes[
            "the ReLU comes before the addition: add the shortcut first, then apply the last ReLU"
        ]
    else:
        del mistakes["the shortcut is added, but a plain block (residual=False) has none"]
    return {"": right, **mistakes}


def _check_block_case(block_cls, case: CifarBlockCase, generator: torch.Generator) -> list[str]:
    block = case.build(block_cls)
    if isinstance(block, str):
        return [block]
    x = torch.relu(torch.randn(case.input_shape, generator=generator))  # blocks see ReLU outputs
    block.eval()
    try:
        order = call_order(block, x)
    except NotImplementedError:
        return [student.stub_problem(f"{case.call}.forward")]
    except Exception as error:  # a student's forward can fail in any way
        return [f"{case.call} raised {type(error).__name__}: {error}"]
    named = _block_roles(order, case)
    if isinstance(named, list):
        return named
    conv1 = named["conv1"]
    if conv1.stride != (case.stride, case.stride):
        return [f"{case.call}: the stride belongs on conv1, which has stride {conv1.stride}."]
    expected_params = 9 * case.planes * (case.inplanes + case.planes) + 4 * case.planes
    if count_parameters(block) != expected_params:
        return [
            f"{case.call}: {count_parameters(block):,} parameters, expected {expected_params:,} "
            "(two 3x3 convolutions without bias, two BatchNorm2d; the shortcut has none)."
        ]
    ref = ReferenceBasicBlock(case.inplanes, case.planes, case.stride)
    randomize_batchnorm(ref, generator)
    ref.eval()
    problem = load_roles(named, ref, case.call)
    if problem:
        return [problem]
    with torch.no_grad():
        out = run_module(block, x, case.call)
        if isinstance(out, str):
            return [out]
        variants = _expected(ref, x, case)
    if tuple(out.shape) != case.output_shape:
        return [f"{case.call}: output shape {tuple(out.shape)}, expected {case.output_shape}."]
    if any(torch.allclose(out, right, atol=ATOL) for right in variants.pop("")):
        return []
    hint = next(
        (
            f" It looks like {why}."
            for why, outs in variants.items()
            if any(torch.allclose(out, o, atol=ATOL) for o in outs)
        ),
        "",
    )
    return [f"{case.call}: with the same weights as the reference block, the output differs.{hint}"]


def check_cifar_block(
    block_cls: Callable[..., nn.Module], cases: Sequence[CifarBlockCase], seed: int = 0
):
    """Shapes first, then each case against the reference layers (torchvision's
    ``BasicBlock`` layers with option A's shortcut, or none for a plain block): the
    student's layers are matched by role, loaded with the reference's weights and random
    BatchNorm statistics, and the outputs compared in eval mode."""
    problems = check_output_shapes(lambda case: case.build(block_cls), cases)
    if problems:
        return problems
    generator = torch.Generator().manual_seed(seed)
    return student.first_failures(_check_block_case(block_cls, c, generator) for c in cases)


# ---- the networks -------------------------------------------------------------------------------


class _OptionA:
    """The reference's shortcut: a function, so that it adds no row to the summary table."""

    def __init__(self, planes: int, stride: int) -> None:
        self.planes, self.stride = planes, stride

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.planes - x.shape[1]))


class _CifarReference(nn.Module):
    def __init__(self, depth: int, num_classes: int) -> None:
        super().__init__()
        n = (depth - 2) // 6
        self.conv1 = conv3x3(3, 16)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        stages, inplanes = [], 16
        for planes, stride in ((16, 1), (32, 2), (64, 2)):
            blocks = []
            for index in range(n):
                block_stride = stride if index == 0 else 1
                block = ReferenceBasicBlock(inplanes, planes, block_stride)
                if block_stride != 1 or inplanes != planes:
                    block.downsample = _OptionA(planes, block_stride)
                blocks.append(block)
                inplanes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def cifar_reference(depth: int, num_classes: int = 10) -> nn.Module:
    """The paper's CIFAR ResNet of ``depth`` layers from torchvision's ``BasicBlock``
    with option A's shortcut (for its summary table and parameter count)."""
    return _CifarReference(depth, num_classes)


@functools.lru_cache(maxsize=8)
def cifar_target(depth: int, num_classes: int = 10) -> SummaryTable:
    """The summary table of the paper's ``depth``-layer CIFAR network at 3 x 32 x 32, on
    the meta device; the plain network's is the same (option A adds no layer)."""
    return meta_summary(lambda: cifar_reference(depth, num_classes), (3, 32, 32))


def check_cifar_family(
    build: Callable[[int], nn.Module], depths: Sequence[int] = (20, 32, 44, 56, 110)
) -> list[str]:
    """``build(depth)`` has the parameters of the paper's table for every depth (its
    rounded "0.27M", and the exact count the architecture gives)."""
    problems = []
    for depth in depths:
        paper = PAPER_CIFAR[depth]
        with torch.device("meta"):
            model, problem = student.call(build, f"building the {depth}-layer network", depth)
        if problem is not None:
            problems.append(problem)
            if student.is_stub(problem):
                return problems
            continue
        count = count_parameters(model)
        if count != paper["exact_params"]:
            problems.append(
                f"{depth} layers: {count:,} parameters, expected {paper['exact_params']:,} "
                f"(the paper's table: {paper['params']})."
            )
    return problems


def _blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The residual-or-plain blocks of ``model``: the smallest modules holding two
    convolutions (whatever they are called)."""

    def convs(module: nn.Module) -> int:
        return sum(isinstance(m, nn.Conv2d) for m in module.modules())

    return [
        (name, m)
        for name, m in model.named_modules()
        if m is not model and convs(m) == 2 and not any(convs(c) == 2 for c in m.children())
    ]


def _passing_blocks(model: nn.Module, generator: torch.Generator) -> list[tuple[str, bool]] | str:
    """For each block, in call order: does it still pass its input on when its own layers
    output zeros (its BatchNorms' weights and biases set to 0)? A residual block does,
    through its shortcut; a plain block outputs zeros."""
    x = torch.randn(2, 3, 32, 32, generator=generator)
    model.eval()
    try:
        blocks = dict((id(m), name) for name, m in _blocks(model))
        calls = record_outputs(model, x, lambda m: id(m) in blocks)
        found = []
        with torch.no_grad():
            for call in calls:
                silenced = copy.deepcopy(call.module)
                for bn in silenced.modules():
                    if isinstance(bn, nn.BatchNorm2d):
                        bn.weight.zero_()
                        bn.bias.zero_()
                out = silenced(call.inputs[0].clone())
                found.append((blocks[id(call.module)], bool(out.abs().max() > 0)))
    except NotImplementedError:
        return student.stub_problem("the network's forward")
    except Exception as error:  # a student's network can fail in any way
        return f"the network raised {type(error).__name__}: {error}"
    return found


def check_shortcuts_used(
    build_resnet: Callable[[int], nn.Module],
    build_plain: Callable[[int], nn.Module],
    depth: int = 20,
    seed: int = 0,
) -> list[str]:
    """Every block of ``build_resnet(depth)`` carries its input on through a shortcut, and
    no block of ``build_plain(depth)`` does (tested block by block, each with its own
    layers silenced)."""
    generator = torch.Generator().manual_seed(seed)
    problems = []
    for build, residual in ((build_resnet, True), (build_plain, False)):
        kind = "residual" if residual else "plain"
        model, problem = student.call(build, f"the {kind} {depth}-layer network", depth)
        found = problem if problem is not None else _passing_blocks(model, generator)
        if isinstance(found, str):
            problems.append(found)
            continue
        blocks = (depth - 2) // 2  # two convolutions each
        if len(found) != blocks:
            problems.append(
                f"the {kind} {depth}-layer network calls {len(found)} blocks of two "
                f"convolutions, expected {blocks}."
            )
            continue
        wrong = [name for name, passes in found if passes != residual]
        if wrong and residual:
            problems.append(
                f"in the residual {depth}-layer network, {len(wrong)} of {blocks} blocks add "
                f"no shortcut ({', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}): "
                "does every block get residual=True?"
            )
        elif wrong:
            problems.append(
                f"in the plain {depth}-layer network, {len(wrong)} of {blocks} blocks add a "
                f"shortcut ({', '.join(wrong[:3])}{' ...' if len(wrong) > 3 else ''}): "
                "residual=False must reach every block."
            )
    return problems


# ---- the gradient signal ------------------------------------------------------------------------


def _tiny_net(generator: torch.Generator) -> nn.Module:
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator) * 0.5 + 0.1)
    return model


def _reference_norms(model: nn.Module, x, y, train: bool = True, bias: bool = False):
    model = copy.deepcopy(model)
    model.train(train)
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    norms = []
    for m in layers:
        grads = [m.weight.grad] + ([m.bias.grad] if bias and m.bias is not None else [])
        norms.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads)))
    return norms


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and all(
        math.isclose(u, v, rel_tol=1e-4, abs_tol=1e-7) for u, v in zip(a, b, strict=True)
    )


def check_gradient_norms(fn: Callable, seed: int = 0) -> list[str]:
    """``fn(model, images, labels)``: one training-mode forward and backward pass from fresh
    gradients, and the norm of each Conv2d and Linear layer's weight gradient, as Python
    floats in the order of ``model.modules()``; no parameter changes."""
    generator = torch.Generator().manual_seed(seed)
    model = _tiny_net(generator)
    x = torch.randn(6, 3, 8, 8, generator=generator)
    y = torch.randint(0, 5, (6,), generator=generator)
    expected = _reference_norms(model, x, y)
    call = "layer_gradient_norms(model, images, labels)"
    problems = []
    for stale, mode in ((False, True), (True, False)):
        probe = copy.deepcopy(model).train(mode)
        if stale:  # gradients left over from an earlier pass, as after a training step
            for p in probe.parameters():
                p.grad = torch.ones_like(p)
        before = [p.detach().clone() for p in probe.parameters()]
        norms, problem = student.call(fn, call, probe, x.clone(), y.clone())
        if problem is not None:
            return [problem]
        if not isinstance(norms, (list, tuple)) or not all(type(v) is float for v in norms):
            return [
                f"{call} should return a list of Python floats (tensor.item()), got "
                f"{student.describe_value(norms)}."
            ]
        if any(
            not torch.equal(a, b.detach()) for a, b in zip(before, probe.parameters(), strict=True)
        ):
            return [f"{call} changed the model's parameters: compute gradients, take no step."]
        if _close(norms, expected):
            continue
        hint = ""
        if len(norms) != len(expected):
            hint = (
                f" It returned {len(norms)} norms for a model with {len(expected)} Conv2d and "
                "Linear layers: one per layer, in model.modules() order."
            )
        elif _close(norms, _reference_norms(model, x, y, bias=True)):
            hint = " It looks like the biases' gradients are included: the weight's only."
        elif not mode and _close(norms, _reference_norms(model, x, y, train=False)):
            hint = (
                " The model came in eval mode and was run that way: call model.train() "
                "first, so that BatchNorm uses the batch's statistics, as in training."
            )
        elif stale:
            hint = (
                " The model had gradients from an earlier pass: clear them first "
                "(model.zero_grad()), or backward() adds to them."
            )
        given = "a model in eval mode with stale gradients" if stale else "a fresh model"
        problems.append(
            f"{call} on {given}: got {[round(v, 4) for v in norms]}, expected "
            f"{[round(v, 4) for v in expected]}.{hint}"
        )
        break
    return problems


def gradient_ratio(norms: Sequence[float]) -> float:
    """The first layer's gradient norm over the last's (the fc layer's)."""
    return norms[0] / norms[-1]


def check_degradation(profiles: Mapping[str, Sequence[float]]) -> list[str]:
    """The four networks' gradient profiles at initialisation (``layer_gradient_norms``
    of plain-20, plain-56, ResNet-20, ResNet-56) show the paper's split: going from 20
    to 56 layers multiplies the plain network's first-to-last gradient ratio by at least
    ``PLAIN_56_OVER_20`` and the residual network's by at most ``RESNET_56_OVER_20``."""
    layers = {"plain-20": 20, "plain-56": 56, "ResNet-20": 20, "ResNet-56": 56}
    problems = []
    for name, depth in layers.items():
        norms = profiles.get(name)
        if norms is None:
            return [f"no gradient profile for {name} (expected keys: {', '.join(layers)})."]
        if len(norms) != depth or not all(
            isinstance(v, float) and math.isfinite(v) and v > 0 for v in norms
        ):
            return [
                f"{name}: expected {depth} positive, finite gradient norms (one per weighted "
                f"layer), got {len(norms)}: {student.describe_value(list(norms)[:4])}..."
            ]
    ratios = {name: gradient_ratio(profiles[name]) for name in layers}
    plain = ratios["plain-56"] / ratios["plain-20"]
    residual = ratios["ResNet-56"] / ratios["ResNet-20"]
    if plain < PLAIN_56_OVER_20:
        problems.append(
            f"plain-56's first-to-last gradient ratio is only {plain:.1f} times plain-20's "
            f"({ratios['plain-56']:.3g} against {ratios['plain-20']:.3g}); expected at least "
            f"{PLAIN_56_OVER_20:.0f} times. Are the plain networks free of shortcuts?"
        )
    if residual > RESNET_56_OVER_20:
        problems.append(
            f"ResNet-56's first-to-last gradient ratio is {residual:.1f} times ResNet-20's "
            f"({ratios['ResNet-56']:.3g} against {ratios['ResNet-20']:.3g}); expected at most "
            f"{RESNET_56_OVER_20:.0f} times. Does every block add its shortcut?"
        )
    return problems
