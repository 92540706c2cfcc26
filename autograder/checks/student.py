"""Running a student's code inside a check, with every failure turned into a sentence.

Every check calls student code through ``call`` (or reports an untouched stub with
``stub_problem``), so that a stub, a forbidden call and any other exception read the
same in every lab: the call that failed, then what happened. An untouched stub is one
problem, reported once per check (``first_failures``), never an exception that escapes
the check. Integers are trusted only when they are exactly ``int``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F

__all__ = [
    "MAX_REPORTED",
    "STUB",
    "ForbiddenCall",
    "call",
    "describe_value",
    "first_failures",
    "forbidden",
    "int_problem",
    "is_stub",
    "non_default_keywords",
    "stub_problem",
]

STUB = "raised NotImplementedError: replace the stub with your code."
MAX_REPORTED = 3  # failing cases listed before "... and N more"


class ForbiddenCall(RuntimeError):
    """Raised by a function that ``forbidden`` replaced, while its block runs."""


def stub_problem(description: str) -> str:
    """The one sentence for an untouched stub: ``<description> raised NotImplementedError: ...``."""
    return f"{description} {STUB}"


def is_stub(problem: str) -> bool:
    """True when ``problem`` is ``stub_problem``'s sentence."""
    return problem.endswith(STUB)


def call(
    fn: Callable[..., Any], description: str, *args: Any, **kwargs: Any
) -> tuple[Any, str | None]:
    """``(fn(*args, **kwargs), None)``, or ``(None, a problem)`` when ``fn`` raises.

    ``description`` is how the problem names the call, e.g. ``conv_output_size(32, 3)``."""
    try:
        return fn(*args, **kwargs), None
    except NotImplementedError:
        return None, stub_problem(description)
    except ForbiddenCall as error:
        return None, f"{description}: {error}"
    except Exception as error:  # a student's function can fail in any way
        return None, f"{description} raised {type(error).__name__}: {error}"


@contextlib.contextmanager
def forbidden(names: Sequence[str], hint: str) -> Iterator[list[str]]:
    """Make ``torch.<name>`` and ``F.<name>`` raise ``ForbiddenCall`` while the block runs;
    yield the list of what was called.

    ``nn.Conv2d`` and ``nn.MaxPool2d`` call these too, so a layer is caught as well."""
    called: list[str] = []
    saved = []
    for module, prefix in ((F, "F."), (torch, "torch.")):
        for name in names:
            if hasattr(module, name):
                saved.append((module, name, getattr(module, name)))

                def refuse(*_args, _name=prefix + name, **_kwargs):
                    called.append(_name)
                    raise ForbiddenCall(f"{_name} is not allowed here: {hint}")

                setattr(module, name, refuse)
    try:
        yield called
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def describe_value(value: object) -> str:
    """``float 2.5``: the type, and the value when it prints briefly."""
    try:
        text = repr(value)
    except Exception:  # a student's object may fail even to print
        text = ""
    name = type(value).__name__
    return f"{name} {text}" if text and len(text) < 60 else name


def int_problem(value: object, description: str, hint: str) -> str | None:
    """A problem unless ``value`` is exactly an int (not a bool, float, tensor or subclass)."""
    if type(value) is int:
        return None
    return f"{description} should return an int, got {describe_value(value)}. {hint}"


def first_failures(per_case: Iterable[list[str]], limit: int = MAX_REPORTED) -> list[str]:
    """The problems of the first ``limit`` failing cases, and how many more fail.

    A function that is still the stub fails every case the same way: say it once."""
    problems: list[str] = []
    failing = 0
    for found in per_case:
        if found and is_stub(found[0]):
            return found[:1]
        if found:
            failing += 1
            if failing <= limit:
                problems += found
    more = failing - limit
    return problems + ([f"... and {more} more case(s) fail."] if more > 0 else [])


def non_default_keywords(*options: tuple[str, object, object]) -> str:
    """``", stride=2, padding=1"``: each ``(name, value, default)`` whose value is not its
    default, written as a call's keyword argument, so that a problem names the call as a
    student would write it."""
    return "".join(f", {name}={value}" for name, value, default in options if value != default)
