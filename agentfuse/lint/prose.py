"""The candidate stage: the same trigger check, on the code without its prose.

Trigger words often appear only in docstrings and comments ("...cannot be used together",
"# kill the worker"). CPython's ``ast`` parses about ten times faster than libcst, so for a
file that passed the text pre-filter the engine parses it with ``ast``, blanks its
docstrings and whole-line comments, and checks the triggers again; only files whose code
still matches are parsed with libcst. Blanking is conservative: a docstring sharing a line
with code, and any comment line inside a multi-line statement (where it could be part of
a string), are left as they are.
"""

from __future__ import annotations

import ast

from agentfuse.lint.noqa import physical_lines

_SCOPES = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_BODIES = ("body", "orelse", "finalbody", "handlers", "cases")


def without_prose(source: str, tree: ast.Module | None = None) -> str | None:
    """``source`` with docstrings and comment lines blanked; None if ``ast`` cannot parse it.

    ``tree`` is ``ast.parse(source)`` when the caller has it already.
    """
    if tree is None:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
    lines = physical_lines(source)
    blank: set[int] = set()
    keep: set[int] = set()
    pending: list[ast.AST] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, _SCOPES):
            blank.update(_docstring_lines(node, lines))
        children = [child for field in _BODIES for child in getattr(node, field, ())]
        if isinstance(node, ast.stmt):
            first = min((d.lineno for d in getattr(node, "decorator_list", ())), default=node.lineno)
            last = _header_end(node) if children else (node.end_lineno or node.lineno)
            if last > first:
                keep.update(range(first, last + 1))
        pending.extend(children)
    text = []
    for number, line in enumerate(lines, start=1):
        if number in blank or (number not in keep and line.lstrip().startswith("#")):
            text.append("\n")
        else:
            text.append(line)
    return "".join(text)


def _header_end(node: ast.stmt) -> int:
    """The last line of a compound statement's header expressions (where strings can be)."""
    last = node.lineno
    for field, value in ast.iter_fields(node):
        if field not in _BODIES:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, ast.AST):
                    last = max(last, _end_line(item))
    return last


def _end_line(node: ast.AST) -> int:
    """An expression's end line covers its children; ``arguments``/``withitem`` have none."""
    end = getattr(node, "end_lineno", None)
    if end is not None:
        return int(end)
    return max((_end_line(child) for child in ast.iter_child_nodes(node)), default=0)


def _docstring_lines(node: ast.AST, lines: list[str]) -> range:
    """The lines of ``node``'s docstring when it has them to itself, else no lines."""
    body = getattr(node, "body", None)
    if not body or not isinstance(body[0], ast.Expr):
        return range(0)
    value = body[0].value
    if not isinstance(value, ast.Constant) or not isinstance(value.value, str):
        return range(0)
    first, last = body[0].lineno, body[0].end_lineno or body[0].lineno
    if last > len(lines):
        return range(0)
    before = lines[first - 1].encode("utf-8")[: body[0].col_offset]
    after = lines[last - 1].encode("utf-8")[body[0].end_col_offset or 0:]
    if before.strip() or (after.strip() and not after.strip().startswith(b"#")):
        return range(0)
    return range(first, last + 1)
