"""Tests for labkit.data on small generated copies of every layout and source.

The fixtures write a few images per class in the real formats (pickled batches as
torchvision downloads them, IDX files as MNIST ships them, PNG files in class
folders), so every pixel can be checked. Tests marked ``realdata`` read the real
datasets (``$LABKIT_CIFAR10``, ``$LABKIT_MNIST`` or ``<data root>/mnist``,
Debian's Fashion-MNIST) and skip, saying how to provide them, when absent.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import re
import socket
import tarfile
import time
import urllib.error
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.data import (
    CIFAR10,
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST,
    MNIST,
    DataFormatError,
    DataNotFoundError,
    DatasetSpec,
    ImageData,
    as_dataset,
    cache,
    formats,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    loaders,
)
from labkit.data.formats import Layout
from labkit.data.prepare import checksum_problems, main

# Read before the autouse fixture below hides them from every other test.
# The root conftest points LABKIT_CIFAR10 at generated stand-ins when no real data exists.
REAL_CIFAR10 = (
    "" if os.environ.get("LABKIT_STANDINS") else os.environ.get("LABKIT_CIFAR10", "").strip()
)


def _real(spec: DatasetSpec) -> str:
    """The real copy a realdata test reads: the env var, the data root, Debian's package."""
    candidates = [os.environ.get(spec.env_var, "").strip(), loaders.data_root()[0] / spec.key]
    if spec.system_folder:
        candidates.append(loaders.SYSTEM_DATASETS / spec.system_folder)
    return next((str(c) for c in candidates if c and Path(c).is_dir()), "")


REAL_MNIST = _real(MNIST)
REAL_FASHION_MNIST = _real(FASHION_MNIST)

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No dataset variables, no Debian packages, and a data root of our own: no test sees
    the user's data."""
    for spec in (CIFAR10, MNIST, FASHION_MNIST):
        monkeypatch.delenv(spec.env_var, raising=False)
    monkeypatch.setattr(loaders, "SYSTEM_DATASETS", tmp_path / "no-system-datasets")
    data_root = tmp_path / "data-root"
    data_root.mkdir()
    monkeypatch.setenv("LABKIT_DATA", str(data_root))
    return data_root


# ---- fixtures: torchvision's pickle layout ------------------------------------------------------


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


# ---- fixtures: IDX files (MNIST, Fashion-MNIST) -------------------------------------------------


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


# ---- fixtures: image-folder layout --------------------------------------------------------------


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


# ---- torchvision's pickle layout ----------------------------------------------------------------


def test_pickle_layout_loads_every_image_with_exact_pixels(tmp_path: Path) -> None:
    written = write_pickle_layout(tmp_path / "c10")
    data = load_cifar10(tmp_path / "c10", download=False)

    assert data.train_images.dtype == torch.uint8
    assert data.train_images.shape == (150, 3, 32, 32)
    assert data.test_images.shape == (20, 3, 32, 32)
    assert data.train_images.is_contiguous() and data.test_images.is_contiguous()
    assert data.train_labels.dtype == torch.int64
    assert torch.equal(data.train_images, torch.from_numpy(written["train_x"]))
    assert torch.equal(data.train_labels, torch.from_numpy(written["train_y"]))
    assert torch.equal(data.test_images, torch.from_numpy(written["test_x"]))
    assert torch.equal(data.test_labels, torch.from_numpy(written["test_y"]))
    assert data.classes == CIFAR10_CLASSES
    assert data.mean == CIFAR10_MEAN and data.std == CIFAR10_STD
    assert "cifar-10-batches-py" in data.source


def test_pickle_layout_can_be_named_by_its_own_folder(tmp_path: Path) -> None:
    written = write_pickle_layout(tmp_path)
    data = load_cifar10(tmp_path / "cifar-10-batches-py", download=False)
    assert torch.equal(data.test_images, torch.from_numpy(written["test_x"]))


def test_pickle_subset_is_the_first_k_of_each_class_in_file_order(tmp_path: Path) -> None:
    written = write_pickle_layout(tmp_path)
    data = load_cifar10(tmp_path, train_per_class=4, test_per_class=1, download=False)

    keep = first_per_class(written["train_y"], 4)  # spans data_batch_1 and data_batch_2
    assert torch.equal(data.train_images, torch.from_numpy(written["train_x"][keep]))
    assert torch.equal(data.train_labels, torch.from_numpy(written["train_y"][keep]))
    assert torch.bincount(data.train_labels).tolist() == [4] * 10
    keep = first_per_class(written["test_y"], 1)
    assert torch.equal(data.test_images, torch.from_numpy(written["test_x"][keep]))

    again = load_cifar10(tmp_path, train_per_class=4, test_per_class=1, download=False)
    assert torch.equal(again.train_images, data.train_images)


def test_pickle_subset_larger_than_the_data_says_how_many_there_are(tmp_path: Path) -> None:
    write_pickle_layout(tmp_path)
    with pytest.raises(DataFormatError, match=r"test_per_class=3 .*at most 2"):
        load_cifar10(tmp_path, test_per_class=3, download=False)


def test_truncated_batch_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    write_pickle_layout(tmp_path)
    batch = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    batch.write_bytes(batch.read_bytes()[:1000])
    with pytest.raises(DataFormatError, match="data_batch_3") as error:
        load_cifar10(tmp_path, download=False)
    assert "truncated" in str(error.value) and "Re-download" in str(error.value)


def test_missing_batch_file_is_named(tmp_path: Path) -> None:
    write_pickle_layout(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataFormatError, match="test_batch is missing"):
        load_cifar10(tmp_path, download=False)


def test_meta_naming_other_classes_is_rejected(tmp_path: Path) -> None:
    write_pickle_layout(tmp_path)
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (tmp_path / "cifar-10-batches-py" / "batches.meta").write_bytes(pickle.dumps(meta))
    with pytest.raises(DataFormatError, match="another dataset"):
        load_cifar10(tmp_path, download=False)


# ---- image-folder layout ------------------------------------------------------------------------


