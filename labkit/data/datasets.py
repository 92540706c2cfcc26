"""What the labs' datasets are, and the two forms the labs use them in.

A ``DatasetSpec`` says everything the loaders need to know about one dataset:
its classes, image shape, statistics, where torchvision keeps it and which
official files (with their md5) it is made of. ``ImageData`` holds a loaded
dataset as ``uint8`` tensors for the fast training loop; ``as_dataset`` wraps one
split as a ``torch.utils.data.Dataset`` of PIL images for the labs that teach
``Dataset`` and ``DataLoader``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from PIL import Image

from labkit.i18n import _


class DataNotFoundError(FileNotFoundError):
    """No copy of the dataset was found; the message lists every way to provide one."""


class DataFormatError(ValueError):
    """A dataset folder or file exists but is wrong; the message names it and says what to do."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset: enough for a single generic loader to find, read and check it."""

    key: str  # the name on the command line and the folder under the data root
    name: str  # for people
    classes: tuple[str, ...]  # a label is an index into this tuple (torchvision's order)
    channels: int
    side: int  # images are side x side
    mean: tuple[float, ...]  # per channel, of the training pixels on the 0-1 scale
    std: tuple[float, ...]
    env_var: str  # names a folder that must hold this dataset
    layout: str  # the official files' format: "pickle" or "idx"
    torchvision_class: str  # in torchvision.datasets, for downloads
    torchvision_folder: str  # where that class keeps the files below its root
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    md5: tuple[tuple[str, str], ...]  # (official file, md5 of its uncompressed bytes)
    train_counts: tuple[int, ...]  # images per class in the official release
    test_counts: tuple[int, ...]
    download_size: str
    url: str
    system_folder: str | None = None  # under /usr/share/datasets, where a Debian package puts it
    debian_package: str | None = None

    @property
    def mode(self) -> str:
        """The PIL mode of one image: "RGB" or "L" (8-bit grey)."""
        return "RGB" if self.channels == 3 else "L"

    @property
    def folders(self) -> tuple[str, ...]:
        """Class folder names in the image-folder layout: the class names, file-name safe."""
        return tuple(c.replace("/", "_").replace(" ", "_") for c in self.classes)

    @property
    def loader(self) -> str:
        """The function that loads it, for messages."""
        return f"load_{self.key.replace('-', '_')}()"


CIFAR10 = DatasetSpec(
    key="cifar10",
    name="CIFAR-10",
    classes=(
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ),
    channels=3,
    side=32,
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    env_var="LABKIT_CIFAR10",
    layout="pickle",
    torchvision_class="CIFAR10",
    torchvision_folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_files=("test_batch",),
    md5=(  # torchvision's CIFAR10.train_list, test_list and meta
        ("data_batch_1", "c99cafc152244af753f735de768cd75f"),
        ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
        ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
        ("data_batch_4", "634d18415352ddfa80567beed471001a"),
        ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"),
        ("test_batch", "40351d587109b95175f43aff81a1287e"),
        ("batches.meta", "5ff9c542aee3614f3951f8cda6e48888"),
    ),
    train_counts=(5000,) * 10,
    test_counts=(1000,) * 10,
    download_size="170 MB",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)

_IDX_TRAIN = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte")
_IDX_TEST = ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

