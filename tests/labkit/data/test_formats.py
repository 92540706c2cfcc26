"""The layouts labkit.data.formats reads, pixel for pixel, and how each fails.

torchvision's pickle layout (CIFAR-10), image folders (CIFAR-10, MNIST, Fashion-MNIST)
and IDX files (MNIST, Fashion-MNIST): every image and label, per-class subsets,
padding, mode conversion, and the errors that name a truncated, missing or foreign file.
"""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.data import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    FASHION_MNIST,
    MNIST,
    DataFormatError,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
)
from tests.labkit.data.builders import (
    expected_images,
    first_per_class,
    idx_bytes,
    nchw,
    write_idx_layout,
    write_image_folder,
    write_pickle_layout,
)

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
