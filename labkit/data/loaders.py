"""Where each dataset comes from, in a fixed order, and how a load is cut to size.

One generic ``load(spec, ...)`` serves every dataset: it finds the first source
that has the data, reads it (through the cache for image folders), keeps the
first k images of each class and pads if asked. ``load_cifar10``,
``load_mnist`` and ``load_fashion_mnist`` are that function with a spec.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from labkit.data import cache
from labkit.data.datasets import (
    CIFAR10,
    FASHION_MNIST,
    MNIST,
    DataFormatError,
    DataNotFoundError,
    DatasetSpec,
    ImageData,
)
from labkit.data.formats import (
    SPLITS,
    Arrays,
    Layout,
    Splits,
    decode_images,
    detect_layout,
    in_name_order,
    layout_hint,
    list_class_files,
    read_official,
    what_is_there,
)

ENV_DATA_ROOT = "LABKIT_DATA"
SYSTEM_DATASETS = Path("/usr/share/datasets")  # where Debian's dataset-* packages install
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


def load_cifar10(
    root: str | os.PathLike[str] | None = None,
    *,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    download: bool = True,
) -> ImageData:
    """CIFAR-10: 50,000 + 10,000 images, 3 x 32 x 32. See ``load`` for the rest."""
    return load(
        CIFAR10,
        root,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        download=download,
    )


def load_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    pad_to: int | None = None,
    download: bool = True,
) -> ImageData:
    """MNIST digits: 60,000 + 10,000 images, 1 x 28 x 28 (``pad_to=32`` for LeNet-5)."""
    return load(
        MNIST,
        root,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        pad_to=pad_to,
        download=download,
    )


def load_fashion_mnist(
    root: str | os.PathLike[str] | None = None,
    *,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    pad_to: int | None = None,
    download: bool = True,
) -> ImageData:
    """Fashion-MNIST: 60,000 + 10,000 images, 1 x 28 x 28; also from Debian's package."""
    return load(
        FASHION_MNIST,
        root,
        train_per_class=train_per_class,
        test_per_class=test_per_class,
        pad_to=pad_to,
        download=download,
    )


def load(
    spec: DatasetSpec,
    root: str | os.PathLike[str] | None = None,
    *,
    train_per_class: int | None = None,
    test_per_class: int | None = None,
    pad_to: int | None = None,
    download: bool = True,
) -> ImageData:
    """Load a dataset from the first place that has it.

    Looks at, in order: ``root``, else the folder in the dataset's environment
    variable (``LABKIT_CIFAR10``, ``LABKIT_MNIST``, ``LABKIT_FASHION_MNIST``);
    either must work if given: a bad one raises rather than falling back, so a
    grader never silently uses other data. Then ``<data root>/<dataset>``; then,
    for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``; then, if
    ``download``, a torchvision download into ``<data root>/<dataset>``. The
    data root is ``$LABKIT_DATA``, else ``data/`` in a source checkout, else
    ``~/.cache/labkit``; decoded image folders are cached in its ``cache/``.

    ``train_per_class`` / ``test_per_class``: ``None`` for every image, or ``k``
    for the first k images of each class (in file order, or files sorted by
    name), always the same ones. ``pad_to``: pad with zeros to that side length.

    Raises DataNotFoundError when no copy is found, DataFormatError when a copy is
    found but is damaged or laid out wrongly.
    """
    per_class = {
        "train": _checked_per_class("train_per_class", train_per_class),
        "test": _checked_per_class("test_per_class", test_per_class),
    }
    side = _checked_pad_to(spec, pad_to)
    return load_layout(spec, locate(spec, root, download=download), per_class, side)


def load_layout(
    spec: DatasetSpec,
    layout: Layout,
    per_class: dict[str, int | None] | None = None,
    side: int | None = None,
) -> ImageData:
    """Read what ``locate`` found: the first ``per_class[split]`` of each class, padded to side."""
    per_class = per_class or {split: None for split in SPLITS}
    if layout.kind == "images":
        splits, source = _read_image_folder(spec, layout, per_class)
    else:
        splits = {
            split: _first_per_class(spec, *arrays, per_class[split], split, layout)
            for split, arrays in read_official(spec, layout.path).items()
        }
        source = layout.describe()
    tensors = {}
    for split, (images, labels) in splits.items():
        tensors[f"{split}_images"] = torch.from_numpy(_pad(images, side or spec.side))
        tensors[f"{split}_labels"] = torch.from_numpy(np.ascontiguousarray(labels))
    return ImageData(
        name=spec.name,
        classes=spec.classes,
        mean=spec.mean,
        std=spec.std,
        source=source,
        **tensors,
    )


