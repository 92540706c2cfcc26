"""Writers of small datasets in the real formats, for the tests of labkit.data.

Each writes a few images per class as the real datasets ship them (pickled batches as
torchvision downloads them, IDX files as MNIST ships them, PNG files in class folders)
and returns what it wrote, so that a test can check every pixel the loaders return.
"""

from __future__ import annotations

import gzip
import pickle
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from labkit.data import CIFAR10, CIFAR10_CLASSES, DatasetSpec

# ---- torchvision's pickle layout (CIFAR-10) -----------------------------------------------------


TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


def _images(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _write_batch(path: Path, images: np.ndarray, labels: list[int]) -> None:
    batch = {
        "batch_label": path.name,
        "labels": labels,
        "data": images.reshape(len(images), -1),  # N x 3072, channel-major like the real files
        "filenames": [f"{i}.png" for i in range(len(images))],
    }
    path.write_bytes(pickle.dumps(batch, protocol=2))


def write_pickle_layout(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """cifar-10-batches-py/ with 3 images of each class per train batch and 2 in test_batch.

    Labels interleave the classes (and each batch starts at a different class), so
    "the first k of each class" differs from "the first 10k images".
    """
    rng = np.random.default_rng(seed)
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    train_x, train_y = [], []
    for b, name in enumerate(TRAIN_BATCHES):
        labels = [(i + b) % 10 for i in range(30)]
        images = _images(rng, 30)
        _write_batch(batches / name, images, labels)
        train_x.append(images)
        train_y += labels
    test_y = [(7 * i) % 10 for i in range(20)]
    test_x = _images(rng, 20)
    _write_batch(batches / "test_batch", test_x, test_y)
    meta = {"num_cases_per_batch": 30, "label_names": list(CIFAR10_CLASSES), "num_vis": 3072}
    (batches / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return {
        "train_x": np.concatenate(train_x),
        "train_y": np.array(train_y),
        "test_x": test_x,
        "test_y": np.array(test_y),
    }


def first_per_class(labels: np.ndarray, k: int) -> np.ndarray:
    """Indices of the first k images of each class, in file order: the expected subset."""
    seen: dict[int, int] = {}
    keep = []
    for i, label in enumerate(labels.tolist()):
        if seen.get(label, 0) < k:
            seen[label] = seen.get(label, 0) + 1
            keep.append(i)
    return np.array(keep)


# ---- IDX files (MNIST, Fashion-MNIST) -----------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, as MNIST ships them."""
    dims = b"".join(d.to_bytes(4, "big") for d in array.shape)
    return bytes((0, 0, 0x08, array.ndim)) + dims + array.astype(np.uint8).tobytes()


def write_idx_layout(folder: Path, gz: bool = False, seed: int = 0) -> dict[str, np.ndarray]:
    """The four IDX files: 3 images per class in train, 2 in test, classes interleaved."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_x": rng.integers(0, 256, size=(30, 28, 28), dtype=np.uint8),
        "train_y": np.array([(3 * i + 1) % 10 for i in range(30)]),
        "test_x": rng.integers(0, 256, size=(20, 28, 28), dtype=np.uint8),
        "test_y": np.array([(7 * i) % 10 for i in range(20)]),
    }
    for name, key in (
        ("train-images-idx3-ubyte", "train_x"),
        ("train-labels-idx1-ubyte", "train_y"),
        ("t10k-images-idx3-ubyte", "test_x"),
        ("t10k-labels-idx1-ubyte", "test_y"),
    ):
        data = idx_bytes(arrays[key])
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def nchw(images: np.ndarray) -> torch.Tensor:
    """N x 28 x 28 as the loaders return it: N x 1 x 28 x 28."""
    return torch.from_numpy(images[:, None].copy())


# ---- image-folder layout ------------------------------------------------------------------------


def write_image_folder(
    folder: Path, train: int = 3, test: int = 2, seed: int = 1, spec: DatasetSpec = CIFAR10
) -> dict:
    """train/<class>/NNNN.png and test/<class>/NNNN.png; returns {(split, class): [arrays]}.

    Files are written in reverse name order so that directory order is unlikely to
    match name order: the loader must sort.
    """
    rng = np.random.default_rng(seed)
    shape = (spec.side, spec.side, 3) if spec.channels == 3 else (spec.side, spec.side)
    written: dict[tuple[str, str], list[np.ndarray]] = {}
    for split, count in (("train", train), ("test", test)):
        for name in spec.folders:
            class_dir = folder / split / name
            class_dir.mkdir(parents=True)
            pixels = [rng.integers(0, 256, size=shape, dtype=np.uint8) for _ in range(count)]
            for i in reversed(range(count)):
                Image.fromarray(pixels[i]).save(class_dir / f"{i:04d}.png")
            written[split, name] = pixels
    return written


def expected_images(
    written: dict, split: str, k: int | None = None, spec: DatasetSpec = CIFAR10
) -> torch.Tensor:
    """What the loader should return: class by class, first k by name, N x C x H x W."""
    arrays = [a for name in spec.folders for a in written[split, name][:k]]
    stacked = np.stack(arrays)
    if stacked.ndim == 3:
        stacked = stacked[..., None]
    return torch.from_numpy(stacked.transpose(0, 3, 1, 2).copy())


# ---- the decoded-image cache --------------------------------------------------------------------


def cache_files(data_root: Path) -> list[str]:
    """The names of the files in the data root's cache folder, sorted; [] without one."""
    folder = data_root / "cache"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
