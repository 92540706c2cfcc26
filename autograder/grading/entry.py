"""``nbgrader autograde`` runs only through the kit's driver.

The driver (``python -m autograder grade``) archives and normalises each submission,
runs its kernel in the sandbox, checks the gradebook afterwards, records a status beside
each score and, with ``--workers`` or ``--cluster``, keeps nbgrader's gradebook to one
writer. ``nbgrader autograde`` typed by hand, or the formgrader's *Autograde* button,
would do none of that: student code would run with the instructor's rights. So every
nbgrader run the driver starts carries ``LABKIT_GRADING_DRIVER``
(``autograder.grading.course.nbgrader``), and ``RequireDriver``, first among the course's
autograde preprocessors (``nbgrader_config.py``), stops any other autograde run before a
cell is executed, saying what to run instead.
"""

from __future__ import annotations

import os

from nbconvert.preprocessors import Preprocessor
from traitlets import Bool

__all__ = ["DRIVER_VARIABLE", "MESSAGE", "RequireDriver"]

DRIVER_VARIABLE = "LABKIT_GRADING_DRIVER"
MESSAGE = (
    "this course is graded with the kit's driver, which sandboxes student code and checks "
    "the gradebook: run `python -m autograder grade ASSIGNMENT` in the course folder "
    "(see docs/instructor-guide.md), not `nbgrader autograde` or the formgrader's Autograde"
)


class RequireDriver(Preprocessor):
    """Refuse to autograde outside ``python -m autograder grade``."""

    # nbconvert's preprocessors are off unless enabled (as RedactHiddenOutputs).
    enabled = Bool(True).tag(config=True)

    def preprocess(self, nb, resources):
        if not os.environ.get(DRIVER_VARIABLE):
            raise RuntimeError(MESSAGE)
        return nb, resources
