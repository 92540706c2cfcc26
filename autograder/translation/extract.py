"""The translatable text of a notebook and of the kit, as gettext messages."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import nbformat

__all__ = ["Message", "kit_messages", "notebook_messages", "string_literal_body"]

# A string literal on one line: optional prefix, one kind of quote, no triple quotes.
_LITERAL = re.compile(r"""^(?P<prefix>[rRfFbBuU]{0,2})(?P<q>["'])(?P<body>.*)(?P=q)$""", re.DOTALL)
_MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_WORD = re.compile(r"[A-Za-z]{2,}")
MARKDOWN = "markdown cell"
PRINTED = "printed by a code cell"
KIT = "a message of the kit"
CHECK = "a check's problem, matched line by line"


@dataclass(frozen=True)
class Message:
    """One translatable text: ``msgid`` in ``msgctxt`` (None for the kit's messages)."""

    msgctxt: str | None
    msgid: str
    kind: str  # MARKDOWN, PRINTED, KIT or CHECK
    where: str  # the notebook or module it comes from


def string_literal_body(segment: str) -> str | None:
    """The text between the quotes of a one-line, one-piece string literal (``"..."``,
    ``f'...'``), or None for anything else (triple quotes, implicit concatenation)."""
    found = _LITERAL.match(segment)
    if not found or "\n" in segment or segment.startswith(('"""', "'''")):
        return None
    body, quote = found["body"], found["q"]
    if re.search(r"(?<!\\)(?:\\\\)*" + quote, body):  # two literals side by side
        return None
    return body


def public_source(source: str) -> str:
    """A cell's source without its solution and hidden-test regions (as students get it)."""
    kept, secret = [], False
    for line in source.splitlines():
        if "BEGIN SOLUTION" in line or "BEGIN HIDDEN TESTS" in line:
            secret = True
        elif "END SOLUTION" in line or "END HIDDEN TESTS" in line:
            secret = False
        elif not secret:
            kept.append(line)
    return "\n".join(kept)


def _parse(source: str) -> ast.Module | None:
    # IPython magics and shell escapes are not Python: blank them, keeping the lines.
    lines = ["" if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    try:
        return ast.parse("\n".join(lines))
    except SyntaxError:
        return None


def _calls(node: ast.AST, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def printed_strings(source: str) -> list[str]:
    """The bodies of the string literals a cell passes to ``print``, in order."""
    code = public_source(source)
    tree = _parse(code)
    if tree is None:
        return []
    found = []
    for node in ast.walk(tree):
        if _calls(node, "print"):
            for arg in node.args:
                if isinstance(arg, ast.JoinedStr) or (
                    isinstance(arg, ast.Constant) and isinstance(arg.value, str)
                ):
                    body = string_literal_body(ast.get_source_segment(code, arg) or "")
                    words = _WORD.search(re.sub(r"\{[^{}]*\}", "", body or ""))
                    if body and words and body not in found:
                        found.append(body)
    return sorted(found, key=code.find)


def notebook_messages(path: Path) -> list[Message]:
    """A notebook's markdown cells and printed strings, keyed ``<name>#<cell id>``."""
    nb = nbformat.read(path, as_version=4)
    messages = []
    for cell in nb.cells:
        context = f"{path.name}#{cell.get('id')}"
        if cell.cell_type == "markdown" and cell.source.strip():
            messages.append(Message(context, cell.source, MARKDOWN, path.name))
        elif cell.cell_type == "code":
            printed = printed_strings(cell.source)
            messages += [Message(context, s, PRINTED, path.name) for s in printed]
    return messages


def _template(node: ast.JoinedStr) -> str:
    """An f-string as a template: its text, and each field as written (``{x.y:.1%}``)."""
    out = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            out.append(str(value.value).replace("{", "{{").replace("}", "}}"))
        elif isinstance(value, ast.FormattedValue):
            field = ast.unparse(value.value)
            if value.conversion != -1:
                field += "!" + chr(value.conversion)
            if value.format_spec is not None:
                field += ":" + _template(value.format_spec)
            out.append("{" + field + "}")
    return "".join(out)


def _letters(text: str) -> int:
    return sum(len(w) for w in _WORD.findall(re.sub(r"\{[^{}]*\}", "", text)))


def kit_messages(root: Path) -> list[Message]:
    """Every ``_("...")`` of ``labkit/`` and ``autograder/``, and the f-string templates
    and literal problems of ``autograder/checks/``, in file order."""
    files = sorted([*(root / "labkit").rglob("*.py"), *(root / "autograder").rglob("*.py")])
    messages: list[Message] = []
    seen: set[str] = set()

    def add(text: str, kind: str, where: str) -> None:
        if text not in seen:
            seen.add(text)
            messages.append(Message(None, text, kind, where))

    for path in files:
        where = path.relative_to(root).as_posix()
        found = _module_messages(ast.parse(path.read_text(encoding="utf-8")), where)
        for _line, text, kind in sorted(found, key=lambda item: item[0]):
            add(text, kind, where)
    return messages


def _module_messages(tree: ast.Module, where: str) -> list[tuple[tuple[int, int], str, str]]:
    """((line, column), text, kind) of each message in one module."""
    is_check = where.startswith("autograder/checks/")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []

    def add(node: ast.AST, text: str, kind: str) -> None:
        found.append(((node.lineno, node.col_offset), text, kind))

    for node in ast.walk(tree):
        if (
            _calls(node, "_")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            add(node, node.args[0].value, KIT)
        elif not is_check:
            continue
        elif isinstance(node, ast.JoinedStr) and not isinstance(
            parents.get(node), ast.FormattedValue
        ):
            template = _template(node)
            if _letters(template) >= 5:
                for line in template.split("\n"):
                    if _letters(line) >= 5:
                        add(node, line, CHECK)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            parent = parents.get(node)
            listed = isinstance(parent, ast.List) or (
                isinstance(parent, ast.Call)
                and isinstance(parent.func, ast.Attribute)
                and parent.func.attr == "append"
            )
            if listed and " " in node.value and _letters(node.value) >= 8:
                for line in node.value.split("\n"):
                    if _letters(line) >= 5:
                        add(node, line, CHECK)
    return found