def test_image_folder_loads_every_image_with_exact_pixels(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path)
    data = load_cifar10(tmp_path, download=False)

    assert data.train_images.shape == (30, 3, 32, 32)
    assert data.test_images.shape == (20, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8 and data.train_labels.dtype == torch.int64
    assert torch.equal(data.train_images, expected_images(written, "train"))
    assert torch.equal(data.test_images, expected_images(written, "test"))
    assert data.train_labels.tolist() == [c for c in range(10) for _ in range(3)]
    assert data.test_labels.tolist() == [c for c in range(10) for _ in range(2)]
    assert data.source == f"image folder {tmp_path}"


def test_image_folder_subset_is_the_first_k_files_by_name(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path, train=5, test=3)
    data = load_cifar10(tmp_path, train_per_class=2, test_per_class=1, download=False)
    assert torch.equal(data.train_images, expected_images(written, "train", 2))
    assert torch.equal(data.test_images, expected_images(written, "test", 1))
    assert data.train_labels.tolist() == [c for c in range(10) for _ in range(2)]


def test_image_folder_subset_decodes_only_the_files_it_takes(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=3)
    (tmp_path / "train" / "cat" / "9999.png").write_bytes(b"not an image")  # sorts last
    data = load_cifar10(tmp_path, train_per_class=3, download=False)
    assert len(data.train_labels) == 30
    with pytest.raises(DataFormatError, match=r"9999\.png"):
        load_cifar10(tmp_path, download=False)


def test_image_folder_converts_grey_and_jpeg_to_rgb(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    grey = np.arange(32 * 32, dtype=np.uint8).reshape(32, 32)
    Image.fromarray(grey).save(tmp_path / "train" / "dog" / "0001.png")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "train" / "dog" / "0002.jpg")
    data = load_cifar10(tmp_path, download=False)
    dog = data.train_images[data.train_labels == CIFAR10_CLASSES.index("dog")]
    assert dog.shape == (3, 3, 32, 32)
    assert all(torch.equal(dog[1, c], torch.from_numpy(grey)) for c in range(3))


def test_image_subset_larger_than_the_data_says_how_many_there_are(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=3)
    with pytest.raises(DataFormatError, match=r"train_per_class=4 .*has 3"):
        load_cifar10(tmp_path, train_per_class=4, download=False)


def test_unknown_class_folder_is_named_with_the_expected_names(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    (tmp_path / "train" / "cats").mkdir()
    with pytest.raises(DataFormatError, match="cats") as error:
        load_cifar10(tmp_path, download=False)
    assert ", ".join(CIFAR10_CLASSES) in str(error.value)


def test_missing_class_folder_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    for f in (tmp_path / "test" / "ship").iterdir():
        f.unlink()
    (tmp_path / "test" / "ship").rmdir()
    with pytest.raises(DataFormatError, match="lacks the class folders ship"):
        load_cifar10(tmp_path, download=False)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    frog = tmp_path / "train" / "frog"
    for f in frog.iterdir():
        f.unlink()
    (frog / "notes.txt").write_text("not an image")
    with pytest.raises(DataFormatError, match=re.escape(f"{frog} holds no image files")):
        load_cifar10(tmp_path, download=False)


def test_image_of_the_wrong_size_is_named_with_its_size(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    small = tmp_path / "test" / "bird" / "0001.png"
    Image.fromarray(np.zeros((28, 28, 3), np.uint8)).save(small)
    with pytest.raises(DataFormatError, match=re.escape(f"{small} is 28x28")):
        load_cifar10(tmp_path, download=False)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=2, test=1)
    corrupt = tmp_path / "train" / "horse" / "0001.png"
    corrupt.write_bytes(corrupt.read_bytes()[:40])
    with pytest.raises(DataFormatError, match=re.escape(f"{corrupt} is not a readable image")):
        load_cifar10(tmp_path, download=False)


def test_image_folder_needs_both_splits(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    (tmp_path / "test").rename(tmp_path / "val")
    with pytest.raises(DataFormatError, match="test is missing"):
        load_cifar10(tmp_path, download=False)


def test_pointing_at_one_split_suggests_its_parent(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    with pytest.raises(DataFormatError, match="looks like one split"):
        load_cifar10(tmp_path / "train", download=False)


# ---- where the data comes from ------------------------------------------------------------------


def test_env_var_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "mine", train=1, test=1)
    monkeypatch.setenv("LABKIT_CIFAR10", str(tmp_path / "mine"))
    data = load_cifar10(download=False)
    assert data.source == f"image folder {tmp_path / 'mine'}"


def test_root_argument_beats_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "arg", train=2, test=1)
    write_image_folder(tmp_path / "env", train=1, test=1)
    monkeypatch.setenv("LABKIT_CIFAR10", str(tmp_path / "env"))
    assert len(load_cifar10(tmp_path / "arg", download=False).train_labels) == 20


def test_data_root_is_used_when_nothing_is_named(isolated_env: Path) -> None:
    write_pickle_layout(isolated_env / "cifar10")
    data = load_cifar10(download=False)
    assert str(isolated_env / "cifar10" / "cifar-10-batches-py") in data.source


@pytest.mark.parametrize(
    ("make", "error", "found"),
    [
        (lambda p: None, DataNotFoundError, "does not exist"),
        (lambda p: p.mkdir(), DataFormatError, "is an empty folder"),
        (lambda p: (p.mkdir(), (p / "README").write_text("hi")), DataFormatError, "README"),
    ],
    ids=["missing", "empty", "unrelated"],
)
def test_bad_env_var_raises_instead_of_falling_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path, make, error, found
) -> None:
    write_pickle_layout(isolated_env / "cifar10")  # a fallback that must NOT be used
    bad = tmp_path / "typo"
    make(bad)
    monkeypatch.setenv("LABKIT_CIFAR10", str(bad))
    with pytest.raises(error, match=found) as raised:
        load_cifar10(download=False)
    assert f"LABKIT_CIFAR10={bad}" in str(raised.value)


def test_nothing_available_lists_every_way_to_provide_data(isolated_env: Path) -> None:
    with pytest.raises(DataNotFoundError) as raised:
        load_cifar10(download=False)
    message = str(raised.value)
    for needed in (
        "LABKIT_CIFAR10",
        "cifar-10-batches-py",
        "train/<class>",
        "LABKIT_DATA",
        str(isolated_env / "cifar10"),
        "download=False",
    ):
        assert needed in message
    assert isinstance(raised.value, FileNotFoundError)


def test_failed_download_is_reported_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    import torchvision.datasets

    def offline(root: str, **kwargs: object) -> None:
        assert socket.getdefaulttimeout() is not None  # a timeout guards the download
        Path(root, "cifar-10-python.tar.gz").write_bytes(b"half an archive")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    before = socket.getdefaulttimeout()
    with pytest.raises(DataNotFoundError) as raised:
        load_cifar10()
    message = str(raised.value)
    assert "torchvision download" in message and "URLError" in message
    assert "name resolution" in message and "LABKIT_CIFAR10" in message
    assert socket.getdefaulttimeout() == before
    assert list(isolated_env.rglob("*")) == []  # no half archive left to look like data


def test_successful_download_is_moved_into_place(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    import torchvision.datasets

    written: dict[str, np.ndarray] = {}

    def fake_download(root: str, **kwargs: object) -> None:
        written.update(write_pickle_layout(Path(root)))

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    data = load_cifar10(train_per_class=2)
    assert torch.equal(data.test_images, torch.from_numpy(written["test_x"]))
    assert sorted(p.name for p in (isolated_env / "cifar10").iterdir()) == ["cifar-10-batches-py"]
    assert "download" in data.source
    # The second call finds the copy and does not download again.
    monkeypatch.setattr(torchvision.datasets, "CIFAR10", None)
    assert len(load_cifar10(train_per_class=2).train_labels) == 20


@pytest.mark.parametrize("bad", [0, -1])
def test_per_class_must_be_positive(tmp_path: Path, bad: int) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    with pytest.raises(ValueError, match="train_per_class must be at least 1"):
        load_cifar10(tmp_path, train_per_class=bad, download=False)


# ---- MNIST and Fashion-MNIST: IDX files ---------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("where", ["flat", "torchvision"])
def test_idx_files_load_every_image_with_exact_pixels(tmp_path: Path, gz: bool, where: str) -> None:
    folder = tmp_path / "MNIST" / "raw" if where == "torchvision" else tmp_path / "idx"
    written = write_idx_layout(folder, gz=gz)
    data = load_mnist(tmp_path if where == "torchvision" else folder, download=False)

    assert data.name == "MNIST" and data.classes == tuple("0123456789")
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape == (30, 1, 28, 28)
    assert torch.equal(data.train_images, nchw(written["train_x"]))
    assert torch.equal(data.train_labels, torch.from_numpy(written["train_y"]))
    assert torch.equal(data.test_images, nchw(written["test_x"]))
    assert torch.equal(data.test_labels, torch.from_numpy(written["test_y"]))
    assert data.mean == (0.1307,) and data.std == (0.3081,)
    assert data.source == f"IDX files in {folder}"


def test_fashion_mnist_reads_torchvision_layout_with_its_class_names(tmp_path: Path) -> None:
    written = write_idx_layout(tmp_path / "FashionMNIST" / "raw", gz=True)
    data = load_fashion_mnist(tmp_path, download=False)
    assert data.name == "Fashion-MNIST"
    assert data.classes[0] == "T-shirt/top" and data.classes[9] == "Ankle boot"
    assert data.mean == (0.2860,) and data.std == (0.3530,)
    assert torch.equal(data.test_images, nchw(written["test_x"]))


def test_idx_subset_is_the_first_k_of_each_class_in_file_order(tmp_path: Path) -> None:
    written = write_idx_layout(tmp_path)
    data = load_mnist(tmp_path, train_per_class=2, test_per_class=1, download=False)
    keep = first_per_class(written["train_y"], 2)
    assert torch.equal(data.train_images, nchw(written["train_x"][keep]))
    assert torch.equal(data.train_labels, torch.from_numpy(written["train_y"][keep]))
    keep = first_per_class(written["test_y"], 1)
    assert torch.equal(data.test_images, nchw(written["test_x"][keep]))
    with pytest.raises(DataFormatError, match=r"test_per_class=3 .*at most 2"):
        load_mnist(tmp_path, test_per_class=3, download=False)


@pytest.mark.parametrize(("pad_to", "before", "after"), [(32, 2, 2), (33, 2, 3)])
def test_pad_to_centres_the_images_on_zeros(
    tmp_path: Path, pad_to: int, before: int, after: int
) -> None:
    written = write_idx_layout(tmp_path)
    data = load_mnist(tmp_path, pad_to=pad_to, download=False)
    assert data.train_images.shape == (30, 1, pad_to, pad_to)
    inner = data.train_images[:, :, before : pad_to - after, before : pad_to - after]
    assert torch.equal(inner, nchw(written["train_x"]))
    border = data.train_images.clone()
    border[:, :, before : pad_to - after, before : pad_to - after] = 0
    assert not border.any()
    assert data.test_images.shape[1:] == (1, pad_to, pad_to)


@pytest.mark.parametrize("bad", [27, True, 32.0])
def test_pad_to_must_be_an_int_at_least_the_image_size(tmp_path: Path, bad: object) -> None:
    write_idx_layout(tmp_path)
    with pytest.raises(ValueError, match="pad_to must be None or an int of at least 28"):
        load_mnist(tmp_path, pad_to=bad, download=False)


def test_truncated_idx_file_is_named_with_what_to_do(tmp_path: Path) -> None:
    write_idx_layout(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataFormatError, match=re.escape(f"{path} is truncated")) as raised:
        load_mnist(tmp_path, download=False)
    message = str(raised.value)
    assert "30 images" in message and "Re-download" in message and "load_mnist()" in message


def test_truncated_gzip_idx_file_is_named(tmp_path: Path) -> None:
    write_idx_layout(tmp_path, gz=True)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataFormatError, match=re.escape(f"{path} is truncated or not a gzip")):
        load_mnist(tmp_path, download=False)


def test_idx_file_of_the_wrong_kind_is_named(tmp_path: Path) -> None:
    write_idx_layout(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(labels.read_bytes())  # a copying slip
    with pytest.raises(
        DataFormatError, match="t10k-images-idx3-ubyte is not an IDX file of images"
    ):
        load_mnist(tmp_path, download=False)


def test_idx_images_of_another_size_are_refused(tmp_path: Path) -> None:
    write_idx_layout(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(idx_bytes(np.zeros((30, 32, 32), np.uint8)))
    with pytest.raises(DataFormatError, match=r"shaped 32x32, expected 28x28: it is not MNIST"):
        load_mnist(tmp_path, download=False)


def test_idx_label_count_must_match_the_images(tmp_path: Path) -> None:
    write_idx_layout(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(19, np.uint8)))
    with pytest.raises(
        DataFormatError, match=r"expected 20 labels in 0\.\.9, one per image, got 19"
    ):
        load_mnist(tmp_path, download=False)


def test_partial_idx_folder_names_the_missing_file(tmp_path: Path) -> None:
    write_idx_layout(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match=r"t10k-labels-idx1-ubyte\[\.gz\] is missing") as e:
        load_mnist(tmp_path, download=False)
    assert "t10k-images-idx3-ubyte.gz" in str(e.value)  # what was found, to compare


# ---- MNIST and Fashion-MNIST: image folders -----------------------------------------------------


def test_mnist_image_folder_takes_files_in_numeric_order(tmp_path: Path) -> None:
    """MNIST's PNGs are named by their index, unpadded: 10.png comes after 9.png."""
    rng = np.random.default_rng(3)
    pixels = {}
    for split in ("train", "test"):
        for digit in "0123456789":
            folder = tmp_path / split / digit
            folder.mkdir(parents=True)
            for index in (0, 1, 2, 10, 11, 100):
                pixels[split, digit, index] = rng.integers(0, 256, (28, 28), dtype=np.uint8)
                Image.fromarray(pixels[split, digit, index]).save(folder / f"{index}.png")
    data = load_mnist(tmp_path, train_per_class=4, download=False)
    assert data.train_images.shape == (40, 1, 28, 28) and data.test_images.shape == (60, 1, 28, 28)
    first_sevens = data.train_images[data.train_labels == 7][:, 0]
    for image, index in zip(first_sevens, (0, 1, 2, 10), strict=True):
        assert torch.equal(image, torch.from_numpy(pixels["train", "7", index]))


def test_fashion_image_folder_uses_file_safe_class_names(tmp_path: Path) -> None:
    written = write_image_folder(tmp_path, train=2, test=1, spec=FASHION_MNIST)
    assert (tmp_path / "train" / "T-shirt_top").is_dir()
    data = load_fashion_mnist(tmp_path, download=False)
    assert data.classes == FASHION_MNIST.classes
    assert torch.equal(data.train_images, expected_images(written, "train", spec=FASHION_MNIST))


def test_image_modes_are_converted_to_the_datasets_mode(tmp_path: Path) -> None:
    """RGB becomes grey for MNIST (PIL's ITU-R 601-2 luma); RGBA loses its alpha for CIFAR."""
    write_image_folder(tmp_path / "mnist", train=1, test=1, spec=MNIST)
    rgb = np.random.default_rng(0).integers(0, 256, (28, 28, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "mnist" / "train" / "3" / "0001.png")
    data = load_mnist(tmp_path / "mnist", download=False)
    threes = data.train_images[data.train_labels == 3]
    assert torch.equal(threes[1, 0], torch.from_numpy(np.array(Image.fromarray(rgb).convert("L"))))

    write_image_folder(tmp_path / "cifar", train=1, test=1)
    rgba = np.random.default_rng(1).integers(0, 256, (32, 32, 4), dtype=np.uint8)
    Image.fromarray(rgba).save(tmp_path / "cifar" / "test" / "ship" / "0001.png")
    data = load_cifar10(tmp_path / "cifar", download=False)
    ships = data.test_images[data.test_labels == CIFAR10_CLASSES.index("ship")]
    assert torch.equal(ships[1], torch.from_numpy(rgba[..., :3].transpose(2, 0, 1).copy()))


def test_mnist_image_of_the_wrong_size_is_named(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1, spec=MNIST)
    big = tmp_path / "train" / "4" / "0000.png"
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(big)
    with pytest.raises(
        DataFormatError, match=re.escape(f"{big} is 32x32; MNIST images must be 28")
    ):
        load_mnist(tmp_path, download=False)


def test_unknown_mnist_class_folder_lists_the_expected_names(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1, spec=MNIST)
    (tmp_path / "test" / "ten").mkdir()
    with pytest.raises(DataFormatError, match="not MNIST classes: ten") as raised:
        load_mnist(tmp_path, download=False)
    assert "0, 1, 2, 3, 4, 5, 6, 7, 8, 9" in str(raised.value)


def test_cifar_folder_given_as_mnist_is_refused_by_class_names(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=1, test=1)
    with pytest.raises(DataFormatError, match="not MNIST classes: airplane"):
        load_mnist(tmp_path, download=False)


# ---- MNIST and Fashion-MNIST: where the data comes from -----------------------------------------


def test_mnist_env_var_is_honoured_and_must_be_valid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    write_idx_layout(isolated_env / "mnist")  # a fallback that must NOT be used
    write_idx_layout(tmp_path / "mine", seed=5)
    monkeypatch.setenv("LABKIT_MNIST", str(tmp_path / "mine"))
    assert load_mnist(download=False).source == f"IDX files in {tmp_path / 'mine'}"
    monkeypatch.setenv("LABKIT_MNIST", str(tmp_path / "typo"))
    with pytest.raises(DataNotFoundError, match=re.escape(f"LABKIT_MNIST={tmp_path / 'typo'}")):
        load_mnist(download=False)


def test_mnist_data_root_is_used_when_nothing_is_named(isolated_env: Path) -> None:
    write_idx_layout(isolated_env / "mnist" / "MNIST" / "raw", gz=True)
    data = load_mnist(download=False)
    assert data.source == f"IDX files in {isolated_env / 'mnist' / 'MNIST' / 'raw'}"


def test_fashion_mnist_comes_from_debian_after_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    system = tmp_path / "usr-share-datasets"
    debian = write_idx_layout(system / "fashion-mnist", gz=True, seed=1)
    monkeypatch.setattr(loaders, "SYSTEM_DATASETS", system)
    data = load_fashion_mnist(download=False)
    assert data.source == f"IDX files in {system / 'fashion-mnist'} (dataset-fashion-mnist)"
    assert torch.equal(data.test_images, nchw(debian["test_x"]))

    local = write_idx_layout(isolated_env / "fashion-mnist", seed=2)
    assert torch.equal(load_fashion_mnist(download=False).test_images, nchw(local["test_x"]))


@pytest.mark.parametrize("spec", [CIFAR10, MNIST, FASHION_MNIST], ids=lambda s: s.key)
def test_nothing_available_lists_every_way_for_each_dataset(
    isolated_env: Path, spec: DatasetSpec
) -> None:
    with pytest.raises(DataNotFoundError) as raised:
        loaders.load(spec, download=False)
    message = str(raised.value)
    assert message.startswith(f"{spec.name} was not found. Tried:")
    for needed in (
        f"{spec.env_var}: not set",
        str(isolated_env / spec.key),
        "download=False",
        f"python -m labkit.data prepare {spec.key} --from PATH",
        "train/<class>",
        "LABKIT_DATA",
        spec.loader,
    ):
        assert needed in message, needed
    debian = "apt-get install dataset-fashion-mnist"
    assert (debian in message) == (spec is FASHION_MNIST)


@pytest.mark.parametrize("spec", [MNIST, FASHION_MNIST], ids=lambda s: s.key)
def test_offline_download_is_reported_and_leaves_nothing(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path, spec: DatasetSpec
) -> None:
    import torchvision.datasets

    def offline(root: str, **kwargs: object) -> None:
        raw = Path(root, spec.torchvision_folder)
        raw.mkdir(parents=True)
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"half a file")
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, spec.torchvision_class, offline)
    with pytest.raises(DataNotFoundError) as raised:
        loaders.load(spec)
    message = str(raised.value)
    assert "torchvision download" in message and "URLError" in message
    assert spec.env_var in message
    assert list(isolated_env.rglob("*")) == []


def test_mnist_download_is_moved_into_place_and_found_next_time(
    monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    import torchvision.datasets

    written: dict[str, np.ndarray] = {}

    def fake_download(root: str, **kwargs: object) -> None:
        written.update(write_idx_layout(Path(root, "MNIST", "raw"), gz=True))

    monkeypatch.setattr(torchvision.datasets, "MNIST", fake_download)
    data = load_mnist(train_per_class=2)
    assert "torchvision download" in data.source
    assert torch.equal(data.test_images, nchw(written["test_x"]))
    assert sorted(p.name for p in (isolated_env / "mnist").iterdir()) == ["MNIST"]
    monkeypatch.setattr(torchvision.datasets, "MNIST", None)
    assert len(load_mnist(train_per_class=2).train_labels) == 20


# ---- the decoded-image cache --------------------------------------------------------------------


def cache_files(data_root: Path) -> list[str]:
    folder = data_root / "cache"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(spec: DatasetSpec, path: object) -> None:
        raise AssertionError(f"decoded {path}: the cache should have been used")

    monkeypatch.setattr(formats, "read_image", refuse)


def test_full_load_is_cached_and_read_back_without_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    written = write_image_folder(tmp_path / "c10")
    first = load_cifar10(tmp_path / "c10", download=False)
    assert first.source == f"image folder {tmp_path / 'c10'}"
    (name,) = cache_files(isolated_env)
    assert re.fullmatch(r"cifar10-[0-9a-f]{16}\.npz", name)

    no_decoding(monkeypatch)
    second = load_cifar10(tmp_path / "c10", download=False)
    assert second.source == f"image folder {tmp_path / 'c10'} (cached)"
    assert torch.equal(second.train_images, expected_images(written, "train"))
    assert torch.equal(second.test_images, expected_images(written, "test"))
    assert torch.equal(second.train_labels, first.train_labels)
    second.train_images[0] = 0  # the tensors are the caller's own, writable
    subset = load_cifar10(tmp_path / "c10", train_per_class=2, test_per_class=1, download=False)
    assert torch.equal(subset.train_images, expected_images(written, "train", 2))
    assert torch.equal(subset.test_images, expected_images(written, "test", 1))
    with pytest.raises(DataFormatError, match=r"train_per_class=4 .*airplane has 3"):
        load_cifar10(tmp_path / "c10", train_per_class=4, download=False)


def test_fingerprint_ignores_listing_order_but_sees_every_change(tmp_path: Path) -> None:
    write_image_folder(tmp_path, train=3, test=1)

    def fingerprint() -> str:
        listing = formats.list_class_files(CIFAR10, tmp_path, "train")
        return cache.fingerprint(tmp_path, listing)

    before = fingerprint()
    listing = formats.list_class_files(CIFAR10, tmp_path, "train")
    shuffled = [(folder, names[::-1]) for folder, names in reversed(listing)]
    assert cache.fingerprint(tmp_path, shuffled) != before  # class order counts ...
    assert (
        cache.fingerprint(tmp_path, [(f, n[::-1]) for f, n in listing]) == before
    )  # ... not file order
    path = tmp_path / "train" / "cat" / "0002.png"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    touched = fingerprint()
    assert touched != before
    path.rename(tmp_path / "train" / "cat" / "0009.png")
    assert fingerprint() not in (before, touched)


def test_subset_load_without_a_cache_writes_none(tmp_path: Path, isolated_env: Path) -> None:
    write_image_folder(tmp_path)
    load_cifar10(tmp_path, train_per_class=1, download=False)
    assert cache_files(isolated_env) == []


def test_changed_folder_makes_the_cache_stale(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path)
    load_cifar10(tmp_path, download=False)
    changed = np.full((32, 32, 3), 7, np.uint8)
    path = tmp_path / "train" / "deer" / "0001.png"
    Image.fromarray(changed).save(path)
    os.utime(path, ns=(time.time_ns() + 10**9,) * 2)  # a new mtime even on coarse clocks
    data = load_cifar10(tmp_path, download=False)
    deer = data.train_images[data.train_labels == CIFAR10_CLASSES.index("deer")]
    assert torch.equal(deer[1], torch.from_numpy(changed.transpose(2, 0, 1).copy()))
    assert "is stale" in capsys.readouterr().err
    assert load_cifar10(tmp_path, download=False).source.endswith("(cached)")


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip_a_pixel_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def _rewrite_with_altered_pixels(path: Path) -> None:
    """A well-formed file whose arrays no longer match the checksum recorded beside them."""
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["train_images"][0, 0, 0, 0] ^= 0xFF
    with path.open("wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (_truncate, "cannot be read"),
        (_flip_a_pixel_byte, "cannot be read"),  # zip's CRC-32 catches it on the way in
        (_rewrite_with_altered_pixels, "do not match their recorded checksum"),
        (lambda p: p.write_bytes(b"not a cache"), "cannot be read"),
    ],
    ids=["truncated", "flipped-byte", "altered-arrays", "garbage"],
)
def test_corrupt_cache_is_detected_reported_and_rebuilt(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str], damage, why: str
) -> None:
    written = write_image_folder(tmp_path / "c10")
    load_cifar10(tmp_path / "c10", download=False)
    (name,) = cache_files(isolated_env)
    damage(isolated_env / "cache" / name)

    data = load_cifar10(tmp_path / "c10", download=False)
    assert not data.source.endswith("(cached)")
    assert torch.equal(data.train_images, expected_images(written, "train"))
    err = capsys.readouterr().err
    assert str(isolated_env / "cache" / name) in err and why in err and "rebuilding" in err
    assert load_cifar10(tmp_path / "c10", download=False).source.endswith("(cached)")


