"""``nbgrader autograde`` and the formgrader's *Autograde* grade through the kit's driver.

The driver (``python -m autograder grade``) archives and normalises each submission,
runs its kernel in the sandbox, checks the gradebook afterwards, records a status beside
each score and, with ``--workers`` or ``--cluster``, keeps nbgrader's gradebook to one
writer. ``nbgrader autograde`` typed by hand, or the formgrader's *Autograde* button,
would do none of that: student code would run with the instructor's rights.

So the course's ``nbgrader_config.py`` gives nbgrader two ways to autograde. The
nbgrader runs the driver starts carry ``LABKIT_GRADING_DRIVER``
(``autograder.grading.course.nbgrader``) and execute the notebook in the sandboxed
kernel. In any other autograde run, ``GradeWithDriver`` is nbgrader's only preprocessor,
and nbgrader executes nothing: for each student it runs
``python -m autograder grade ASSIGNMENT --student STUDENT`` on the course, logs the
driver's row (status, score, flags: what the command prints for that student; the
formgrader shows nbgrader's log), and hands nbgrader the notebook the driver autograded,
which nbgrader writes back unchanged. Where the driver autograded nothing (an invalid,
failed or crashed submission), it stops nbgrader's run for that student with the
driver's status and reason, so that the formgrader reports an error.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

from autograder.grading.course import REPO_ROOT
from autograder.grading.grade import GRADED, Result, format_results, last_error, read_results

__all__ = ["DRIVER_VARIABLE", "MESSAGE", "GradeWithDriver", "driver_result"]

DRIVER_VARIABLE = "LABKIT_GRADING_DRIVER"
MESSAGE = (
    "this course is graded with the kit's driver, which sandboxes student code and checks "
    "the gradebook: run `python -m autograder grade ASSIGNMENT` in the course folder "
    "(see docs/instructor-guide.md)"
)


def _command(assignment: str, student: str, root: Path) -> list[str]:
    grade = ["-m", "autograder", "grade", assignment, "--root", str(root)]
    return [sys.executable, *grade, "--student", student]


def driver_result(assignment: str, student: str, root: Path) -> Result:
    """Grade ``student`` with the kit's driver (``python -m autograder grade ASSIGNMENT
    --student STUDENT``) in the course at ``root``; its result as the command reports it.
    RuntimeError, with the driver's reason, where it could not grade."""
    command = _command(assignment, student, root)
    python_path = [str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {k: v for k, v in os.environ.items() if k != DRIVER_VARIABLE}
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    run = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, check=False)
    shown = f"python -m autograder grade {assignment} --student {student}"
    if run.returncode != 0:
        why = last_error(run.stderr + run.stdout)
        raise RuntimeError(f"the kit's driver could not grade {student} (`{shown}`): {why}")
    result = read_results(assignment, root).get(student)
    if result is None:
        raise RuntimeError(f"the kit's driver reported nothing for {student} (`{shown}`)")
    return result


class GradeWithDriver(Preprocessor):
    """nbgrader's only autograde preprocessor outside the driver: the kit's driver grades
    the student, nbgrader writes what the driver autograded (see the module's text)."""

    # nbconvert's preprocessors are off unless enabled (as RedactHiddenOutputs).
    enabled = Bool(True).tag(config=True)

    def _results(self) -> dict[tuple[str, str, str], Result | str]:
        """The driver's results of this nbgrader run (kept by the converter running us:
        a notebook's two passes, and the assignment's other notebooks, reuse them)."""
        converter = getattr(self.parent, "parent", None) or self
        if not hasattr(converter, "_labkit_driver_results"):
            converter._labkit_driver_results = {}
        return converter._labkit_driver_results

    def preprocess(self, nb, resources):
        about = resources.get("nbgrader", {})
        assignment, student = about.get("assignment"), about.get("student")
        if not (assignment and student and about.get("notebook")):
            raise RuntimeError(MESSAGE)
        root = Path.cwd()  # nbgrader converts in the course root
        results, key = self._results(), (str(root), assignment, student)
        if key not in results:
            try:
                results[key] = result = driver_result(assignment, student, root)
            except RuntimeError as error:
                results[key] = str(error)
                raise
            clean = result.status == GRADED and not result.flags
            report = self.log.info if clean else self.log.warning
            report(
                "graded by the kit's driver, as `python -m autograder grade` reports it:\n%s",
                format_results([result]),
            )
        result = results[key]
        if isinstance(result, str):
            raise RuntimeError(result)
        path = root / "autograded" / student / assignment / f"{about['notebook']}.ipynb"
        if not path.is_file():
            raise RuntimeError(
                f"the kit's driver reports {student}: {result.status}"
                + (f" ({result.detail})" if result.detail else "")
                + "; it autograded nothing"
            )
        return nbformat.read(path, as_version=4), resources
