"""CIFAR-10 for the labs, from whatever copy is at hand, with no silent surprises.

The labs run on a laptop that can download on first use, on an offline grading
machine that was handed a copy, and in CI. ``load_cifar10`` therefore looks in a
fixed order (an explicit folder, then the data root, then a torchvision
download) and, when all of them fail, says in one message what it tried and
every way to provide the data. It reads two layouts, detected by content:

- torchvision's pickled batches, ``cifar-10-batches-py/`` (read directly, so
  torchvision is only needed to download);
- an image folder, ``train/<class>/*.png|jpg`` and ``test/<class>/*``.

``train_per_class=k`` takes the *first* k images of each class (files sorted by
name, or file order in the pickles), so that a grader always trains on the same
images, and only those images are decoded.
"""

from __future__ import annotations

import http.client
import os
import pickle
import shutil
import socket
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DataFormatError",
    "DataNotFoundError",
    "ImageData",
    "load_cifar10",
]

CIFAR10_CLASSES: tuple[str, ...] = (
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
)
"""Class names in torchvision's order: a label is an index into this tuple."""

CIFAR10_MEAN: tuple[float, ...] = (0.4914, 0.4822, 0.4465)
"""Per-channel mean of the training pixels on the 0-1 scale (``x / 255``)."""

CIFAR10_STD: tuple[float, ...] = (0.2470, 0.2435, 0.2616)
"""Per-channel standard deviation of the training pixels on the 0-1 scale."""

_ENV_FOLDER = "LABKIT_CIFAR10"
_ENV_DATA_ROOT = "LABKIT_DATA"

_ARCHIVE_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_PICKLE_DIR = "cifar-10-batches-py"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCH = "test_batch"
_META = "batches.meta"
_PICKLE_FILES = (*_TRAIN_BATCHES, _TEST_BATCH, _META)
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp"})
_SIDE = 32  # CIFAR-10 images are 32x32 RGB
_DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation: offline machines fail fast instead of hanging

# What a failed download can raise: URLError and socket timeouts are OSErrors; torchvision
# raises RuntimeError on a checksum mismatch; a cut-off archive fails in tarfile, gzip or zlib.
_DOWNLOAD_ERRORS = (
    OSError,
    RuntimeError,
    EOFError,
    ImportError,
    tarfile.TarError,
    zlib.error,
    http.client.HTTPException,
)
# What PIL raises on a file that is not a readable image.
_IMAGE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError)


class DataNotFoundError(FileNotFoundError):
    """No copy of the dataset was found; the message lists every way to provide one."""


