"""Where labkit.data.loaders finds each dataset, in order, and what it says when it cannot.

The root argument, the dataset's variable, the data root, Debian's Fashion-MNIST and
torchvision's download (faked: offline or writing a small copy), for CIFAR-10 and for
MNIST and Fashion-MNIST.
"""

from __future__ import annotations

import re
import socket
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.data import (
    CIFAR10,
    FASHION_MNIST,
    MNIST,
    DataFormatError,
    DataNotFoundError,
    DatasetSpec,
    load_cifar10,
    load_fashion_mnist,
    load_mnist,
    loaders,
)
from tests.labkit.data.builders import (
    nchw,
    write_idx_layout,
    write_image_folder,
    write_pickle_layout,
)

# ---- CIFAR-10 -----------------------------------------------------------------------------------


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


# ---- MNIST and Fashion-MNIST --------------------------------------------------------------------


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
