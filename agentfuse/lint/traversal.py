"""The libcst stage of checking a file: parse, one batched traversal of the rules, positions.

The engine reaches this module only for a file whose text and code still match some rule's
triggers (see checker.py), so a run whose files match none never imports libcst.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from agentfuse.lint import limits
from agentfuse.lint.checker import TOO_DEEP, FileOutcome, one_line, parse_error
from agentfuse.lint.limits import DeepStackUnavailable, TooDeep, call_with_stack, caused_by_recursion
from agentfuse.lint.noqa import filter_noqa
from agentfuse.lint.positions import LazyPositions, positions_of
from agentfuse.lint_rules.base import FileContext, Finding, ImportCollector, ImportTable, Report, Rule


@functools.cache
def visitor_method_names(visitor_class: type[cst.BatchableCSTVisitor]) -> tuple[str, ...]:
    """The non-stub ``visit_*``/``leave_*`` methods of a class.

    libcst's ``get_visitors`` runs ``inspect.getmembers`` on every instance, for every file;
    this runs once per class and process, and reads only the classes outside libcst (whose
    visitor bases define a no-op stub for every node type; a test checks).
    """
    names = {
        name
        for klass in visitor_class.__mro__
        if not klass.__module__.startswith("libcst")
        for name in vars(klass)
        if name.startswith(("visit_", "leave_"))
    }
    return tuple(
        sorted(
            name
            for name in names
            if callable(getattr(visitor_class, name)) and not getattr(getattr(visitor_class, name), "_is_no_op", False)
        )
    )


def _collect_methods(visitors: Sequence[cst.BatchableCSTVisitor]) -> dict[str, list[Callable[..., Any]]]:
    methods: dict[str, list[Callable[..., Any]]] = {}
    for visitor in visitors:
        for name in visitor_method_names(type(visitor)):
            methods.setdefault(name, []).append(getattr(visitor, name))
    return methods


class _BatchedVisitor(cst.CSTVisitor):
    """Dispatches each node to every rule's ``visit_``/``leave_`` methods in one traversal.

    libcst calls four hooks per node (and two per child field) and rebuilds every node it
    descends into. Method lists are looked up once per node type; the per-field hooks do
    nothing unless a rule needs them; and the traversal does not descend below trivia
    (whitespace, punctuation) or leaf expressions, unless a rule visits trivia itself.
    Rules still see every Name and string: only what lies under them is skipped.
    """

    def __init__(
        self,
        methods: Mapping[str, list[Callable[..., Any]]],
        fields: Mapping[type[cst.CSTNode], tuple[str, ...]] | None = None,
    ) -> None:
        super().__init__()
        self._methods = methods
        self._fields = fields if fields is not None else {}
        self._visits: dict[type[cst.CSTNode], Sequence[Callable[..., Any]]] = {}
        self._leaves: dict[type[cst.CSTNode], Sequence[Callable[..., Any]]] = {}
        self._plans: dict[type[cst.CSTNode], _Plan] = {}
        self.uses_field_hooks = any(name.count("_") > 1 for name in methods)
        if not self.uses_field_hooks:
            self.on_visit_attribute = _ignore_attribute  # type: ignore[method-assign]
            self.on_leave_attribute = _ignore_leave_attribute  # type: ignore[method-assign]
        wanted = {name.split("_")[1] for name in methods}
        self._leaves_only: frozenset[type[cst.CSTNode]] = (
            frozenset() if wanted & _TRIVIA_NAMES else _TRIVIA | _LEAF_EXPRESSIONS
        )

    def on_visit(self, node: cst.CSTNode) -> bool:
        kind = type(node)
        methods = self._visits.get(kind)
        if methods is None:
            methods = self._visits[kind] = self._methods.get(f"visit_{kind.__name__}", ())
        for method in methods:
            method(node)
        return kind not in self._leaves_only

    def on_leave(self, original_node: cst.CSTNode) -> None:
        kind = type(original_node)
        methods = self._leaves.get(kind)
        if methods is None:
            methods = self._leaves[kind] = self._methods.get(f"leave_{kind.__name__}", ())
        for method in methods:
            method(original_node)

    def walk(self, node: cst.CSTNode) -> None:
        """The same visits and leaves, in the same order, as ``node.visit(self)``.

        libcst's own traversal rebuilds every node it descends into (a dataclass
        construction with validation); reading the child fields in libcst's order does not.
        """
        visits, fields, leaves = self._plans.get(type(node)) or self._plan(type(node))
        for method in visits:
            method(node)
        for field in fields:
            value = getattr(node, field)
            kind = type(value)
            if kind is tuple or kind is list:
                for item in value:
                    self.walk(item)
            elif kind in self._fields or (kind not in _NOT_NODES and isinstance(value, cst.CSTNode)):
                self.walk(value)
        for method in leaves:
            method(node)

    def _plan(self, kind: type[cst.CSTNode]) -> _Plan:
        """What :meth:`walk` does at a node of type ``kind``: its visits, the fields it
        descends into (type checks on the values, not ``isinstance`` on libcst's ABCs, which
        costs a Python call each), its leaves."""
        fields = () if kind in self._leaves_only else self._fields[kind]
        name = kind.__name__
        plan = self._plans[kind] = (
            self._methods.get(f"visit_{name}", ()),
            fields,
            self._methods.get(f"leave_{name}", ()),
        )
        return plan

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        for method in self._methods.get(f"visit_{type(node).__name__}_{attribute}", ()):
            method(node)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        for method in self._methods.get(f"leave_{type(original_node).__name__}_{attribute}", ()):
            method(original_node)


_Plan = tuple[Sequence[Callable[..., Any]], tuple[str, ...], Sequence[Callable[..., Any]]]
_NOT_NODES = frozenset({type(None), str, cst.MaybeSentinel})
"""Field values that are never nodes (the rest is checked with ``isinstance``)."""

_VISITED_FIELD = re.compile(r'visit_(?:required|optional|sequence|sentinel|body_sequence|star)\(\s*self,\s*"(\w+)"')


def walk_module(module: cst.Module, visitors: Sequence[cst.BatchableCSTVisitor]) -> None:
    """Run ``visitors`` over ``module`` in one traversal (see :class:`_BatchedVisitor`):
    the rules of the checked file, and the analyses of other modules of the project."""
    batched = _BatchedVisitor(_collect_methods(visitors), _CHILD_FIELDS)
    if batched.uses_field_hooks:
        module.visit(batched)
    else:
        batched.walk(module)


def node_child_fields() -> dict[type[cst.CSTNode], tuple[str, ...]]:
    """For every libcst node type, the fields its traversal visits, in libcst's order
    (:func:`child_fields`; the walk asks per type as it meets them)."""
    fields: dict[type[cst.CSTNode], tuple[str, ...]] = {}
    for kind in _subclasses(cst.CSTNode):
        current = getattr(sys.modules[kind.__module__], kind.__qualname__, None) is kind
        if current and dataclasses.is_dataclass(kind) and not inspect.isabstract(kind):
            kind = cast("type[cst.CSTNode]", kind)  # is_dataclass narrows to type[DataclassInstance] alone
            fields[kind] = child_fields(kind)
    return fields


def child_fields(kind: type[cst.CSTNode]) -> tuple[str, ...]:
    """The fields a node type's traversal visits, in libcst's order.

    Read from the type's ``_visit_and_replace_children``: the order of its
    ``visit_*(self, "field", ...)`` calls is the order of the string constants in its code
    (:func:`visited_in_source` reads the same from the source, 100x slower; a test checks
    that both agree for every node type).
    """
    constants = kind._visit_and_replace_children.__code__.co_consts
    return tuple(dict.fromkeys(c for c in constants if isinstance(c, str)))


class _ChildFields(dict[type[cst.CSTNode], tuple[str, ...]]):
    """:func:`child_fields` of each node type, computed when the walk first meets it."""

    def __missing__(self, kind: type[cst.CSTNode]) -> tuple[str, ...]:
        found = self[kind] = child_fields(kind)
        return found


_CHILD_FIELDS = _ChildFields()


def visited_in_source(kind: type[cst.CSTNode]) -> tuple[str, ...]:
    """The fields ``kind``'s traversal visits, in order, read from its source."""
    return tuple(dict.fromkeys(_VISITED_FIELD.findall(inspect.getsource(kind._visit_and_replace_children))))


