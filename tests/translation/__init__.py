"""Helpers shared by the translation tests."""

from __future__ import annotations

import ast


def code_without_words(source: str) -> str | None:
    """The code of ``source`` with the words of its string literals taken out (None: not
    Python). An f-string keeps its fields, with their conversions and format specs, in any
    order (Korean puts words in another order): two cells with the same result run the
    same code and print the same values, in other words."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    specs = [n.format_spec for n in ast.walk(tree) if isinstance(n, ast.FormattedValue)]
    kept = {id(node) for spec in specs if spec is not None for node in ast.walk(spec)}
    for node in ast.walk(tree):
        if id(node) in kept:
            continue
        if isinstance(node, ast.JoinedStr):
            fields = [v for v in node.values if isinstance(v, ast.FormattedValue)]
            node.values = sorted(fields, key=ast.dump)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = ""
    return ast.dump(tree)