class DataFormatError(ValueError):
    """A dataset folder or file exists but is wrong; the message names it and says what to do."""


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
        return (
            f"{self.name}: {len(self.train_labels):,} train / {len(self.test_labels):,} test "
            f"images, {c}x{h}x{w}, {self.num_classes} classes, from {self.source}"
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


def load_cifar10(
    root: str | os.PathLike[str] | None = None,
    *,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    download: bool = True,
) -> ImageData:
    """Load CIFAR-10 from the first place that has it.

    Looks at, in order: ``root``, else the folder in ``$LABKIT_CIFAR10`` (either
    must work if given: a bad one raises rather than falling back, so a grader
    never silently uses other data); then ``<data root>/cifar10``; then, if
    ``download``, a torchvision download into ``<data root>/cifar10``. The data
    root is ``$LABKIT_DATA``, else ``data/`` in a source checkout, else
    ``~/.cache/labkit``.

    ``train_per_class`` / ``test_per_class``: ``None`` for every image, or ``k``
    for the first k images of each class, always the same ones.

    Raises DataNotFoundError when no copy is found, DataFormatError when a copy is
    found but is damaged or laid out wrongly.
    """
    train_k = _checked_per_class("train_per_class", train_per_class)
    test_k = _checked_per_class("test_per_class", test_per_class)
    data_root, root_reason = _data_root()
    cifar_dir = data_root / "cifar10"

    explicit = _explicit_folder(root)
    if explicit is not None:
        folder, given_as = explicit
        return _load_explicit(folder, given_as, train_k, test_k, cifar_dir)

    tried = [f"{_ENV_FOLDER}: not set"]
    layout = _detect_layout(cifar_dir)
    if layout is not None:
        return _load_layout(*layout, train_k, test_k)
    tried.append(f"{cifar_dir} ({root_reason}): {_what_is_there(cifar_dir)}")

    if not download:
        tried.append("download: skipped (download=False)")
    else:
        try:
            batches = _download(cifar_dir)
        except _DOWNLOAD_ERRORS as err:
            tried.append(f"torchvision download to {cifar_dir}: failed, {_describe_error(err)}")
        else:
            return _load_pickles(batches, train_k, test_k, f"torchvision download in {batches}")
    raise DataNotFoundError(
        "CIFAR-10 was not found. Tried:\n"
        + "".join(f"  - {line}\n" for line in tried)
        + _ways_to_provide(cifar_dir)
    )


def _checked_per_class(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be None (all images) or an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (or None for all images), got {value}")
    return value


# ---- where to look ----------------------------------------------------------------------------


def _data_root() -> tuple[Path, str]:
    """The data root and, for messages, why it is that one."""
    env = os.environ.get(_ENV_DATA_ROOT, "").strip()
    if env:
        return Path(env).expanduser(), f"data root from {_ENV_DATA_ROOT}"
    # In a source checkout data/ sits next to labkit/ and is git-ignored; an installed
    # package has no such folder, so it falls back to a per-user cache.
    checkout = Path(__file__).resolve().parent.parent
    move = f"set {_ENV_DATA_ROOT} to move it"
    if (checkout / "data").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "data", f"data root: this checkout's data/; {move}"
    return Path.home() / ".cache" / "labkit", f"default data root; {move}"


def _explicit_folder(root: str | os.PathLike[str] | None) -> tuple[Path, str] | None:
    """The folder the caller named, and how it was named (for messages), or None."""
    if root is not None:
        return Path(root).expanduser(), f"root={os.fspath(root)!r}"
    env = os.environ.get(_ENV_FOLDER, "").strip()
    if env:
        return Path(env).expanduser(), f"{_ENV_FOLDER}={env}"
    return None


def _load_explicit(
    folder: Path, given_as: str, train_k: int | None, test_k: int | None, cifar_dir: Path
) -> ImageData:
    """Load a folder the user asked for, or raise: falling back would hide their mistake."""
    if not folder.exists():
        raise DataNotFoundError(
            f"{given_as}: {folder} does not exist. Point it at an existing CIFAR-10 folder, "
            f"or drop it to use {cifar_dir}.\n" + _ways_to_provide(cifar_dir)
        )
    layout = _detect_layout(folder)
    if layout is None:
        hint = ""
        if folder.is_file() and folder.name.endswith((".tar.gz", ".tgz")):
            hint = f" Unpack it first (tar xzf {folder.name}) and point at the unpacked folder."
        elif any((folder / name).is_dir() for name in CIFAR10_CLASSES):
            hint = f" This looks like one split: point at {folder.parent} (with train/, test/)."
        raise DataFormatError(
            f"{given_as}: {folder} {_what_is_there(folder)}.{hint} "
            f"Expected a folder that is or holds {_PICKLE_DIR}/ (torchvision's layout) "
            f"or an image folder with train/<class>/ and test/<class>/."
        )
    return _load_layout(*layout, train_k, test_k)


def _detect_layout(folder: Path) -> tuple[str, Path] | None:
    """("pickle", batches folder) or ("images", folder) by what the folder holds, else None."""
    if not folder.is_dir():
        return None
    if folder.name == _PICKLE_DIR or any((folder / name).exists() for name in _PICKLE_FILES):
        return "pickle", folder
    if (folder / _PICKLE_DIR).is_dir():
        return "pickle", folder / _PICKLE_DIR
    if (folder / "train").is_dir() or (folder / "test").is_dir():
        return "images", folder
    return None


def _load_layout(kind: str, folder: Path, train_k: int | None, test_k: int | None) -> ImageData:
    if kind == "pickle":
        return _load_pickles(folder, train_k, test_k, f"torchvision pickle files in {folder}")
    return _load_image_folder(folder, train_k, test_k)


def _what_is_there(folder: Path, limit: int = 8) -> str:
    """A short account of a path that held no dataset, so the user can see why."""
    if not folder.exists():
        return "does not exist"
    if not folder.is_dir():
        return "is a file, not a folder"
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    if not names:
        return "is an empty folder"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return f"holds neither CIFAR-10 layout (found: {', '.join(names[:limit])}{more})"


def _ways_to_provide(cifar_dir: Path) -> str:
    classes = ", ".join(CIFAR10_CLASSES)
    return (
        "Ways to provide CIFAR-10:\n"
        f"  (a) be online: load_cifar10() then downloads it with torchvision (~170 MB) "
        f"to {cifar_dir};\n"
        f"  (b) set {_ENV_FOLDER} to a folder holding {_PICKLE_DIR}/ (torchvision's layout, "
        f"e.g. unpacked from {_ARCHIVE_URL}) or an image folder with train/<class>/*.png|jpg "
        f"and test/<class>/*.png|jpg, <class> one of: {classes};\n"
        f"  (c) put such a folder at {cifar_dir} (set {_ENV_DATA_ROOT} to move the data root).\n"
        "See data/README.md."
    )


def _describe_error(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return f"timed out after {_DOWNLOAD_TIMEOUT_S:g} s without data (offline?)"
    if isinstance(err, ImportError):
        return f"torchvision is not importable ({err})"
    return f"{type(err).__name__}: {err}"


# ---- download -----------------------------------------------------------------------------------


def _download(cifar_dir: Path) -> Path:
    """Download with torchvision into a scratch folder; move only a verified copy into place.

    torchvision checks the archive's checksum and the extracted files' before it
    returns, so what gets moved is complete. Whatever happens, the scratch folder
    (and its half-downloaded archive) is removed, so nothing partial is left to
    be mistaken for data on the next run.
    """
    created = not cifar_dir.exists()
    cifar_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=cifar_dir))
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        import torchvision.datasets  # slow to import, and only needed here

        torchvision.datasets.CIFAR10(str(scratch), train=True, download=True)
        target = cifar_dir / _PICKLE_DIR
        (scratch / _PICKLE_DIR).replace(target)
        return target
    finally:
        socket.setdefaulttimeout(old_timeout)
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not any(cifar_dir.iterdir()):
            cifar_dir.rmdir()


# ---- torchvision's pickle layout --------------------------------------------------------------


def _load_pickles(batches: Path, train_k: int | None, test_k: int | None, source: str) -> ImageData:
    _check_meta(batches)
    train_images, train_labels = _read_pickle_split(batches, _TRAIN_BATCHES, train_k, "train")
    test_images, test_labels = _read_pickle_split(batches, (_TEST_BATCH,), test_k, "test")
    return _cifar10(train_images, train_labels, test_images, test_labels, source)


def _refetch_hint(path: Path) -> str:
    return (
        f"Re-download it (delete {path.parent} and run load_cifar10() online) or re-copy it "
        f"from an intact {_PICKLE_DIR}/ (unpacked from {_ARCHIVE_URL})."
    )


def _unpickle(path: Path) -> object:
    """Load one pickle of the CIFAR-10 distribution (only load copies you trust)."""
    if not path.is_file():
        raise DataFormatError(f"{path} is missing from {path.parent}. {_refetch_hint(path)}")
    try:
        with path.open("rb") as f:
            # The files were written by Python 2: latin1 keeps their byte strings intact.
            return pickle.load(f, encoding="latin1")
    except Exception as err:  # a damaged pickle fails in many ways; all mean the same here
        raise DataFormatError(
            f"{path} is truncated or unreadable ({type(err).__name__}: {err}). "
            + _refetch_hint(path)
        ) from err


def _check_meta(batches: Path) -> None:
    """If batches.meta is there, make sure it names CIFAR-10's classes in torchvision's order."""
    path = batches / _META
    if not path.exists():
        return
    meta = _unpickle(path)
    names = meta.get("label_names") if isinstance(meta, dict) else None
    if names is not None and tuple(names) != CIFAR10_CLASSES:
        raise DataFormatError(
            f"{path} names the classes {list(names)}, not CIFAR-10's {list(CIFAR10_CLASSES)}: "
            "this folder holds another dataset. Point at a CIFAR-10 copy instead."
        )


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file as (N x 3 x 32 x 32 uint8, N int64)."""
    batch = _unpickle(path)
    if not isinstance(batch, dict) or "data" not in batch or "labels" not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataFormatError(
            f"{path} is not a CIFAR-10 batch: expected a dict with 'data' and 'labels', "
            f"got {keys}. {_refetch_hint(path)}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * _SIDE * _SIDE:
        raise DataFormatError(
            f"{path}: 'data' must be uint8 shaped N x 3072, got {data.dtype} shaped "
            f"{data.shape}. {_refetch_hint(path)}"
        )
    if labels.shape != (len(data),) or (labels.size and not 0 <= labels.min() <= labels.max() < 10):
        raise DataFormatError(
            f"{path}: 'labels' must be {len(data)} class indices in 0..9, got shape "
            f"{labels.shape}. {_refetch_hint(path)}"
        )
    return data.reshape(-1, 3, _SIDE, _SIDE), labels


def _read_pickle_split(
    batches: Path, names: Sequence[str], k: int | None, split: str
) -> tuple[np.ndarray, np.ndarray]:
    """Read batches in order, keeping the first k of each class; stop once every class has k."""
    images, labels = [], []
    have = np.zeros(len(CIFAR10_CLASSES), dtype=np.int64)
    for name in names:
        data, batch_labels = _read_batch(batches / name)
        if k is not None:
            keep = _first_per_class(batch_labels, k, have)
            data, batch_labels = data[keep], batch_labels[keep]
            have += np.bincount(batch_labels, minlength=len(CIFAR10_CLASSES))
        images.append(data)
        labels.append(batch_labels)
        if k is not None and (have >= k).all():
            break
    if k is not None and (have < k).any():
        short = ", ".join(
            f"{CIFAR10_CLASSES[c]}: {have[c]}" for c in range(len(have)) if have[c] < k
        )
        raise DataFormatError(
            f"{split}_per_class={k} asks for more images than the {split} batches in {batches} "
            f"hold ({short}). Ask for at most {int(have.min())}, or None for all."
        )
    return np.concatenate(images), np.concatenate(labels)


def _first_per_class(labels: np.ndarray, k: int, have: np.ndarray) -> np.ndarray:
    """Mask of the images that still fit under k for their class, taken in file order."""
    rank = np.empty(len(labels), dtype=np.int64)
    for c in range(len(have)):
        index = np.flatnonzero(labels == c)
        rank[index] = have[c] + np.arange(len(index))
    return rank < k


# ---- image-folder layout ----------------------------------------------------------------------


def _load_image_folder(folder: Path, train_k: int | None, test_k: int | None) -> ImageData:
    # List both splits before decoding anything, so that layout mistakes surface at once.
    train_files = _first_k(_class_files(folder, "train"), train_k, folder / "train")
    test_files = _first_k(_class_files(folder, "test"), test_k, folder / "test")
    train_images, train_labels = _decode_split(train_files)
    test_images, test_labels = _decode_split(test_files)
    return _cifar10(train_images, train_labels, test_images, test_labels, f"image folder {folder}")


def _class_files(folder: Path, split: str) -> list[list[Path]]:
    """For each class in CIFAR10_CLASSES order, its image files sorted by name."""
    split_dir = folder / split
    if not split_dir.is_dir():
        raise DataFormatError(
            f"{split_dir} is missing: an image folder needs both train/<class>/ and "
            f"test/<class>/, <class> one of: {', '.join(CIFAR10_CLASSES)}."
        )
    dirs = {
        entry.name: Path(entry.path)
        for entry in os.scandir(split_dir)
        if entry.is_dir() and not entry.name.startswith(".")
    }
    unknown = sorted(set(dirs) - set(CIFAR10_CLASSES))
    if unknown:
        raise DataFormatError(
            f"{split_dir} has folders that are not CIFAR-10 classes: {', '.join(unknown)}. "
            f"Class folders must be named exactly: {', '.join(CIFAR10_CLASSES)}."
        )
    missing = [name for name in CIFAR10_CLASSES if name not in dirs]
    if missing:
        raise DataFormatError(
            f"{split_dir} lacks the class folders {', '.join(missing)}: every one of the "
            f"10 classes needs a folder of images ({', '.join(CIFAR10_CLASSES)})."
        )
    files = []
    for name in CIFAR10_CLASSES:
        images = sorted(
            entry.name
            for entry in os.scandir(dirs[name])
            if entry.is_file()
            and not entry.name.startswith(".")
            and os.path.splitext(entry.name)[1].lower() in _IMAGE_SUFFIXES
        )
        if not images:
            raise DataFormatError(
                f"{dirs[name]} holds no image files ({', '.join(sorted(_IMAGE_SUFFIXES))}): "
                "every class needs at least one image."
            )
        files.append([dirs[name] / image for image in images])
    return files


def _first_k(files: list[list[Path]], k: int | None, split_dir: Path) -> list[list[Path]]:
    if k is None:
        return files
    short = [(name, len(f)) for name, f in zip(CIFAR10_CLASSES, files, strict=True) if len(f) < k]
    if short:
        counts = ", ".join(f"{name}/ has {n}" for name, n in short)
        raise DataFormatError(
            f"{split_dir.name}_per_class={k} asks for more images than {split_dir} holds "
            f"({counts}). Ask for at most {min(n for _, n in short)}, or None for all."
        )
    return [f[:k] for f in files]


def _decode_split(files: list[list[Path]]) -> tuple[np.ndarray, np.ndarray]:
    """Decode class by class into one preallocated N x 3 x 32 x 32 array."""
    counts = [len(f) for f in files]
    images = np.empty((sum(counts), 3, _SIDE, _SIDE), dtype=np.uint8)
    paths = [path for class_files in files for path in class_files]
    for i, path in enumerate(paths):
        images[i] = _read_image(path).transpose(2, 0, 1)
    labels = np.repeat(np.arange(len(files), dtype=np.int64), counts)
    return images, labels


def _read_image(path: Path) -> np.ndarray:
    """One image file as 32 x 32 x 3 uint8 RGB."""
    try:
        with Image.open(path) as image:
            if image.size != (_SIDE, _SIDE):
                width, height = image.size
                raise DataFormatError(
                    f"{path} is {width}x{height}; CIFAR-10 images must be {_SIDE}x{_SIDE}. "
                    "Resize it or remove it."
                )
            return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    except DataFormatError:
        raise
    except _IMAGE_ERRORS as err:
        raise DataFormatError(
            f"{path} is not a readable image ({type(err).__name__}: {err}). "
            "Replace it with an intact copy or remove it."
        ) from err


def _cifar10(
    train_images: np.ndarray,
    train_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    source: str,
) -> ImageData:
    return ImageData(
        name="CIFAR-10",
        train_images=torch.from_numpy(np.ascontiguousarray(train_images)),
        train_labels=torch.from_numpy(np.ascontiguousarray(train_labels)),
        test_images=torch.from_numpy(np.ascontiguousarray(test_images)),
        test_labels=torch.from_numpy(np.ascontiguousarray(test_labels)),
        classes=CIFAR10_CLASSES,
        mean=CIFAR10_MEAN,
        std=CIFAR10_STD,
        source=source,
    )
