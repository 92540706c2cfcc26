"""Flag student code that reaches for the grader instead of the task.

Student code runs in the same kernel as the hidden tests, so it could patch the
checks, rewrite later cells or look for the answers. The sandbox blocks what it
can (files, network, processes); this scan flags the rest for an instructor to
review. A flag never changes a score by itself: the driver reports it beside
the grade. The patterns are deliberately broad; these labs never need them.

Code is read as Python reads it: comments are found with the tokenizer (a ``#`` inside
a string hides nothing after it), names and imports with ``ast``; both take time linear
in the notebook's size. Every magic is flagged except ``%matplotlib``, ``%time``,
``%timeit`` and ``%pip`` (``%xmode``, ``%run``, ``%env``... change the grading run). In
a solution cell, an import or a name from the libraries' own models (torchvision's
``BasicBlock``, ``make_layers``, ``Inception``...; ``torch.hub``; ``timm``) is flagged:
a TODO answered by the library's implementation of the same thing.

With the release notebook, the scan also flags student code that rebinds a name the
test cells rely on: an imported check (``check_summary = ...``), a builtin
(``type = ...``), or, after the locked cell that binds it, a result such as
``history``; and any attribute assigned on an imported module (``T.equal = ...``
after ``import torch as T``).
"""

from __future__ import annotations

import ast
import builtins
import io
import re
import tokenize

__all__ = ["ALLOWED_MAGICS", "LIBRARY_ANSWERS", "PATTERNS", "scan_notebook"]

PATTERNS: dict[str, str] = {
    r"\bget_ipython\b|\binput_transformers|\bast_transformers|\bevents\.register": (
        "changes how IPython runs later cells"
    ),
    r"\b(autograder|labkit|torchsummary)\.\w+(\.\w+)*\s*=[^=]": "replaces part of the grader",
    r"\b(setattr|delattr)\s*\(": "changes attributes by name (setattr/delattr)",
    r"\bsys\.modules\b|\bimportlib\b|\b__import__\b": "swaps modules",
    # not model.eval() or torch.compile(): a method or attribute is not the builtin
    r"(?<!\.)\b(exec|eval|compile)\s*\(": "runs code built at run time (exec/eval/compile)",
    r"__code__|__globals__|__builtins__|\bbuiltins\b|\bgc\.get_objects\b|\bglobals\s*\(": (
        "reaches into function or interpreter internals"
    ),
    r"\b(_ih|_oh|_i{1,3}|_i\d+)\b|\bIn\s*\[|\binspect\b|\b_getframe\b|\btb_frame\b|\bf_back\b"
    r"|\blinecache\b": "reads the source of the running cell (hidden tests?)",
    # torch.backends.* are settings (cudnn.benchmark, ...), not code a check calls
    # (?<!\.): a chain is tried from its first name only, so a long one is read once
    r"(?<!\.)\btorch\.(?!backends\.)\w+(\.\w+)*\s*=[^=]|(?<!\.)\bnn\.\w+(\.\w+)*\s*=[^=]": (
        "replaces part of torch"
    ),
    r"NBGRADER|\bos\.environ\b|\bgetenv\b": "reads the environment (detects grading?)",
    r"gradebook|solutions/|autograded|\.\./\.\.": "looks for grading files",
    r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b": "uses the network",
    r"\bsubprocess\b|\bos\.(system|fork|exec\w*|spawn\w*|kill|_exit)\b|\bctypes\b": (
        "starts or kills processes"
    ),
    r"\bpickle\b|\btorch\.load\b|\bjoblib\b": "loads pickled objects",
    r"__eq__|__ne__|__bool__|__hash__": "overrides comparison (always-equal objects?)",
    r"\bf_(globals|locals|back|trace|code)\b|\b(gi|cr|ag)_frame\b|\bset(trace|profile)\b"
    r"|\bsys\.monitoring\b|\bcurrentframe\b": "reaches into running frames (trace functions?)",
    r"\bhistory_manager\b|\bHistoryManager\b|\bInteractiveShell\b|\.instance\s*\(": (
        "reaches into IPython's shell"
    ),
    r"\b(displayhook|excepthook|showtraceback|set_custom_exc|InteractiveTB|xmode)\b": (
        "changes how results or errors are shown"
    ),
}
# Magics a lab may use (Colab's setup uses %pip); any other %magic or %%cell magic is
# flagged. Shell lines (!cmd) are judged by the patterns, like code.
ALLOWED_MAGICS = frozenset({"matplotlib", "time", "timeit", "pip"})
# Where the libraries keep their own answers to the labs' TODOs.
LIBRARY_ANSWERS = ("torchvision.models", "torch.hub", "timm")
_COMPILED = [(re.compile(pattern), why) for pattern, why in PATTERNS.items()]


