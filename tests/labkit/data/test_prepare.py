"""``python -m labkit.data prepare`` (labkit.data.prepare): importing and checking a copy.

Archives and folders imported into the data root (or refused, leaving nothing behind),
the copy checked in place, official checksums, --force, --root and ``all``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import tarfile
import urllib.error
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from labkit.data import MNIST, load_cifar10, load_mnist
from labkit.data.formats import Layout
from labkit.data.prepare import checksum_problems, main
from tests.labkit.data.builders import (
    cache_files,
    expected_images,
    idx_bytes,
    nchw,
    write_idx_layout,
    write_image_folder,
    write_pickle_layout,
)


def _tar(folder: Path, archive: Path, top: str = ".") -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for child in sorted(folder.iterdir()):
            tar.add(child, arcname=f"{top}/{child.name}")
    return archive


def _staging_left(data_root: Path) -> list[str]:
    return [p.name for p in data_root.iterdir() if ".import-" in p.name]


def test_prepare_imports_an_archive_and_builds_the_cache(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_image_folder(tmp_path / "c10", train=3, test=2)
    archive = _tar(tmp_path / "c10", tmp_path / "cifar10-png.tar.gz")

    assert main(["prepare", "cifar10", "--from", str(archive), "--allow-subset"]) == 0
    out = capsys.readouterr().out
    assert f"CIFAR-10: image folder {isolated_env / 'cifar10'} (cached)" in out
    assert "train: 30 images (official 50,000): airplane 3, automobile 3" in out
    assert "test:  20 images (official 10,000)" in out
    assert "class cat has 3 images, the official release 5,000 (accepted" in out
    assert "cache: decoded images in" in out and out.rstrip().endswith("as allowed)")
    assert sorted(p.name for p in isolated_env.iterdir()) == ["cache", "cifar10"]
    data = load_cifar10(download=False)
    assert data.source == f"image folder {isolated_env / 'cifar10'} (cached)"
    assert torch.equal(data.train_images, expected_images(written, "train"))


def test_prepare_imports_a_zip_with_a_wrapping_folder(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_image_folder(tmp_path / "mnist-png", train=2, test=1, spec=MNIST)
    archive = tmp_path / "mnist.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for path in sorted((tmp_path / "mnist-png").rglob("*.png")):
            z.write(path, path.relative_to(tmp_path))
    assert main(["prepare", "mnist", "--from", str(archive), "--allow-subset"]) == 0
    assert torch.equal(
        load_mnist(download=False).train_images, expected_images(written, "train", spec=MNIST)
    )
    assert "MNIST: image folder" in capsys.readouterr().out


def test_prepare_imports_torchvisions_archive_layout(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = write_pickle_layout(tmp_path / "official")
    archive = _tar(tmp_path / "official", tmp_path / "cifar-10-python.tar.gz")
    assert main(["prepare", "cifar10", "--from", str(archive), "--allow-subset"]) == 0
    out = capsys.readouterr().out
    assert "data_batch_1 has md5" in out and "(accepted: --allow-subset)" in out
    assert "md5:   all" not in out
    data = load_cifar10(download=False)
    assert (
        data.source
        == f"torchvision pickle files in {isolated_env / 'cifar10' / 'cifar-10-batches-py'}"
    )
    assert torch.equal(data.test_images, torch.from_numpy(written["test_x"]))


def test_prepare_refuses_a_partial_copy_unless_allowed(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "c10", train=2, test=1)
    assert main(["prepare", "cifar10", "--from", str(tmp_path / "c10")]) == 1
    err = capsys.readouterr().err
    assert "CIFAR-10: FAILED" in err and "differs from the official release" in err
    assert "train: class airplane has 2 images, the official release 5,000" in err
    assert "--allow-subset" in err
    assert not (isolated_env / "cifar10").exists() and _staging_left(isolated_env) == []
    assert cache_files(isolated_env) == []  # the staged copy's cache went with it


def test_prepare_with_a_truncated_archive_fails_and_imports_nothing(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "c10", train=20, test=2)
    archive = _tar(tmp_path / "c10", tmp_path / "cifar10.tar.gz")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    assert main(["prepare", "cifar10", "--from", str(archive), "--allow-subset"]) == 1
    err = capsys.readouterr().err
    assert f"{archive} could not be unpacked" in err and "Copy it again" in err
    assert sorted(p.name for p in isolated_env.iterdir()) == []


def test_prepare_names_a_bad_image_and_imports_nothing(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_image_folder(tmp_path / "c10", train=2, test=1)
    (tmp_path / "c10" / "test" / "frog" / "0000.png").write_bytes(b"\x89PNG cut short")
    assert main(["prepare", "cifar10", "--from", str(tmp_path / "c10"), "--allow-subset"]) == 1
    assert "frog/0000.png is not a readable image" in capsys.readouterr().err
    assert not (isolated_env / "cifar10").exists() and _staging_left(isolated_env) == []


def test_prepare_refuses_a_folder_without_a_layout(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("hi")
    assert main(["prepare", "fashion-mnist", "--from", str(tmp_path / "stuff")]) == 1
    err = capsys.readouterr().err
    assert "holds no Fashion-MNIST layout" in err and "notes.txt" in err and "T-shirt_top" in err


def test_prepare_replaces_an_existing_copy_only_with_force(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_layout(isolated_env / "mnist", seed=1)
    new = write_idx_layout(tmp_path / "new", gz=True, seed=2)
    args = ["prepare", "mnist", "--from", str(tmp_path / "new"), "--allow-subset"]
    assert main(args) == 1
    assert "already exists. Pass --force" in capsys.readouterr().err
    assert main([*args, "--force"]) == 0
    assert torch.equal(load_mnist(download=False).test_images, nchw(new["test_x"]))
    assert sorted(p.name for p in isolated_env.iterdir()) == ["mnist"]


def test_prepare_checks_the_copy_in_place_and_reports_checksums(
    isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_pickle_layout(isolated_env / "cifar10")
    assert main(["prepare", "cifar10", "--no-download"]) == 1
    err = capsys.readouterr().err
    assert (
        "data_batch_1 has md5" in err
        and "the official file c99cafc152244af753f735de768cd75f" in err
    )
    assert main(["prepare", "cifar10", "--no-download", "--allow-subset"]) == 0
    out = capsys.readouterr().out
    assert "CIFAR-10: torchvision pickle files in" in out and "train: 150 images" in out


def test_checksums_of_official_files_are_compared_uncompressed(tmp_path: Path) -> None:
    write_idx_layout(tmp_path, gz=True)
    md5 = {
        name: hashlib.md5(gzip.decompress((tmp_path / f"{name}.gz").read_bytes()))
        for name, _ in MNIST.md5
    }
    spec = replace(MNIST, md5=tuple((name, digest.hexdigest()) for name, digest in md5.items()))
    layout = Layout("idx", tmp_path)
    assert checksum_problems(spec, layout) == []
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(20, np.uint8)))
    )
    (problem,) = checksum_problems(spec, layout)
    assert problem.startswith("t10k-labels-idx1-ubyte.gz has md5")
    assert checksum_problems(spec, Layout("images", tmp_path)) == []


def test_prepare_offline_without_a_copy_fails_with_every_way(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import torchvision.datasets

    def offline(root: str, **kwargs: object) -> None:
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    assert main(["prepare", "cifar10"]) == 1
    err = capsys.readouterr().err
    assert "CIFAR-10 was not found" in err and "URLError" in err and "--from PATH" in err


def test_prepare_root_option_sets_the_data_root_for_the_run_only(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_layout(tmp_path / "elsewhere" / "fashion-mnist")
    root = str(tmp_path / "elsewhere")
    assert main(["prepare", "fashion-mnist", "--root", root, "--allow-subset"]) == 0
    assert f"IDX files in {tmp_path / 'elsewhere' / 'fashion-mnist'}" in capsys.readouterr().out
    assert os.environ["LABKIT_DATA"] == str(isolated_env)


def test_prepare_all_runs_each_dataset_and_from_needs_one(
    tmp_path: Path, isolated_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_idx_layout(isolated_env / "mnist")
    assert main(["prepare", "all", "--no-download", "--allow-subset"]) == 1
    captured = capsys.readouterr()
    assert "MNIST: IDX files in" in captured.out
    assert "CIFAR-10: FAILED" in captured.err and "Fashion-MNIST: FAILED" in captured.err
    with pytest.raises(SystemExit) as usage:
        main(["prepare", "all", "--from", str(tmp_path)])
    assert usage.value.code == 2


@pytest.mark.slow
def test_the_prepare_script_fails_on_cifar10_and_only_warns_on_mnist(tmp_path: Path) -> None:
    """scripts/prepare-data.sh imports CIFAR-10 and MNIST side by side, still shows each
    one's lines whole, and fails only when CIFAR-10 cannot be imported."""
    repo = Path(__file__).resolve().parents[3]
    if not (repo / ".venv" / "bin" / "python").exists():
        pytest.skip("the script runs the kit's .venv (make setup)")
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    write_image_folder(tmp_path / "c10", train=20, test=2)
    cifar10 = _tar(tmp_path / "c10", datasets / "cifar10-jpg.tar.gz")
    mnist = datasets / "mnist-png.tar.gz"
    mnist.write_bytes(cifar10.read_bytes()[:300])  # cut off
    env = {k: v for k, v in os.environ.items() if not k.startswith("LABKIT_")}
    env.update(DATASETS=str(datasets), LABKIT_DATA=str(tmp_path / "data"))

    def run() -> subprocess.CompletedProcess[str]:
        script = ["bash", str(repo / "scripts" / "prepare-data.sh")]
        return subprocess.run(script, env=env, capture_output=True, text=True, timeout=300)

    both = run()  # a whole CIFAR-10 of 200 images is not the official release
    assert both.returncode == 1, both.stdout + both.stderr
    out = both.stdout + both.stderr
    assert "CIFAR-10 in" in out and "differs from the official release" in out
    assert f"{mnist} could not be unpacked" in out and "MNIST: not prepared" in out
    assert out.index("CIFAR-10: importing") < out.index("differs") < out.index("MNIST: importing")

    cifar10.unlink()
    only_mnist = run()
    assert only_mnist.returncode == 0, only_mnist.stdout + only_mnist.stderr
    assert "CIFAR-10: none found" in only_mnist.stdout
    assert "MNIST: not prepared" in only_mnist.stdout
