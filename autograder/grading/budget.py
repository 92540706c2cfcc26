"""What a graded run computes, and at what size.

A graded notebook runs every cell a test depends on, and nothing else at full cost:

- Training runs at the token size (``labkit.config``'s ``grade``: 150 training and 20
  test images per class), set in the kernel's environment (``sandbox.kernel_env``,
  ``course.nbgrader``). The checks on a run ask that it trains and learns, not how well
  (``autograder.checks.training``).
- A cell no test reads is not run: its output in the graded notebook says so and names
  what it would have computed (``RecordOutcome``, ``autograder.grading.scoring``).

``LABKIT_GRADING_RUN=fast`` on the grading machine grades as before, at CI's size with
every cell run (for an instructor who wants the graded notebooks whole, or to compare).

Which cells a test reads is worked out from the notebook itself, from the names each
cell binds and reads (``unread_cells``): a test cell, a cell a student writes, and a cell
that binds or changes a name a later needed cell reads are needed; so is any cell that
does not parse. The rest (plots, tables, comparisons no test looks at) are skipped. A cell
reaching a name some other way (``globals()``) would only break the student's own
grade, never raise it, and the checks read nothing that way.
"""

from __future__ import annotations

import ast
import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from nbformat import NotebookNode

__all__ = [
    "GRADING_RUN_VARIABLE",
    "RELEASE_KEY",
    "SkippedCell",
    "grading_run",
    "skips_unread",
    "unread_cells",
]

GRADING_RUN_VARIABLE = "LABKIT_GRADING_RUN"
# In a code cell's metadata, set by preflight: the cell runs as the release wrote it.
RELEASE_KEY = "labkit_release_cell"
_RUNS = ("grade", "fast")


def grading_run() -> str:
    """The run size graded kernels get: ``grade`` (the token size) unless the grading
    machine sets ``LABKIT_GRADING_RUN=fast``."""
    value = os.environ.get(GRADING_RUN_VARIABLE, "grade").strip().lower() or "grade"
    if value not in _RUNS:
        raise ValueError(
            f"{GRADING_RUN_VARIABLE}={value!r}: use 'grade' (the token size, cells no test "
            "reads skipped) or 'fast' (CI's size, every cell run)."
        )
    return value


def skips_unread() -> bool:
    """Whether cells no test reads are skipped: at the token size, yes."""
    return grading_run() == "grade"


@dataclass(frozen=True)
class SkippedCell:
    index: int  # in nb.cells
    binds: tuple[str, ...]  # what it would have computed, none read by a later needed cell

    def note(self) -> str:
        what = ", ".join(f"`{name}`" for name in self.binds[:6])
        what += " ..." if len(self.binds) > 6 else ""
        computed = f"what it computes ({what})" if what else "its output"
        return (
            f"⏭ not run while grading: no test reads {computed}. "
            "Run the notebook yourself to see it.\n"
        )