def _is_magic(line: str) -> bool:
    return line.lstrip().startswith(("%", "!"))


def _code_lines(source: str):
    """(line number, the line without its comment) for each line that holds code.

    Comments are found by Python's tokenizer, so a ``#`` inside a string does not end
    the code before it. Magic lines are kept whole; a cell the tokenizer cannot read
    is scanned whole, line by line."""
    lines = source.splitlines()
    python = "\n".join("" if _is_magic(line) else line for line in lines) + "\n"
    comments: dict[int, int] = {}  # line number -> column where its comment starts
    try:
        for token in tokenize.generate_tokens(io.StringIO(python).readline):
            if token.type == tokenize.COMMENT:
                comments[token.start[0]] = token.start[1]
    except (tokenize.TokenError, SyntaxError):
        comments = {}
    for number, line in enumerate(lines, start=1):
        code = line if _is_magic(line) else line[: comments.get(number, len(line))]
        if code.strip():
            yield number, code


def _magic_problem(code: str) -> str | None:
    """Why a magic or shell line is flagged, or None for a magic the labs allow."""
    stripped = code.lstrip()
    if not stripped.startswith("%"):
        return None  # a shell line (!cmd) runs in the sandbox: the patterns judge it
    name = stripped.lstrip("%").split(maxsplit=1)[0] if stripped.strip("%") else ""
    return None if name in ALLOWED_MAGICS else f"runs the IPython magic %{name}"


def _import_targets(nb) -> dict[str, str]:
    """What each name that a notebook's imports bind stands for: ``models`` ->
    ``torchvision.models``, ``tv`` -> ``torchvision``."""
    targets: dict[str, str] = {}
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        for node in ast.walk(tree) if tree is not None else ():
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        targets[alias.asname] = alias.name
                    else:
                        root = alias.name.split(".")[0]
                        targets[root] = root
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    targets[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return targets


def _dotted(node: ast.AST, targets: dict[str, str]) -> str | None:
    """``a.b.c`` for an attribute chain on a name, its root resolved through imports."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([targets.get(node.id, node.id), *reversed(parts)])


def _module_patches(tree: ast.AST, modules: set[str]) -> dict[int, str]:
    """Line -> the attribute of an imported module that a statement assigns or deletes
    (``T.equal = ...``, ``t.compare_tables, x = ...``), wherever it stands on its line."""
    found: dict[int, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
        else:
            continue
        for target in targets:
            for part in ast.walk(target):
                if not isinstance(part, ast.Attribute):
                    continue
                root = part
                while isinstance(root, ast.Attribute):
                    root = root.value
                if isinstance(root, ast.Name) and root.id in modules:
                    found.setdefault(part.lineno, ast.unparse(part))
    return found


def _from_library(name: str) -> bool:
    return any(name == lib or name.startswith(lib + ".") for lib in LIBRARY_ANSWERS)


def _library_answers(tree: ast.AST, targets: dict[str, str]) -> dict[int, str]:
    """Line -> the library object a cell imports or names from ``LIBRARY_ANSWERS``."""
    found: dict[int, str] = {}
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, (ast.Attribute, ast.Name)):
            dotted = _dotted(node, targets)
            names = [dotted] if dotted else []
        for name in names:
            if _from_library(name) and len(name) > len(found.get(node.lineno, "")):
                found[node.lineno] = name
    return found


def _meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def _parse(source: str) -> ast.Module | None:
    """The cell's syntax tree, magic lines blanked (line numbers stay the cell's)."""
    try:
        return ast.parse(_blank_magics(source))
    except (SyntaxError, RecursionError, MemoryError):
        return None


def _blank_magics(source: str) -> str:
    return "\n".join("" if _is_magic(line) else line for line in source.splitlines())


def _too_deep(source: str) -> bool:
    """Whether the cell is Python nested past what the parser takes (a chain of 100,000
    attributes, say): nothing in it can be read, so it is flagged."""
    try:
        ast.parse(_blank_magics(source))
    except (RecursionError, MemoryError):
        return True
    except SyntaxError:
        return False
    return False


def _bound_names(tree: ast.Module) -> tuple[set[str], set[str]]:
    """(names bound by imports, names bound otherwise) at the top level of a cell."""
    imported, assigned = set(), set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            assigned |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return imported, assigned


def _loaded_names(tree: ast.Module) -> set[str]:
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _protected(release) -> tuple[set[str], dict[str, str]]:
    """Names the release's test cells read: (imported or builtin names, which no student
    cell may rebind; names bound by a locked cell -> that cell's grade id, which no student
    cell after it may rebind)."""
    used: set[str] = set()
    imported = set(dir(builtins))
    locked: dict[str, str] = {}
    for cell in release.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        if tree is None:
            continue
        names, assigned = _bound_names(tree)
        imported |= names
        if _meta(cell).get("grade"):
            used |= _loaded_names(tree)
        elif _meta(cell).get("locked"):
            locked.update(dict.fromkeys(assigned, _meta(cell)["grade_id"]))
    return imported & used, {name: gid for name, gid in locked.items() if name in used}


_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)


def _rebound(tree: ast.AST) -> list[tuple[str, int]]:
    """(name, line) for each global name a cell binds to something new: assignments,
    definitions and loop targets at the top level, ``global`` declarations anywhere, and
    imports under another name (``import torch`` binds torch itself; ``from m import f as
    check_summary`` does not). Names local to a function or a comprehension are not."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, _SCOPES):
            if not isinstance(node, ast.Lambda):
                found.append((node.name, node.lineno))
            found += [
                (name, g.lineno)
                for g in ast.walk(node)
                if isinstance(g, ast.Global)
                for name in g.names
            ]
            continue
        if isinstance(node, _COMPREHENSIONS):
            continue
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            found.append((node.id, node.lineno))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [
                (a.asname, node.lineno)
                for a in node.names
                if a.asname and a.asname != a.name.split(".")[-1]
            ]
        found += _rebound(node)
    return found


