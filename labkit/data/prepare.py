"""Get a dataset onto a machine once, check it, and say what was found.

    python -m labkit.data prepare {cifar10,mnist,fashion-mnist,all} [--from PATH] [--root DIR]

For a classroom or a grading server without network. With ``--from``, an
archive (``.tar.gz``, ``.tgz``, ``.tar``, ``.zip``) or folder in any layout the
loaders read is unpacked or copied next to ``<data root>/<dataset>``, loaded
in full (every file decoded), checked, and only then renamed into place, so a
failed import leaves nothing behind. Without ``--from`` it checks the copy the
loader would use, downloading it when there is none and the machine is online.

The checks: images per class and split against the official release, and the
md5 of the official files when the copy is made of them (CIFAR-10's pickles,
the IDX files; an image folder has no official checksums). A copy that differs
from the official release fails unless ``--allow-subset`` says it is meant to.
Loading also builds the decoded-image cache, so the labs' first load is fast.
Exit status: 0 when every dataset passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from labkit.data import cache
from labkit.data.datasets import (
    DATASETS,
    DataFormatError,
    DataNotFoundError,
    DatasetSpec,
    ImageData,
)
from labkit.data.formats import (
    Layout,
    detect_layout,
    idx_file,
    layout_hint,
    read_idx_bytes,
    what_is_there,
)
from labkit.data.loaders import ENV_DATA_ROOT, data_root, load_layout, locate

_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz")
_ARCHIVE_ERRORS = (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError)


class PrepareError(Exception):
    """A dataset could not be prepared; the message says why and what to do."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m labkit.data",
        description="Prepare the labs' datasets on this machine (see data/README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    prep = commands.add_parser(
        "prepare", help="import or download a dataset, check it and report what was found"
    )
    prep.add_argument("dataset", choices=[*DATASETS, "all"])
    prep.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="PATH",
        help="an archive (.tar.gz, .tgz, .tar, .zip) or folder to import into the data root",
    )
    prep.add_argument(
        "--root",
        type=Path,
        help=f"the data root (default: ${ENV_DATA_ROOT}, else data/ in a checkout, "
        "else ~/.cache/labkit)",
    )
    prep.add_argument("--force", action="store_true", help="with --from: replace an existing copy")
    prep.add_argument(
        "--allow-subset",
        action="store_true",
        help="accept a copy that differs from the official release (fewer images, other files)",
    )
    prep.add_argument("--no-download", action="store_true", help="never try to download")
    args = parser.parse_args(argv)
    if args.source is not None and args.dataset == "all":
        parser.error("--from imports one dataset: name it instead of 'all'")

    old_root = os.environ.get(ENV_DATA_ROOT)
    if args.root is not None:
        os.environ[ENV_DATA_ROOT] = str(args.root)
    try:
        failed = 0
        specs = DATASETS.values() if args.dataset == "all" else [DATASETS[args.dataset]]
        for spec in specs:
            try:
                print(
                    prepare(
                        spec,
                        args.source,
                        force=args.force,
                        allow_subset=args.allow_subset,
                        download=not args.no_download,
                    )
                )
            except (PrepareError, DataNotFoundError, DataFormatError) as err:
                failed += 1
                print(f"{spec.name}: FAILED\n{err}\n", file=sys.stderr)
        return 1 if failed else 0
    finally:
        if old_root is None:
            os.environ.pop(ENV_DATA_ROOT, None)
        else:
            os.environ[ENV_DATA_ROOT] = old_root


def prepare(
    spec: DatasetSpec,
    source: Path | None = None,
    *,
    force: bool = False,
    allow_subset: bool = False,
    download: bool = True,
) -> str:
    """Import (from ``source``) or locate the dataset, check it; the report, or raise."""
    if source is not None:
        layout, data, problems = _import(spec, source, force=force, allow_subset=allow_subset)
    else:
        layout = locate(spec, download=download)
        data = load_layout(spec, layout)
        problems = _check(spec, layout, data, allow_subset, str(layout.path))
    return report(spec, layout, data, *problems)


def _check(
    spec: DatasetSpec, layout: Layout, data: ImageData, allow_subset: bool, where: str
) -> tuple[list[str], list[str]]:
    """How the counts and the checksums differ from the official release; raises unless
    that is allowed."""
    counts, checksums = count_problems(spec, data), checksum_problems(spec, layout)
    if (counts or checksums) and not allow_subset:
        raise PrepareError(
            f"{spec.name} in {where} differs from the official release:\n"
            + "".join(f"  - {p}\n" for p in counts + checksums)
            + "Copy or download it again; or, if this copy is meant to differ (a classroom "
            "subset, generated stand-ins), pass --allow-subset."
        )
    return counts, checksums


# ---- import -----------------------------------------------------------------------------------


