"""Reading the three on-disk layouts into ``uint8`` arrays, with errors that name the file.

- torchvision's CIFAR-10 pickles, ``cifar-10-batches-py/``;
- the IDX files of MNIST and Fashion-MNIST (``train-images-idx3-ubyte`` and
  friends, gzipped or not), alone or in torchvision's ``MNIST/raw/``;
- an image folder, ``train/<class>/*.png|jpg`` and ``test/<class>/*``, for any
  dataset. Files are taken in name order with numbers compared as numbers
  (``9.png`` before ``10.png``), so MNIST's PNGs named by index keep the
  original order. Other image modes are converted (grey to RGB, RGB to grey,
  alpha dropped); other sizes are refused, since they mean another dataset.

Every reader returns ``{"train": (images, labels), "test": (images, labels)}``:
images ``N x C x H x W`` ``uint8``, labels ``int64``.
"""

from __future__ import annotations

import gzip
import os
import pickle
import re
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from labkit.data.datasets import DataFormatError, DatasetSpec

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png")
# What PIL raises on a file that is not a readable image.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)

Arrays = tuple[np.ndarray, np.ndarray]  # images N x C x H x W uint8, labels N int64
Splits = dict[str, Arrays]
ClassDirs = list[tuple[str, list[str]]]  # per class, in class order: (folder, image file names)


@dataclass(frozen=True)
class Layout:
    """A folder holding a dataset, and how: "pickle", "idx" or "images"."""

    kind: str
    path: Path
    source: str = ""  # how the data got there, for ImageData.source; by default the layout

    def describe(self) -> str:
        if self.source:
            return self.source
        what = {"pickle": "torchvision pickle files in", "idx": "IDX files in"}
        return f"{what.get(self.kind, 'image folder')} {self.path}"


def detect_layout(spec: DatasetSpec, folder: Path) -> Layout | None:
    """The layout ``folder`` holds, judged by its content, or None."""
    if not folder.is_dir():
        return None
    official = (*spec.train_files, *spec.test_files, *(name for name, _ in spec.md5))
    if ("/" + folder.as_posix()).endswith("/" + spec.torchvision_folder) or any(
        (folder / name).exists() or (folder / f"{name}.gz").exists() for name in official
    ):
        return Layout(spec.layout, folder)
    if (folder / spec.torchvision_folder).is_dir():
        return Layout(spec.layout, folder / spec.torchvision_folder)
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return Layout("images", folder)
    return None


def what_is_there(spec: DatasetSpec, folder: Path, limit: int = 8) -> str:
    """A short account of a path that held no dataset, so the user can see why."""
    if not folder.exists():
        return "does not exist"
    if not folder.is_dir():
        return "is a file, not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "is an empty folder"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return f"holds no {spec.name} layout (found: {', '.join(names[:limit])}{more})"


def layout_hint(spec: DatasetSpec) -> str:
    """The layouts a folder may have, for messages."""
    if spec.layout == "pickle":
        official = f"{spec.torchvision_folder}/ (torchvision's layout, unpacked from {spec.url})"
    else:
        files = ", ".join(f"{name}[.gz]" for name in (*spec.train_files, *spec.test_files))
        official = (
            f"the IDX files {files} (directly, or in torchvision's {spec.torchvision_folder}/)"
        )
    return (
        f"{official}, or an image folder with train/<class>/*.png|jpg and "
        f"test/<class>/*.png|jpg, <class> one of: {', '.join(spec.folders)}"
    )


def read_official(spec: DatasetSpec, folder: Path) -> Splits:
    """Every image of a pickle or IDX layout, in file order."""
    if spec.layout == "pickle":
        _check_meta(spec, folder)
    read = _read_pickle_split if spec.layout == "pickle" else _read_idx_split
    return {split: read(spec, folder, split) for split in SPLITS}


def _refetch_hint(spec: DatasetSpec, path: Path) -> str:
    hint = (
        f"Re-download it (delete {path.parent} and run {spec.loader} online) or copy it again "
        f"from an intact original ({spec.url})"
    )
    if spec.debian_package and str(path).startswith("/usr/share/datasets/"):
        hint = f"Reinstall it: apt-get install --reinstall {spec.debian_package}"
    return hint + "."


def _missing(spec: DatasetSpec, path: Path) -> DataFormatError:
    present = sorted(p.name for p in path.parent.iterdir()) if path.parent.is_dir() else []
    return DataFormatError(
        f"{path.name} is missing from {path.parent} (found: {', '.join(present) or 'nothing'}): "
        f"a partial copy. {_refetch_hint(spec, path)}"
    )


