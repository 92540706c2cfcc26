"""Capture a summary table as data, without side effects on the model.

torchsummary 1.5.1 prints its table and returns None, defaults to
``device="cuda"``, and runs its forward pass in the model's own mode (train mode for a
model just built) on random input, which consumes the global RNG and moves BatchNorm
running statistics. ``capture_summary`` runs it on a deep copy, in eval mode, on the
CPU, under a forked RNG, and parses what it printed.

torchinfo 1.8 (``capture_summary(..., tool="torchinfo")``) returns its statistics
instead of printing, runs in eval mode, and nests each layer under its parent with the
attribute name. The table is read from its layer list in torchsummary's form (the
layers that torchsummary lists, in the order their calls finish), with torchinfo's own
parameter totals: either tool gives the same ``SummaryTable``.

``meta_summary`` computes the same table without torchsummary and without any
arithmetic: the model is built on PyTorch's ``meta`` device, which has shapes but
no data. A VGG-16 at 224 x 224 then costs milliseconds instead of seconds of
weight initialisation and forward pass.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import io
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torchinfo
from torch import nn
from torchsummary import summary

__all__ = [
    "TOOLS",
    "LayerCall",
    "SummaryRow",
    "SummaryTable",
    "capture_summary",
    "count_parameters",
    "meta_summary",
    "parse_summary",
    "record_outputs",
]

_ROW = re.compile(
    r"^\s*(?P<layer>[A-Za-z_][\w.]*)-(?P<index>\d+)\s+(?P<shape>\[.*\])\s+(?P<params>[\d,]+)\s*$"
)
_TOTAL = re.compile(r"^(?P<key>[A-Za-z /()-]+?):\s*(?P<value>[\d.,]+)\s*$")
_TOTAL_KEYS = {
    "Total params": "total_params",
    "Trainable params": "trainable_params",
    "Non-trainable params": "non_trainable_params",
    "Input size (MB)": "input_mb",
    "Forward/backward pass size (MB)": "forward_backward_mb",
    "Params size (MB)": "params_mb",
    "Estimated Total Size (MB)": "total_mb",
}


@dataclass(frozen=True)
class SummaryRow:
    """One line of the table: ``Conv2d-5  [-1, 64, 56, 56]  36,864``."""

    layer: str
    index: int
    shape: str
    params: int

    @property
    def key(self) -> tuple[str, str, int]:
        """What two tables must agree on; the row number is left out."""
        return (self.layer, self.shape, self.params)

    def __str__(self) -> str:
        return f"{f'{self.layer}-{self.index}':>20} {self.shape:>25} {self.params:>15,}"


@dataclass(frozen=True)
class SummaryTable:
    rows: tuple[SummaryRow, ...]
    total_params: int
    trainable_params: int
    non_trainable_params: int
    input_mb: float
    forward_backward_mb: float
    params_mb: float
    total_mb: float
    text: str

    def to_dict(self) -> dict:
        return {
            "rows": [[r.layer, r.shape, r.params] for r in self.rows],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "non_trainable_params": self.non_trainable_params,
            "input_mb": self.input_mb,
            "forward_backward_mb": self.forward_backward_mb,
            "params_mb": self.params_mb,
            "total_mb": self.total_mb,
        }

    @classmethod
    def from_dict(cls, data: dict) -> SummaryTable:
        rows = tuple(
            SummaryRow(layer, i, shape, params)
            for i, (layer, shape, params) in enumerate(data["rows"], start=1)
        )
        fields = {k: data[k] for k in _TOTAL_KEYS.values()}
        return cls(rows=rows, text="", **fields)


def parse_summary(text: str) -> SummaryTable:
    """Parse the text torchsummary prints into a ``SummaryTable``."""
    rows: list[SummaryRow] = []
    totals: dict[str, float] = {}
    rules = 0  # the table's rows stand between the first and second "====" rules
    for line in text.splitlines():
        if line.startswith("===="):
            rules += 1
        elif rules == 1 and line.strip():
            match = _ROW.match(line)
            if match is None:
                raise ValueError(f"cannot read this summary row: {line.strip()!r}")
            params = int(match["params"].replace(",", ""))
            rows.append(SummaryRow(match["layer"], int(match["index"]), match["shape"], params))
        elif (match := _TOTAL.match(line.strip())) and match["key"] in _TOTAL_KEYS:
            totals[_TOTAL_KEYS[match["key"]]] = float(match["value"].replace(",", ""))
    missing = [label for label, key in _TOTAL_KEYS.items() if key not in totals]
    if missing:
        raise ValueError(
            f"this does not look like torchsummary output: no {', '.join(missing)} line found"
        )
    return SummaryTable(
        rows=tuple(rows),
        total_params=int(totals["total_params"]),
        trainable_params=int(totals["trainable_params"]),
        non_trainable_params=int(totals["non_trainable_params"]),
        input_mb=totals["input_mb"],
        forward_backward_mb=totals["forward_backward_mb"],
        params_mb=totals["params_mb"],
        total_mb=totals["total_mb"],
        text=text,
    )


TOOLS = ("torchsummary", "torchinfo")


def capture_summary(
    model: nn.Module, input_size: Sequence[int] = (3, 224, 224), tool: str = "torchsummary"
) -> SummaryTable:
    """``summary(model, input_size)`` as data; ``model`` itself is left untouched.

    ``input_size`` is one image's (C, H, W), as torchsummary takes it; ``tool`` is
    ``"torchsummary"`` or ``"torchinfo"`` (see the module's docstring)."""
    if tool not in TOOLS:
        raise ValueError(f"tool={tool!r}: use 'torchsummary' or 'torchinfo'")
    probe = copy.deepcopy(model).to("cpu").eval()
    out = io.StringIO()
    with torch.random.fork_rng(devices=[]), torch.no_grad(), contextlib.redirect_stdout(out):
        if tool == "torchinfo":
            return _torchinfo_table(probe, tuple(input_size))
        summary(probe, tuple(input_size), device="cpu")
    return parse_summary(out.getvalue())


def _torchinfo_table(model: nn.Module, input_size: tuple[int, ...]) -> SummaryTable:
    """torchinfo's statistics of ``model`` on a batch of two, as torchsummary's table."""
    stats = torchinfo.summary(
        model, input_size=(2, *input_size), device="cpu", mode="eval", verbose=0
    )
    # torchinfo lists a layer when its call starts (a block before its layers); torchsummary
    # when it finishes (a block after them): reorder depth-first, children first.
    finished: list = []
    open_calls: list = []
    for info in stats.summary_list:
        while open_calls and open_calls[-1].depth >= info.depth:
            finished.append(open_calls.pop())
        open_calls.append(info)
    finished += reversed(open_calls)
    calls = [
        (info.module, info.output_size)
        for info in finished
        if info.depth > 0
        and info.executed
        and not isinstance(info.module, (nn.Sequential, nn.ModuleList))
    ]
    rows = []
    for index, (module, output_size) in enumerate(calls, start=1):
        shape = str([-1, *output_size[1:]])
        rows.append(SummaryRow(_class_name(module), index, shape, _own_params(module)[0]))
    text = str(stats)
    return _table(rows, stats.total_params, stats.trainable_params, input_size, text)


def _own_params(module: nn.Module) -> tuple[int, int]:
    """(parameters, trainable ones) of the row, counted as torchsummary counts them: the
    module's own ``weight`` and ``bias``."""
    params = trainable = 0
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    if hasattr(weight, "size"):
        params += weight.numel()
    if hasattr(bias, "size"):
        params += bias.numel()
    if hasattr(weight, "size") and weight.requires_grad:
        trainable += params
    return params, trainable


def _class_name(module: nn.Module) -> str:
    """The row's name, derived from the class exactly as torchsummary derives it."""
    return str(module.__class__).split(".")[-1].split("'")[0]


class LayerCall(NamedTuple):
    """One call of a module during a forward pass: the module, its inputs and its output."""

    module: nn.Module
    inputs: tuple
    output: Any


def record_outputs(
    model: nn.Module, x: torch.Tensor, keep: Callable[[nn.Module], bool]
) -> list[LayerCall]:
    """Every call of a module of ``model`` that ``keep`` accepts, in call order, from one
    forward pass of ``x`` without gradients: the one place the kit registers forward hooks.

    The hooks are removed afterwards, also when the forward pass raises (the error is
    the caller's to report)."""
    records: list[LayerCall] = []

    def record(module: nn.Module, inputs: tuple, output: Any) -> None:
        records.append(LayerCall(module, inputs, output))

    hooks = [m.register_forward_hook(record) for m in model.modules() if keep(m)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return records


def meta_summary(
    build: Callable[[], nn.Module], input_size: Sequence[int] = (3, 224, 224)
) -> SummaryTable:
    """``capture_summary(build(), input_size)``, computed on the ``meta`` device.

    ``build()`` runs under ``torch.device("meta")``, so the model gets shapes but no
    weights; a forward hook on every module that torchsummary lists (all but
    ``Sequential``, ``ModuleList`` and the model itself) records what torchsummary
    would, and ``text`` is laid out as torchsummary prints it. Code that needs real
    values (``.item()``, NumPy) fails here: fall back to ``capture_summary``.
    """
    with torch.device("meta"):
        model = build().eval()
        records = record_outputs(
            model,
            torch.empty(2, *input_size),
            lambda m: not isinstance(m, (nn.Sequential, nn.ModuleList)) and m is not model,
        )

    rows: list[SummaryRow] = []
    total_params = trainable = 0
    for index, (module, _, output) in enumerate(records, start=1):
        if isinstance(output, (list, tuple)):
            shape: list = [[-1, *o.shape[1:]] for o in output]
        else:
            shape = [-1, *output.shape[1:]]
        params, trainable_here = _own_params(module)
        total_params += params
        trainable += trainable_here
        rows.append(SummaryRow(_class_name(module), index, str(shape), params))
    return _table(rows, total_params, trainable, input_size)


def _table(
    rows: list[SummaryRow],
    total_params: int,
    trainable: int,
    input_size: Sequence[int],
    text: str | None = None,
) -> SummaryTable:
    """The table torchsummary would print for ``rows`` (its sizes computed as it computes
    them), with ``text`` as the table's text if given."""
    total_output = 0
    for row in rows:
        total_output += int(np.prod(json.loads(row.shape)))  # with the -1, as torchsummary sums
    exact = [abs(float(np.prod(input_size))), abs(2.0 * total_output), float(total_params)]
    sizes = {
        "Input size (MB)": exact[0],
        "Forward/backward pass size (MB)": exact[1],  # x2 for gradients
        "Params size (MB)": exact[2],
        "Estimated Total Size (MB)": sum(exact),
    }
    rule, thin = "=" * 64, "-" * 64
    lines = [thin, "{:>20}  {:>25} {:>15}".format("Layer (type)", "Output Shape", "Param #"), rule]
    lines += [
        "{:>20}  {:>25} {:>15}".format(f"{r.layer}-{r.index}", r.shape, f"{r.params:,}")
        for r in rows
    ]
    lines += [
        rule,
        f"Total params: {total_params:,}",
        f"Trainable params: {trainable:,}",
        f"Non-trainable params: {total_params - trainable:,}",
        thin,
        *(f"{label}: {abs(n * 4 / 1024**2):0.2f}" for label, n in sizes.items()),
        thin,
    ]
    table = parse_summary("\n".join(lines) + "\n")
    return table if text is None else dataclasses.replace(table, text=text)


def count_parameters(model: nn.Module) -> int:
    """Every parameter, counted by ``numel`` (torchsummary sees only ``weight``/``bias``)."""
    return sum(p.numel() for p in model.parameters())
