"""Shared steps of the block checks (``blocks``, ``bottleneck``, ``inception``).

A student's block is built and run with every failure turned into a sentence; its
convolutions and BatchNorms are listed in the order ``forward`` first calls them, so
that they can be matched to a torchvision reference by what they do rather than by
attribute name; the reference's weights are loaded into the matched layers; and the
two outputs are compared.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import nn

from autograder.checks import student
from autograder.checks.tables import compare_tables
from labkit.summary import capture_summary, record_outputs

__all__ = [
    "ATOL",
    "batchnorm_after",
    "build_module",
    "call_order",
    "check_output_shapes",
    "check_own_table",
    "compare_outputs",
    "first_match",
    "load_roles",
    "randomize_batchnorm",
    "run_module",
    "with_batchnorms",
]

ATOL = 1e-5


def build_module(
    factory: Callable[..., nn.Module], args: Sequence[Any], call: str, signature: str
) -> nn.Module | str:
    """``factory(*args)``, or a sentence saying why it is not an ``nn.Module``."""
    block, problem = student.call(factory, call, *args)
    if problem is not None:
        return problem if student.is_stub(problem) else f"{problem}. The signature is {signature}."
    if not isinstance(block, nn.Module):
        return f"{call} should build an nn.Module, got {type(block).__name__}."
    return block


def run_module(
    block: nn.Module, x: torch.Tensor, call: str, hint: Callable[[str], str] = lambda _: ""
) -> torch.Tensor | str:
    """``block(x)``, or a sentence saying why it is not a tensor; ``hint(message)`` adds
    what an exception's message most likely means."""
    try:
        out = block(x)
    except NotImplementedError:
        return student.stub_problem(f"{call}.forward")
    except Exception as error:  # a student's forward can fail in any way
        return (
            f"{call} on an input of shape {tuple(x.shape)} raised "
            f"{type(error).__name__}: {error}{hint(str(error))}"
        )
    if not isinstance(out, torch.Tensor):
        return f"{call}.forward should return a Tensor, got {type(out).__name__}."
    return out


def call_order(block: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, bool]]:
    """The Conv2d and BatchNorm2d modules of ``block`` in the order ``forward`` first
    calls them, each with whether it read ``x`` itself (the block's input)."""
    order: list[tuple[nn.Module, bool]] = []
    for call in record_outputs(block, x, lambda m: isinstance(m, (nn.Conv2d, nn.BatchNorm2d))):
        if not any(call.module is seen for seen, _ in order):
            order.append((call.module, bool(call.inputs) and call.inputs[0] is x))
    return order


def batchnorm_after(order: Sequence[tuple[nn.Module, bool]]) -> dict[int, nn.Module]:
    """For each convolution (by ``id``), the first BatchNorm called after it."""
    found: dict[int, nn.Module] = {}
    last_conv = None
    for module, _ in order:
        if isinstance(module, nn.Conv2d):
            last_conv = module
        elif last_conv is not None and id(last_conv) not in found:
            found[id(last_conv)] = module
    return found


def with_batchnorms(
    roles: dict[str, nn.Module],
    order: Sequence[tuple[nn.Module, bool]],
    call: str,
    described: dict[str, str],
) -> dict[str, nn.Module] | list[str]:
    """``roles`` (convolutions named as torchvision names them: conv1, downsample.0, ...)
    with the BatchNorm that follows each one added as bn1, downsample.1, ...; or, for
    each convolution no BatchNorm follows, a problem naming it as ``described`` does."""
    after = batchnorm_after(order)
    problems = []
    named = dict(roles)
    for name, conv in roles.items():
        bn = after.get(id(conv))
        if bn is None:
            problems.append(
                f"{call}: no BatchNorm2d follows {described[name]}; "
                "every convolution is followed by a BatchNorm2d."
            )
        else:
            named[name.replace("conv", "bn").replace(".0", ".1")] = bn
    return problems or named


