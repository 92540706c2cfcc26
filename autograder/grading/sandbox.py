"""A grading kernel that runs student code inside bubblewrap.

nbgrader runs a submission with the grader's rights: without a sandbox, student
code could read ``solutions/`` and the gradebook, write scores, list other
students, open sockets or exhaust the machine. ``kernel_environment`` writes a
kernelspec, ``labkit-sandbox``, whose launcher (``python -m autograder.grading.sandbox``)
starts ipykernel under ``bwrap`` with:

- no network (``--unshare-net``) and its own PID namespace (``--unshare-pid``;
  every process dies with the kernel);
- the file system read-only, ``/tmp`` private, and the course folder (and this
  repository) hidden except for the read-only paths the labs need (Python
  environment, packages, data) and the student's own autograded folder;
- that folder writable, but as a private tmpfs: nbgrader's files in it are bound
  read-only (the notebook, which holds the hidden tests, is not there at all), and
  whatever the kernel writes (a link to the gradebook, for nbgrader to chmod or copy
  into the feedback as root) is gone when it exits; ``/tmp`` and that folder are
  capped in size (they are memory);
- an unprivileged user, so that limits on processes apply, and limits on memory,
  processes and file size (``prlimit``);
- no process started by a cell outlives it: after each cell the kernel kills the
  others and reaps them (``contain_forks``; a fork bomb's children would otherwise go
  on forking and serve the kernel's sockets too).

Traps: the kernelspec needs
``"interrupt_mode": "message"``; ``JPY_PARENT_PID`` must be unset or the kernel
exits at start; TCP cannot cross the network namespace, so the kernel talks over
``ipc`` sockets in a runtime folder bound into the sandbox; RLIMIT_AS is unsafe
for CUDA, so the memory cap applies only where no GPU is visible.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

__all__ = [
    "KERNEL_NAME",
    "available",
    "bwrap_command",
    "contain_forks",
    "kernel_env",
    "kernel_environment",
]

KERNEL_NAME = "labkit-sandbox"
NOBODY = 65534
MEMORY_BYTES = int(os.environ.get("LABKIT_SANDBOX_MEMORY", str(8 * 2**30)))
# Threads count too (torch starts one per core, ipykernel a few): enough for a lab,
# few enough that a fork bomb cannot swamp the machine before the cell ends.
MAX_PROCESSES = max(64, 8 * (os.cpu_count() or 1))
MAX_FILE_BYTES = 512 * 2**20
SCRATCH_BYTES = 2**30  # each of /tmp and the working folder
# The kit's environment variables a lab reads, and the threads a kernel may use (set by
# the grading driver, which runs several kernels at once); everything else is dropped.
_PACKAGE = Path(__file__).resolve().parents[1]  # autograder/: the checks the labs import
_CHECKOUT = _PACKAGE.parent  # where labkit/ and data/ sit beside it
_PASSED_ENV = (
    "LABKIT_CIFAR10",
    "LABKIT_MNIST",
    "LABKIT_FASHION_MNIST",
    "LABKIT_DATA",
    "PATH",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
)


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
    """What a lab must read: the Python environment, the kit's packages, the data."""
    paths = [Path(sys.prefix), Path(sys.base_prefix), _PACKAGE, _CHECKOUT / "labkit"]
    for name in ("LABKIT_CIFAR10", "LABKIT_MNIST", "LABKIT_FASHION_MNIST", "LABKIT_DATA"):
        if os.environ.get(name):
            paths.append(Path(os.environ[name]))
    data = _CHECKOUT / "data"
    if data.is_dir():
        paths.append(data)
    return [p.resolve() for p in paths if p.exists()]


def kernel_environment(work: Path, hidden: list[Path]) -> dict[str, str]:
    """Write the ``labkit-sandbox`` kernelspec under ``work``; return the environment
    variables that make nbgrader find it. ``hidden`` are folders to hide (the course
    root, this repository)."""
    spec_dir = work / "kernels" / KERNEL_NAME
    spec_dir.mkdir(parents=True, exist_ok=True)
    runtime = work / "runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    runtime.chmod(0o777)
    config = {
        # The grader's home too: it holds credentials, and /root is not traversable
        # by the unprivileged user the kernel runs as.
        "hidden": [str(p.resolve()) for p in [*hidden, Path.home()]],
        "readable": [str(p) for p in _readable_paths()],
        "runtime": str(runtime.resolve()),
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
        # nbclient writes connection files with tempfile: into the bound folder.
        "TMPDIR": str(runtime),
        # read by nbgrader_config.py: ipc sockets at an absolute path in that folder
        "LABKIT_KERNEL_IPC": str(runtime / "kernel"),
    }


