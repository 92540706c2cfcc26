"""Flag student code that reaches for the grader instead of the task.

Student code runs in the same kernel as the hidden tests, so it could patch the
checks, rewrite later cells or look for the answers. The sandbox blocks what it
can (files, network, processes); this scan flags the rest for an instructor to
review. A flag never changes a score by itself: the driver reports it beside
the grade. The patterns are deliberately broad; these labs never need them.
"""

from __future__ import annotations

import re

__all__ = ["PATTERNS", "scan_notebook"]

PATTERNS: dict[str, str] = {
    r"\bget_ipython\b|\binput_transformers|\bast_transformers|\bevents\.register": (
        "changes how IPython runs later cells"
    ),
    r"\b(autograder|labkit|torchsummary)\.\w+(\.\w+)*\s*=[^=]": "replaces part of the grader",
    r"\b(setattr|delattr)\s*\(": "changes attributes by name (setattr/delattr)",
    r"\bsys\.modules\b|\bimportlib\b|\b__import__\b": "swaps modules",
    r"\b(exec|eval|compile)\s*\(": "runs code built at run time (exec/eval/compile)",
    r"__code__|__globals__|__builtins__|\bbuiltins\b|\bgc\.get_objects\b": (
        "reaches into function or interpreter internals"
    ),
    r"\btorch\.\w+(\.\w+)*\s*=[^=]|\bnn\.\w+(\.\w+)*\s*=[^=]": "replaces part of torch",
    r"NBGRADER|\bos\.environ\b|\bgetenv\b": "reads the environment (detects grading?)",
    r"gradebook|solutions/|autograded|\.\./\.\.": "looks for grading files",
    r"\bsocket\b|\burllib\b|\brequests\b|\bhttp\.client\b": "uses the network",
    r"\bsubprocess\b|\bos\.(system|fork|exec\w*|spawn\w*|kill|_exit)\b|\bctypes\b": (
        "starts or kills processes"
    ),
    r"\bpickle\b|\btorch\.load\b|\bjoblib\b": "loads pickled objects",
    r"__eq__|__ne__|__bool__|__hash__": "overrides comparison (always-equal objects?)",
}
_COMPILED = [(re.compile(pattern), why) for pattern, why in PATTERNS.items()]


def _code_lines(source: str):
    for number, line in enumerate(source.splitlines(), start=1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield number, code


def scan_notebook(nb) -> list[str]:
    """Flags for code cells the student can edit (locked and test cells are restored
    from the source by nbgrader, so only the others matter)."""
    flags = []
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type != "code" or meta.get("locked") or meta.get("grade"):
            continue
        for number, code in _code_lines(cell.source):
            for pattern, why in _COMPILED:
                if pattern.search(code):
                    flags.append(f"cell {index} line {number}: {why}: {code.strip()[:80]!r}")
    return flags