def test_a_write_that_dies_before_the_rename_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    written = write_image_folder(tmp_path / "c10")

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(cache.os, "replace", crash)
        with pytest.warns(UserWarning, match="cannot write the decoded-image cache"):
            data = load_cifar10(tmp_path / "c10", download=False)
    assert torch.equal(data.train_images, expected_images(written, "train"))
    assert cache_files(isolated_env) == []  # neither a cache nor its temporary file

    again = load_cifar10(tmp_path / "c10", download=False)
    assert not again.source.endswith("(cached)")  # decoded again: nothing half-written was read
    assert torch.equal(again.train_images, data.train_images)


def test_a_temporary_file_left_by_a_crash_is_never_read_and_later_removed(
    tmp_path: Path, isolated_env: Path
) -> None:
    write_image_folder(tmp_path / "c10")
    target = cache.cache_path(isolated_env / "cache", CIFAR10, tmp_path / "c10")
    target.parent.mkdir()
    old = target.parent / f".{target.name}.abc123.tmp"
    old.write_bytes(b"half a cache")
    os.utime(old, (time.time() - 7200,) * 2)
    fresh = target.parent / f".{target.name}.def456.tmp"  # maybe still being written
    fresh.write_bytes(b"half a cache")

    assert not load_cifar10(tmp_path / "c10", download=False).source.endswith("(cached)")
    assert sorted(cache_files(isolated_env)) == sorted([target.name, fresh.name])


