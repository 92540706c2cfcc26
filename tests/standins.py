"""Generated stand-ins for CIFAR-10 and MNIST, for machines without the real images.

``python tests/standins.py DIR`` writes a CIFAR-10-shaped image folder
(``train/<class>/*.png``, ``test/<class>/*.png``, 32x32 RGB): each class is a
colour and a stripe pattern under noise, so a network can learn it and the labs'
checks (loss goes down, accuracy above chance) mean something. They are not
CIFAR-10: tests that need the real images skip when these are in use.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image

DIGITS = tuple(str(d) for d in range(10))
CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
MARKER = "STANDINS.txt"


def _image(label: int, rng: np.random.Generator) -> np.ndarray:
    hue = np.array([(label * 37) % 256, (label * 91 + 60) % 256, (label * 53 + 120) % 256])
    y, x = np.mgrid[0:32, 0:32]
    period = 3 + label  # each class its own stripe frequency and direction
    stripes = np.sin(2 * np.pi * ((x if label % 2 else y) + rng.integers(0, 32)) / period)
    image = hue * (0.6 + 0.3 * stripes[..., None]) + rng.normal(0, 40, (32, 32, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_standins(root: Path, train_per_class: int = 300, test_per_class: int = 100) -> Path:
    """Write the image folder under ``root`` (once: an existing complete one is kept)."""
    if (root / MARKER).exists():
        return root
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(_image(label, rng)).save(folder / f"{i:04d}.png")
    (root / MARKER).write_text("generated stand-ins for CIFAR-10, not real images\n")
    return root


def _digit(label: int, rng: np.random.Generator) -> np.ndarray:
    """28x28 grey: a bright bar whose angle and offset depend on the class, under noise."""
    y, x = np.mgrid[0:28, 0:28] - 13.5
    angle = np.pi * label / 10 + rng.normal(0, 0.05)
    distance = np.abs(x * np.cos(angle) + y * np.sin(angle) - (label % 3 - 1) * 4)
    image = 255 * (distance < 2.5) + rng.normal(0, 30, (28, 28))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_mnist_standins(root: Path, train_per_class: int = 300, test_per_class: int = 100) -> Path:
    """An MNIST-shaped image folder (28x28 grey, classes "0".."9") under ``root``, once."""
    if (root / MARKER).exists():
        return root
    rng = np.random.default_rng(0)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(DIGITS):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(_digit(label, rng)).save(folder / f"{i:04d}.png")
    (root / MARKER).write_text("generated stand-ins for MNIST, not real images\n")
    return root


if __name__ == "__main__":
    print(write_standins(Path(sys.argv[1])))
