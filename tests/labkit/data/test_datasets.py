"""labkit.data.datasets: ImageData's checks and as_dataset's torchvision-style view."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.data import CIFAR10_CLASSES, ImageData, as_dataset, load_cifar10, load_mnist
from tests.labkit.data.builders import write_idx_layout, write_image_folder

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
