"""The grading kernel's guard: what the checks rely on is what it was at start.

Student code runs in the same process as the checks, so it can replace what they call
(``torch.allclose``, a check of ``autograder.checks``, a builtin), install a trace
function that rewrites a check's locals, swap the display or exception hooks, or set
``%xmode Verbose`` so that a traceback shows hidden test lines. Nothing in-process can
prevent all of that; the guard makes it visible and undoes what it can.

nbgrader starts the grading kernel with this module as an IPython extension
(``--IPKernelApp.extensions``, in ``nbgrader_config.py``), before any student code.
Before the first cell of the notebook runs, the guard records:

- the trace and profile functions (``sys`` and ``threading``);
- the display and exception hooks (``sys.displayhook``, ``sys.excepthook``, the shell's
  ``displayhook``, ``display_pub``, ``showtraceback``, custom exception handlers, input
  and AST transformers, the event callbacks registered so far) and the traceback mode,
  which stays ``Minimal``;
- the builtins;
- every module of the kit that a kernel can use (``autograder`` and its checks,
  ``labkit``; all imported now, not the grading pipeline or the translation commands,
  which run outside the kernel), and the torch, torchvision and torchsummary functions
  and classes the checks call: each module's names, each function's code and
  defaults, each class's attributes.

Before every cell it compares, puts back what changed, and remembers what it found.
After each cell that did not raise, the grader (``scoring.RecordOutcome``) asks for
``verdict()`` through the execute request's ``user_expressions``, which the kernel
evaluates outside the cell's code, and writes the answer into the cell's metadata; the
driver flags the submission when a verdict names a change, or when a graded cell has
no verdict at all (the guard was removed or bypassed).
"""

from __future__ import annotations

import builtins
import importlib
import json
import pkgutil
import sys
import threading
import types
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["EXPRESSION", "TRACEBACK_MODE", "Guard", "load_ipython_extension", "verdict"]

TRACEBACK_MODE = "Minimal"
# What the grader asks after each cell: found again through the import system, so that
# a name bound in the notebook cannot stand in for it.
EXPRESSION = '__import__("autograder.grading.guard", fromlist=["verdict"]).verdict()'

_KIT = ("autograder", "labkit")
# The kit's parts that run only outside the kernel: the grading pipeline and the
# translation commands (which would import nbformat and jsonschema, seconds, for nothing).
_OUTSIDE_KERNEL = ("autograder.grading", "autograder.translation")
# Modules whose functions the checks call, beyond the kit's own.
_LIBRARIES = (
    "torch",
    "torch.nn",
    "torch.nn.functional",
    "torch.nn.init",
    "torch.nn.modules.module",
    "torch.utils.data",
    "torch.utils.flop_counter",
    "torchvision.models",
    "torchvision.models.resnet",
    "torchvision.models.vgg",
    "torchvision.models.googlenet",
    "torchsummary",
    "torchsummary.torchsummary",
    "copy",
    "difflib",
    "math",
    "re",
)
_MISSING = object()


def _code_of(value: Any) -> Any:
    """What a function does: its code, defaults and globals (a swapped ``__code__`` on
    the same function object is a change too)."""
    function = getattr(value, "__func__", value)
    if isinstance(function, types.FunctionType):
        return (function.__code__, function.__defaults__, function.__kwdefaults__)
    return None


# Names the kernel itself rebinds around every request (ipykernel forwards input()).
_KERNEL_MANAGED = {"builtins": {"input"}}
# Plain values a library class keeps as state (torch's hook handles count in a class
# attribute): what it does is in its functions, which are compared.
_STATE = (int, float, str, bool, type(None))