def _checked_per_class(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be None (all images) or an int, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be at least 1 (or None for all images), got {value}")
    return value


def _checked_pad_to(spec: DatasetSpec, pad_to: int | None) -> int:
    if pad_to is None:
        return spec.side
    if isinstance(pad_to, bool) or not isinstance(pad_to, int) or pad_to < spec.side:
        raise ValueError(
            f"pad_to must be None or an int of at least {spec.side} ({spec.name} images are "
            f"{spec.side}x{spec.side}), got {pad_to!r}"
        )
    return pad_to


def _pad(images: np.ndarray, side: int) -> np.ndarray:
    """Zero-pad to side x side, centred (an odd extra row or column goes to the bottom/right)."""
    extra = side - images.shape[-1]
    if extra == 0:
        return np.ascontiguousarray(images)
    before = extra // 2
    return np.pad(images, ((0, 0), (0, 0), (before, extra - before), (before, extra - before)))


def _first_per_class(
    spec: DatasetSpec,
    images: np.ndarray,
    labels: np.ndarray,
    k: int | None,
    split: str,
    where: Layout,
) -> Arrays:
    """The first k images of each class, in order; raises if a class has fewer."""
    if k is None:
        return images, labels
    counts = np.bincount(labels, minlength=len(spec.classes))
    _check_enough(spec, counts, k, split, where)
    rank = np.empty(len(labels), dtype=np.int64)
    for c in range(len(spec.classes)):
        index = np.flatnonzero(labels == c)
        rank[index] = np.arange(len(index))
    keep = rank < k
    return images[keep], labels[keep]


def _check_enough(
    spec: DatasetSpec, counts: Sequence[int], k: int, split: str, where: Layout
) -> None:
    short = [(name, int(n)) for name, n in zip(spec.classes, counts, strict=True) if n < k]
    if short:
        have = ", ".join(f"{name} has {n}" for name, n in short)
        raise DataFormatError(
            f"{split}_per_class={k} asks for more images than the {split} split of "
            f"{where.describe()} holds ({have}). Ask for at most {min(n for _, n in short)}, "
            "or None for all."
        )


# ---- image folders, through the cache ----------------------------------------------------------


def _read_image_folder(
    spec: DatasetSpec, layout: Layout, per_class: dict[str, int | None]
) -> tuple[Splits, str]:
    """Decode an image folder, or read it back from the cache; and say which.

    A full load writes the cache; a subset load uses it when it exists (and
    keeps it up to date) but otherwise decodes only the images it takes.
    """
    folder = layout.path
    # List both splits before decoding anything, so that layout mistakes surface at once.
    listing = {split: list_class_files(spec, folder, split) for split in SPLITS}
    for split in SPLITS:
        if per_class[split] is not None:
            counts = [len(names) for _, names in listing[split]]
            _check_enough(spec, counts, per_class[split], split, layout)
    path = cache.cache_path(data_root()[0] / "cache", spec, folder)
    full = all(k is None for k in per_class.values())
    if not full and not path.exists():
        splits = {
            split: decode_images(spec, in_name_order(listing[split], per_class[split]))
            for split in SPLITS
        }
        return splits, layout.describe()
    fp = cache.fingerprint(folder, [entry for split in SPLITS for entry in listing[split]])
    splits = cache.read(path, spec, fp)
    source = f"{layout.describe()} (cached)"
    if splits is None:
        splits = {split: decode_images(spec, in_name_order(listing[split])) for split in SPLITS}
        cache.write(path, spec, fp, splits)
        source = layout.describe()
    cut = {
        split: _first_per_class(spec, *splits[split], per_class[split], split, layout)
        for split in SPLITS
    }
    return cut, source


# ---- where to look ----------------------------------------------------------------------------


def data_root() -> tuple[Path, str]:
    """The data root and, for messages, why it is that one."""
    env = os.environ.get(ENV_DATA_ROOT, "").strip()
    if env:
        return Path(env).expanduser(), f"data root from {ENV_DATA_ROOT}"
    # In a source checkout data/ sits next to labkit/ and is git-ignored; an installed
    # package has no such folder, so it falls back to a per-user cache.
    checkout = Path(__file__).resolve().parents[2]
    move = f"set {ENV_DATA_ROOT} to move it"
    if (checkout / "data").is_dir() and (checkout / "pyproject.toml").is_file():
        return checkout / "data", f"data root: this checkout's data/; {move}"
    return Path.home() / ".cache" / "labkit", f"default data root; {move}"


def locate(
    spec: DatasetSpec, root: str | os.PathLike[str] | None = None, *, download: bool = True
) -> Layout:
    """The first source that has the dataset (downloading if need be), or raise."""
    root_dir, root_reason = data_root()
    local = root_dir / spec.key

    explicit = _explicit_folder(spec, root)
    if explicit is not None:
        return _explicit_layout(spec, *explicit, local)

    tried = [f"{spec.env_var}: not set"]
    layout = detect_layout(spec, local)
    if layout is not None:
        return layout
    tried.append(f"{local} ({root_reason}): {what_is_there(spec, local)}")

    if spec.system_folder:
        system = SYSTEM_DATASETS / spec.system_folder
        layout = detect_layout(spec, system)
        if layout is not None:
            return Layout(layout.kind, layout.path, f"{layout.describe()} ({spec.debian_package})")
        tried.append(f"{system} (Debian package {spec.debian_package}): not installed")

    if not download:
        tried.append("download: skipped (download=False)")
    else:
        try:
            return _download(spec, local)
        except _DOWNLOAD_ERRORS as err:
            tried.append(f"torchvision download to {local}: failed, {_describe_error(err)}")
    raise DataNotFoundError(
        f"{spec.name} was not found. Tried:\n"
        + "".join(f"  - {line}\n" for line in tried)
        + ways_to_provide(spec, local)
    )


def _explicit_folder(
    spec: DatasetSpec, root: str | os.PathLike[str] | None
) -> tuple[Path, str] | None:
    """The folder the caller named, and how it was named (for messages), or None."""
    if root is not None:
        return Path(root).expanduser(), f"root={os.fspath(root)!r}"
    env = os.environ.get(spec.env_var, "").strip()
    if env:
        return Path(env).expanduser(), f"{spec.env_var}={env}"
    return None


def _explicit_layout(spec: DatasetSpec, folder: Path, given_as: str, local: Path) -> Layout:
    """The layout of a folder the user asked for, or raise: falling back would hide a mistake."""
    if not folder.exists():
        raise DataNotFoundError(
            f"{given_as}: {folder} does not exist. Point it at an existing {spec.name} folder, "
            f"or drop it to use {local}.\n" + ways_to_provide(spec, local)
        )
    layout = detect_layout(spec, folder)
    if layout is not None:
        return layout
    hint = ""
    if folder.is_file() and folder.name.endswith((".tar.gz", ".tgz", ".tar", ".zip")):
        hint = (
            f" Import the archive once with: python -m labkit.data prepare {spec.key} "
            f"--from {folder} (or unpack it and point at the unpacked folder)."
        )
    elif any((folder / name).is_dir() for name in spec.folders):
        hint = f" This looks like one split: point at {folder.parent} (with train/, test/)."
    raise DataFormatError(
        f"{given_as}: {folder} {what_is_there(spec, folder)}.{hint} "
        f"Expected a folder that is or holds {layout_hint(spec)}."
    )


def ways_to_provide(spec: DatasetSpec, local: Path) -> str:
    lines = [
        f"(a) be online: {spec.loader} then downloads it with torchvision "
        f"(~{spec.download_size}) to {local};",
        f"(b) set {spec.env_var} to a folder holding {layout_hint(spec)};",
        f"(c) put such a folder at {local} (set {ENV_DATA_ROOT} to move the data root), or "
        f"import an archive or folder once with: python -m labkit.data prepare {spec.key} "
        "--from PATH;",
    ]
    if spec.system_folder:
        lines.append(
            f"(d) install the Debian package: apt-get install {spec.debian_package} "
            f"(files in {SYSTEM_DATASETS / spec.system_folder});"
        )
    return (
        f"Ways to provide {spec.name}:\n"
        + "".join(f"  {line}\n" for line in lines)
        + "See data/README.md."
    )


def _describe_error(err: BaseException) -> str:
    if isinstance(err, TimeoutError):
        return f"timed out after {_DOWNLOAD_TIMEOUT_S:g} s without data (offline?)"
    if isinstance(err, ImportError):
        return f"torchvision is not importable ({err})"
    return f"{type(err).__name__}: {err}"


# ---- download -----------------------------------------------------------------------------------


def _download(spec: DatasetSpec, local: Path) -> Layout:
    """Download with torchvision into a scratch folder; move only a verified copy into place.

    torchvision checks the files' checksums before it returns, so what gets moved
    is complete. Whatever happens, the scratch folder (and any half-downloaded
    archive) is removed, so nothing partial is left to be mistaken for data.
    """
    created = not local.exists()
    local.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".download-", dir=local))
    old_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        import torchvision.datasets  # slow to import, and only needed here

        getattr(torchvision.datasets, spec.torchvision_class)(
            str(scratch), train=True, download=True
        )
        top = spec.torchvision_folder.split("/")[0]
        (scratch / top).replace(local / top)
        return Layout(
            spec.layout,
            local / spec.torchvision_folder,
            f"torchvision download in {local / spec.torchvision_folder}",
        )
    finally:
        socket.setdefaulttimeout(old_timeout)
        shutil.rmtree(scratch, ignore_errors=True)
        if created and not any(local.iterdir()):
            local.rmdir()
