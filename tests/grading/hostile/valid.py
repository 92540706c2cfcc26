"""Valid submissions written differently: each gets full marks and is never flagged."""

from __future__ import annotations

import nbformat

from tests.grading.hostile import (
    CONV,
    FULL,
    Category,
    Lab,
    Submission,
    cell_of,
    index_of,
    insert_after,
    notebook,
)

CATEGORY = Category("valid")

CATEGORY.add(
    "valid-solution",
    "the source's answers",
    lambda lab: notebook(lab.solved()),
    scores=FULL,
)


def _restyled(lab: Lab) -> Submission:
    nb = lab.solved(
        conv_output_size="""
        def conv_output_size(size, kernel, stride=1, padding=0):
            \"\"\"Sliding a kernel over a padded input: count the positions.\"\"\"
            padded = size + 2 * padding
            positions = (padded - kernel) // stride
            return int(positions + 1)
        """,
        tiny_net="""
        class TinyNet(nn.Module):
            \"\"\"A convolutional block, then a linear classifier.\"\"\"

            def __init__(self, num_classes=2):
                super().__init__()
                self.features = nn.Sequential(
                    nn.Conv2d(3, 8, 3, padding=1, bias=False),
                    nn.BatchNorm2d(8),
                    nn.ReLU(inplace=True),
                    nn.MaxPool2d(kernel_size=2, stride=2),
                )
                self.classifier = nn.Linear(128, num_classes)

            def forward(self, images):
                features = self.features(images)
                return self.classifier(features.flatten(start_dim=1))
        """,
    )
    return notebook(nb)


CATEGORY.add(
    "valid-restyled",
    "other names, nn.Sequential, Tensor.flatten, int() around the answer",
    _restyled,
    scores=FULL,
)


def _colab_with_extras(lab: Lab) -> Submission:
    """Saved from Colab: its metadata, stale outputs (one an old error), extra cells."""
    nb = lab.solved()
    insert_after(
        nb,
        "conv_output_size",
        """
        import numpy as np
        import torch.nn as nn
        import torch.nn.functional as F

        torch.backends.cudnn.benchmark = False  # same results on every run
        sizes = np.array([8, 16, 32])
        for n in sizes:
            print(n, "->", conv_output_size(int(n), 3, stride=2, padding=1))
        """,
        "%time conv_output_size(224, 7, 2, 3)\n!echo shell commands work too",
    )
    insert_after(
        nb,
        "tiny_net",
        """
        input = torch.randn(4, *INPUT_SIZE)  # a batch of four
        net = TinyNet(num_classes=3)
        print(net(input).shape)  # 4 x 3
        print(F.softmax(net(input), dim=1).sum(dim=1))


        def describe(model: nn.Module) -> str:
            count = sum(p.numel() for p in model.parameters())
            return f"{type(model).__name__}: {count} parameters"


        print(describe(net))
        """,
    )
    at = index_of(nb, "tiny_net")
    nb.cells.insert(at, nbformat.v4.new_markdown_cell("My notes: *BatchNorm* before the ReLU."))
    stale = nbformat.v4.new_output(
        "error", ename="NameError", evalue="name 'nn' is not defined", traceback=["NameError"]
    )
    cell_of(nb, "tiny_net").outputs = [stale]
    cell_of(nb, "tiny_net").execution_count = 3
    cell_of(nb, CONV).outputs = [nbformat.v4.new_output("stream", text="✔ conv_output_size\n")]
    nb.metadata = {
        "accelerator": "GPU",
        "colab": {"provenance": [], "gpuType": "T4", "name": "probe.ipynb"},
        "kernelspec": {"display_name": "Python 3", "name": "python3"},
        "language_info": {"name": "python"},
    }
    for number, cell in enumerate(nb.cells):
        cell.metadata["id"] = f"colab{number:03d}"
    return notebook(nb)


CATEGORY.add(
    "valid-colab-extras",
    "saved from Colab with stale outputs; extra cells, magics, a shell command",
    _colab_with_extras,
    scores=FULL,
)
