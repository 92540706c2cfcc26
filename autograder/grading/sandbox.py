"""A grading kernel that runs student code inside bubblewrap.

nbgrader runs a submission with the grader's rights: without a sandbox, student
code could read ``solutions/`` and the gradebook, write scores, list other
students, open sockets or exhaust the machine. ``kernel_environment`` writes a
kernelspec, ``labkit-sandbox``, whose launcher (``python -m autograder.grading.sandbox``)
starts ipykernel under ``bwrap`` with:

- no network (``--unshare-net``) and its own PID namespace (``--unshare-pid``;
  every process dies with the kernel);
- a file system built from nothing: only what a lab needs is bound in, read-only
  (the system's ``/usr`` and library folders, a few files of ``/etc``, the Python
  environment, the kit's ``autograder/`` and ``labkit/``, the data folders), plus a
  private ``/dev``, ``/proc`` and ``/tmp``; the rest of the machine (the course folder,
  this repository, home folders, ``/srv``, ``/opt``, ``/var``...) does not exist in there,
  and the course root and this repository are hidden even where a bound folder holds them;
- the student's own autograded folder writable, but as a private tmpfs: nbgrader's
  files in it are bound read-only (the notebook, which holds the hidden tests, is not
  there at all), and whatever the kernel writes (a link to the gradebook, for nbgrader
  to chmod or copy into the feedback as root) is gone when it exits;
- no writable folder of the grader's disk at all: the folder where the kernel binds its
  sockets is a small private tmpfs too (the connection file bound read-only into it),
  and the launcher points each socket path the client connects to at the kernel's socket
  through ``/proc/<sandbox>/root``; so nothing a kernel writes outlives it, and no
  later student can read it; ``/tmp``, the working folder and the socket folder are
  capped in size (they are memory);
- an unprivileged user of its own (when grading as root), so that limits on processes
  apply, each kernel's to it alone: a fork bomb that takes every slot it may have leaves
  the kernels beside it theirs; and limits on memory, processes and file size
  (``prlimit``);
- no process started by a cell outlives it (``contain_forks``, ``end_strays``).

Processes: inside the kernel, ``os.kill(-1, SIGKILL)`` before and after each cell
reaches, atomically, every process of the kernel's user in the namespace but pid 1
(bwrap's init) and the kernel, whoever started it and whoever its parent is now
(orphans are re-parented to that init); so a fork bomb stops at once. What it does not
reach: a process started after it ran (by a post-cell hook registered later, or by a
thread the student left running), and nothing at all once student code unregisters
the hooks. So the grader also ends, from outside the sandbox, every process in the
namespace but the init and the kernel, before and after each cell (``end_strays``,
called by ``autograder.grading.scoring.RecordOutcome``); no kernel code can reorder or
skip that.

Traps: the kernelspec needs
``"interrupt_mode": "message"``; ``JPY_PARENT_PID`` must be unset or the kernel
exits at start; TCP cannot cross the network namespace, so the kernel talks over
``ipc`` sockets; RLIMIT_AS is unsafe for CUDA, so the memory cap applies only where
no GPU is visible; a bind's parents are created 0700 by bwrap, which the unprivileged
kernel cannot enter, so every parent is made 0755 first.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from autograder.grading import budget

__all__ = [
    "KERNEL_NAME",
    "available",
    "bwrap_command",
    "contain_forks",
    "end_strays",
    "is_kernel_user",
    "kernel_env",
    "kernel_environment",
    "kernel_user",
    "namespace_processes",
    "shared_process_cap",
]

KERNEL_NAME = "labkit-sandbox"
# Grading as root, each kernel runs as a user of its own: the cap on processes counts per
# user, so a fork bomb in one kernel cannot take the slots of the kernels beside it. The
# user is this base plus the pid of the kernel's launcher (which becomes bwrap and lives
# as long as the kernel, so no two live kernels share it), in a range that no
# distribution or systemd assigns (1879048192 to 2147483647 is left unused).
KERNEL_USER_BASE = 0x70000000
KERNEL_USER_SPAN = 2**22  # the largest pid Linux allows
MEMORY_BYTES = int(os.environ.get("LABKIT_SANDBOX_MEMORY", str(8 * 2**30)))
# Threads count too (torch starts one per core, ipykernel a few): enough for a lab,
# few enough that a fork bomb cannot swamp the machine before the cell ends.
MAX_PROCESSES = max(64, 8 * (os.cpu_count() or 1))
MAX_FILE_BYTES = 512 * 2**20
SCRATCH_BYTES = 2**30  # each of /tmp and the working folder
SOCKETS_BYTES = 4 * 2**20  # the folder of the kernel's sockets: sockets take no space
# The system a Python process and torch need, read-only; a link (/lib -> usr/lib) stays a link.
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# Of /etc, only what the dynamic loader, name lookups, time zones, fonts and TLS read.
ETC_PATHS = tuple(
    f"/etc/{name}"
    for name in (
        "ld.so.cache",
        "ld.so.conf",
        "ld.so.conf.d",
        "alternatives",
        "passwd",
        "group",
        "nsswitch.conf",
        "host.conf",
        "hosts",
        "localtime",
        "timezone",
        "os-release",
        "mime.types",
        "fonts",
        "ssl",
        "ca-certificates",
        "pki",
    )
)
# The kit's environment variables a lab reads; everything else is dropped.
_PACKAGE = Path(__file__).resolve().parents[1]  # autograder/: the checks the labs import
_CHECKOUT = _PACKAGE.parent  # where labkit/ and data/ sit beside it
_DATA_ENV = ("LABKIT_CIFAR10", "LABKIT_MNIST", "LABKIT_FASHION_MNIST", "LABKIT_DATA")
# and the threads a kernel may use (set by the grading driver, which runs several
# kernels at once)
# and the language of the messages (the submission's edition)
_PASSED_ENV = (*_DATA_ENV, "PATH", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "LABKIT_LANG")


def kernel_user(launcher_pid: int) -> int:
    """The user (and group) id a kernel launched by ``launcher_pid`` runs as, as root."""
    return KERNEL_USER_BASE + launcher_pid


def is_kernel_user(uid: int) -> bool:
    """Whether ``uid`` is a sandboxed kernel's (for counting what kernels hold)."""
    return KERNEL_USER_BASE <= uid < KERNEL_USER_BASE + KERNEL_USER_SPAN