def _subclasses(base: type[Any]) -> set[type[Any]]:
    found: set[type[Any]] = set()
    for sub in base.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


_WHITESPACE_AND_PUNCTUATION: set[type[cst.CSTNode]] = {  # typed: mypy joins bare classes to ABCMeta
    cst.SimpleWhitespace, cst.ParenthesizedWhitespace, cst.TrailingWhitespace, cst.EmptyLine,
    cst.Newline, cst.Comment, cst.Comma, cst.Dot, cst.Colon, cst.Semicolon, cst.AssignEqual,
    cst.LeftParen, cst.RightParen, cst.LeftSquareBracket, cst.RightSquareBracket,
    cst.LeftCurlyBrace, cst.RightCurlyBrace, cst.ImportStar,
}
_TRIVIA: frozenset[type[cst.CSTNode]] = frozenset(
    _WHITESPACE_AND_PUNCTUATION
    | {
        op
        for base in (cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp, cst.BaseUnaryOp, cst.BaseAugOp)
        for op in _subclasses(base)
    }
)
"""Whitespace, comments and punctuation: more than half of a tree's nodes, with nothing
but more of the same below them."""
_TRIVIA_NAMES = frozenset(kind.__name__ for kind in _TRIVIA)
_LEAF_EXPRESSIONS: frozenset[type[cst.CSTNode]] = frozenset(
    {cst.Name, cst.SimpleString, cst.Integer, cst.Float, cst.Imaginary, cst.Ellipsis}
)
"""Expressions whose only children are parentheses (trivia)."""


