"""Tests for labkit.data on small generated copies of both CIFAR-10 layouts.

The fixtures write a few images per class in the real formats (pickled batches as
torchvision downloads them, PNG files in class folders), so every pixel can be
checked. One test, marked ``realdata``, reads the real dataset from
``$LABKIT_CIFAR10``.
"""

from __future__ import annotations

import os
import pickle
import re
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DataFormatError,
    DataNotFoundError,
    ImageData,
    load_cifar10,
)

# Read before the autouse fixture below hides it from every other test.
# The root conftest points LABKIT_CIFAR10 at generated stand-ins when no real data exists.
REAL_CIFAR10 = (
    "" if os.environ.get("LABKIT_STANDINS") else os.environ.get("LABKIT_CIFAR10", "").strip()
)

TRAIN_BATCHES = [f"data_batch_{i}" for i in range(1, 6)]


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No LABKIT_CIFAR10, and a data root of our own, so no test sees the user's data."""
    monkeypatch.delenv("LABKIT_CIFAR10", raising=False)
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


# ---- fixtures: image-folder layout --------------------------------------------------------------


def write_image_folder(folder: Path, train: int = 3, test: int = 2, seed: int = 1) -> dict:
    """train/<class>/NNNN.png and test/<class>/NNNN.png; returns {(split, class): [HWC arrays]}.

    Files are written in reverse name order so that directory order is unlikely to
    match name order: the loader must sort.
    """
    rng = np.random.default_rng(seed)
    written: dict[tuple[str, str], list[np.ndarray]] = {}
    for split, count in (("train", train), ("test", test)):
        for name in CIFAR10_CLASSES:
            class_dir = folder / split / name
            class_dir.mkdir(parents=True)
            pixels = [rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8) for _ in range(count)]
            for i in reversed(range(count)):
                Image.fromarray(pixels[i]).save(class_dir / f"{i:04d}.png")
            written[split, name] = pixels
    return written


def expected_images(written: dict, split: str, k: int | None = None) -> torch.Tensor:
    """What the loader should return: class by class, first k by name, N x C x H x W."""
    arrays = [a for name in CIFAR10_CLASSES for a in written[split, name][:k]]
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())


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
