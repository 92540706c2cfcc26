"""Checks for Day 3: VGG built from cfg lists.

The references are torchvision's own: ``torchvision.models.vgg.cfgs``,
``make_layers`` and ``VGG`` (``weights=None``), and ``nn.AdaptiveAvgPool2d``.
Layers are compared by what they are (type and hyperparameters, in order), so a
problem names the first layer that differs and, where a classic mistake explains
it, which one. Whole models are compared as summary tables on the ``meta``
device (``autograder.checks.tables.check_summary_meta``): a 138M-parameter VGG costs
nothing to build there.

Every student result is type-checked before it is compared: a cfg entry must be
exactly an ``int`` or the string ``"M"``, a pooling answer a tuple of two ints.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from autograder.checks import student
from labkit.summary import SummaryTable, meta_summary

__all__ = [
    "ARCH_CFGS",
    "check_adaptive_pool_params",
    "check_cfgs",
    "check_init_flag",
    "check_make_layers",
    "check_vgg_init",
    "check_vgg_outputs",
    "cifar_reference",
    "cifar_target",
    "describe_layers",
    "reference_cfgs",
]

ARCH_CFGS = {"vgg11": "A", "vgg13": "B", "vgg16": "D", "vgg19": "E"}  # torchvision's names
_WEIGHT_LAYERS = {"A": 11, "B": 13, "D": 16, "E": 19}


def reference_cfgs() -> dict[str, list[int | str]]:
    """A copy of torchvision's ``cfgs``: "A" (VGG-11), "B" (VGG-13), "D" (VGG-16), "E" (VGG-19)."""
    return {key: list(cfg) for key, cfg in torchvision.models.vgg.cfgs.items()}


def _cfg_text(cfg: Sequence[int | str]) -> str:
    text = repr(list(cfg))
    return text if len(text) <= 60 else text[:45] + " ...]"


# ---- make_layers ----------------------------------------------------------------------------


def _pair(value: int | tuple[int, ...]) -> tuple[int, ...]:
    return value if isinstance(value, tuple) else (value, value)


def _describe(module: nn.Module) -> str:
    """One layer as a comparable line: its type and the hyperparameters that matter."""
    if isinstance(module, nn.Conv2d):
        text = (
            f"Conv2d({module.in_channels}, {module.out_channels}, "
            f"kernel_size={_pair(module.kernel_size)[0]}, padding={_pair(module.padding)[0]}"
        )
        if _pair(module.stride) != (1, 1):
            text += f", stride={_pair(module.stride)[0]}"
        if module.bias is None:
            text += ", bias=False"
        return text + ")"
    if isinstance(module, nn.BatchNorm2d):
        return f"BatchNorm2d({module.num_features})"
    if isinstance(module, nn.MaxPool2d):
        kernel, stride = _pair(module.kernel_size)[0], _pair(module.stride)[0]
        padding = _pair(module.padding)[0]
        return f"MaxPool2d(kernel_size={kernel}, stride={stride}" + (
            f", padding={padding})" if padding else ")"
        )
    if isinstance(module, nn.ReLU):
        return "ReLU"
    return type(module).__name__


def describe_layers(model: nn.Module) -> list[str]:
    """The leaf modules of ``model`` in registration order, one ``_describe`` line each."""
    return [_describe(m) for m in model.modules() if not list(m.children())]


