"""The Colab badge and setup cell that open every lab (``autograder/grading/colab.py``).

The setup cell installs what Colab lacks and nothing else: a no-op where the kit is
installed, never an install in a graded kernel. The slow test imitates Colab: a
clean virtual environment that has only what Colab preinstalls, the package
registry as the only source, the kit installed from a student bundle.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import urllib.parse
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from autograder.grading import colab
from autograder.grading.bundle import write_bundle
from autograder.grading.colab import (
    BADGE_ID,
    SETUP_ID,
    apply_colab_cells,
    colab_cell_problems,
    colab_url,
    setup_source,
)
from autograder.grading.course import REPO_ROOT, assignments, notebook_names

LABS = [(a, n) for a in assignments() for n in notebook_names(a)]
IDS = [f"{a}/{n}" for a, n in LABS]
APPLY = "python -m autograder colab {a} && python -m autograder release {a}"
_FIND_SPEC = importlib.util.find_spec


@pytest.mark.parametrize(("assignment", "name"), LABS, ids=IDS)
def test_every_lab_opens_with_the_badge_and_the_setup_cell(assignment, name):
    """Solution and release: cell 0 the badge, cell 1 the setup cell, both current."""
    problems = colab_cell_problems(REPO_ROOT / "solutions" / assignment / name)
    problems += colab_cell_problems(REPO_ROOT / "notebooks" / assignment / name, assignment)
    assert not problems, f"{problems}\nfix: {APPLY.format(a=assignment)}"


def test_badge_opens_the_student_notebook_of_the_published_repository():
    url = colab_url("day04_resnet", "resnet.ipynb")
    assert url == (
        f"https://colab.research.google.com/github/{colab.REPOSITORY}/blob/{colab.BRANCH}"
        "/notebooks/day04_resnet/resnet.ipynb"
    )
    assert re.fullmatch(r"[\w.-]+/[\w.-]+", colab.REPOSITORY)
    assert f"git+https://github.com/{colab.REPOSITORY}@{colab.BRANCH}" in setup_source()


def test_apply_is_idempotent_and_replaces_old_versions(tmp_path):
    path = tmp_path / "day04_resnet" / "resnet.ipynb"
    path.parent.mkdir()
    nb = nbformat.read(REPO_ROOT / "solutions" / "day04_resnet" / "resnet.ipynb", as_version=4)
    lab_cells = nb.cells[2:]
    # an old setup cell further down, and no badge
    old = nbformat.v4.new_code_cell("!pip install torchsummary")
    old.id = SETUP_ID
    nb.cells = [lab_cells[0], old, *lab_cells[1:]]
    nbformat.write(nb, path)

    assert apply_colab_cells(path) is True
    assert colab_cell_problems(path) == []
    applied = nbformat.read(path, as_version=4)
    assert [c.get("id") for c in applied.cells[:2]] == [BADGE_ID, SETUP_ID]
    assert [c.source for c in applied.cells[2:]] == [c.source for c in lab_cells]

    before = path.read_bytes()
    assert apply_colab_cells(path) is False
    assert path.read_bytes() == before


def _run_setup_cell(monkeypatch, missing: set[str] = frozenset(), env: dict | None = None):
    """Execute the setup cell's source here; return (printed text, pip commands run)."""
    for key in ("NBGRADER_EXECUTION", "PIP_NO_INDEX", "LABKIT_PIP_SOURCE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name in missing else _FIND_SPEC(name, *a),
    )
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kw: commands.append(command))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(setup_source(), "<setup cell>", "exec"), {"__name__": "__main__"})
    return out.getvalue(), commands


def test_setup_cell_installs_nothing_where_the_kit_is_installed(monkeypatch):
    printed, commands = _run_setup_cell(monkeypatch)
    assert commands == []
    assert "nothing to install" in printed


def test_setup_cell_installs_only_what_is_missing(monkeypatch):
    source = "cnn-labkit @ file:///somewhere/bundle"
    _, commands = _run_setup_cell(monkeypatch, {"torchsummary"})
    assert commands == [[sys.executable, "-m", "pip", "install", "--quiet", "torchsummary"]]
    _, commands = _run_setup_cell(monkeypatch, {"labkit"}, {"LABKIT_PIP_SOURCE": source})
    assert commands == [[sys.executable, "-m", "pip", "install", "--quiet", source]]


@pytest.mark.parametrize(
    "env",
    [
        {"NBGRADER_EXECUTION": "autograde"},
        {"NBGRADER_EXECUTION": "validate"},
        {"PIP_NO_INDEX": "1"},
    ],
    ids=["nbgrader-autograde", "nbgrader-validate", "sandbox"],
)
def test_graded_kernel_never_installs(monkeypatch, env):
    """Under nbgrader, or in the sandbox (PIP_NO_INDEX), a missing package stops the
    cell with a message instead of a pip run."""
    with pytest.raises(ModuleNotFoundError, match="graded or offline kernel installs nothing"):
        _run_setup_cell(monkeypatch, {"torchsummary", "labkit"}, env)


