"""Checks, targets and the grading driver for the labs.

Every check is a pure function that returns a list of readable problems; ``[]``
means pass. Test cells read ``assert not problems, report(problems)``.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["report"]


def report(problems: Sequence[str]) -> str:
    """The message for ``assert not problems, report(problems)``."""
    count = len(problems)
    lines = [f"{count} problem{'' if count == 1 else 's'} found:"]
    lines += [f"- {problem}" for problem in problems]
    return "\n".join(lines)