def _layer_hint(want: str, got: str | None, batch_norm: bool) -> str:
    """What a difference at one position most likely means."""
    if got is None:
        return " Your layers stop early: does every cfg entry add its layers?"
    if want.startswith("Conv2d") and got.startswith("Conv2d"):
        w_in, g_in = want.split(",")[0], got.split(",")[0]
        if w_in != g_in:
            return (
                " in_channels is 3 for the first convolution, then the previous "
                "convolution's out_channels (in_channels = v after each one)."
            )
        return " Every convolution is 3x3 with padding=1 (stride 1), so H x W stay the same."
    if want.startswith("MaxPool2d") and got.startswith("MaxPool2d"):
        return " 'M' is nn.MaxPool2d(kernel_size=2, stride=2): it halves H x W."
    if want.startswith("BatchNorm2d"):
        return (
            " With batch_norm=True each convolution is followed by BatchNorm2d(v) and then "
            "ReLU, in that order."
        )
    if want == "ReLU":
        if got.startswith("BatchNorm2d") and not batch_norm:
            return " batch_norm=False: no BatchNorm2d layers."
        return " Every convolution is followed by a ReLU."
    if want.startswith("MaxPool2d"):
        return " Each 'M' in the cfg adds one MaxPool2d(kernel_size=2, stride=2), in its place."
    if want.startswith("Conv2d"):
        if got.startswith("BatchNorm2d") and not batch_norm:
            return " batch_norm=False: no BatchNorm2d layers."
        if got.startswith("MaxPool2d"):
            return " Each 'M' adds exactly one MaxPool2d, each number one Conv2d."
        return " Each number v in the cfg adds a Conv2d(in_channels, v, kernel_size=3, padding=1)."
    return ""


def _counts(layers: Sequence[str]) -> str:
    kinds = ("Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d")
    return ", ".join(f"{sum(x.startswith(k) for x in layers)} {k}" for k in kinds)


def check_make_layers(
    fn: Callable[..., Any], cfg: Sequence[int | str], batch_norm: bool = False
) -> list[str]:
    """``fn(cfg, batch_norm)`` builds the same layers, in the same order, as torchvision's."""
    call = f"make_layers({_cfg_text(cfg)}, batch_norm={batch_norm})"
    given = list(cfg)
    with torch.device("meta"):  # layers without weights: VGG-19's cost nothing to build
        features, problem = student.call(fn, call, given, batch_norm=batch_norm)
        reference = torchvision.models.vgg.make_layers(list(cfg), batch_norm)
    if problem:
        return [problem]
    if not isinstance(features, nn.Sequential):
        return [
            f"{call} should return an nn.Sequential, got {type(features).__name__}: "
            "return nn.Sequential(*layers)."
        ]
    if given != list(cfg):
        return [f"{call} changed the cfg list it was given: build a new list of layers."]
    expected = describe_layers(reference)
    got = describe_layers(features)
    for i, want in enumerate(expected):
        mine = got[i] if i < len(got) else None
        if mine != want:
            before = " (the layers before it match)" if i else ""
            return [
                f"{call}: layer {i} differs{before}.\n"
                f"  expected: {want}\n"
                f"  yours:    {mine or '(no more layers)'}\n"
                f"  expected {len(expected)} layers ({_counts(expected)}); "
                f"yours {len(got)} ({_counts(got)}).{_layer_hint(want, mine, batch_norm)}"
            ]
    if len(got) > len(expected):
        return [
            f"{call}: the expected {len(expected)} layers are all there, then yours go on: "
            f"{', '.join(got[len(expected) : len(expected) + 3])}. Add nothing after the last "
            "cfg entry (the classifier belongs to VGG, not to make_layers)."
        ]
    return []


# ---- the cfgs -------------------------------------------------------------------------------


def _entry_problem(value: object) -> str | None:
    if type(value) is int or (type(value) is str and value == "M"):
        return None
    return f"{value!r:.30} ({type(value).__name__}) is neither an int nor 'M'"