def test_sandboxed_kernel_is_told_pip_has_no_index():
    from autograder.grading.sandbox import kernel_env

    assert kernel_env()["PIP_NO_INDEX"] == "1"


# --- Colab, imitated ---------------------------------------------------------------

# What Colab preinstalls of what the kit needs (torchsummary and the kit are not there).
COLAB_PREINSTALLED = ("torch", "torchvision", "matplotlib", "numpy", "pillow", "tqdm")
COLAB_TOOLS = ("ipykernel", "pip")


def _closure(names: tuple[str, ...]) -> dict[str, metadata.Distribution]:
    """The installed distributions ``names`` need, dependencies (and the extras a
    dependency is asked for, as torch asks cuda-toolkit[cufft,...]) included."""
    found: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, str]] = set()
    todo = [(name, "") for name in names]
    while todo:
        name, extra = todo.pop()
        name = canonicalize_name(name)
        if (name, extra) in done:
            continue
        done.add((name, extra))
        try:
            dist = found.get(name) or metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional or platform-specific dependency
        found[name] = dist
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": extra}):
                todo += [(requirement.name, e) for e in ("", *requirement.extras)]
    return found


def _preinstalled_site(target: Path) -> list[str]:
    """A site folder holding only Colab's preinstalled packages (links into this
    environment): each distribution's top-level files and its metadata."""
    target.mkdir()
    dists = _closure(COLAB_PREINSTALLED + COLAB_TOOLS)
    assert "torchsummary" not in dists and "cnn-labkit" not in dists
    for dist in dists.values():
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            if top.endswith(".pth") or top.startswith("__editable__") or top == "__pycache__":
                continue
            link, source = target / top, Path(dist.locate_file(top))
            if source.exists() and not link.exists():
                link.symlink_to(source)
    return sorted(dists)


def _registry_reachable() -> str | None:
    index = os.environ.get("PIP_INDEX_URL", "https://pypi.org/simple")
    host = urllib.parse.urlparse(index).hostname or "pypi.org"
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as error:
        return f"the package registry ({host}) is not reachable: {error}"
    return None


def _execute(nb, kernel: str, cwd: Path) -> None:
    NotebookClient(
        nb, kernel_name=kernel, timeout=600, resources={"metadata": {"path": str(cwd)}}
    ).execute()


def _text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _installed(site: Path) -> set[str]:
    return {p.name for p in site.glob("*.dist-info")}


@pytest.mark.slow
def test_setup_cell_on_an_imitation_of_colab(tmp_path, monkeypatch):
    """A clean venv with only Colab's preinstalled packages; pip reaches only the
    registry; the kit comes from a student bundle through LABKIT_PIP_SOURCE. The setup
    cell installs torchsummary and the kit, every lab's imports cell then runs, and a
    second run installs nothing."""
    unreachable = _registry_reachable()
    if unreachable:
        pytest.skip(unreachable)
    bundle = tmp_path / "bundle"
    write_bundle(bundle)
    base = tmp_path / "colab-preinstalled"
    preinstalled = _preinstalled_site(base)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.check_output(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            text=True,
        ).strip()
    )
    (site / "colab-preinstalled.pth").write_text(f"{base}\n", encoding="utf-8")
    kernels = tmp_path / "jupyter" / "kernels" / "colab"
    kernels.mkdir(parents=True)
    argv = [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    spec = {"argv": argv, "display_name": "Colab imitation", "language": "python"}
    (kernels / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")

    # pip as on Colab: the registry only (no local wheels, mirrors or config files).
    for key in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX", "NBGRADER_EXECUTION"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PYTHONNOUSERSITE", "1")
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("LABKIT_PIP_SOURCE", f"cnn-labkit @ {bundle.as_uri()}")

    probe = subprocess.run(
        [str(python), "-c", "import torch, torchvision, ipykernel; import torchsummary"],
        capture_output=True,
        text=True,
    )
    assert "No module named 'torchsummary'" in probe.stderr, (preinstalled, probe.stderr)

    setup = nbformat.v4.new_code_cell(setup_source())
    imports = []
    for assignment, name in LABS:
        nb = nbformat.read(bundle / "notebooks" / assignment / name, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code" and c.get("id") != SETUP_ID]
        imports.append(nbformat.v4.new_code_cell(code[0].source))
    first = nbformat.v4.new_notebook(cells=[setup, *imports])
    _execute(first, "colab", tmp_path)
    assert "installing torchsummary, labkit, autograder" in _text(first.cells[0])
    added = _installed(site)
    names = {canonicalize_name(n.split("-")[0]) for n in added}
    assert {"torchsummary", "cnn-labkit"} <= names, added
    assert not names & set(preinstalled), f"pip replaced preinstalled {names & set(preinstalled)}"

    second = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(setup_source())])
    _execute(second, "colab", tmp_path)
    assert "nothing to install" in _text(second.cells[0])
    assert _installed(site) == added
