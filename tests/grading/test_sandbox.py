"""The grading sandbox binds only what a lab needs, and no process outlives its cell."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from autograder.grading import sandbox

needs_bwrap = pytest.mark.skipif(
    sandbox.available() is not None, reason=f"no grading sandbox here: {sandbox.available()}"
)


def _mounts(command: list[str]) -> list[tuple[str, str, str]]:
    """(option, source, destination) of each bind, and ("--tmpfs", "", destination)."""
    found = []
    for index, word in enumerate(command):
        if word in ("--ro-bind", "--bind", "--dev-bind", "--ro-bind-try", "--bind-try"):
            found.append((word, command[index + 1], command[index + 2]))
        elif word == "--tmpfs":
            found.append((word, "", command[index + 1]))
    return found


@pytest.fixture
def runtime(tmp_path) -> Path:
    """A runtime folder with an ipc connection file in it, as nbclient writes them."""
    folder = tmp_path / "runtime"
    folder.mkdir()
    info = {"transport": "ipc", "ip": str(folder / "kernel"), "shell_port": 1, "iopub_port": 2}
    info.update(stdin_port=3, control_port=4, hb_port=5, key="k", signature_scheme="hmac-sha256")
    (folder / "kernel-1.json").write_text(json.dumps(info), encoding="utf-8")
    return folder


def test_nothing_of_the_machine_is_bound_but_what_a_lab_needs(tmp_path, runtime):
    workdir = tmp_path / "autograded" / "ada" / "day00"
    workdir.mkdir(parents=True)
    (workdir / "data.csv").write_text("1,2\n", encoding="utf-8")
    readable = [str(p) for p in sandbox._readable_paths()]
    config = {"hidden": [str(tmp_path)], "readable": readable}
    connection = str(runtime / "kernel-1.json")
    command = sandbox.bwrap_command(config, workdir, ["python"], {}, connection_file=connection)
    mounts = _mounts(command)
    allowed = {*sandbox.SYSTEM_PATHS, *sandbox.ETC_PATHS, *readable, connection}
    allowed.add(str(workdir / "data.csv"))
    assert {source for option, source, _ in mounts if source} <= allowed
    # nothing of the grader's disk is writable: every writable place is a tmpfs
    assert not [m for m in mounts if m[0] in ("--bind", "--dev-bind", "--bind-try")]
    assert ("--tmpfs", "", str(runtime)) in mounts  # where the kernel binds its sockets
    assert f"--size {sandbox.SOCKETS_BYTES} --tmpfs {runtime}" in " ".join(command)
    assert "/" not in {source for _, source, _ in mounts}


def test_mounts_are_made_outer_folders_first_and_hidden_wins_at_the_same_place(tmp_path):
    config = {
        "readable": ["/srv/course/venv", "/opt/data", "/opt/env"],
        "hidden": ["/srv/course", "/opt/data/solutions", "/opt/env"],
    }
    command = sandbox.bwrap_command(config, tmp_path, ["python"], {})
    order = [(option, where) for option, _, where in _mounts(command)]
    assert order.index(("--tmpfs", "/srv/course")) < order.index(("--ro-bind", "/srv/course/venv"))
    assert order.index(("--ro-bind", "/opt/data")) < order.index(("--tmpfs", "/opt/data/solutions"))
    assert order.index(("--ro-bind", "/opt/env")) < order.index(("--tmpfs", "/opt/env"))


def _sandboxed(code: str, workdir: Path, hidden: list[str] | None = None) -> subprocess.Popen[str]:
    config = {"hidden": hidden or [], "readable": [str(p) for p in sandbox._readable_paths()]}
    command = sandbox.bwrap_command(config, workdir, [sys.executable, "-c", code], {})
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@needs_bwrap
def test_a_file_elsewhere_on_the_machine_cannot_be_read(tmp_path):
    parent = "/var/tmp" if os.access("/var/tmp", os.W_OK) else None
    planted = Path(tempfile.mkdtemp(prefix="labkit-planted-", dir=parent))
    try:
        planted.chmod(0o755)
        (planted / "solutions.txt").write_text("the answers\n", encoding="utf-8")
        (planted / "solutions.txt").chmod(0o644)
        code = (
            "import os, sys\n"
            f"print('planted', os.path.exists({str(planted / 'solutions.txt')!r}))\n"
            f"print('python', os.path.exists({sys.prefix!r}))\n"
            "print('root', sorted(os.listdir('/')))\n"
        )
        out, err = _sandboxed(code, tmp_path).communicate(timeout=60)
    finally:
        shutil.rmtree(planted)
    assert "planted False" in out and "python True" in out, err
    shown = set(json.loads(out.split("root ", 1)[1].replace("'", '"')))
    assert not shown & {"var", "srv", "home", "opt", "mnt", "media", "run", "boot"}, shown


@needs_bwrap
def test_end_strays_ends_every_process_but_the_kernel(tmp_path):
    """Children, orphans (their parent gone: re-parented to the sandbox's init) and a
    thread's children all go; the kernel (pid 2 of the namespace) stays."""
    code = (
        "import os, subprocess, threading, time\n"
        "subprocess.Popen(['sleep', '600'])\n"
        "subprocess.Popen(['sh', '-c', 'sleep 600 &'])\n"
        "threading.Thread(target=lambda: subprocess.Popen(['sleep', '600'])).start()\n"
        "print(os.getpid(), flush=True)\n"
        "time.sleep(600)\n"
    )
    process = _sandboxed(code, tmp_path)
    try:
        assert process.stdout.readline().strip() == "2"
        deadline = time.monotonic() + 20
        while len(sandbox.namespace_processes(process.pid)[1]) < 3:
            assert time.monotonic() < deadline, sandbox.namespace_processes(process.pid)
            time.sleep(0.05)
        kernel, _ = sandbox.namespace_processes(process.pid)
        assert kernel is not None
        assert sandbox.end_strays(process.pid) >= 3
        assert sandbox.namespace_processes(process.pid) == (kernel, [])
        assert process.poll() is None  # the kernel lives on
    finally:
        process.kill()
        process.communicate()
    assert sandbox.end_strays(os.getpid()) == 0  # no sandbox: nothing done


# Starts threads until the cap on processes refuses one, says how many it holds, and
# keeps them: what a fork bomb does to the slots of its user, without the forking.
_HOLD_EVERY_SLOT = """
import os, threading
stop = threading.Event()
held = 0
try:
    while True:
        threading.Thread(target=stop.wait, daemon=True).start()
        held += 1
except RuntimeError:
    pass
print("holding", held, "as", os.getuid(), flush=True)
stop.wait()
"""

_START_THREADS = """
import os, threading
stop = threading.Event()
threads = [threading.Thread(target=stop.wait) for _ in range(20)]
for thread in threads:
    thread.start()
stop.set()
print("started", len(threads), "as", os.getuid(), flush=True)
"""


@pytest.mark.slow
@needs_bwrap
@pytest.mark.skipif(os.geteuid() != 0, reason="kernels get users of their own as root")
def test_a_kernel_holding_every_process_slot_leaves_the_next_kernel_room(tmp_path, monkeypatch):
    """Kernels graded side by side: one takes every process slot the sandbox allows it;
    a kernel that starts then still starts, and starts threads (with one user for all
    kernels, it died before replying to kernel_info, and its student was 'crashed')."""
    from jupyter_client.manager import KernelManager

    env = sandbox.kernel_environment(tmp_path / "kernel", hidden=[])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)  # the launcher's working folder is the kernel's

    def start():
        manager = KernelManager(
            kernel_name=sandbox.KERNEL_NAME, transport="ipc", ip=env["LABKIT_KERNEL_IPC"]
        )
        manager.start_kernel(cwd=str(workdir))
        client = manager.client()
        client.start_channels()
        client.wait_for_ready(timeout=60)
        return manager, client

    def printed(client, code: str, wait: bool = True) -> str:
        """What ``code`` prints (its first line only when not waiting for it to end)."""
        msg_id = client.execute(code)
        text = ""
        while True:
            message = client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                text += content["text"]
                if not wait and "\n" in text:
                    return text
            elif kind == "error":
                return text + content["ename"] + ": " + content["evalue"]
            elif kind == "status" and content["execution_state"] == "idle":
                return text

    started = []
    try:
        started.append(start())
        holding = printed(started[0][1], _HOLD_EVERY_SLOT, wait=False).split()
        assert holding[0] == "holding" and int(holding[1]) > 0, holding
        started.append(start())
        other = printed(started[1][1], _START_THREADS).split()
        assert other[:2] == ["started", "20"], other
        hog_user, other_user = int(holding[3]), int(other[3])
        assert hog_user != other_user
        assert sandbox.is_kernel_user(hog_user) and sandbox.is_kernel_user(other_user)
    finally:
        for manager, client in started:
            client.stop_channels()
            manager.shutdown_kernel(now=True)
