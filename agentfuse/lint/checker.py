"""Check one file: pre-filter, parse once, run every rule in one batched traversal.

The stages, cheapest first, each run only on what the previous one let through:
1. the text pre-filter (prefilter.py): the rules whose trigger groups all match the text
   (``triggers``, and ``required_triggers`` when a rule has them);
2. the candidate stage (prose.py): the same check on the code with docstrings and comment
   lines blanked, using CPython's ``ast`` (about 10x cheaper than libcst);
3. libcst's parse and one batched traversal of the remaining rules;
4. source positions of the reported nodes only (positions.py; most candidate files report
   nothing).
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import sys
import tokenize
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

import libcst as cst
from libcst.metadata import CodeRange, MetadataWrapper, PositionProvider

from agentfuse.lint import limits
from agentfuse.lint.limits import DeepStackUnavailable, TooDeep, call_with_stack, caused_by_recursion
from agentfuse.lint.noqa import filter_noqa
from agentfuse.lint.positions import LazyPositions, positions_of
from agentfuse.lint.prefilter import TriggerMatcher
from agentfuse.lint.prose import without_prose
from agentfuse.lint_rules.base import (
    FileContext,
    Finding,
    ImportCollector,
    ImportTable,
    Report,
    Rule,
    option_words,
)

PARSE_ERROR = "AF001"
"""The engine's own code: a file that cannot be read, decoded or parsed."""

TOO_DEEP = "file is too deeply nested to analyse"


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """Enabled rules with their pre-filter matchers, built once per run.

    ``matchers[i]`` holds rule i's trigger groups (its ``triggers``, then its
    ``required_triggers``): the rule runs on a file only if every group matches; an empty
    tuple means the rule runs on every file.
    """

    rules: tuple[type[Rule], ...]
    matchers: tuple[tuple[TriggerMatcher, ...], ...]
    method_names: Mapping[type[cst.BatchableCSTVisitor], tuple[str, ...]]
    child_fields: Mapping[type[cst.CSTNode], tuple[str, ...]] = dataclasses.field(default_factory=dict)
    option_names: frozenset[str] = frozenset()
    """Options that add trigger words (``Rule.trigger_word_options``) to some rule."""
    _with_options: dict[tuple[frozenset[str], ...], RuleSet] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    @classmethod
    def of(cls, rules: Sequence[type[Rule]], options: Mapping[str, Any] | None = None) -> RuleSet:
        visitors: tuple[type[cst.BatchableCSTVisitor], ...] = (ImportCollector, *rules)
        names = {visitor: visitor_method_names(visitor) for visitor in visitors}
        option_names = frozenset(name for rule in rules for name in rule.trigger_word_options)
        return cls(tuple(rules), _trigger_matchers(rules, options), names, node_child_fields(), option_names)

    def for_options(self, options: Mapping[str, Any] | None) -> RuleSet:
        """This rule set with the trigger words ``options`` add (itself when they add none)."""
        if not options or not any(options.get(name) for name in self.option_names):
            return self
        key = tuple(option_words(options, rule.trigger_word_options) for rule in self.rules)
        found = self._with_options.get(key)
        if found is None:
            matchers = _trigger_matchers(self.rules, options)
            found = self._with_options[key] = dataclasses.replace(self, matchers=matchers, _with_options={})
        return found

    def candidates(self, source: str, options: Mapping[str, Any] | None = None) -> list[type[Rule]]:
        """The rules whose trigger groups all occur in ``source`` (and rules without triggers).

        Rules sharing a trigger pattern (AF101-AF103 do) search the text once per pattern,
        and a rule's second group is searched only when its first matched.
        """
        matchers = self.for_options(options).matchers
        answers: dict[int, bool] = {}
        literals_seen: dict[str, bool] = {}
        chosen = []
        for rule, groups in zip(self.rules, matchers):
            if all(_answer(matcher, source, answers, literals_seen) for matcher in groups):
                chosen.append(rule)
        return chosen

    def code_candidates(
        self,
        source: str,
        rules: Sequence[type[Rule]],
        options: Mapping[str, Any] | None = None,
        tree: ast.Module | Exception | None = None,
    ) -> list[type[Rule]]:
        """Of ``rules``, those whose triggers still occur once prose is blanked (see prose.py).

        ``tree`` is CPython's parse of ``source`` (or its error) when the caller has it.
        """
        if isinstance(tree, Exception) or any(not self.matchers[self.rules.index(rule)] for rule in rules):
            return list(rules)
        code = without_prose(source, tree)
        if code is None:
            return list(rules)
        subset = [self.rules.index(rule) for rule in rules]
        matchers = self.for_options(options).matchers
        narrowed = RuleSet(tuple(rules), tuple(matchers[i] for i in subset), self.method_names)
        return narrowed.candidates(code)


