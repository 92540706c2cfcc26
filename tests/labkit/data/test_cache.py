"""labkit.data.cache: the decoded-image cache of image folders.

Written after a full load and read back without decoding, keyed by a fingerprint of the
folder, rebuilt when stale or damaged, and never in the way when it cannot be written.
"""

from __future__ import annotations

import os
import re
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from labkit.data import (
    CIFAR10,
    CIFAR10_CLASSES,
    DataFormatError,
    DatasetSpec,
    cache,
    formats,
    load_cifar10,
)
from tests.labkit.data.builders import cache_files, expected_images, write_image_folder


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