def _parents(path: str) -> list[str]:
    """Create ``path``'s parents traversable (bwrap would make them 0700 inside a tmpfs,
    which the unprivileged kernel cannot enter)."""
    parents = []
    for parent in reversed(Path(path).parents):
        if str(parent) != "/":
            parents += ["--perms", "0755", "--dir", str(parent)]
    return parents


def _bind(option: str, path: str) -> list[str]:
    """Bind ``path`` at the same place."""
    return [*_parents(path), option, path, path]


def _scratch(workdir: Path) -> list[str]:
    """``workdir`` as a private tmpfs, the kernel's working folder, with the files nbgrader
    put there (the notebooks excepted) bound read-only inside it."""
    size = str(SCRATCH_BYTES)
    command = [*_parents(str(workdir)), "--perms", "1777", "--size", size, "--tmpfs", str(workdir)]
    for path in sorted(workdir.iterdir()):
        if path.suffix != ".ipynb" and not path.is_symlink():
            command += ["--ro-bind", str(path), str(path)]
    return [*command, "--chdir", str(workdir)]


def _gpu_visible() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def bwrap_command(
    config: dict, workdir: Path, kernel_argv: list[str], env: dict[str, str]
) -> list[str]:
    """The command that runs ``kernel_argv`` sandboxed, with ``workdir`` writable."""
    command = [
        "bwrap",
        "--unshare-net",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--die-with-parent",
        "--new-session",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--perms", "1777", "--size", str(SCRATCH_BYTES), "--tmpfs", "/tmp",
    ]  # fmt: skip
    for folder in config["hidden"]:
        command += ["--perms", "0755", "--tmpfs", folder]
    for path in config["readable"]:
        command += _bind("--ro-bind", path)
    command += _bind("--bind", config["runtime"])
    command += _scratch(workdir)
    command += ["--clearenv"]
    for key, value in env.items():
        command += ["--setenv", key, value]
    limits = [f"--nproc={MAX_PROCESSES}", f"--fsize={MAX_FILE_BYTES}"]
    if not _gpu_visible():
        limits.append(f"--as={MEMORY_BYTES}")
    command += ["prlimit", *limits, "--"]
    if os.geteuid() == 0:  # limits on processes do not apply to root
        command += ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"]
    return command + kernel_argv


def kernel_env() -> dict[str, str]:
    env = {key: os.environ[key] for key in _PASSED_ENV if key in os.environ}
    env.update(
        HOME="/tmp",
        MPLCONFIGDIR="/tmp/matplotlib",
        MPLBACKEND="module://matplotlib_inline.backend_inline",
        PYTHONDONTWRITEBYTECODE="1",
        # Graded runs are sized like CI; the kernel is not told it is being graded.
        LABKIT_RUN="fast",
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

    After each cell the kernel kills every other process of its user in the sandbox and
    reaps its children (a fork bomb's children would otherwise go on forking, hold the
    process slots and serve the kernel's sockets too); a forked child that gets back to
    IPython exits at once instead of printing a traceback.
    """
    kernel = os.getpid()
    show_traceback = shell.showtraceback

    def showtraceback(*args, **kwargs):
        if os.getpid() != kernel:
            os._exit(1)
        return show_traceback(*args, **kwargs)

    def after_cell(*_args) -> None:
        if os.getpid() != kernel:
            os._exit(1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # in this PID namespace, as this user: not the kernel
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, 0)[0]:
                pass

    shell.showtraceback = showtraceback
    shell.events.register("post_run_cell", after_cell)


_STARTUP = (
    "import autograder.grading.sandbox as _sandbox; "
    "_sandbox.contain_forks(get_ipython()); del _sandbox"
)


def _launch(config_path: str, connection_file: str, extra: list[str]) -> None:
    config = json.loads(Path(config_path).read_text(encoding="utf-8"))
    workdir = Path.cwd().resolve()
    if os.geteuid() == 0:
        os.chmod(connection_file, 0o644)
    kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file, *extra]
    kernel.append(f"--IPKernelApp.exec_lines={json.dumps([_STARTUP])}")
    command = bwrap_command(config, workdir, kernel, kernel_env())
    os.execvp(command[0], command)  # the kernel manager signals bwrap itself


if __name__ == "__main__":
    _launch(sys.argv[1], sys.argv[2], sys.argv[3:])
