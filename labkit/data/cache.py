"""Decoded image folders, kept as ``uint8`` arrays so that the next load skips decoding.

Decoding 60,000 small JPEGs takes many seconds; reading them back from one
``.npz`` file takes under one. A cache file belongs to one folder (its name
holds a hash of the folder's path) and records a fingerprint of the files it was
made from (their names, sizes and modification times) and a CRC-32 of its arrays:

- a changed folder gives another fingerprint, so the file is stale and rebuilt;
- a truncated or altered file fails to open or fails its checksum, is reported,
  deleted and rebuilt;
- a file is written under a temporary name and renamed into place, so a crash
  never leaves a half-written cache under the name that is read.

Caching is an optimisation: when the cache folder cannot be written, loading
goes on without it, after one warning.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np

from labkit.data.datasets import DatasetSpec
from labkit.data.formats import SPLITS, ClassDirs, Splits

FORMAT = 1  # bump when what is stored, or the order it is stored in, changes
_STALE_TEMP_S = 3600  # a temporary file this old was left by a crash
_ARRAYS = ("train_images", "train_labels", "test_images", "test_labels")
_READ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)
_STAT_DIR_FD = os.stat in os.supports_dir_fd
_warned: set[Path] = set()


def cache_path(cache_dir: Path, spec: DatasetSpec, source: Path) -> Path:
    """Where the decoded copy of ``source`` lives: one file per dataset and folder."""
    digest = hashlib.sha1(str(source.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"{spec.key}-{digest}.npz"


def fingerprint(source: Path, listing: ClassDirs) -> str:
    """A digest of each file's path below ``source``, size and modification time."""
    prefix = len(str(source))
    lines = []
    for folder, names in listing:
        # Stat relative to an open folder: cheaper than resolving 60,000 full paths.
        fd = os.open(folder, os.O_RDONLY) if _STAT_DIR_FD else None
        try:
            for name in sorted(names):
                stat = os.stat(name, dir_fd=fd) if fd is not None else os.stat(f"{folder}/{name}")
                lines.append(f"{folder[prefix:]}/{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n")
        finally:
            if fd is not None:
                os.close(fd)
    return hashlib.sha1("".join(lines).encode()).hexdigest()


def _crc32(arrays: dict[str, np.ndarray]) -> int:
    """A checksum of the arrays' bytes: catches damage, at a third of sha1's cost."""
    crc = 0
    for name in _ARRAYS:
        crc = zlib.crc32(np.ascontiguousarray(arrays[name]), crc)
    return crc


def read(path: Path, spec: DatasetSpec, expected_fingerprint: str) -> Splits | None:
    """The cached arrays, or None when there are none, they are stale or damaged.

    A damaged or stale file is deleted, with a note saying why, so that the
    caller rebuilds it.
    """
    try:
        with np.load(path, allow_pickle=False) as archive:
            meta = json.loads(str(archive["meta"]))
            arrays = {name: archive[name] for name in _ARRAYS}
    except FileNotFoundError:
        return None
    except _READ_ERRORS as err:
        return _discard(path, f"cannot be read ({type(err).__name__}: {err})")
    problem = _check(meta, arrays, spec, expected_fingerprint)
    if problem:
        return _discard(path, problem)
    return {split: (arrays[f"{split}_images"], arrays[f"{split}_labels"]) for split in SPLITS}


def _check(meta: object, arrays: dict[str, np.ndarray], spec: DatasetSpec, fp: str) -> str:
    """Why the cache cannot be used, or "" when it can."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return f"was written in another format (expected format {FORMAT})"
    if meta.get("dataset") != spec.key:
        return f"holds {meta.get('dataset')!r}, not {spec.key!r}"
    if meta.get("fingerprint") != fp:
        return "is stale: the image folder changed since it was cached"
    shape = (spec.channels, spec.side, spec.side)
    for split in SPLITS:
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        n = meta.get("counts", {}).get(split)
        if images.dtype != np.uint8 or images.shape != (n, *shape):
            return f"has {split} images {images.dtype} {images.shape}, expected uint8 {(n, *shape)}"
        if labels.dtype != np.int64 or labels.shape != (n,):
            return f"has {split} labels {labels.dtype} {labels.shape}, expected int64 ({n},)"
    if _crc32(arrays) != meta.get("crc32"):
        return "is damaged: its arrays do not match their recorded checksum"
    return ""


def _discard(path: Path, why: str) -> None:
    print(f"labkit: the cache {path} {why}; rebuilding it.", file=sys.stderr)
    with contextlib.suppress(OSError):  # a read-only data root: the rewrite will warn
        path.unlink(missing_ok=True)
    return None


def write(path: Path, spec: DatasetSpec, fp: str, splits: Splits) -> bool:
    """Store ``splits`` atomically; False (after one warning per folder) if it cannot."""
    arrays = {}
    for split in SPLITS:
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = splits[split]
    meta = {
        "format": FORMAT,
        "dataset": spec.key,
        "fingerprint": fp,
        "counts": {split: len(splits[split][1]) for split in SPLITS},
        "crc32": _crc32(arrays),
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(path)
        fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, meta=np.array(json.dumps(meta)), **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(temp, 0o644)  # mkstemp makes it private; others may share the data root
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
    except OSError as err:
        if path.parent not in _warned:
            _warned.add(path.parent)
            warnings.warn(
                f"labkit: cannot write the decoded-image cache in {path.parent} "
                f"({type(err).__name__}: {err}); loading without it, so every load decodes "
                "the images again. Set LABKIT_DATA to a writable folder to cache them.",
                stacklevel=4,
            )
        return False
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Delete temporary files that a crashed writer left behind (never read in any case)."""
    now = time.time()
    for temp in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):  # gone already, or not ours to delete
            if now - temp.stat().st_mtime > _STALE_TEMP_S:
                temp.unlink()