def _ignore_attribute(node: cst.CSTNode, attribute: str) -> None:
    """The per-field hook when no rule has a ``visit_<Node>_<field>`` method."""


def _ignore_leave_attribute(original_node: cst.CSTNode, attribute: str) -> None:
    """The same for ``leave_<Node>_<field>`` (libcst's parameter names, for mypy)."""


def parse_module(source: str) -> cst.Module:
    """libcst's parse, refusing first what would crash or stall its native parser
    (:class:`~agentfuse.lint.limits.TooDeep`; see limits.py)."""
    return limits.parse_module(source)


def run_rules(
    module: cst.Module,
    source: str,
    rules: Sequence[type[Rule]],
    *,
    path: str,
    options: Mapping[str, Any],
) -> tuple[list[Finding], list[Report]]:
    """Run ``rules`` over a parsed module; returns findings and the raw reports (for fixes).

    A tree too deep for this thread's stack is walked again in a deep-stack thread.
    """
    return call_with_stack(False, _run_rules, module, source, rules, path, options)


def _run_rules(
    module: cst.Module,
    source: str,
    rules: Sequence[type[Rule]],
    path: str,
    options: Mapping[str, Any],
) -> tuple[list[Finding], list[Report]]:
    table = ImportTable()
    context = FileContext(path=path, source=source, imports=table, options=options)
    instances = [rule(context) for rule in rules]
    positions = LazyPositions(module)
    wrapper: MetadataWrapper | None = None
    for instance in instances:
        others = set(instance.get_inherited_dependencies()) - {PositionProvider}
        metadata: dict[Any, Mapping[Any, Any]] = {}
        if others:
            wrapper = wrapper or MetadataWrapper(module, unsafe_skip_copy=True)
            metadata.update(wrapper.resolve_many(others))
        metadata[PositionProvider] = positions
        instance.metadata = metadata
    walk_module(module, [ImportCollector(table), *instances])
    reports = [report for instance in instances for report in instance.reports]
    where = positions_of(module, [report.node for report in reports])
    findings = [_finding(report, where[report.node], path) for report in reports]
    order = sorted(range(len(findings)), key=findings.__getitem__)
    return [findings[i] for i in order], [reports[i] for i in order]


