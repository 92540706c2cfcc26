"""Checks, targets and the grading driver for the labs.

Every check is a pure function that returns a list of readable problems; ``[]``
means pass. Test cells read ``assert not problems, report(problems)``; hidden tests run
inside a function (``@hidden_test``) so that their inputs stay out of the notebook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["hidden_test", "report"]


def report(problems: Sequence[str]) -> str:
    """The message for ``assert not problems, report(problems)``, in the kit's language
    (``labkit.i18n``: each problem line by line, from its English template)."""
    from labkit.i18n import _, translate_message  # the kit (and torch) only when reporting

    count = len(problems)
    header = _("{count} problem found:") if count == 1 else _("{count} problems found:")
    lines = [header.format(count=count)]
    lines += [f"- {translate_message(str(problem))}" for problem in problems]
    return "\n".join(lines)


def hidden_test(test: Callable[[], object]) -> None:
    """Run a hidden test at once, as a decorator: ``@hidden_test`` over ``def _hidden():``.

    The test's inputs and targets are the function's locals, so they never become names
    in the notebook, where student code called by the test could find them; the
    function itself is never bound to a name either (``_hidden`` ends up ``None``)."""
    test()