MNIST = DatasetSpec(
    key="mnist",
    name="MNIST",
    classes=tuple("0123456789"),
    channels=1,
    side=28,
    mean=(0.1307,),
    std=(0.3081,),
    env_var="LABKIT_MNIST",
    layout="idx",
    torchvision_class="MNIST",
    torchvision_folder="MNIST/raw",
    train_files=_IDX_TRAIN,
    test_files=_IDX_TEST,
    md5=(  # of the uncompressed files: a re-compressed .gz has another md5, the same bytes
        ("train-images-idx3-ubyte", "6bbc9ace898e44ae57da46a324031adb"),
        ("train-labels-idx1-ubyte", "a25bea736e30d166cdddb491f175f624"),
        ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
        ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
    ),
    train_counts=(5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
    test_counts=(980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009),
    download_size="12 MB",
    url="https://ossci-datasets.s3.amazonaws.com/mnist/",
)

FASHION_MNIST = DatasetSpec(
    key="fashion-mnist",
    name="Fashion-MNIST",
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    channels=1,
    side=28,
    mean=(0.2860,),
    std=(0.3530,),
    env_var="LABKIT_FASHION_MNIST",
    layout="idx",
    torchvision_class="FashionMNIST",
    torchvision_folder="FashionMNIST/raw",
    train_files=_IDX_TRAIN,
    test_files=_IDX_TEST,
    md5=(
        ("train-images-idx3-ubyte", "f4a8712d7a061bf5bd6d2ca38dc4d50a"),
        ("train-labels-idx1-ubyte", "9018921c3c673c538a1fc5bad174d6f9"),
        ("t10k-images-idx3-ubyte", "8181f5470baa50b63fa0f6fddb340f0a"),
        ("t10k-labels-idx1-ubyte", "15d484375f8d13e6eb1aabb0c3f46965"),
    ),
    train_counts=(6000,) * 10,
    test_counts=(1000,) * 10,
    download_size="30 MB",
    url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    system_folder="fashion-mnist",
    debian_package="dataset-fashion-mnist",
)

DATASETS: dict[str, DatasetSpec] = {s.key: s for s in (CIFAR10, MNIST, FASHION_MNIST)}

CIFAR10_CLASSES: tuple[str, ...] = CIFAR10.classes
"""Class names in torchvision's order: a label is an index into this tuple."""

CIFAR10_MEAN: tuple[float, ...] = CIFAR10.mean
"""Per-channel mean of the training pixels on the 0-1 scale (``x / 255``)."""

CIFAR10_STD: tuple[float, ...] = CIFAR10.std
"""Per-channel standard deviation of the training pixels on the 0-1 scale."""


@dataclass(frozen=True, eq=False)
class ImageData:
    """A labelled image dataset, held whole in memory as raw ``uint8`` pixels.

    Pixels stay ``uint8`` (a quarter of the memory of float32) and are normalised
    per batch with ``mean`` and ``std``, which apply to ``images / 255``.
    ``eq=False`` because comparing tensors with ``==`` does not give a bool.
    """

    name: str
    train_images: torch.Tensor = field(repr=False)  # uint8, N x C x H x W
    train_labels: torch.Tensor = field(repr=False)  # int64, N
    test_images: torch.Tensor = field(repr=False)
    test_labels: torch.Tensor = field(repr=False)
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str

    def __post_init__(self) -> None:
        # Coerce sequences to tuples and tensors to contiguous, so that callers may pass
        # lists or views; everything else is checked, not fixed.
        for name in ("classes", "mean", "std"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.classes or not all(isinstance(c, str) for c in self.classes):
            raise ValueError(f"{self.name}: classes must be a non-empty tuple of names")
        if len(self.mean) != len(self.std) or any(s <= 0 for s in self.std):
            raise ValueError(
                f"{self.name}: mean and std need one value per channel and std > 0, "
                f"got mean={self.mean}, std={self.std}"
            )
        for split in ("train", "test"):
            images = _checked_images(self, f"{split}_images")
            _checked_labels(self, f"{split}_labels", len(images))
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise ValueError(
                f"{self.name}: train and test images differ in shape: "
                f"{tuple(self.train_images.shape[1:])} vs {tuple(self.test_images.shape[1:])}"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> str:
        """One line for a notebook to print, so a student sees what a run trained on."""
        c, h, w = self.train_images.shape[1:]
        return _(
            "{name}: {train:,} train / {test:,} test images, {c}x{h}x{w}, "
            "{classes} classes, from {source}"
        ).format(
            name=self.name,
            train=len(self.train_labels),
            test=len(self.test_labels),
            c=c,
            h=h,
            w=w,
            classes=self.num_classes,
            source=self.source,
        )


def _checked_images(data: ImageData, attr: str) -> torch.Tensor:
    images = getattr(data, attr)
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"{data.name}: {attr} must be a torch.Tensor, got {type(images).__name__}")
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise ValueError(
            f"{data.name}: {attr} must be uint8 pixels shaped N x C x H x W, "
            f"got {images.dtype} shaped {tuple(images.shape)}"
        )
    if images.shape[1] != len(data.mean):
        raise ValueError(
            f"{data.name}: {attr} has {images.shape[1]} channels "
            f"but mean/std have {len(data.mean)} values"
        )
    if not images.is_contiguous():
        object.__setattr__(data, attr, images.contiguous())
    return images


def _checked_labels(data: ImageData, attr: str, count: int) -> None:
    labels = getattr(data, attr)
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"{data.name}: {attr} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.dtype != torch.int64 or labels.shape != (count,):
        raise ValueError(
            f"{data.name}: {attr} must be int64 shaped ({count},) to match the images, "
            f"got {labels.dtype} shaped {tuple(labels.shape)}"
        )
    if count and (int(labels.min()) < 0 or int(labels.max()) >= data.num_classes):
        raise ValueError(
            f"{data.name}: {attr} must lie in 0..{data.num_classes - 1} (one per class), "
            f"got {int(labels.min())}..{int(labels.max())}"
        )
    if not labels.is_contiguous():
        object.__setattr__(data, attr, labels.contiguous())


class ImageDataset(torch.utils.data.Dataset):
    """One split of an ``ImageData`` as (PIL image, label) pairs, like torchvision's datasets.

    ``transform`` gets the PIL image (mode "RGB" or "L"), so torchvision's
    transforms apply unchanged; ``target_transform`` gets the label.
    """

    def __init__(
        self,
        data: ImageData,
        train: bool = True,
        transform: Callable[[Image.Image], Any] | None = None,
        target_transform: Callable[[int], Any] | None = None,
    ) -> None:
        images = data.train_images if train else data.test_images
        self.images = images.permute(0, 2, 3, 1).numpy()  # N x H x W x C, a view
        self.targets: list[int] = (data.train_labels if train else data.test_labels).tolist()
        self.classes = data.classes
        self.class_to_idx = {name: i for i, name in enumerate(data.classes)}
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        pixels = np.ascontiguousarray(self.images[index])
        image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
        label = self.targets[index]
        if self.transform is not None:
            image = self.transform(image)
        if self.target_transform is not None:
            label = self.target_transform(label)
        return image, label


def as_dataset(
    data: ImageData,
    train: bool = True,
    transform: Callable[[Image.Image], Any] | None = None,
    target_transform: Callable[[int], Any] | None = None,
) -> ImageDataset:
    """The training (or test) split of ``data`` as a ``torch.utils.data.Dataset``."""
    return ImageDataset(data, train, transform, target_transform)
