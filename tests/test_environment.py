"""The ways of installing the kit agree with each other."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_requirements() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    everything = project["dependencies"] + extras["grading"] + extras["dev"]
    return {r for r in everything if not r.startswith("cnn-labkit")}


def _conda_pip_requirements() -> set[str]:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip = next(d["pip"] for d in environment["dependencies"] if isinstance(d, dict))
    return {r for r in pip if not r.startswith("-e")}


def test_environment_yml_lists_pyprojects_dependencies():
    assert _conda_pip_requirements() == _pyproject_requirements()


def test_required_packages_are_declared():
    names = {r.split(">")[0].split("=")[0].split("[")[0] for r in _pyproject_requirements()}
    required = {"torch", "torchvision", "torchsummary", "matplotlib", "jupyterlab", "nbgrader"}
    assert required | {"nbval"} <= names


def test_constraints_pin_a_torchvision_that_loads_with_its_torch():
    pins = dict(
        line.split("==")
        for line in (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith("#")
    )
    # torchvision 0.29.x is built against torch 2.15.x (0.28 against 2.13, and so on).
    assert pins["torchvision"].startswith("0.29.") and pins["torch"].startswith("2.15.")


def test_torchvision_loads_its_compiled_operators():
    """A torchvision built for another torch fails here: "torchvision::nms does not exist"."""
    import torch
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.9]])
    keep = torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), iou_threshold=0.5)
    assert keep.tolist() == [0]


def _pins() -> dict[str, str]:
    lines = (ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines()
    return dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))


def test_constraints_pin_versions_inside_pyprojects_ranges():
    """What CI installs (constraints.txt) is what pyproject.toml and environment.yml allow."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    pins = {canonicalize_name(name): version for name, version in _pins().items()}
    outside = [
        f"{requirement} excludes the pinned {pins[canonicalize_name(requirement.name)]}"
        for requirement in map(Requirement, _pyproject_requirements())
        if canonicalize_name(requirement.name) in pins
        and not requirement.specifier.contains(pins[canonicalize_name(requirement.name)])
    ]
    assert not outside, outside


def test_environment_yml_python_meets_requires_python():
    from packaging.specifiers import SpecifierSet

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    python = next(
        d.split("=", 1)[1]
        for d in environment["dependencies"]
        if isinstance(d, str) and d.startswith("python=")
    )
    assert SpecifierSet(project["requires-python"]).contains(python)


def test_browser_test_driver_is_declared():
    """tests/test_browser.py drives Debian's chromium with Playwright (scripts/setup.sh)."""
    assert "playwright" in _pins() and "nbstripout" in _pins()
    assert "chromium" in (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")