class _Namespace:
    """The attributes of one object (a module or a class) as first seen."""

    def __init__(self, label: str, owner: Any, behaviour_only: bool = False) -> None:
        self.label, self.owner = label, owner
        managed = set(_KERNEL_MANAGED.get(label, set()))
        if behaviour_only:  # a library class's counters and flags are its own state
            managed |= {k for k, v in vars(owner).items() if isinstance(v, _STATE)}
        self.values = {k: v for k, v in vars(owner).items() if k not in managed}
        self.managed = managed
        self.codes = {name: _code_of(value) for name, value in self.values.items()}

    def changes(self, restore: bool) -> list[str]:
        found = []
        now = vars(self.owner)
        for name, value in self.values.items():
            current = now.get(name, _MISSING)
            if current is _MISSING or current is not value:
                found.append(f"{self.label}.{name} was replaced")
                if restore:
                    _set(self.owner, name, value)
            elif self.codes[name] is not None and _code_of(current) != self.codes[name]:
                function = getattr(value, "__func__", value)
                found.append(
                    f"the code of {function.__module__}.{function.__qualname__} was changed"
                )
                if restore:
                    code, defaults, kwdefaults = self.codes[name]
                    function.__code__ = code
                    function.__defaults__ = defaults
                    function.__kwdefaults__ = kwdefaults
        for name in set(now) - set(self.values) - self.managed:
            if name.startswith("__") and name.endswith("__"):
                continue  # the interpreter's own bookkeeping (__warningregistry__, ...)
            if isinstance(now[name], types.ModuleType):
                continue  # a submodule imported since: the import system binds it
            found.append(f"{self.label}.{name} was added")
            if restore:
                _delete(self.owner, name)
        return found


def _set(owner: Any, name: str, value: Any) -> None:
    try:  # noqa: SIM105 (plain try: the guard leans on as few modules as it can)
        setattr(owner, name, value)
    except (AttributeError, TypeError):
        pass  # a read-only slot: reported, not restored


def _delete(owner: Any, name: str) -> None:
    try:  # noqa: SIM105
        delattr(owner, name)
    except (AttributeError, TypeError):
        pass


def _kit_modules() -> Iterable[types.ModuleType]:
    """Every module of the kit, imported now so that the first snapshot holds them all."""
    for top in _KIT:
        package = importlib.import_module(top)
        for name in getattr(package, "__all__", ()):
            getattr(package, name)  # a name the package loads on first use is bound now
        yield package
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{top}."):
            if info.name.endswith("__main__") or info.name.startswith(_OUTSIDE_KERNEL):
                continue  # the instructor's tools run outside the kernel; no check uses them
            try:
                yield importlib.import_module(info.name)
            except Exception:  # an optional part that cannot load here is not guarded
                continue


def _library_modules() -> Iterable[types.ModuleType]:
    for name in _LIBRARIES:
        try:
            yield importlib.import_module(name)
        except Exception:
            continue


def _classes(module: types.ModuleType) -> Iterable[type]:
    """The classes a module offers that its own package defines (``torch.nn`` offers
    ``Conv2d`` from ``torch.nn.modules.conv``)."""
    package = module.__name__.split(".")[0]
    for value in list(vars(module).values()):
        if isinstance(value, type) and str(value.__module__).split(".")[0] == package:
            yield value