class _Names(ast.NodeVisitor):
    """The names a cell reads before binding them (``free``) and the names it binds or
    changes (``binds``: assigned, imported, defined, deleted, or the base of an
    attribute or item it sets or a method it calls)."""

    def __init__(self) -> None:
        self.free: set[str] = set()
        self.binds: set[str] = set()
        self.imports: set[str] = set()  # bound by an import
        self.receivers: set[str] = set()  # x in x.method(...): changed, unless a module
        self._scopes: list[set[str]] = [set()]

    # -- reading and binding
    def _load(self, name: str) -> None:
        if not any(name in scope for scope in self._scopes):
            self.free.add(name)

    def _bind(self, name: str) -> None:
        self._scopes[-1].add(name)
        if len(self._scopes) == 1:
            self.binds.add(name)

    def _base(self, node: ast.AST) -> str | None:
        while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._load(node.id)
        else:
            self._bind(node.id)

    def _target(self, target: ast.AST) -> None:
        if isinstance(target, (ast.Attribute, ast.Subscript)):
            self.visit(target)  # reads the base and the index
            base = self._base(target)
            if base:
                self._bind(base)  # ... and changes the base
        elif isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._target(element)
        elif isinstance(target, ast.Starred):
            self._target(target.value)
        else:
            self.visit(target)

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
        self._target(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        base = self._base(node.target)
        if base:
            self._load(base)
        self._target(node.target)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._target(target)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._target(node.target)
        for statement in node.body + node.orelse:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._target(item.optional_vars)
        for statement in node.body:
            self.visit(statement)

    visit_AsyncWith = visit_With

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target.id)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            name = (alias.asname or alias.name).split(".")[0]
            self._bind(name)
            self.imports.add(name)

    visit_ImportFrom = visit_Import

    def visit_Call(self, node: ast.Call) -> None:
        self.generic_visit(node)
        if isinstance(node.func, ast.Attribute):  # x.method(...) may change x
            base = self._base(node.func)
            if base and len(self._scopes) == 1:
                self.receivers.add(base)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._bind(node.name)
        for statement in node.body:
            self.visit(statement)

    # -- scopes of their own: what they read from outside is read when they run
    def _scoped(self, bound: list[str], body: list[ast.AST]) -> None:
        local: set[str] = set(bound)
        for child in body:  # assignments anywhere in the body are local to it
            for node in ast.walk(child):
                if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
                    local.add(node.id)
        self._scopes.append(local)
        for child in body:
            self.visit(child)
        self._scopes.pop()

    def _arguments(self, args: ast.arguments) -> list[str]:
        every = [*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg]
        for default in [*args.defaults, *[d for d in args.kw_defaults if d is not None]]:
            self.visit(default)
        return [a.arg for a in every if a is not None]

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        self._bind(node.name)
        self._scoped(self._arguments(node.args), node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._scoped(self._arguments(node.args), [node.body])

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expression in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expression)
        self._bind(node.name)
        self._scoped([], node.body)

    def _comprehension(self, node, results: list[ast.AST]) -> None:
        self._scopes.append(set())
        for generator in node.generators:
            self.visit(generator.iter)
            self._target(generator.target)
            for condition in generator.ifs:
                self.visit(condition)
        for result in results:
            self.visit(result)
        self._scopes.pop()

    def visit_ListComp(self, node) -> None:
        self._comprehension(node, [node.elt])

    visit_SetComp = visit_GeneratorExp = visit_ListComp

    def visit_DictComp(self, node: ast.DictComp) -> None:
        self._comprehension(node, [node.key, node.value])


def _names(source: str) -> _Names | None:
    try:
        names = _Names()
        names.visit(ast.parse(source))
    except (SyntaxError, RecursionError, MemoryError):  # not Python, or nested too deep
        return None
    return names


def _always_needed(cell: NotebookNode, release_only: bool) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    if release_only and not cell.metadata.get(RELEASE_KEY):
        return True  # a cell the student wrote or changed
    return bool(meta.get("solution") or meta.get("grade"))


def unread_cells(
    nb: NotebookNode,
    release_only: bool = False,
    needed: Callable[[NotebookNode], bool] | None = None,
) -> list[SkippedCell]:
    """The code cells that no test reads, directly or through the cells it needs.

    Needed: every test cell and every cell a student writes (a solution cell; with
    ``release_only``, also any cell preflight did not mark as the release's, unchanged),
    any cell that does not parse (magics included), and, going backwards, every cell
    that binds or changes a name that a later needed cell reads. ``needed`` replaces the
    first rule: the cells it is true of are the ones needed for themselves."""
    needed = needed or functools.partial(_always_needed, release_only=release_only)
    code = {i: c for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()}
    parsed = {i: _names(c.source) for i, c in code.items()}
    # torch.manual_seed(0) or plt.show() does not make a cell the maker of `torch`, `plt`
    modules = set().union(*(n.imports for n in parsed.values() if n is not None))
    read: set[str] = set()
    skipped: list[SkippedCell] = []
    for index in sorted(code, reverse=True):
        cell, names = code[index], parsed[index]
        changes = set() if names is None else names.binds | (names.receivers - modules)
        if names is None or needed(cell) or changes & read:
            read |= names.free if names is not None else set()
            if names is None:
                return [s for s in skipped if s.index > index]  # nothing before it is known
            continue
        skipped.append(SkippedCell(index, tuple(sorted(changes))))
    return sorted(skipped, key=lambda s: s.index)
