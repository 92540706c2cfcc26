"""The labs' datasets, from whatever copy is at hand, with no silent surprises.

The labs run on a laptop that can download on first use, on an offline grading
machine that was handed a copy, and in CI. Each loader (``load_cifar10``,
``load_mnist``, ``load_fashion_mnist``) therefore looks in a fixed order (an
explicit folder, the data root, Debian's package for Fashion-MNIST, a
torchvision download) and, when all of them fail, says in one message what it
tried and every way to provide the data. They return ``ImageData``: ``uint8``
tensors for the fast training loop; ``as_dataset`` turns one split into a
``torch.utils.data.Dataset`` for the labs that teach ``DataLoader``.

- ``datasets``: what each dataset is (``DatasetSpec``) and the in-memory forms;
- ``formats``: reading torchvision's pickles, IDX files and image folders;
- ``cache``: decoded image folders kept as arrays, rebuilt when stale or damaged;
- ``loaders``: the order of sources, downloads, subsets and padding;
- ``prepare``: ``python -m labkit.data prepare ...``, for offline machines.
"""

from labkit.data.datasets import (
    CIFAR10,
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    FASHION_MNIST,
    MNIST,
    DataFormatError,
    DataNotFoundError,
    DatasetSpec,
    ImageData,
    ImageDataset,
    as_dataset,
)
from labkit.data.loaders import load, load_cifar10, load_fashion_mnist, load_mnist

__all__ = [
    "CIFAR10",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "FASHION_MNIST",
    "MNIST",
    "DataFormatError",
    "DataNotFoundError",
    "DatasetSpec",
    "ImageData",
    "ImageDataset",
    "as_dataset",
    "load",
    "load_cifar10",
    "load_fashion_mnist",
    "load_mnist",
]