class Guard:
    """The recorded state, and the comparison made before every cell."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.found: list[str] = []
        self.namespaces: list[_Namespace] = []
        self.hooks: dict[str, tuple[Callable[[], Any], Callable[[Any], None], Any]] = {}
        self.armed = False

    # ---- recording -------------------------------------------------------------------

    def arm(self) -> None:
        """Record everything; called before the notebook's first cell."""
        shell = self.shell
        # the inline backend registers its callbacks on first import: do it now
        try:  # noqa: SIM105
            importlib.import_module("matplotlib.pyplot")
        except Exception:
            pass
        shell.InteractiveTB.set_mode(TRACEBACK_MODE)
        hooks: dict[str, tuple[Callable[[], Any], Callable[[Any], None]]] = {
            "the trace function (sys.settrace)": (sys.gettrace, sys.settrace),
            "the profile function (sys.setprofile)": (sys.getprofile, sys.setprofile),
            "the threads' trace function (threading.settrace)": (
                lambda: getattr(threading, "_trace_hook", None),
                threading.settrace,
            ),
            "the threads' profile function (threading.setprofile)": (
                lambda: getattr(threading, "_profile_hook", None),
                threading.setprofile,
            ),
            "the traceback mode (%xmode)": (
                lambda: shell.InteractiveTB.mode,
                shell.InteractiveTB.set_mode,
            ),
            "the builtins of the notebook": (
                lambda: shell.user_ns.get("__builtins__"),
                lambda value: shell.user_ns.__setitem__("__builtins__", value),
            ),
        }
        for name in ("displayhook", "excepthook", "breakpointhook", "unraisablehook"):
            hooks[f"sys.{name}"] = (
                lambda n=name: getattr(sys, n),
                lambda value, n=name: setattr(sys, n, value),
            )
        for name in (
            "displayhook",
            "display_pub",
            "showtraceback",
            "showsyntaxerror",
            "custom_exceptions",
            "CustomTB",
            "InteractiveTB",
            "run_cell",
            "run_ast_nodes",
            "run_code",
            "user_expressions",
        ):
            hooks[f"the shell's {name}"] = (
                lambda n=name: getattr(shell, n),
                lambda value, n=name: setattr(shell, n, value),
            )
        for name in ("input_transformers_cleanup", "input_transformers_post", "ast_transformers"):
            hooks[f"the shell's {name}"] = (
                lambda n=name: list(getattr(shell, n)),
                lambda value, n=name: setattr(shell, n, list(value)),
            )
        self.hooks = {label: (get, put, get()) for label, (get, put) in hooks.items()}
        # Callbacks may be added (the inline backend adds its own on first plot); none of
        # those registered now (the guard's, the sandbox's) may go.
        self.callbacks = {event: list(found) for event, found in shell.events.callbacks.items()}
        self.namespaces = [_Namespace("builtins", builtins)]
        seen: set[int] = set()
        for module in [*_kit_modules(), *_library_modules()]:
            self.namespaces.append(_Namespace(module.__name__, module))
            for cls in _classes(module):
                if id(cls) not in seen and module.__name__ != "torch":
                    seen.add(id(cls))
                    label = f"{cls.__module__}.{cls.__qualname__}"
                    library = not label.startswith(_KIT)
                    self.namespaces.append(_Namespace(label, cls, behaviour_only=library))
        torch = sys.modules.get("torch")
        if torch is not None:
            self.namespaces.append(_Namespace("torch.Tensor", torch.Tensor))
            self.namespaces.append(_Namespace("torch._C.TensorBase", torch._C.TensorBase))
        self.armed = True

    # ---- comparing -------------------------------------------------------------------

    def check(self, restore: bool = True) -> list[str]:
        """What changed since ``arm`` (put back when ``restore``); remembered in ``found``."""
        changes = []
        for label, (get, put, value) in self.hooks.items():
            current = get()
            if current is not value and current != value:
                changes.append(f"{label} was changed")
                if restore:
                    try:  # noqa: SIM105
                        put(value)
                    except Exception:  # reported even when it cannot be undone
                        pass
        for event, registered in self.callbacks.items():
            current = self.shell.events.callbacks.setdefault(event, [])
            missing = [callback for callback in registered if callback not in current]
            if missing:
                changes.append(f"a {event} callback of the grading kernel was removed")
                if restore:
                    current.extend(missing)
        for namespace in self.namespaces:
            changes += namespace.changes(restore)
        for change in changes:
            if change not in self.found:
                self.found.append(change)
        return changes

    def before_cell(self, info: Any) -> None:
        if not self.armed:
            if getattr(info, "store_history", True):  # the notebook's first cell
                self.arm()
            return
        self.check()


_GUARD: Guard | None = None


def verdict() -> str:
    """The guard's answer to the grader: JSON with every change found so far (a check is
    made now too), or an error when the guard never started."""
    if _GUARD is None or not _GUARD.armed:
        return json.dumps({"guard": "not running", "changes": []})
    _GUARD.check()
    return json.dumps({"guard": "running", "changes": list(_GUARD.found)})


def load_ipython_extension(shell: Any) -> None:
    """Install the guard in a grading kernel (IPython's extension entry point)."""
    global _GUARD
    if _GUARD is not None:
        return
    _GUARD = Guard(shell)
    shell.events.register("pre_run_cell", _GUARD.before_cell)