def check_cfgs(fn: Callable[[], Any]) -> list[str]:
    """``fn()`` returns a dict with torchvision's "A", "B", "D" and "E" lists, exactly."""
    call = "vgg_cfgs()"
    cfgs, problem = student.call(fn, call)
    if problem:
        return [problem]
    if not isinstance(cfgs, dict):
        return [f"{call} should return a dict of cfg lists, got {type(cfgs).__name__}."]
    problems = []
    for key, cfg in reference_cfgs().items():
        name = f"VGG-{_WEIGHT_LAYERS[key]}"
        if key not in cfgs:
            problems.append(f"{call} has no {key!r} entry ({name}).")
            continue
        got = cfgs[key]
        where = f"{call}[{key!r}] ({name})"
        if not isinstance(got, list):
            problems.append(f"{where} should be a list, got {type(got).__name__}.")
            continue
        bad = next((p for p in map(_entry_problem, got) if p), None)
        if bad:
            problems.append(f"{where}: {bad}.")
            continue
        if got == cfg:
            continue
        first = next(
            (i for i, (g, c) in enumerate(zip(got, cfg, strict=False)) if g != c),
            min(len(got), len(cfg)),
        )
        convs = sum(v != "M" for v in cfg)
        problems.append(
            f"{where} differs from torchvision's at position {first}: expected "
            f"{cfg[first] if first < len(cfg) else '(the end)'!r}, got "
            f"{got[first] if first < len(got) else '(the end)'!r}.\n"
            f"  expected {convs} convolutions and {cfg.count('M')} 'M' "
            f"({convs} + 3 fully connected = {_WEIGHT_LAYERS[key]} weight layers); yours has "
            f"{sum(v != 'M' for v in got)} and {got.count('M')}."
        )
    return problems


# ---- adaptive average pooling -----------------------------------------------------------------


def _slides_formula(in_size: int, out_size: int) -> tuple[int, int]:
    stride = in_size // out_size
    return in_size - (out_size - 1) * stride, stride


def check_adaptive_pool_params(
    fn: Callable[[int, int], Any], cases: Sequence[tuple[int, int]]
) -> list[str]:
    """``fn(in_size, out_size)`` is the course slides' (kernel, stride); where ``in_size`` is a
    multiple of ``out_size``, ``F.avg_pool2d`` with them equals ``nn.AdaptiveAvgPool2d``."""
    problems = []
    for in_size, out_size in cases:
        call = f"adaptive_pool_params({in_size}, {out_size})"
        got, problem = student.call(fn, call, in_size, out_size)
        if problem is None and not (
            type(got) is tuple and len(got) == 2 and all(type(v) is int for v in got)
        ):
            problem = f"{call} should return a tuple (kernel, stride) of two ints, got {got!r:.60}."
        if problem:
            problems.append(problem)
            if student.is_stub(problem):
                return problems
            continue
        kernel, stride = got
        expected = _slides_formula(in_size, out_size)
        if in_size % out_size == 0 and kernel > 0 and stride > 0 and kernel <= in_size:
            x = torch.randn(1, 2, in_size, in_size, generator=torch.Generator().manual_seed(0))
            mine = F.avg_pool2d(x, kernel, stride)
            adaptive = nn.AdaptiveAvgPool2d(out_size)(x)
            if mine.shape == adaptive.shape and torch.allclose(mine, adaptive, atol=1e-6):
                continue
            problems.append(
                f"{call} returned kernel {kernel}, stride {stride}: F.avg_pool2d(x, {kernel}, "
                f"{stride}) gives {tuple(mine.shape[2:])} maps that differ from "
                f"nn.AdaptiveAvgPool2d({out_size})'s {tuple(adaptive.shape[2:])}. Expected "
                f"{expected}: stride = in_size // out_size, "
                "kernel = in_size - (out_size - 1) * stride."
            )
        elif got != expected:
            hint = " (kernel, stride) in this order." if got == expected[::-1] else ""
            problems.append(
                f"{call}: expected {expected} by the course slides' formula (stride = in_size // "
                f"out_size, kernel = in_size - (out_size - 1) * stride), got {got}.{hint}"
            )
    return problems


# ---- the VGG class ----------------------------------------------------------------------------