def shared_process_cap() -> int | None:
    """The cap on processes and threads that every sandboxed kernel counts against
    together, or None when each kernel has its own. Only grading as root can give each
    kernel a user of its own; otherwise they all run as the grader (and count its
    processes too)."""
    return None if os.geteuid() == 0 else MAX_PROCESSES


def available() -> str | None:
    """None when bwrap can build a sandbox here, else why not."""
    if shutil.which("bwrap") is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    probe = subprocess.run(
        ["bwrap", "--unshare-net", "--unshare-pid", "--ro-bind", "/", "/", "true"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        return f"bwrap cannot create namespaces here: {probe.stderr.strip()[:200]}"
    return None


def _readable_paths() -> list[Path]:
    """What a lab must read: the Python environment, the kit's packages, the data; each
    as named and as resolved (a venv's python is a link into the base installation)."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), _PACKAGE]
    paths += [Path(sys.base_exec_prefix), _CHECKOUT / "labkit"]
    paths += [Path(os.environ[name]) for name in _DATA_ENV if os.environ.get(name)]
    if (_CHECKOUT / "data").is_dir():
        paths.append(_CHECKOUT / "data")
    found: list[Path] = []
    for path in paths:
        for form in (path.absolute(), path.resolve()):
            if form.exists() and form not in found:
                found.append(form)
    return found


def kernel_environment(work: Path, hidden: list[Path]) -> dict[str, str]:
    """Write the ``labkit-sandbox`` kernelspec under ``work``; return the environment
    variables that make nbgrader find it. ``hidden`` are folders to hide (the course
    root, this repository) even where a folder the kernel reads holds them."""
    spec_dir = work / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    runtime = work / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o700)  # the grader's alone: the kernel sees a tmpfs of its own there
    config = {
        # The grader's home too: it holds credentials, and /root is not traversable
        # by the unprivileged user the kernel runs as.
        "hidden": [str(p.resolve()) for p in [*hidden, Path.home()]],
        "readable": [str(p) for p in _readable_paths()],
    }
    (work / "sandbox.json").write_text(json.dumps(config, indent=1), encoding="utf-8")
    spec = {
        "argv": [
            sys.executable,
            "-m",
            "autograder.grading.sandbox",
            str((work / "sandbox.json").resolve()),
            "{connection_file}",
        ],
        "display_name": "Python 3 (labkit sandbox)",
        "language": "python",
        "interrupt_mode": "message",
        "metadata": {"debugger": False},
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")
    runtime = runtime.resolve()
    return {
        "JUPYTER_PATH": str(work.resolve()),
        "JUPYTER_RUNTIME_DIR": str(runtime),
        # nbclient writes connection files with tempfile: into that folder.
        "TMPDIR": str(runtime),
        # read by nbgrader_config.py: ipc sockets at an absolute path in that folder
        "LABKIT_KERNEL_IPC": str(runtime / "kernel"),
    }


def _parents(path: str) -> list[str]:
    """Create ``path``'s parents traversable (bwrap would make them 0700 inside a tmpfs,
    which the unprivileged kernel cannot enter); harmless where they exist."""
    parents = []
    for parent in reversed(Path(path).parents):
        if str(parent) != "/":
            parents += ["--perms", "0755", "--dir", str(parent)]
    return parents


def _system_mounts() -> list[tuple[str, list[str]]]:
    """(where, bwrap options) for the system folders and the pieces of /etc."""
    mounts = []
    for path in SYSTEM_PATHS:
        if os.path.islink(path):
            mounts.append((path, ["--symlink", os.readlink(path), path]))
        elif os.path.isdir(path):
            mounts.append((path, ["--ro-bind", path, path]))
    mounts += [(path, ["--ro-bind", path, path]) for path in ETC_PATHS if os.path.exists(path)]
    return mounts


def _scratch(workdir: Path) -> list[tuple[str, list[str]]]:
    """``workdir`` as a private tmpfs, the kernel's working folder, with the files nbgrader
    put there (the notebooks excepted) bound read-only inside it."""
    size = str(SCRATCH_BYTES)
    mounts = [(str(workdir), ["--perms", "1777", "--size", size, "--tmpfs", str(workdir)])]
    for path in sorted(workdir.iterdir()):
        if path.suffix != ".ipynb" and not path.is_symlink():
            mounts.append((str(path), ["--ro-bind", str(path), str(path)]))
    return mounts


def _socket_mounts(connection_file: str | None) -> list[tuple[str, list[str]]]:
    """The folder of the kernel's ipc sockets as a small private tmpfs, with the
    connection file bound read-only (into it, as nbclient writes it there)."""
    if connection_file is None:
        return []
    info = json.loads(Path(connection_file).read_text(encoding="utf-8"))
    mounts = []
    if info.get("transport") == "ipc":
        folder = str(Path(info["ip"]).parent)
        size = str(SOCKETS_BYTES)
        mounts.append((folder, ["--perms", "1777", "--size", size, "--tmpfs", folder]))
    return [*mounts, (connection_file, ["--ro-bind", connection_file, connection_file])]


def _depth(path: str) -> int:
    return len(Path(path).parts)


def _gpu_visible() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def bwrap_command(
    config: dict,
    workdir: Path,
    kernel_argv: list[str],
    env: dict[str, str],
    connection_file: str | None = None,
    info_fd: int | None = None,
) -> list[str]:
    """The command that runs ``kernel_argv`` sandboxed, with ``workdir`` writable; as root,
    as the user of this process's kernel (``kernel_user``): the process that runs this
    command must be the one that called this.

    Mounts are made outer folders first, whatever list they come from: a hidden folder
    inside a readable one hides it, a readable folder inside a hidden one shows; at the
    same place, hidden wins."""
    command = [
        "bwrap",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--dev", "/dev",
        "--proc", "/proc",
    ]  # fmt: skip
    if info_fd is not None:
        command += ["--info-fd", str(info_fd)]
    mounts = [("/tmp", ["--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp"])]
    mounts += _system_mounts()
    mounts += [(path, ["--ro-bind", path, path]) for path in config["readable"]]
    mounts += [(path, ["--perms", "0755", "--tmpfs", path]) for path in config["hidden"]]
    mounts += _socket_mounts(connection_file)
    mounts += _scratch(workdir)
    for where, options in sorted(mounts, key=lambda mount: _depth(mount[0])):
        command += [*_parents(where), *options]
    command += ["--chdir", str(workdir), "--clearenv"]
    for key, value in env.items():
        command += ["--setenv", key, value]
    limits = [f"--nproc={MAX_PROCESSES}", f"--fsize={MAX_FILE_BYTES}"]
    if not _gpu_visible():
        limits.append(f"--as={MEMORY_BYTES}")
    command += ["prlimit", *limits, "--"]
    if os.geteuid() == 0:  # limits on processes do not apply to root
        user = kernel_user(os.getpid())
        command += ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", "--"]
    return command + kernel_argv


def kernel_env() -> dict[str, str]:
    """The kernel's whole environment: the grader's variables never reach student code,
    only the data folders and PATH, and what the kernel needs in the sandbox."""
    env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
    env.update(
        HOME="/tmp",
        # The kernel's user has no entry in /etc/passwd: getpass.getuser() reads these.
        USER="student",
        LOGNAME="student",
        MPLCONFIGDIR="/tmp/matplotlib",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        PYTHONDONTWRITEBYTECODE="1",
        # This checkout's autograder/ and labkit/ (the only things bound from it), not
        # whatever an editable install of the environment points at.
        PYTHONPATH=str(_CHECKOUT),
        # Graded runs train at the token size (labkit.config); the kernel is not told it
        # is being graded. LABKIT_GRADING_RUN=fast grades at CI's size instead.
        LABKIT_RUN=budget.grading_run(),
        # No network in here: pip (a student's, or a lab's setup cell, which then stops
        # with a clear message) fails at once instead of retrying for minutes.
        PIP_NO_INDEX="1",
    )
    # labkit recognises the repository's data/ by the pyproject.toml beside it, which the
    # sandbox hides: name the data root explicitly (it is bound read-only).
    data = _CHECKOUT / "data"
    if "LABKIT_DATA" not in env and data.is_dir():
        env["LABKIT_DATA"] = str(data)
    return env


def contain_forks(shell) -> None:
    """Run in the kernel at start: no process a cell starts outlives the cell.

    Before and after each cell the kernel kills every other process of its user in the
    sandbox and reaps its children (a fork bomb's children would otherwise go on forking,
    hold the process slots and serve the kernel's sockets too); a forked child that gets
    back to IPython exits at once instead of printing a traceback. What this cannot
    reach (a process started after it ran, or hooks the student unregisters) the grader
    ends from outside: ``end_strays``.
    """
    kernel = os.getpid()
    show_traceback = shell.showtraceback

    def showtraceback(*args, **kwargs):
        if os.getpid() != kernel:
            os._exit(1)
        return show_traceback(*args, **kwargs)

    def end_others(*_args) -> None:
        if os.getpid() != kernel:
            os._exit(1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # in this PID namespace, as this user: not the kernel
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, 0)[0]:
                pass

    shell.showtraceback = showtraceback
    shell.events.register("pre_run_cell", end_others)
    shell.events.register("post_run_cell", end_others)


# ---- the grader's side: processes in the kernel's PID namespace ---------------------------


def _status(pid: int) -> dict[str, str]:
    """/proc/<pid>/status as a dict ({} when the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines()
    except OSError:
        return {}
    return dict(line.split(":", 1) for line in lines if ":" in line)


def _children(pid: int) -> list[int]:
    """The children of every thread of ``pid`` (a thread that forks is their parent)."""
    found = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _namespace_init(launcher: int) -> int | None:
    """The pid (as the grader sees it) of pid 1 of the sandbox bwrap ``launcher`` runs, or
    None when ``launcher`` started no PID namespace (a kernel run without the sandbox)."""
    for child in _children(launcher):
        if _status(child).get("NSpid", "").split()[1:] == ["1"]:
            return child
    return None


def namespace_processes(launcher: int) -> tuple[int | None, list[int]]:
    """(the kernel, every other live process) in the PID namespace of the sandbox that
    ``launcher`` (the kernel provisioner's process: bwrap) runs; every such process
    descends from the namespace's init, orphans included. ``(None, [])`` without one."""
    init = _namespace_init(launcher)
    if init is None:
        return None, []
    kernel, others, todo = None, [], _children(init)
    while todo:
        pid = todo.pop()
        status = _status(pid)
        if not status:
            continue
        todo += _children(pid)
        if status.get("State", "").split()[:1] in (["Z"], ["X"]):
            continue  # dead already, waiting to be reaped
        if status.get("NSpid", "").split()[1:] == ["2"]:  # bwrap's init forks the kernel first
            kernel = pid
        else:
            others.append(pid)
    return kernel, others


def _kill_in_namespace(pid: int, namespace: str) -> bool:
    """SIGKILL ``pid`` if it is (still) in ``namespace``: a pidfd pins the process, so a
    pid reused by some other process of the machine in between is never signalled."""
    try:
        handle = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if os.readlink(f"/proc/{pid}/ns/pid") != namespace:
            return False
        signal.pidfd_send_signal(handle, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(handle)


def end_strays(launcher: int, within_s: float = 2.0) -> int:
    """Kill every process in the kernel's PID namespace but its init and the kernel, from
    outside the sandbox, until none is left (a process forking as it dies leaves new
    ones); return how many were killed. 0, and nothing done, without a sandbox."""
    init = _namespace_init(launcher)
    if init is None:
        return 0
    try:
        namespace = os.readlink(f"/proc/{init}/ns/pid")
    except OSError:
        return 0
    killed, deadline = 0, time.monotonic() + within_s
    while time.monotonic() < deadline:
        _, others = namespace_processes(launcher)
        if not others:
            break
        killed += sum(_kill_in_namespace(pid, namespace) for pid in others)
        time.sleep(0.001)
    return killed


# ---- the launcher -------------------------------------------------------------------------


_STARTUP = (
    "import autograder.grading.sandbox as _sandbox; "
    "_sandbox.contain_forks(get_ipython()); del _sandbox"
)


def _socket_paths(connection_file: str) -> list[str]:
    """Where the client connects: ``<ip>-<port>`` for each ipc port."""
    info = json.loads(Path(connection_file).read_text(encoding="utf-8"))
    if info.get("transport") != "ipc":
        return []
    ports = ("shell_port", "iopub_port", "stdin_port", "control_port", "hb_port")
    return [f"{info['ip']}-{info[port]}" for port in ports]


def _read_child_pid(info: int) -> int | None:
    """The pid bwrap reports on its info pipe for the sandbox's init, or None if bwrap
    exited first (it writes one JSON object and keeps the pipe open while it runs)."""
    text, decoder = "", json.JSONDecoder()
    while chunk := os.read(info, 4096):
        text += chunk.decode(errors="replace")
        with contextlib.suppress(ValueError):
            return int(decoder.raw_decode(text.lstrip())[0]["child-pid"])
    return None


def _link_sockets(info_read: int, info_write: int, sockets: list[str]) -> None:
    """Start a helper that, once bwrap has started, points each socket path the client
    connects to at the kernel's socket, which lives in the sandbox's own tmpfs, through
    /proc/<init>/root. The helper is detached (double fork), holds no write end of the
    info pipe (so it sees the end when bwrap exits) and ends when linking is done."""
    helper = os.fork()
    if helper:
        os.waitpid(helper, 0)
        os.close(info_read)
        return
    try:
        os.close(info_write)
        if os.fork() == 0:
            os.chdir("/")
            child = _read_child_pid(info_read)
            for path in sockets if child else []:
                link = f"{path}.link"
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(link)
                os.symlink(f"/proc/{child}/root{path}", link)
                os.replace(link, path)
    finally:
        os._exit(0)


def _launch(config_path: str, connection_file: str, extra: list[str]) -> None:
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    workdir = Path.cwd().resolve()
    if os.geteuid() == 0:
        os.chmod(connection_file, 0o644)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, *extra]
    kernel.append(f"--IPKernelApp.exec_lines={json.dumps([_STARTUP])}")
    info_read, info_write = os.pipe()
    command = bwrap_command(
        config, workdir, kernel, kernel_env(), connection_file=connection_file, info_fd=info_write
    )
    _link_sockets(info_read, info_write, _socket_paths(connection_file))
    os.set_inheritable(info_write, True)
    os.execvp(command[0], command)  # the kernel manager signals bwrap itself


if __name__ == "__main__":
    _launch(sys.argv[1], sys.argv[2], sys.argv[3:])