# ---- torchvision's CIFAR-10 pickles --------------------------------------------------------------


def _unpickle(spec: DatasetSpec, path: Path) -> object:
    """Load one pickle of the CIFAR-10 distribution (only load copies you trust)."""
    if not path.is_file():
        raise _missing(spec, path)
    try:
        with path.open("rb") as f:
            # The files were written by Python 2: latin1 keeps their byte strings intact.
            return pickle.load(f, encoding="latin1")
    except Exception as err:  # a damaged pickle fails in many ways; all mean the same here
        raise DataFormatError(
            f"{path} is truncated or unreadable ({type(err).__name__}: {err}). "
            + _refetch_hint(spec, path)
        ) from err


def _check_meta(spec: DatasetSpec, folder: Path) -> None:
    """If batches.meta is there, make sure it names the classes in torchvision's order."""
    path = folder / "batches.meta"
    if not path.exists():
        return
    meta = _unpickle(spec, path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if names is not None and tuple(names) != spec.classes:
        raise DataFormatError(
            f"{path} names the classes {list(names)}, not {spec.name}'s {list(spec.classes)}: "
            f"this folder holds another dataset. Point at a {spec.name} copy instead."
        )


def _read_batch(spec: DatasetSpec, path: Path) -> Arrays:
    """One batch file as (N x C x H x W uint8, N int64)."""
    batch = _unpickle(spec, path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataFormatError(
            f"{path} is not a {spec.name} batch: expected a dict with 'data' and 'labels', "
            f"got {keys}. {_refetch_hint(spec, path)}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    size = spec.channels * spec.side * spec.side
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != size:
        raise DataFormatError(
            f"{path}: 'data' must be uint8 shaped N x {size}, got {data.dtype} shaped "
            f"{data.shape}. {_refetch_hint(spec, path)}"
        )
    _check_labels(spec, path, labels, len(data))
    return data.reshape(-1, spec.channels, spec.side, spec.side), labels


def _check_labels(spec: DatasetSpec, path: Path, labels: np.ndarray, count: int) -> None:
    n = len(spec.classes)
    if labels.shape != (count,) or (labels.size and not 0 <= labels.min() <= labels.max() < n):
        raise DataFormatError(
            f"{path}: expected {count:,} labels in 0..{n - 1}, one per image, got "
            f"{labels.size:,} in {labels.min() if labels.size else '-'}.."
            f"{labels.max() if labels.size else '-'}. {_refetch_hint(spec, path)}"
        )


def _read_pickle_split(spec: DatasetSpec, folder: Path, split: str) -> Arrays:
    names = spec.train_files if split == "train" else spec.test_files
    batches = [_read_batch(spec, folder / name) for name in names]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


# ---- IDX files (MNIST, Fashion-MNIST) ----------------------------------------------------------


def idx_file(folder: Path, name: str) -> Path | None:
    """``name`` in ``folder``, uncompressed if there, else gzipped, else None."""
    for path in (folder / name, folder / f"{name}.gz"):
        if path.is_file():
            return path
    return None


def read_idx_bytes(spec: DatasetSpec, path: Path) -> bytes:
    """The uncompressed content of an IDX file (``.gz`` or not)."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path) as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(
            f"{path} is truncated or not a gzip file ({type(err).__name__}: {err}). "
            + _refetch_hint(spec, path)
        ) from err


def _read_idx(spec: DatasetSpec, path: Path, dims: tuple[int, ...]) -> np.ndarray:
    """An IDX array of unsigned bytes whose shape after the first axis must be ``dims``."""
    what = "images" if dims else "labels"
    data = read_idx_bytes(spec, path)
    ndim = 1 + len(dims)
    header = 4 + 4 * ndim
    expected_magic = bytes((0, 0, 0x08, ndim))
    if len(data) < header or data[:4] != expected_magic:
        raise DataFormatError(
            f"{path} is not an IDX file of {what}: it starts with {data[:4].hex() or 'nothing'}, "
            f"expected {expected_magic.hex()} (unsigned bytes, {ndim} dimensions). "
            + _refetch_hint(spec, path)
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if shape[1:] != dims:
        raise DataFormatError(
            f"{path} holds {what} shaped {'x'.join(map(str, shape[1:]))}, expected "
            f"{'x'.join(map(str, dims))}: it is not {spec.name}. Point at {spec.name}'s files."
        )
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataFormatError(
            f"{path} is truncated: its header announces {shape[0]:,} {what} ({expected:,} bytes) "
            f"but {len(data) - header:,} bytes follow. " + _refetch_hint(spec, path)
        )
    return np.frombuffer(bytearray(data), dtype=np.uint8, offset=header).reshape(shape)


def _read_idx_split(spec: DatasetSpec, folder: Path, split: str) -> Arrays:
    image_name, label_name = spec.train_files if split == "train" else spec.test_files
    paths = [idx_file(folder, name) for name in (image_name, label_name)]
    for name, path in zip((image_name, label_name), paths, strict=True):
        if path is None:
            raise _missing(spec, folder / f"{name}[.gz]")
    images = _read_idx(spec, paths[0], (spec.side, spec.side))
    labels = _read_idx(spec, paths[1], ()).astype(np.int64)
    _check_labels(spec, paths[1], labels, len(images))
    return images.reshape(-1, 1, spec.side, spec.side), labels


# ---- image folders -----------------------------------------------------------------------------


_DIGITS = re.compile(r"\d+")


def _natural_key(name: str) -> tuple[str, str]:
    """Sort key: digit runs compare as numbers, so 9.png < 10.png; ties by the name itself."""
    return _DIGITS.sub(lambda run: run.group().rjust(20, "0"), name), name


def list_class_files(spec: DatasetSpec, folder: Path, split: str) -> ClassDirs:
    """For each class in order, its folder and image file names; raises on layout mistakes.

    The names are in no particular order (sorting 60,000 of them by ``_natural_key``
    costs more than reading them back from the cache): ``in_name_order`` sorts them.
    """
    split_dir = folder / split
    expected = ", ".join(spec.folders)
    if not split_dir.is_dir():
        raise DataFormatError(
            f"{split_dir} is missing: an image folder needs both train/<class>/ and "
            f"test/<class>/, <class> one of: {expected}."
        )
    dirs = {
        entry.name: entry.path
        for entry in os.scandir(split_dir)
        if entry.is_dir() and not entry.name.startswith(".")
    }
    unknown = sorted(set(dirs) - set(spec.folders))
    if unknown:
        raise DataFormatError(
            f"{split_dir} has folders that are not {spec.name} classes: {', '.join(unknown)}. "
            f"Class folders must be named exactly: {expected}."
        )
    missing = [name for name in spec.folders if name not in dirs]
    if missing:
        raise DataFormatError(
            f"{split_dir} lacks the class folders {', '.join(missing)}: every one of the "
            f"{len(spec.folders)} classes needs a folder of images ({expected})."
        )
    listing = []
    for name in spec.folders:
        images = [
            entry.name
            for entry in os.scandir(dirs[name])
            if entry.name.lower().endswith(IMAGE_SUFFIXES)
            and not entry.name.startswith(".")
            and entry.is_file()
        ]
        if not images:
            raise DataFormatError(
                f"{dirs[name]} holds no image files ({', '.join(IMAGE_SUFFIXES)}): "
                "every class needs at least one image."
            )
        listing.append((dirs[name], images))
    return listing


def in_name_order(listing: ClassDirs, k: int | None = None) -> list[list[str]]:
    """Each class's image paths sorted by ``_natural_key``, the first k of them if k is given."""
    return [
        [os.path.join(folder, name) for name in sorted(names, key=_natural_key)[:k]]
        for folder, names in listing
    ]


def decode_images(spec: DatasetSpec, files: list[list[str]]) -> Arrays:
    """Decode class by class into one N x C x H x W array; labels follow the class order."""
    counts = [len(f) for f in files]
    images = np.empty((sum(counts), spec.side, spec.side, spec.channels), dtype=np.uint8)
    paths = [path for class_files in files for path in class_files]
    for i, path in enumerate(paths):
        images[i] = read_image(spec, path).reshape(spec.side, spec.side, spec.channels)
    labels = np.repeat(np.arange(len(files), dtype=np.int64), counts)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)), labels


def read_image(spec: DatasetSpec, path: str | Path) -> np.ndarray:
    """One image file as H x W (x 3) uint8 in the dataset's mode."""
    try:
        with Image.open(path) as image:
            if image.size != (spec.side, spec.side):
                width, height = image.size
                raise DataFormatError(
                    f"{path} is {width}x{height}; {spec.name} images must be "
                    f"{spec.side}x{spec.side}. Resize it or remove it."
                )
            return np.asarray(image if image.mode == spec.mode else image.convert(spec.mode))
    except DataFormatError:
        raise
    except _IMAGE_ERRORS as err:
        raise DataFormatError(
            f"{path} is not a readable image ({type(err).__name__}: {err}). "
            "Replace it with an intact copy or remove it."
        ) from err