def test_unwritable_cache_warns_once_and_loading_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = write_image_folder(tmp_path / "c10")

    def read_only(**kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(kwargs.get("dir")))

    monkeypatch.setattr(cache.tempfile, "mkstemp", read_only)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(2):
            data = load_cifar10(tmp_path / "c10", download=False)
            assert torch.equal(data.test_images, expected_images(written, "test"))
    messages = [str(w.message) for w in caught if "decoded-image cache" in str(w.message)]
    assert len(messages) == 1 and "Permission denied" in messages[0]
    assert "LABKIT_DATA" in messages[0]


def test_damaged_cache_in_a_read_only_data_root_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    written = write_image_folder(tmp_path / "c10")
    load_cifar10(tmp_path / "c10", download=False)
    (name,) = cache_files(isolated_env)
    _truncate(isolated_env / "cache" / name)

    def read_only(*args: object, **kwargs: object) -> None:
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(cache.Path, "unlink", read_only)
    monkeypatch.setattr(cache.tempfile, "mkstemp", read_only)
    with pytest.warns(UserWarning, match="Read-only file system"):
        data = load_cifar10(tmp_path / "c10", train_per_class=1, download=False)
    assert torch.equal(data.train_images, expected_images(written, "train", 1))


# ---- as_dataset ---------------------------------------------------------------------------------