def _finding(report: Report, where: CodeRange, path: str) -> Finding:
    return Finding(
        path=path,
        line=where.start.line,
        col=where.start.column + 1,
        end_line=where.end.line,
        end_col=where.end.column + 1,
        code=report.code,
        message=report.message,
    )


def check_file(
    source: str,
    tree: ast.Module | Exception,
    rules: Sequence[type[Rule]],
    *,
    path: str,
    options: Mapping[str, Any],
    keep_tree: bool = False,
    apply_noqa: bool = True,
) -> FileOutcome:
    """Parse ``source`` with libcst and run ``rules``; AF001 for whatever stops that.

    ``tree`` is CPython's parse of ``source`` (or its error): it sizes the stack and names
    a syntax error better than libcst does.
    """
    check = _Check(source, tree, rules, path, options, keep_tree, apply_noqa)
    try:
        depth = limits.checked_depth(source, tree)
        return call_with_stack(depth > limits.FAST_DEPTH, check.run)
    except TooDeep as exc:
        return FileOutcome([parse_error(path, f"{TOO_DEEP}: {exc}", exc.line)], source)
    except cst.ParserSyntaxError as exc:
        return FileOutcome([_syntax_error(tree, path, exc)], source)
    except SyntaxError as exc:
        return FileOutcome([cpython_syntax_error(path, exc)], source)
    except DeepStackUnavailable as exc:
        return FileOutcome([parse_error(path, f"{TOO_DEEP}: {exc}")], source)
    except MemoryError:
        return FileOutcome([parse_error(path, "file is too large to analyse: out of memory")], source)
    except RecursionError:
        return FileOutcome([parse_error(path, TOO_DEEP)], source)
    except Exception as exc:  # a rule's bug costs this file, not the run
        if caused_by_recursion(exc):
            return FileOutcome([parse_error(path, TOO_DEEP)], source)
        message = f"internal error while analysing the file, please report it: {type(exc).__name__}: {exc}"
        return FileOutcome([parse_error(path, one_line(message))], source)


@dataclasses.dataclass(frozen=True)
class _Check:
    """Parse with libcst, run the rules, apply noqa: the part that may need a deep stack."""

    source: str
    tree: ast.Module | Exception
    rules: Sequence[type[Rule]]
    path: str
    options: Mapping[str, Any]
    keep_tree: bool
    apply_noqa: bool

    def run(self) -> FileOutcome:
        module, exact = limits.libcst_parse(self.source, isinstance(self.tree, ast.Module))
        findings, reports = _run_rules(module, self.source, self.rules, self.path, self.options)
        kept = filter_noqa(findings, self.source) if self.apply_noqa else findings
        if not (self.keep_tree and exact):
            return FileOutcome(kept, self.source)
        kept_set = set(kept)
        fixable = [report for finding, report in zip(findings, reports) if finding in kept_set]
        return FileOutcome(kept, self.source, module, fixable)


def _syntax_error(tree: ast.Module | Exception, path: str, error: cst.ParserSyntaxError) -> Finding:
    """AF001 with CPython's message and position when it agrees the file is invalid.

    libcst's native parser reports what it expected, often a line late; CPython names the
    real problem ("'(' was never closed").
    """
    if isinstance(tree, SyntaxError):
        return cpython_syntax_error(path, tree)
    message = one_line(error.message).removeprefix("parser error: ")
    return parse_error(path, f"cannot parse file: {message}", error.editor_line, error.editor_column)


def cpython_syntax_error(path: str, error: SyntaxError) -> Finding:
    return parse_error(path, f"cannot parse file: {error.msg}", error.lineno or 1, error.offset or 1)