def _module_aliases(nb) -> set[str]:
    """Names that imports bind anywhere in the notebook (torch, T, np, autograder, ...)."""
    names: set[str] = set()
    for cell in nb.cells:
        tree = _parse(cell.source) if cell.cell_type == "code" else None
        if tree is not None:
            names |= _bound_names(tree)[0]
    return names


def scan_notebook(nb, release=None) -> list[str]:
    """Flags for code cells the student can edit (locked and test cells are restored
    from the source by nbgrader, so only the others matter). With ``release``, also
    flags rebinding a name its test cells read."""
    always, after_locked = _protected(release) if release is not None else (set(), {})
    modules = _module_aliases(nb) - {"torch"}  # torch has its own pattern above
    patching = re.compile(
        rf"^\s*(?:{'|'.join(map(re.escape, sorted(modules)))})(\.\w+)+\s*=(?!=)"
        if modules
        else "$^"
    )
    targets = _import_targets(nb)
    passed: set[str] = set()  # grade ids of the locked cells seen so far
    flags = []
    for index, cell in enumerate(nb.cells):
        meta = _meta(cell)
        if cell.cell_type != "code" or meta.get("locked") or meta.get("grade"):
            if meta.get("locked"):
                passed.add(meta.get("grade_id"))
            continue
        watched = always | {name for name, gid in after_locked.items() if gid in passed}
        rebound: dict[int, list[str]] = {}
        patches: dict[int, str] = {}
        library: dict[int, str] = {}
        try:
            tree = _parse(cell.source)
            if tree is None and _too_deep(cell.source):
                raise RecursionError
            for name, number in _rebound(tree) if tree is not None else []:
                if name in watched:
                    rebound.setdefault(number, []).append(name)
            patches = _module_patches(tree, modules) if tree is not None else {}
            # a TODO answered with the library's own implementation
            if tree is not None and meta.get("solution"):
                library = _library_answers(tree, targets)
        except (RecursionError, MemoryError):  # nested past what Python's parser takes
            flags.append(f"cell {index}: code nested too deeply for the scan to read it")
        for number, code in _code_lines(cell.source):
            found = [why for pattern, why in _COMPILED if pattern.search(code)]
            magic = _magic_problem(code)
            if magic:
                found.append(magic)
            if patching.search(code) or number in patches:
                found.append("replaces part of an imported module")
            found += [f"rebinds {name!r}, which the tests use" for name in rebound.get(number, [])]
            if number in library:
                found.append(f"answers a TODO with the library's own {library[number]}")
            flags += [f"cell {index} line {number}: {why}: {code.strip()[:80]!r}" for why in found]
    return flags