def _answer(matcher: TriggerMatcher, source: str, answers: dict[int, bool], seen: dict[str, bool]) -> bool:
    """``matcher.search(source)``, remembered by matcher for one file."""
    answer = answers.get(id(matcher))
    if answer is None:
        answer = answers[id(matcher)] = matcher.search(source, seen)
    return answer


def _trigger_matchers(
    rules: Sequence[type[Rule]], options: Mapping[str, Any] | None
) -> tuple[tuple[TriggerMatcher, ...], ...]:
    """Each rule's trigger groups as matchers; equal patterns share one matcher."""
    shared: dict[tuple[str, int], TriggerMatcher] = {}
    result = []
    for rule in rules:
        groups = []
        for pattern in (rule.trigger_pattern(), rule.required_pattern(options)):
            if pattern is not None:
                groups.append(shared.setdefault((pattern.pattern, pattern.flags), TriggerMatcher.of(pattern)))
        result.append(tuple(groups))
    return tuple(result)


def visitor_method_names(visitor_class: type[cst.BatchableCSTVisitor]) -> tuple[str, ...]:
    """The non-stub ``visit_*``/``leave_*`` methods of a class.

    libcst's ``get_visitors`` runs ``inspect.getmembers`` on every instance, for every file;
    a :class:`RuleSet` computes this once per class and run.
    """
    return tuple(
        name
        for name in dir(visitor_class)
        if name.startswith(("visit_", "leave_"))
        and callable(getattr(visitor_class, name))
        and not getattr(getattr(visitor_class, name), "_is_no_op", False)
    )


def _collect_methods(
    visitors: Sequence[cst.BatchableCSTVisitor],
    names: Mapping[type[cst.BatchableCSTVisitor], tuple[str, ...]],
) -> dict[str, list[Callable[..., Any]]]:
    methods: dict[str, list[Callable[..., Any]]] = {}
    for visitor in visitors:
        known = names.get(type(visitor))
        for name in known if known is not None else visitor_method_names(type(visitor)):
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
        self._fields = fields or {}
        self._visits: dict[type[cst.CSTNode], Sequence[Callable[..., Any]]] = {}
        self._leaves: dict[type[cst.CSTNode], Sequence[Callable[..., Any]]] = {}
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
        kind = type(node)
        self.on_visit(node)
        if kind not in self._leaves_only:
            for field in self._fields[kind]:
                value = getattr(node, field)
                if isinstance(value, cst.CSTNode):
                    self.walk(value)
                elif isinstance(value, (tuple, list)):
                    for item in value:
                        self.walk(item)
        self.on_leave(node)

    def on_visit_attribute(self, node: cst.CSTNode, attribute: str) -> None:
        for method in self._methods.get(f"visit_{type(node).__name__}_{attribute}", ()):
            method(node)

    def on_leave_attribute(self, original_node: cst.CSTNode, attribute: str) -> None:
        for method in self._methods.get(f"leave_{type(original_node).__name__}_{attribute}", ()):
            method(original_node)


