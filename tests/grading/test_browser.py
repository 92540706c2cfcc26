"""End to end in a real browser: JupyterLab on localhost, driven through headless
Chromium (Debian's ``chromium``, installed by ``scripts/setup.sh``) with Playwright.

A student opens Day 1, runs the setup cell (which installs nothing here), the
imports, and the first TODO's check: untouched, it says what to do; with the
function written in the editor, it passes. A screenshot is saved in pytest's tmp
folder (and copied into ``$LABKIT_ARTIFACTS`` when set). The instructor opens
nbgrader's formgrader, which lists the Day 4 assignment.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from autograder.grading.course import REPO_ROOT, make_course_root

playwright = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DAY01 = "day01_conv_arithmetic"
DAY04 = "day04_resnet"
NOTEBOOK = f"notebooks/{DAY01}/conv_arithmetic.ipynb"
STUB_MESSAGE = "raised NotImplementedError: replace the stub with your code."
PASS_LINE = "✔ conv2d_naive"
TIMEOUT_MS = 90_000

# what every test that drives chromium is marked with
BROWSER_MARKS = [
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="chromium is not installed (apt-get install chromium; scripts/setup.sh does it)",
    ),
]
pytestmark = BROWSER_MARKS


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, server: subprocess.Popen, log: Path, seconds: float = 90) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"JupyterLab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            time.sleep(0.5)
    pytest.fail(f"JupyterLab did not answer {url} in {seconds} s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def jupyterlab_server(
    root: Path, state: Path, env: dict[str, str] | None = None
) -> Iterator[tuple[str, str]]:
    """(base URL, token): JupyterLab on a free localhost port serving the course at
    ``root`` (nbgrader's formgrader included), its settings and log under ``state``."""
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        **(env or {}),
        # a student's settings and workspaces must not leak in, nor these out
        "JUPYTERLAB_SETTINGS_DIR": str(state / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(state / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(state / "runtime"),
        # nbgrader's gradebook runs the `alembic` script of its environment, as an
        # activated virtual environment provides (else formgrader answers 500)
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    # no "get notified about Jupyter news?" toast over the notebook
    news = state / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text('{"fetchNews": "false"}')
    log = state / "jupyterlab.log"
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_root=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    with log.open("w") as output:
        # nbgrader's formgrader reads nbgrader_config.py from the server's folder
        server = subprocess.Popen(
            command, cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{base}/api/status?token={token}", server, log)
        yield base, token
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


@pytest.fixture
def jupyterlab(tmp_path) -> Iterator[tuple[str, str, Path]]:
    """(base URL, token, course root): JupyterLab on a free localhost port, serving a
    course root with the Day 1 student notebook and the Day 4 source."""
    root = make_course_root(tmp_path / "course", [DAY01, DAY04])
    shutil.copytree(REPO_ROOT / "notebooks" / DAY01, root / "notebooks" / DAY01)
    with jupyterlab_server(root, tmp_path / "jupyter-state") as (base, token):
        yield base, token, root


def _solution(grade_id: str) -> str:
    nb = nbformat.read(REPO_ROOT / "solutions" / DAY01 / "conv_arithmetic.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)
    return "\n".join(line for line in cell.source.splitlines() if "SOLUTION" not in line)


def _cell(page, text: str):
    """The notebook cell whose source contains ``text``."""
    return page.locator(".jp-Notebook .jp-Cell").filter(has_text=text).first


def _run(page, cell) -> None:
    """Run ``cell`` as a student does (click into it, Shift+Enter) and wait for it.
    A key press that lands while JupyterLab is still laying the page out is lost:
    then click and press again."""
    expect = playwright.expect
    prompt = cell.locator(".jp-InputPrompt")
    before = prompt.inner_text()
    for attempt in range(3):
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        try:
            expect(prompt).not_to_have_text(before, timeout=10_000)
            break
        except AssertionError:
            if attempt == 2:
                raise
    expect(prompt).to_have_text(re.compile(r"\[\d+\]:"), timeout=TIMEOUT_MS)


def _keep(screenshot: Path) -> None:
    artifacts = os.environ.get("LABKIT_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(artifacts) / screenshot.name)


def test_student_runs_setup_and_a_check_then_formgrader_lists_day04(jupyterlab, tmp_path):
    base, token, _ = jupyterlab
    expect = playwright.expect
    expect.set_options(timeout=TIMEOUT_MS)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
            expect(page.locator(".jp-Notebook .jp-Cell").first).to_be_visible()
            # the kernel is up when the status bar reads "Python 3 (ipykernel) | Idle"
            expect(page.locator("#jp-main-statusbar")).to_contain_text("| Idle")

            setup = _cell(page, "LABKIT_PIP_SOURCE")
            _run(page, setup)
            expect(setup.locator(".jp-OutputArea")).to_contain_text("nothing to install")

            for text in ("from autograder.checks.conv import", "SLIDES_X = torch.tensor("):
                _run(page, _cell(page, text))
            stub = _cell(page, "def conv2d_naive(")
            check = _cell(page, "problems = compare_conv2d(conv2d_naive")
            _run(page, stub)
            _run(page, check)
            expect(check.locator(".jp-OutputArea")).to_contain_text(STUB_MESSAGE)

            # the student writes the function in the editor, then runs it and the check
            stub.locator(".jp-InputArea-editor").click()
            page.keyboard.press("Control+a")
            page.keyboard.insert_text(_solution("conv2d_naive"))
            _run(page, stub)
            _run(page, check)
            expect(check.locator(".jp-OutputArea")).to_contain_text(PASS_LINE)
            check.scroll_into_view_if_needed()
            screenshot = tmp_path / "day01-conv2d-check.png"
            page.screenshot(path=str(screenshot))
            assert screenshot.stat().st_size > 10_000
            _keep(screenshot)

            page.goto(f"{base}/formgrader?token={token}")
            expect(page.get_by_text(DAY04, exact=True).first).to_be_visible()
            formgrader = tmp_path / "formgrader.png"
            page.screenshot(path=str(formgrader))
            _keep(formgrader)
        finally:
            browser.close()