def _spread_problem(name: str, weight: torch.Tensor, std: float, rule: str) -> str | None:
    """A problem unless ``weight`` looks drawn from N(0, std^2)."""
    values = weight.detach().float().flatten()
    n = values.numel()
    tolerance = max(0.05, 5 / (2 * n) ** 0.5)  # relative: 5 standard errors of a std
    got = values.std().item()
    mean = values.mean().item()
    if abs(got - std) <= tolerance * std and abs(mean) <= 5 * std / n**0.5 + 1e-12:
        return None
    return f"{name}.weight has mean {mean:.4g} and std {got:.4g}; {rule} gives std {std:.4g}."


def check_vgg_init(model: nn.Module, name: str = "model") -> list[str]:
    """torchvision's initialisation: conv kaiming normal (fan_out, relu) with bias 0;
    BatchNorm weight 1, bias 0; Linear normal(0, 0.01) with bias 0."""
    if not isinstance(model, nn.Module):
        return [f"{name}: expected an nn.Module, got {type(model).__name__}."]
    problems: list[str] = []
    for path, m in model.named_modules():
        where = f"{name}.{path}" if path else name
        problem = None
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            problem = _spread_problem(
                where, m.weight, (2 / fan_out) ** 0.5, "kaiming_normal_(mode='fan_out')"
            )
            if (
                problem
                and fan_in != fan_out
                and _spread_problem(where, m.weight, (2 / fan_in) ** 0.5, "") is None
            ):
                problem += " It looks like mode='fan_in' (the default): use mode='fan_out'."
        elif isinstance(m, nn.Linear):
            problem = _spread_problem(where, m.weight, 0.01, "nn.init.normal_(weight, 0, 0.01)")
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            fresh = bool(torch.all(m.weight == 1)) and bool(torch.all(m.bias == 0))
            problem = None if fresh else f"{where}: BatchNorm weight should be 1 and bias 0."
        biased = isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None
        if problem is None and biased and torch.any(m.bias != 0):
            problem = f"{where}.bias is not all zeros: nn.init.constant_(m.bias, 0)."
        if problem:
            problems.append(problem)
        if len(problems) == 3:
            problems.append("(later layers not checked)")
            break
    if problems and not any(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules()):
        return [f"{name} has no Conv2d or Linear layers to check."]
    return problems


def _materialise(model: nn.Module, seed: int) -> None:
    """Give a model built on the meta device real CPU tensors: random weights scaled by
    1/sqrt(fan-in), BatchNorm statistics near 0 and 1 (cheaper than any init loop)."""
    model.to_empty(device="cpu")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                tensor.zero_()  # num_batches_tracked
            elif name.endswith("running_var"):
                tensor.uniform_(0.5, 2, generator=generator)
            else:
                fan_in = tensor[0].numel() if tensor.dim() > 1 else 1
                tensor.normal_(0, fan_in**-0.5, generator=generator)


def check_vgg_outputs(
    build: Callable[[], nn.Module],
    reference: Callable[[], nn.Module],
    input_size: Sequence[int],
    name: str = "model",
) -> list[str]:
    """With ``reference()``'s weights copied in (tensor by tensor, in order), ``build()``
    gives the same logits in eval mode: forward() does what the layers promise, no more.

    Both are built on the meta device and then given memory, so no initialisation runs.
    """
    try:
        with torch.device("meta"):
            model = build()
    except NotImplementedError:
        return [student.stub_problem(name)]
    except Exception as error:  # a student's constructor can fail in any way
        return [f"{name}: building the model raised {type(error).__name__}: {error}"]
    with torch.device("meta"):
        target = reference()
    _materialise(target, seed=0)
    model.to_empty(device="cpu")
    mine = list(model.state_dict().values())
    theirs = list(target.state_dict().values())
    shapes = [tuple(t.shape) for t in mine]
    wanted = [tuple(t.shape) for t in theirs]
    if shapes != wanted:
        first = next(
            (i for i, (a, b) in enumerate(zip(shapes, wanted, strict=False)) if a != b),
            min(len(shapes), len(wanted)),
        )
        return [
            f"{name}: its state_dict has {len(shapes)} tensors, torchvision's {len(wanted)}; "
            f"the first that differs is number {first}: "
            f"{shapes[first] if first < len(shapes) else 'none'} vs "
            f"{wanted[first] if first < len(wanted) else 'none'}."
        ]
    with torch.no_grad():
        for mine_tensor, source in zip(mine, theirs, strict=True):
            mine_tensor.copy_(source)
    x = torch.randn(2, *input_size, generator=torch.Generator().manual_seed(1))
    model.eval()
    target.eval()
    try:
        with torch.no_grad():
            got = model(x)
    except Exception as error:  # a student's forward() can fail in any way
        shape = tuple(x.shape)
        return [f"{name} on a batch of shape {shape} raised {type(error).__name__}: {error}"]
    with torch.no_grad():
        want = target(x)
    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
        return [f"{name}: expected logits of shape {tuple(want.shape)}, got {shape}."]
    if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
        hint = ""
        if torch.allclose(got, want.softmax(1), rtol=1e-4, atol=1e-5):
            hint = " Yours are softmax probabilities: return the logits (cross_entropy applies it)."
        return [
            f"{name}: with torchvision's weights copied in, your logits differ from its logits "
            f"in eval mode (largest difference {(got - want).abs().max().item():.3g}).{hint} "
            "forward() is features, avgpool, flatten, classifier and nothing else."
        ]
    return []