_VISITED_FIELD = re.compile(r'visit_(?:required|optional|sequence|sentinel|body_sequence|star)\(\s*self,\s*"(\w+)"')


def node_child_fields() -> dict[type[cst.CSTNode], tuple[str, ...]]:
    """For every libcst node type, the fields its traversal visits, in libcst's order.

    Read from each type's ``_visit_and_replace_children``: the order of its
    ``visit_*(self, "field", ...)`` calls is the order of the string constants in its code
    (:func:`visited_in_source` reads the same from the source, 100x slower; a test checks
    that both agree for every node type); built once per :class:`RuleSet`.
    """
    fields: dict[type[cst.CSTNode], tuple[str, ...]] = {}
    for kind in _subclasses(cst.CSTNode):
        current = getattr(sys.modules[kind.__module__], kind.__qualname__, None) is kind
        if current and dataclasses.is_dataclass(kind) and not inspect.isabstract(kind):
            kind = cast("type[cst.CSTNode]", kind)  # is_dataclass narrows to type[DataclassInstance] alone
            constants = kind._visit_and_replace_children.__code__.co_consts
            fields[kind] = tuple(dict.fromkeys(c for c in constants if isinstance(c, str)))
    return fields


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


def check_source(
    source: str,
    rules: Sequence[type[Rule]],
    *,
    path: str = "<string>",
    options: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Findings of ``rules`` on ``source``, sorted by position (no noqa filtering here).

    Raises libcst's ``ParserSyntaxError`` on invalid code; :func:`lint_text` reports it instead.
    """
    module = parse_module(source)
    findings, _ = run_rules(module, source, rules, path=path, options=options or {})
    return findings


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
    method_names: Mapping[type[cst.BatchableCSTVisitor], tuple[str, ...]] | None = None,
    child_fields: Mapping[type[cst.CSTNode], tuple[str, ...]] | None = None,
) -> tuple[list[Finding], list[Report]]:
    """Run ``rules`` over a parsed module; returns findings and the raw reports (for fixes).

    With ``child_fields`` (see :func:`node_child_fields`) the engine walks the tree itself
    instead of through libcst's rebuilding traversal. A tree too deep for this thread's
    stack is walked again in a deep-stack thread.
    """
    arguments = (module, source, rules, path, options, method_names or {}, child_fields or {})
    return call_with_stack(False, _run_rules, *arguments)


def _run_rules(
    module: cst.Module,
    source: str,
    rules: Sequence[type[Rule]],
    path: str,
    options: Mapping[str, Any],
    method_names: Mapping[type[cst.BatchableCSTVisitor], tuple[str, ...]],
    child_fields: Mapping[type[cst.CSTNode], tuple[str, ...]],
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
    visitors: list[cst.BatchableCSTVisitor] = [ImportCollector(table), *instances]
    batched = _BatchedVisitor(_collect_methods(visitors, method_names), child_fields)
    if batched.uses_field_hooks or not child_fields:
        module.visit(batched)
    else:
        batched.walk(module)
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


@dataclasses.dataclass(frozen=True)
class FileOutcome:
    """The result of linting one file: findings after noqa, and what the fixer needs.

    With ``keep_tree``, ``module`` is the parsed tree and ``reports[i]`` made ``findings[i]``.
    """

    findings: list[Finding]
    source: str | None = None
    module: cst.Module | None = None
    reports: list[Report] = dataclasses.field(default_factory=list)


def decode_source(data: bytes) -> str:
    """Bytes -> text the way Python reads a module: BOM, PEP 263 cookie, else UTF-8."""
    return data.decode(source_encoding(data))


def source_encoding(data: bytes) -> str:
    """The encoding Python would read ``data`` with (``utf-8-sig`` strips a BOM)."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return encoding


def parse_error(path: str, message: str, line: int = 1, col: int = 1) -> Finding:
    """The AF001 finding for a file the engine could not analyse."""
    return Finding(path, max(line, 1), max(col, 1), max(line, 1), max(col, 1), PARSE_ERROR, message)


def lint_bytes(
    data: bytes,
    rule_set: RuleSet,
    *,
    path: str,
    options: Mapping[str, Any],
    keep_tree: bool = False,
    rules: Sequence[type[Rule]] | None = None,
) -> FileOutcome:
    """Lint raw file content: decode, pre-filter, parse, run rules, apply noqa."""
    source = decoded(data, path)
    if isinstance(source, Finding):
        return FileOutcome([source])
    return lint_text(source, rule_set, path=path, options=options, keep_tree=keep_tree, rules=rules)


def decoded(data: bytes, path: str) -> str | Finding:
    """``data`` decoded the way Python reads a module, or the AF001 finding saying why not.

    The one decoding verdict: the CLI, the fixer and the flake8 plugin all ask here.
    """
    try:
        return decode_source(data)
    except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
        line = _decode_error_line(data, exc)
        return parse_error(path, f"cannot decode file: {_one_line(exc)}", line)


def lint_text(
    source: str,
    rule_set: RuleSet,
    *,
    path: str,
    options: Mapping[str, Any],
    keep_tree: bool = False,
    rules: Sequence[type[Rule]] | None = None,
    apply_noqa: bool = True,
) -> FileOutcome:
    """Lint decoded source; never raises for bad input (AF001 instead).

    ``rules`` skips the pre-filter when the caller already knows the candidate rules;
    ``apply_noqa=False`` leaves noqa to the caller (flake8 does its own).
    """
    if rules is None:
        rules = rule_set.candidates(source, options)
    if not rules:
        return FileOutcome([], source)
    tree = limits.python_tree(source)
    rules = rule_set.code_candidates(source, rules, options, tree)
    if not rules:
        return FileOutcome([], source)
    check = _Check(source, tree, rule_set, rules, path, options, keep_tree, apply_noqa)
    try:
        depth = limits.checked_depth(source, tree)
        return call_with_stack(depth > limits.FAST_DEPTH, check.run)
    except TooDeep as exc:
        return FileOutcome([parse_error(path, f"{TOO_DEEP}: {exc}", exc.line)], source)
    except cst.ParserSyntaxError as exc:
        return FileOutcome([_syntax_error(tree, path, exc)], source)
    except SyntaxError as exc:
        return FileOutcome([_cpython_syntax_error(path, exc)], source)
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
        return FileOutcome([parse_error(path, _one_line(message))], source)


@dataclasses.dataclass(frozen=True)
class _Check:
    """Parse with libcst, run the rules, apply noqa: the part that may need a deep stack."""

    source: str
    tree: ast.Module | Exception
    rule_set: RuleSet
    rules: Sequence[type[Rule]]
    path: str
    options: Mapping[str, Any]
    keep_tree: bool
    apply_noqa: bool

    def run(self) -> FileOutcome:
        module, exact = limits.libcst_parse(self.source, isinstance(self.tree, ast.Module))
        findings, reports = _run_rules(
            module,
            self.source,
            self.rules,
            self.path,
            self.options,
            self.rule_set.method_names,
            self.rule_set.child_fields,
        )
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
        return _cpython_syntax_error(path, tree)
    message = _one_line(error.message).removeprefix("parser error: ")
    return parse_error(path, f"cannot parse file: {message}", error.editor_line, error.editor_column)


def _cpython_syntax_error(path: str, error: SyntaxError) -> Finding:
    return parse_error(path, f"cannot parse file: {error.msg}", error.lineno or 1, error.offset or 1)


def _decode_error_line(data: bytes, exc: Exception) -> int:
    if isinstance(exc, UnicodeDecodeError):
        return data.count(b"\n", 0, exc.start) + 1
    return 1


def _one_line(error: object) -> str:
    return " ".join(str(error).split())
