"""The real datasets, where present: subsets of CIFAR-10 and MNIST, all of Fashion-MNIST.

Marked ``realdata``: they read ``$LABKIT_CIFAR10``, and for MNIST and Fashion-MNIST their
variable, the data root or Debian's package, and skip, saying how to provide them, when
absent. Fashion-MNIST is also compared with torchvision's reader and the official md5s.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from labkit.data import (
    CIFAR10_MEAN,
    FASHION_MNIST,
    MNIST,
    DatasetSpec,
    formats,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    loaders,
)
from labkit.data.prepare import checksum_problems, main

# Read at import, before the autouse fixture in conftest.py hides them from every test.
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
    reason="no real MNIST: set LABKIT_MNIST to an unpacked copy "
    "(mnist-png.tar.gz, say), or import one with scripts/prepare-data.sh",
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