def test_as_dataset_yields_pil_images_for_torchvision_transforms(tmp_path: Path) -> None:
    from torchvision import transforms

    written = write_image_folder(tmp_path / "c10")
    data = load_cifar10(tmp_path / "c10", download=False)
    train = as_dataset(data)
    assert len(train) == 30 and train.classes == CIFAR10_CLASSES
    image, label = train[4]
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32)
    assert label == 1 and train.class_to_idx["automobile"] == 1
    assert np.array_equal(np.asarray(image), written["train", "automobile"][1])

    test = as_dataset(data, train=False, transform=transforms.ToTensor(), target_transform=str)
    tensor, label = test[0]
    assert torch.allclose(tensor, data.test_images[0].float() / 255) and label == "0"
    images, labels = next(iter(torch.utils.data.DataLoader(test, batch_size=8)))
    assert images.shape == (8, 3, 32, 32) and list(labels[:3]) == ["0", "0", "1"]

    write_idx_layout(tmp_path / "mnist")
    grey, _ = as_dataset(load_mnist(tmp_path / "mnist", pad_to=32, download=False))[0]
    assert grey.mode == "L" and grey.size == (32, 32)


# ---- python -m labkit.data prepare --------------------------------------------------------------


def _tar(folder: Path, archive: Path, top: str = ".") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=f"{top}/{child.name}")
    return archive


