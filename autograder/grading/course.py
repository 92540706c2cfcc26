"""The course folder nbgrader works in, and the release it generates.

A course root holds ``nbgrader_config.py``, ``solutions/`` (the source),
``notebooks/`` (the release), ``submitted/``, ``autograded/``, ``feedback/`` and
``gradebook.db``. The repository is one; ``make_course_root`` makes others (for
the demo and the tests) so that grading never touches the repository's state.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import nbformat

from autograder.grading import budget

if TYPE_CHECKING:
    from traitlets.config import Config

__all__ = [
    "MARKERS",
    "REPO_ROOT",
    "alembic_head",
    "assignments",
    "course_config",
    "find_leaks",
    "generate_feedback",
    "generate_release",
    "make_course_root",
    "nbgrader",
    "notebook_names",
    "patch_alembic_head",
    "run_capped",
    "split_regions",
    "stop_running",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_ASSIGNMENT = re.compile(r"^day\d\d_[a-z0-9_]+$")
# `python -m nbgrader`, minus 3-4 s per run: nbformat imports jsonschema, which builds
# rfc3987_syntax's Lark grammar at import; nbgrader never checks the "iri" format it serves.
# And minus 1.7 s of CPU for each gradebook it creates (``patch_alembic_head``).
_NBGRADER_MAIN = (
    "import sys; sys.modules['rfc3987_syntax'] = None; sys.argv[0] = 'nbgrader'; "
    "from autograder.grading.course import patch_alembic_head; patch_alembic_head(); "
    "from nbgrader.apps.nbgraderapp import main; main()"
)
_REVISION_LINE = re.compile(r"""^(down_revision|revision)\s*=\s*(?:['"](\w+)['"]|None)\s*$""", re.M)
# nbgrader runs in its own session (so that a timeout kills it and its kernel as one
# group), which also means it would outlive a grader killed outright: setpriv has Linux
# send it SIGKILL when the grader dies, and its sandboxed kernel dies with it (bwrap
# --die-with-parent).
_DIE_WITH_GRADER = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
_RUNNING: set[subprocess.Popen] = set()
_RUNNING_LOCK = threading.Lock()


def run_capped(
    command: list[str], cwd: Path, timeout: float | None, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a session of its own, its output captured; on timeout, or when
    ``stop_running`` is called, kill the whole session (the process and whatever it
    started); on timeout, raise ``TimeoutExpired``. The session dies with the grader."""
    command = [*_DIE_WITH_GRADER, *command]
    with subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        with _RUNNING_LOCK:
            _RUNNING.add(process)
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise
        finally:
            with _RUNNING_LOCK:
                _RUNNING.discard(process)
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def alembic_head() -> str | None:
    """The head of nbgrader's gradebook migrations, as ``alembic heads`` prints it, read
    from the ``revision`` and ``down_revision`` lines of its scripts; None unless they
    name exactly one head."""
    from nbgrader.dbutil import ALEMBIC_DIR

    revisions, parents = set(), set()
    for script in sorted((Path(ALEMBIC_DIR) / "versions").glob("*.py")):
        found = dict(_REVISION_LINE.findall(script.read_text("utf-8")))
        if "revision" not in found:
            return None
        revisions.add(found["revision"])
        parents.add(found.get("down_revision", ""))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def patch_alembic_head() -> None:
    """Point nbgrader, in this process, at ``alembic_head`` for the migrations' head: for
    every gradebook it creates, it would otherwise start an ``alembic heads`` process,
    which loads every migration (1.7 s of CPU; once per course folder). It falls back to
    that process when the scripts do not name one head."""
    import nbgrader.api

    ask_alembic = nbgrader.api.get_alembic_version

    def head() -> str:
        return alembic_head() or ask_alembic()

    nbgrader.api.get_alembic_version = head


def nbgrader(
    args: list[str], root: Path, timeout: float | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``nbgrader ARGS`` on the course in ``root`` (its config file applies).

    On timeout the whole process group (nbgrader and its kernel) is killed."""
    command = [sys.executable, "-c", _NBGRADER_MAIN, *args, f"--CourseDirectory.root={root}"]
    # nbgrader runs the `alembic` script of its own environment: put that on PATH.
    scripts = str(Path(sys.executable).parent)
    env = {**os.environ, **(env or {})}
    env["PATH"] = os.pathsep.join([scripts, env.get("PATH", "")])
    env["LABKIT_GRADING_DRIVER"] = "1"  # autograde runs only from here (grading/entry.py)
    env["LABKIT_RUN"] = budget.grading_run()  # an unsandboxed kernel inherits it
    return run_capped(command, root, timeout, env)


_FEEDBACK_LOCK = threading.Lock()


def course_config(root: Path = REPO_ROOT) -> Config:
    """The settings of the course at ``root``: its ``nbgrader_config.py``, as nbgrader
    reads it."""
    from traitlets.config.loader import PyFileConfigLoader

    return PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()


def generate_feedback(assignment: str, root: Path, student: str | None = None) -> str | None:
    """``nbgrader generate_feedback ASSIGNMENT [--student STUDENT] --force`` on the course in
    ``root``, run in this process: None when it worked, else its log and traceback.

    A process of its own would cost about 3 s a student (Python, nbgrader and nbconvert
    imported again) for under half a second of work; a batch writes each student's
    feedback right after grading, so that adds up. Nothing here runs student code: the
    kernel is done, and the pages are built from the autograded notebook by the course's
    exporter and sanitisers (``nbgrader_config.py``). One page at a time: nbgrader's
    converters share their loggers and templates. Its failure is returned, never raised:
    a student without feedback is reported, and the batch goes on."""
    from nbgrader.converters import GenerateFeedback
    from nbgrader.coursedir import CourseDirectory

    log = io.StringIO()
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    try:
        root = Path(root).resolve()
        config = course_config(root)
        config.CourseDirectory.root = str(root)
        config.CourseDirectory.assignment_id = assignment
        config.CourseDirectory.student_id = student or "*"
        with _FEEDBACK_LOCK:
            converter = GenerateFeedback(coursedir=CourseDirectory(config=config), config=config)
            converter.force = True
            converter.log.addHandler(handler)
            try:
                converter.start()
            finally:
                converter.log.removeHandler(handler)
    except Exception:
        return log.getvalue() + traceback.format_exc()
    return None


def stop_running() -> int:
    """Kill every nbgrader run this process started that is still going (with its
    kernel), as a grader stopped with Ctrl-C must; return how many there were."""
    with _RUNNING_LOCK:
        running = list(_RUNNING)
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    return len(running)


def assignments(root: Path = REPO_ROOT) -> list[str]:
    """The assignment ids: the ``dayNN_topic`` folders under ``solutions/``."""
    source = root / "solutions"
    return sorted(p.name for p in source.iterdir() if p.is_dir() and _ASSIGNMENT.match(p.name))


def notebook_names(assignment: str, root: Path = REPO_ROOT) -> list[str]:
    """The notebook files an assignment consists of, e.g. ``["resnet.ipynb"]``."""
    return sorted(p.name for p in (root / "solutions" / assignment).glob("*.ipynb"))


def make_course_root(root: Path, assignment_ids: list[str], source: Path = REPO_ROOT) -> Path:
    """A fresh course folder at ``root`` with the course's config and the sources of
    ``assignment_ids`` taken from ``source/solutions``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO_ROOT / "nbgrader_config.py", root / "nbgrader_config.py")
    for assignment in assignment_ids:
        target = root / "solutions" / assignment
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(source / "solutions" / assignment, target)
    return root


def generate_release(assignment: str, root: Path = REPO_ROOT) -> None:
    """``nbgrader generate_assignment``: write ``notebooks/<assignment>/`` and record
    the source cells (hidden tests included) in the gradebook."""
    result = nbgrader(["generate_assignment", assignment, "--force"], root)
    if result.returncode != 0:
        raise RuntimeError(
            f"nbgrader generate_assignment {assignment} failed in {root}:\n"
            f"{result.stdout[-3000:]}{result.stderr[-3000:]}"
        )
    for name in notebook_names(assignment, root):
        release = root / "notebooks" / assignment / name
        leaks = find_leaks(root / "solutions" / assignment / name, release)
        if leaks:
            raise RuntimeError(f"{release} leaks solution text:\n" + "\n".join(leaks))


def split_regions(source: str) -> tuple[set[str], set[str]]:
    """(lines inside BEGIN/END SOLUTION or HIDDEN TESTS regions, lines outside), stripped."""
    inside, outside, secret = set(), set(), False
    for line in source.splitlines():
        if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
            secret = True
        elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
            secret = False
        else:
            (inside if secret else outside).add(line.strip())
    return inside, outside


def find_leaks(source_path: Path, release_path: Path) -> list[str]:
    """Marker lines, hidden tests or solution code that reached the student notebook.

    A solution line counts as leaked when it appears in the release's code but not
    in the source outside its solution regions (so shared lines such as ``return out``
    given elsewhere in the notebook are not false alarms).
    """
    source = nbformat.read(source_path, as_version=4)
    release = nbformat.read(release_path, as_version=4)
    release_code = [c.source for c in release.cells]
    problems = [
        f"cell {i}: contains '{marker}'"
        for i, text in enumerate(release_code)
        for marker in MARKERS
        if marker in text
    ]
    hidden, public = set(), set()
    for cell in source.cells:
        inside, outside = split_regions(cell.source)
        hidden |= inside
        public |= outside
    released = {line.strip() for text in release_code for line in text.splitlines()}
    for line in sorted((hidden - public) & released):
        if len(line) > 12 and not line.startswith("#"):
            problems.append(f"solution or hidden-test line in the release: {line!r}")
    return problems
