"""First load against cached load of a whole image-folder dataset, side by side, in one run.

    .venv/bin/python scripts/bench_data.py [--dataset cifar10|mnist] [--source FOLDER] [--repeat N]

The source is ``--source``, else ``$LABKIT_CIFAR10`` (``$LABKIT_MNIST``), else
``/tmp/cifar`` (``/tmp/mnist``) when it exists, else the archive in
``$DATASETS`` (the folder ``scripts/prepare-data.sh`` imports from) unpacked into a
temporary folder. Both loads use a fresh, temporary data root, so the first one decodes
every image and writes the cache, and the next ones read it back.
Timings are wall clock, in this process.
"""

from __future__ import annotations

import argparse
import os
import tarfile
import tempfile
import time
from pathlib import Path

from labkit.data import DATASETS, load

ROOT = Path(__file__).resolve().parent.parent
ARCHIVES = {"cifar10": "cifar10-jpg.tar.gz", "mnist": "mnist-png.tar.gz"}


def find_source(key: str, given: Path | None, scratch: Path) -> Path:
    if given is not None:
        return given
    env = os.environ.get(DATASETS[key].env_var, "").strip()
    if env:
        return Path(env)
    unpacked = Path("/tmp") / key.replace("10", "")  # /tmp/cifar, /tmp/mnist
    if (unpacked / "train").is_dir():
        return unpacked
    archive = Path(os.environ.get("DATASETS", ROOT.parent / "shared" / "datasets")) / ARCHIVES[key]
    if not archive.is_file():
        raise SystemExit(f"no {key} images: pass --source FOLDER (or set the env var)")
    print(f"unpacking {archive} ...")
    with tarfile.open(archive) as tar:
        tar.extractall(scratch, filter="data")
    return scratch


def timed(key: str, source: Path, **subset: int) -> tuple[float, str, int]:
    start = time.perf_counter()
    data = load(DATASETS[key], source, download=False, **subset)
    seconds = time.perf_counter() - start
    return seconds, data.source, len(data.train_labels) + len(data.test_labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=sorted(ARCHIVES), default="cifar10")
    parser.add_argument("--source", type=Path)
    parser.add_argument("--repeat", type=int, default=3, help="cached loads to time (best kept)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch, tempfile.TemporaryDirectory() as data_root:
        source = find_source(args.dataset, args.source, Path(scratch))
        os.environ["LABKIT_DATA"] = data_root  # an empty cache: the first load decodes
        first, first_source, count = timed(args.dataset, source)
        cached = [timed(args.dataset, source) for _ in range(args.repeat)]
        best, cached_source, _ = min(cached)
        subset, _, subset_count = timed(
            args.dataset, source, train_per_class=300, test_per_class=100
        )

    rows = [
        (f"first load, {count:,} images (decode + write cache)", first, first_source),
        (f"cached load, {count:,} images (best of {args.repeat})", best, cached_source),
        (f"cached subset, {subset_count:,} images (300 + 100 per class)", subset, ""),
    ]
    print(f"{args.dataset} from {source}")
    for label, seconds, note in rows:
        print(f"  {label:52} {seconds:7.2f} s  {note}")
    print(f"  {'first / cached':52} {first / best:7.1f} x")


if __name__ == "__main__":
    main()