def _import(
    spec: DatasetSpec, source: Path, *, force: bool, allow_subset: bool
) -> tuple[Layout, ImageData, tuple[list[str], list[str]]]:
    """Unpack or copy ``source`` beside the target, check it, then rename it into place."""
    root = data_root()[0]
    target = root / spec.key
    if not source.exists():
        raise PrepareError(f"{source} does not exist: name an archive or folder to import.")
    if target.exists() and not force:
        raise PrepareError(
            f"{target} already exists. Pass --force to replace it with {source}, or drop "
            "--from to check the copy that is there."
        )
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.key}.import-", dir=root))
    cache_dir = root / "cache"
    staged_cache = None
    try:
        _unpack(source, staging)
        content = _content_root(spec, source, staging)
        layout = detect_layout(spec, content)
        assert layout is not None  # _content_root checked it
        staged_cache = cache.cache_path(cache_dir, spec, layout.path)
        data = load_layout(spec, layout)  # decodes every file: finds any bad one
        problems = _check(spec, layout, data, allow_subset, str(source))
        content.chmod(0o755)  # mkdtemp made it private; others read the data root too
        if target.exists():  # --force: move the old copy aside, to delete once the new is in
            target.rename(staging / ".replaced")
        content.rename(target)
        if staged_cache.exists():  # same files, same fingerprint: the cache moves along
            staged_cache.replace(cache.cache_path(cache_dir, spec, target))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if staged_cache is not None:
            staged_cache.unlink(missing_ok=True)
    layout = detect_layout(spec, target)
    assert layout is not None
    return layout, load_layout(spec, layout), problems


def _unpack(source: Path, staging: Path) -> None:
    name = source.name.lower()
    try:
        if source.is_dir():
            shutil.copytree(source, staging, dirs_exist_ok=True)
        elif name.endswith(".zip") or zipfile.is_zipfile(source):
            with zipfile.ZipFile(source) as archive:
                archive.extractall(staging)
        elif name.endswith(_TAR_SUFFIXES) or tarfile.is_tarfile(source):
            with tarfile.open(source) as archive:
                if hasattr(tarfile, "data_filter"):
                    archive.extractall(staging, filter="data")
                else:  # Python < 3.10.12 / 3.11.4: refuse members that would land outside
                    for member in archive.getmembers():
                        if member.name.startswith("/") or ".." in Path(member.name).parts:
                            raise PrepareError(f"{source}: unsafe member {member.name!r}")
                    archive.extractall(staging)
        else:
            raise PrepareError(
                f"{source} is neither a folder nor an archive (.tar.gz, .tgz, .tar, .zip)."
            )
    except _ARCHIVE_ERRORS as err:
        raise PrepareError(
            f"{source} could not be unpacked ({type(err).__name__}: {err}): it is truncated "
            "or damaged, or the disk is full. Copy it again and rerun; nothing was imported."
        ) from err


def _content_root(spec: DatasetSpec, source: Path, staging: Path) -> Path:
    """The unpacked folder that holds the dataset: the staging folder or its one subfolder."""
    if detect_layout(spec, staging) is not None:
        return staging
    entries = [p for p in staging.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and detect_layout(spec, entries[0]) is not None:
        return entries[0]
    raise PrepareError(
        f"{source} holds no {spec.name} layout: once unpacked it "
        f"{what_is_there(spec, staging)}. Expected {layout_hint(spec)}."
    )


# ---- checks -----------------------------------------------------------------------------------


def count_problems(spec: DatasetSpec, data: ImageData) -> list[str]:
    """How the images per class and split differ from the official release ([] if not)."""
    problems = []
    for split, labels, official in (
        ("train", data.train_labels, spec.train_counts),
        ("test", data.test_labels, spec.test_counts),
    ):
        counts = np.bincount(labels.numpy(), minlength=len(spec.classes))
        for name, n, expected in zip(spec.classes, counts, official, strict=True):
            if n != expected:
                problems.append(
                    f"{split}: class {name} has {n:,} images, the official release {expected:,}"
                )
    return problems


def checksum_problems(spec: DatasetSpec, layout: Layout) -> list[str]:
    """Official files whose md5 differs ([] for an image folder: it has no official md5)."""
    if layout.kind == "images":
        return []
    problems = []
    for name, expected in spec.md5:
        if spec.layout == "idx":
            path = idx_file(layout.path, name)
            content = read_idx_bytes(spec, path) if path else None
        else:
            path = layout.path / name
            content = path.read_bytes() if path.is_file() else None
        if path is None or content is None:
            problems.append(f"{name} is missing")
            continue
        actual = hashlib.md5(content).hexdigest()
        if actual != expected:
            owner = [s.name for s in DATASETS.values() if (name, actual) in s.md5]
            also = f" (it is {owner[0]}'s file)" if owner else ""
            problems.append(f"{path.name} has md5 {actual}, the official file {expected}{also}")
    return problems


def report(
    spec: DatasetSpec, layout: Layout, data: ImageData, counts: list[str], checksums: list[str]
) -> str:
    """What was found, for an instructor to read, with the differences that were allowed."""
    lines = [f"{spec.name}: {data.source}"]
    for split, labels, official in (
        ("train", data.train_labels, spec.train_counts),
        ("test", data.test_labels, spec.test_counts),
    ):
        found = np.bincount(labels.numpy(), minlength=len(spec.classes))
        per_class = ", ".join(f"{c} {n:,}" for c, n in zip(spec.classes, found, strict=True))
        lines.append(
            f"  {split + ':':6} {len(labels):,} images (official {sum(official):,}): {per_class}"
        )
    if layout.kind == "images":
        lines.append("  md5:   none to check (an image folder has no official checksums)")
        path = cache.cache_path(data_root()[0] / "cache", spec, layout.path)
        state = f"decoded images in {path}" if path.exists() else "none (not writable?)"
        lines.append(f"  cache: {state}")
    elif not checksums:
        lines.append(f"  md5:   all {len(spec.md5)} official files match")
    problems = counts + checksums
    lines += [f"  note:  {p} (accepted: --allow-subset)" for p in problems]
    lines.append("  OK" + (" (differs from the official release, as allowed)" if problems else ""))
    return "\n".join(lines) + "\n"
