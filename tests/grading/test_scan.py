"""The cheat scan reads code as Python does: tokenizer for comments, ast for names."""

from __future__ import annotations

import nbformat
import pytest

from autograder.grading.scan import scan_notebook


def _notebook(*sources: str, solution: bool = True) -> nbformat.NotebookNode:
    cells = [nbformat.v4.new_code_cell("import torch\nimport torchvision\nfrom torch import nn")]
    for i, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        if solution:
            cell.metadata["nbgrader"] = {
                "grade": False,
                "solution": True,
                "locked": False,
                "grade_id": f"answer_{i}",
            }
        cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells)


def _flags(*sources: str, solution: bool = True) -> list[str]:
    return scan_notebook(_notebook(*sources, solution=solution))


@pytest.mark.parametrize(
    ("source", "why"),
    [
        ('label = "#"; torch.allclose = lambda *a, **k: True', "replaces part of torch"),
        ("x = '#'  ;  nn.Module.__call__ = None  # a comment", "replaces part of torch"),
        ("import sys\nsys.settrace(lambda *a: None)", "reaches into running frames"),
        ("frame.f_back.f_locals['problems'] = []", "reaches into running frames"),
        ("def g(): return gen.gi_frame.f_globals", "reaches into running frames"),
        ("shell.history_manager.reset()", "reaches into IPython's shell"),
        ("from IPython.core.interactiveshell import InteractiveShell", "IPython's shell"),
        ("shell = InteractiveShell.instance()", "reaches into IPython's shell"),
        ("import sys\nsys.displayhook = print", "changes how results or errors are shown"),
        ("%xmode Verbose", "runs the IPython magic %xmode"),
        ("%run helper.py", "runs the IPython magic %run"),
        ("%%capture\nprint(1)", "runs the IPython magic %capture"),
        (
            "from torchvision.models.resnet import BasicBlock as Block",
            "answers a TODO with the library's own torchvision.models.resnet.BasicBlock",
        ),
        (
            "class BasicBlock(torchvision.models.resnet.BasicBlock):\n    pass",
            "answers a TODO with the library's own torchvision.models.resnet.BasicBlock",
        ),
        (
            "from torchvision import models\n\ndef make_layers(cfg):\n"
            "    return models.vgg.make_layers(cfg)",
            "answers a TODO with the library's own torchvision.models.vgg.make_layers",
        ),
        ("model = torch.hub.load('pytorch/vision', 'resnet18')", "library's own torch.hub"),
    ],
)
def test_the_scan_flags(source, why):
    flags = _flags(source)
    assert any(why in flag for flag in flags), flags


def test_a_flag_names_the_line_that_did_it():
    (flag,) = _flags("x = 1\nclass B(torchvision.models.resnet.BasicBlock):\n    pass")
    assert flag.startswith("cell 1 line 2: answers a TODO")
    assert "class B(torchvision.models.resnet.BasicBlock):" in flag


@pytest.mark.parametrize(
    "source",
    [
        "# torch.allclose = None: only a comment",
        "print('#1 of 3')  # a hash inside a string",
        "%matplotlib inline",
        "%time y = 1 + 1",
        "%pip install torchsummary",
        "!nvidia-smi",
        "out = model.eval()(x)  # .eval() is a method, not the builtin",
        "def f(x):\n    return x  # an answer written by hand",
        '"""A docstring that names torchvision\'s cfgs."""',
    ],
)
def test_the_scan_leaves_honest_code_alone(source):
    assert _flags(source) == []


def test_the_library_is_fine_outside_the_answers():
    # a student's own exploration cell may compare with torchvision
    assert _flags("reference = torchvision.models.resnet18()", solution=False) == []


def test_a_cell_the_tokenizer_cannot_read_is_scanned_line_by_line():
    flags = _flags('s = """never closed\ntorch.equal = None')
    assert any("replaces part of torch" in flag for flag in flags), flags


def test_code_nested_past_the_parser_is_flagged_not_a_crash():
    deep = "x = a" + ".b" * 200_000
    assert scan_notebook(_notebook(deep, "y = 1")) == [
        "cell 1: code nested too deeply for the scan to read it"
    ]