def randomize_batchnorm(block: nn.Module, generator: torch.Generator) -> None:
    """Give every BatchNorm2d of ``block`` random affine weights and running statistics,
    so that a comparison in eval mode sees a misplaced BatchNorm."""
    for m in block.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5, generator=generator)
                m.bias.normal_(0, 0.2, generator=generator)
                m.running_mean.normal_(0, 0.2, generator=generator)
                m.running_var.uniform_(0.5, 1.5, generator=generator)


def load_roles(roles: dict[str, nn.Module], reference: nn.Module, call: str) -> str | None:
    """Copy each reference submodule (by name) into the student's layer of that role;
    a problem, or None."""
    modules = dict(reference.named_modules())
    for name, module in roles.items():
        try:
            module.load_state_dict(modules[name].state_dict())
        except RuntimeError as error:
            return f"{call}: the layer used as {name} does not fit torchvision's: {error}"
    return None


def compare_outputs(
    block: nn.Module,
    reference: nn.Module,
    x: torch.Tensor,
    call: str,
    what: str,
    diagnose: Callable[[torch.Tensor], str],
    hint: Callable[[str], str] = lambda _: "",
    weights: str = "torchvision's",
) -> list[str]:
    """``block(x)`` against ``reference(x)`` (both in eval mode, same weights); on a
    difference, ``diagnose(out)`` names the mistake that reproduces it, if one does."""
    with torch.no_grad():
        out = run_module(block, x, call, hint)
        if isinstance(out, str):
            return [out]
        expected = reference(x)
        if out.shape != expected.shape:
            return [f"{call}: output shape {tuple(out.shape)}, expected {tuple(expected.shape)}."]
        if not torch.allclose(out, expected, atol=ATOL):
            worst = (out - expected).abs().max().item()
            return [
                f"{call}: with {weights} weights loaded, the output differs from "
                f"{what} by up to {worst:.3g}.{diagnose(out)}"
            ]
    return []


def first_match(variants: dict[str, torch.Tensor], out: torch.Tensor) -> str:
    """ " It looks like <hint>." for the first mistake whose output ``out`` reproduces."""
    for hint, value in variants.items():
        if value.shape == out.shape and torch.allclose(value, out, atol=ATOL):
            return f" It looks like {hint}."
    return ""


class _Case(Protocol):
    call: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]


def check_output_shapes(
    build: Callable[[Any], nn.Module | str],
    cases: Sequence[Any],
    shape_hint: Callable[[Any, tuple[int, ...]], str] = lambda _case, _shape: "",
    hint: Callable[[str], str] = lambda _: "",
) -> list[str]:
    """Each case's block builds (``build(case)``), runs in eval mode on a random input of
    ``case.input_shape`` and gives ``case.output_shape``; ``shape_hint(case, shape)`` says
    what a wrong shape most likely means. A stub is reported once, not once a case."""
    problems = []
    for case in cases:
        block = build(case)
        if isinstance(block, str):
            problems.append(block)
            if student.is_stub(block):
                return problems
            continue
        with torch.no_grad():
            out = run_module(block.eval(), torch.randn(case.input_shape), case.call, hint)
        if isinstance(out, str):
            problems.append(out)
        elif tuple(out.shape) != tuple(case.output_shape):
            shape = tuple(out.shape)
            problems.append(
                f"{case.call} on input {case.input_shape}: expected output shape "
                f"{case.output_shape}, got {shape}.{shape_hint(case, shape)}"
            )
    return problems


def check_own_table(block: nn.Module | str, reference: nn.Module, case: _Case) -> list[str]:
    """``block``'s own summary table, on one ``case.input_shape`` image, against the
    reference's, row by row (``block`` may be the sentence saying why it was not built)."""
    if isinstance(block, str):
        return [block]
    input_size = tuple(case.input_shape[1:])
    try:
        actual = capture_summary(block, input_size)
    except Exception as error:  # a student's forward can fail in any way
        return [f"summary({case.call}, {input_size}) failed: {type(error).__name__}: {error}"]
    return compare_tables(actual, capture_summary(reference, input_size), case.call)