def check_init_flag(build: Callable[[bool], nn.Module], name: str = "VGG") -> list[str]:
    """``build(init_weights)`` runs the init loop (``nn.init.kaiming_normal_``,
    ``normal_``, ``constant_``) when asked, and only then. Built on the meta device."""
    calls: list[str] = []
    saved = {n: getattr(nn.init, n) for n in ("kaiming_normal_", "normal_", "constant_")}

    def recorder(init_name: str) -> Callable[..., Any]:
        def record(tensor: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            calls.append(init_name)
            return saved[init_name](tensor, *args, **kwargs)

        return record

    problems = []
    try:
        for init_name in saved:
            setattr(nn.init, init_name, recorder(init_name))
        for flag in (True, False):
            calls.clear()
            with torch.device("meta"):
                _, problem = student.call(build, f"{name}(..., init_weights={flag})", flag)
            if problem:
                return [problem]
            if flag and not calls:
                problems.append(
                    f"{name}(..., init_weights=True) calls none of nn.init.kaiming_normal_, "
                    "normal_, constant_: call self._initialize_weights()."
                )
            if not flag and calls:
                problems.append(
                    f"{name}(..., init_weights=False) still calls nn.init.{calls[0]}: "
                    "initialise only if init_weights."
                )
    finally:
        for init_name, original in saved.items():
            setattr(nn.init, init_name, original)
    return problems


# ---- the CIFAR-10 variant ---------------------------------------------------------------------


def cifar_reference(
    cfg: Sequence[int | str], num_classes: int = 10, batch_norm: bool = True
) -> nn.Module:
    """torchvision's VGG for 32 x 32 inputs as the course slides adapt it: no average pool
    (``nn.Identity``), the first Linear sized to the last feature map."""
    cfg = list(cfg)
    model = torchvision.models.vgg.VGG(
        torchvision.models.vgg.make_layers(cfg, batch_norm), num_classes, init_weights=False
    )
    channels = [v for v in cfg if v != "M"][-1]
    size = 32 // 2 ** cfg.count("M")
    model.avgpool = nn.Identity()
    model.classifier[0] = nn.Linear(int(channels) * size * size, 4096)
    return model


def cifar_target(
    cfg: str | Sequence[int | str], num_classes: int = 10, batch_norm: bool = True
) -> SummaryTable:
    """The summary table of ``cifar_reference(...)`` at 3 x 32 x 32 (on the meta device);
    ``cfg`` is a list or the key of one of torchvision's ("D" for VGG-16)."""
    layers = reference_cfgs()[cfg] if isinstance(cfg, str) else list(cfg)
    return meta_summary(lambda: cifar_reference(layers, num_classes, batch_norm), (3, 32, 32))