def _staging_left(data_root: Path) -> list[str]:
    return [p.name for p in data_root.iterdir() if ".import-" in p.name]


def test_prepare_imports_an_archive_and_builds_the_cache(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_image_folder(tmp_path / "c10", train=3, test=2)
    archive = _tar(tmp_path / "c10", tmp_path / "cifar10-png.tar.gz")

    assert main(["prepare", "cifar10", "--from", str(archive), "--allow-subset"]) == 0
    out = capsys.readouterr().out
    assert f"CIFAR-10: image folder {isolated_env / 'cifar10'} (cached)" in out
    assert "train: 30 images (official 50,000): airplane 3, automobile 3" in out
    assert "test:  20 images (official 10,000)" in out
    assert "class cat has 3 images, the official release 5,000 (accepted" in out
    assert "cache: decoded images in" in out and out.rstrip().endswith("as allowed)")
    assert sorted(p.name for p in isolated_env.iterdir()) == ["cache", "cifar10"]
    data = load_cifar10(download=False)
    assert data.source == f"image folder {isolated_env / 'cifar10'} (cached)"
    assert torch.equal(data.train_images, expected_images(written, "train"))


def test_prepare_imports_a_zip_with_a_wrapping_folder(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_image_folder(tmp_path / "mnist-png", train=2, test=1, spec=MNIST)
    archive = tmp_path / "mnist.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "mnist-png").rglob("*.png")):
            z.write(path, path.relative_to(tmp_path))
    assert main(["prepare", "mnist", "--from", str(archive), "--allow-subset"]) == 0
    assert torch.equal(
        load_mnist(download=False).train_images, expected_images(written, "train", spec=MNIST)
    )
    assert "MNIST: image folder" in capsys.readouterr().out


def test_prepare_imports_torchvisions_archive_layout(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_pickle_layout(tmp_path / "official")
    archive = _tar(tmp_path / "official", tmp_path / "cifar-10-python.tar.gz")
    assert main(["prepare", "cifar10", "--from", str(archive), "--allow-subset"]) == 0
    out = capsys.readouterr().out
    assert "data_batch_1 has md5" in out and "(accepted: --allow-subset)" in out
    assert "md5:   all" not in out
    data = load_cifar10(download=False)
    assert (
        data.source
        == f"torchvision pickle files in {isolated_env / 'cifar10' / 'cifar-10-batches-py'}"
    )
    assert torch.equal(data.test_images, torch.from_numpy(written["test_x"]))


def test_prepare_refuses_a_partial_copy_unless_allowed(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "c10", train=2, test=1)
    assert main(["prepare", "cifar10", "--from", str(tmp_path / "c10")]) == 1
    err = capsys.readouterr().err
    assert "CIFAR-10: FAILED" in err and "differs from the official release" in err
    assert "train: class airplane has 2 images, the official release 5,000" in err
    assert "--allow-subset" in err
    assert not (isolated_env / "cifar10").exists() and _staging_left(isolated_env) == []
    assert cache_files(isolated_env) == []  # the staged copy's cache went with it


def test_prepare_with_a_truncated_archive_fails_and_imports_nothing(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "c10", train=20, test=2)
    archive = _tar(tmp_path / "c10", tmp_path / "cifar10.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert main(["prepare", "cifar10", "--from", str(archive), "--allow-subset"]) == 1
    err = capsys.readouterr().err
    assert f"{archive} could not be unpacked" in err and "Copy it again" in err
    assert sorted(p.name for p in isolated_env.iterdir()) == []


def test_prepare_names_a_bad_image_and_imports_nothing(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "c10", train=2, test=1)
    (tmp_path / "c10" / "test" / "frog" / "0000.png").write_bytes(b"\x89PNG cut short")
    assert main(["prepare", "cifar10", "--from", str(tmp_path / "c10"), "--allow-subset"]) == 1
    assert "frog/0000.png is not a readable image" in capsys.readouterr().err
    assert not (isolated_env / "cifar10").exists() and _staging_left(isolated_env) == []


def test_prepare_refuses_a_folder_without_a_layout(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hi")
    assert main(["prepare", "fashion-mnist", "--from", str(tmp_path / "stuff")]) == 1
    err = capsys.readouterr().err
    assert "holds no Fashion-MNIST layout" in err and "notes.txt" in err and "T-shirt_top" in err


def test_prepare_replaces_an_existing_copy_only_with_force(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_layout(isolated_env / "mnist", seed=1)
    new = write_idx_layout(tmp_path / "new", gz=True, seed=2)
    args = ["prepare", "mnist", "--from", str(tmp_path / "new"), "--allow-subset"]
    assert main(args) == 1
    assert "already exists. Pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert torch.equal(load_mnist(download=False).test_images, nchw(new["test_x"]))
    assert sorted(p.name for p in isolated_env.iterdir()) == ["mnist"]


def test_prepare_checks_the_copy_in_place_and_reports_checksums(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pickle_layout(isolated_env / "cifar10")
    assert main(["prepare", "cifar10", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert (
        "data_batch_1 has md5" in err
        and "the official file c99cafc152244af753f735de768cd75f" in err
    )
    assert main(["prepare", "cifar10", "--no-download", "--allow-subset"]) == 0
    out = capsys.readouterr().out
    assert "CIFAR-10: torchvision pickle files in" in out and "train: 150 images" in out


def test_checksums_of_official_files_are_compared_uncompressed(tmp_path: Path) -> None:
    write_idx_layout(tmp_path, gz=True)
    md5 = {
        name: hashlib.md5(gzip.decompress((tmp_path / f"{name}.gz").read_bytes()))
        for name, _ in MNIST.md5
    }
    spec = replace(MNIST, md5=tuple((name, digest.hexdigest()) for name, digest in md5.items()))
    layout = Layout("idx", tmp_path)
    assert checksum_problems(spec, layout) == []
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(20, np.uint8)))
    )
    (problem,) = checksum_problems(spec, layout)
    assert problem.startswith("t10k-labels-idx1-ubyte.gz has md5")
    assert checksum_problems(spec, Layout("images", tmp_path)) == []


def test_prepare_offline_without_a_copy_fails_with_every_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision.datasets

    def offline(root: str, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    assert main(["prepare", "cifar10"]) == 1
    err = capsys.readouterr().err
    assert "CIFAR-10 was not found" in err and "URLError" in err and "--from PATH" in err


def test_prepare_root_option_sets_the_data_root_for_the_run_only(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_layout(tmp_path / "elsewhere" / "fashion-mnist")
    root = str(tmp_path / "elsewhere")
    assert main(["prepare", "fashion-mnist", "--root", root, "--allow-subset"]) == 0
    assert f"IDX files in {tmp_path / 'elsewhere' / 'fashion-mnist'}" in capsys.readouterr().out
    assert os.environ["LABKIT_DATA"] == str(isolated_env)


def test_prepare_all_runs_each_dataset_and_from_needs_one(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_layout(isolated_env / "mnist")
    assert main(["prepare", "all", "--no-download", "--allow-subset"]) == 1
    captured = capsys.readouterr()
    assert "MNIST: IDX files in" in captured.out
    assert "CIFAR-10: FAILED" in captured.err and "Fashion-MNIST: FAILED" in captured.err
    with pytest.raises(SystemExit) as usage:
        main(["prepare", "all", "--from", str(tmp_path)])
    assert usage.value.code == 2


# ---- ImageData ----------------------------------------------------------------------------------


def make_data(**changes: object) -> ImageData:
    fields = {
        "name": "tiny",
        "train_images": torch.zeros(4, 3, 8, 8, dtype=torch.uint8),
        "train_labels": torch.tensor([0, 1, 1, 0]),
        "test_images": torch.zeros(2, 3, 8, 8, dtype=torch.uint8),
        "test_labels": torch.tensor([1, 0]),
        "classes": ("a", "b"),
        "mean": (0.5, 0.5, 0.5),
        "std": (0.25, 0.25, 0.25),
        "source": "memory",
    }
    fields.update(changes)
    return ImageData(**fields)


def test_image_data_describes_itself() -> None:
    data = make_data()
    assert data.num_classes == 2
    assert data.describe() == "tiny: 4 train / 2 test images, 3x8x8, 2 classes, from memory"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"train_images": torch.zeros(4, 3, 8, 8)}, "uint8"),
        ({"test_images": torch.zeros(2, 8, 8, dtype=torch.uint8)}, "N x C x H x W"),
        ({"train_labels": torch.tensor([0, 1, 1], dtype=torch.int64)}, r"shaped \(4,\)"),
        ({"test_labels": torch.tensor([0, 1], dtype=torch.int32)}, "int64"),
        ({"test_labels": torch.tensor([0, 2])}, r"0\.\.1"),
        ({"mean": (0.5,), "std": (0.25,)}, "channels"),
        ({"test_images": torch.zeros(2, 3, 9, 9, dtype=torch.uint8)}, "differ in shape"),
    ],
)
def test_image_data_rejects_bad_tensors(changes: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_data(**changes)


# ---- the real dataset ---------------------------------------------------------------------------


@pytest.mark.realdata
@pytest.mark.skipif(not REAL_CIFAR10, reason="set LABKIT_CIFAR10 to a CIFAR-10 folder to run this")
def test_real_cifar10_subset() -> None:
    data = load_cifar10(REAL_CIFAR10, train_per_class=100, test_per_class=10, download=False)
    assert data.train_images.shape == (1000, 3, 32, 32)
    assert data.test_images.shape == (100, 3, 32, 32)
    assert data.train_images.dtype == torch.uint8
    assert torch.bincount(data.train_labels).tolist() == [100] * 10
    assert torch.bincount(data.test_labels).tolist() == [10] * 10
    mean = data.train_images.double().mean(dim=(0, 2, 3)) / 255
    assert torch.allclose(mean, torch.tensor(CIFAR10_MEAN, dtype=torch.float64), atol=0.05), mean
    print(data.describe())


@pytest.mark.realdata
@pytest.mark.skipif(
    not REAL_MNIST,
    reason="no real MNIST: set LABKIT_MNIST to a copy (e.g. ../shared/datasets/mnist-png.tar.gz "
    "unpacked), or import one with scripts/prepare-data.sh",
)
def test_real_mnist_subset_padded_for_lenet() -> None:
    data = load_mnist(REAL_MNIST, train_per_class=100, test_per_class=10, pad_to=32, download=False)
    assert data.train_images.shape == (1000, 1, 32, 32)
    assert data.test_images.shape == (100, 1, 32, 32)
    assert torch.bincount(data.train_labels).tolist() == [100] * 10
    assert not data.train_images[:, :, :2].any() and not data.train_images[:, :, :, 30:].any()
    mean = data.train_images[:, :, 2:30, 2:30].double().mean() / 255
    assert abs(float(mean) - MNIST.mean[0]) < 0.03, mean
    print(data.describe())


@pytest.mark.realdata
@pytest.mark.skipif(
    not REAL_FASHION_MNIST,
    reason="no real Fashion-MNIST: apt-get install dataset-fashion-mnist, or set "
    "LABKIT_FASHION_MNIST to a folder of its IDX files",
)
def test_real_fashion_mnist_is_complete_official_and_read_as_torchvision_reads_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from torchvision.datasets.mnist import read_image_file, read_label_file

    data = load_fashion_mnist(REAL_FASHION_MNIST, download=False)
    assert torch.bincount(data.train_labels).tolist() == [6000] * 10
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    mean = data.train_images.double().mean() / 255
    assert abs(float(mean) - FASHION_MNIST.mean[0]) < 0.001, mean

    layout = formats.detect_layout(FASHION_MNIST, Path(REAL_FASHION_MNIST))
    assert layout is not None
    for name, ours in (("t10k-images-idx3-ubyte", data.test_images[:, 0]),
                       ("t10k-labels-idx1-ubyte", data.test_labels)):  # fmt: skip
        path = formats.idx_file(layout.path, name)
        assert path is not None
        raw = tmp_path / name
        raw.write_bytes(formats.read_idx_bytes(FASHION_MNIST, path))
        read = read_image_file if "images" in name else read_label_file
        assert torch.equal(ours, read(str(raw)).to(ours.dtype))

    wrong = checksum_problems(MNIST, layout)  # the same file names, another dataset
    assert len(wrong) == 4 and all("(it is Fashion-MNIST's file)" in p for p in wrong)

    monkeypatch.setenv("LABKIT_FASHION_MNIST", REAL_FASHION_MNIST)
    assert main(["prepare", "fashion-mnist", "--no-download"]) == 0
    out = capsys.readouterr().out
    assert "md5:   all 4 official files match" in out and out.rstrip().endswith("OK")
