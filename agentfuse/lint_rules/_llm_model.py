"""The records one module's LLM analysis keeps: scopes, bindings, frames, candidate calls.

Plain data, plus the small string helpers the resolver and the CLI check share.
"""

from __future__ import annotations

import dataclasses
import shlex

import libcst as cst

from agentfuse.lint_rules._llm_catalogue import ClientTable, WRAPPER_SEGMENTS

Receiver = tuple[ClientTable, str]
"""A client table and the path already walked on it (``(OPENAI, "chat.completions")``)."""


@dataclasses.dataclass(eq=False)
class ClassInfo:
    name: str
    bases: tuple[str, ...]
    attrs: dict[str, list[Binding]] = dataclasses.field(default_factory=dict)
    methods: dict[str, list[FunctionInfo]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(eq=False)
class Scope:
    """A function's (or the module's) local names; ``self_name`` is visible to nested scopes."""

    parent: Scope | None
    cls: ClassInfo | None = None
    self_name: str | None = None
    bindings: dict[str, list[Binding]] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class Binding:
    """``expr`` was assigned to a name (or is its annotation), evaluated in ``scope``."""

    expr: cst.BaseExpression
    scope: Scope
    annotation: bool = False


@dataclasses.dataclass(eq=False)
class FunctionInfo:
    name: str
    decorators: tuple[cst.BaseExpression, ...]
    scope: Scope
    """Where the decorators are evaluated (the scope around the ``def``)."""
    call_sites: list[Frame | None] = dataclasses.field(default_factory=list)
    handed_to_guard: bool = False
    returns: list[Binding] = dataclasses.field(default_factory=list)
    """What its ``return`` statements return (a factory of clients returns a client)."""


@dataclasses.dataclass(frozen=True, eq=False)
class Frame:
    """A lexical region that may guard what it contains: a function, a ``with``, a lambda."""

    parent: Frame | None
    scope: Scope
    function: FunctionInfo | None = None
    contexts: tuple[cst.BaseExpression, ...] = ()
    lambda_node: cst.Lambda | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Candidate:
    """A call that may be a request, or a request method handed to another call (``via``)."""

    node: cst.BaseExpression
    func: cst.BaseExpression
    scope: Scope
    frame: Frame | None
    via: cst.Call | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class LlmCall:
    """A call that sends an LLM request; ``api`` names it (``openai chat.completions.create``)."""

    node: cst.BaseExpression
    api: str
    guarded: bool


@dataclasses.dataclass(frozen=True, eq=False)
class EnforceCall:
    node: cst.Call
    scope: Scope


def string_value(node: cst.BaseExpression) -> str | None:
    if isinstance(node, (cst.SimpleString, cst.ConcatenatedString)):
        value = node.evaluated_value
        return value if isinstance(value, str) else None
    return None


def leading_text(node: cst.BaseExpression) -> str | None:
    """The static text of a string literal, or of an f-string up to its first expression."""
    value = string_value(node)
    if value is not None or not isinstance(node, cst.FormattedString):
        return value
    text: list[str] = []
    for part in node.parts:
        if not isinstance(part, cst.FormattedStringText):
            text.append(" \x00")
            break
        text.append(part.value)
    return "".join(text)


def split_command(text: str) -> list[str | None]:
    try:
        words = shlex.split(text, comments=False)
    except ValueError:
        words = text.split()
    return [None if "\x00" in word else word for word in words]


def attribute_chain(func: cst.BaseExpression) -> list[str]:
    """The attribute names of ``a.b().c.d`` from the outermost call down: ``["c", "d"]``."""
    names: list[str] = []
    while isinstance(func, cst.Attribute):
        names.append(func.attr.value)
        func = func.value
    names.reverse()
    return names


def strip_wrappers(path: str) -> str:
    if not any(segment in path for segment in WRAPPER_SEGMENTS):
        return path
    return ".".join(part for part in path.split(".") if part not in WRAPPER_SEGMENTS)


def agentfuse_name(qualified: str | None, names: frozenset[str]) -> bool:
    if not qualified or not qualified.startswith("agentfuse"):
        return False
    return qualified.rpartition(".")[2] in names


def join_path(path: str, attr: str) -> str:
    return f"{path}.{attr}" if path else attr
