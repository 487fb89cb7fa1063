"""Check one file: pre-filter, parse once, run every rule in one batched traversal.

The stages, cheapest first, each run only on what the previous one let through:
1. the text pre-filter (prefilter.py): the rules whose trigger groups all match the text
   (``triggers``, and ``required_triggers`` when a rule has them), read from the registry's
   plain data, so a file that matches no rule imports neither libcst nor any rule;
2. the candidate stage (prose.py): the same check on the code with docstrings and comment
   lines blanked, using CPython's ``ast`` (about 10x cheaper than libcst);
3. libcst's parse and one batched traversal of the remaining rules (traversal.py);
4. source positions of the reported nodes only (positions.py; most candidate files report
   nothing).
"""

from __future__ import annotations

import ast
import dataclasses
import io
import tokenize
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, Union

from agentfuse.lint import limits
from agentfuse.lint.finding import Finding
from agentfuse.lint.prefilter import TriggerMatcher
from agentfuse.lint.prose import without_prose
from agentfuse.lint_rules import RuleEntry
from agentfuse.lint_rules._triggers import option_words, required_text, trigger_text

if TYPE_CHECKING:
    import libcst as cst

    from agentfuse.lint_rules.base import Report, Rule

PARSE_ERROR = "AF001"
"""The engine's own code: a file that cannot be read, decoded or parsed."""

TOO_DEEP = "file is too deeply nested to analyse"


class _Triggered(Protocol):
    """What the pre-filter reads of a rule: a registry entry or the rule class itself."""

    @property
    def code(self) -> str: ...

    @property
    def triggers(self) -> tuple[str, ...]: ...

    @property
    def required_triggers(self) -> tuple[str, ...]: ...

    @property
    def trigger_word_options(self) -> tuple[str, ...]: ...


RuleSpec = Union[RuleEntry, "type[Rule]"]
"""A rule as handed to :meth:`RuleSet.of`: its registry entry (loaded when a file needs it)
or its class."""


@dataclasses.dataclass(frozen=True)
class RuleSet:
    """Enabled rules with their pre-filter matchers, built once per run.

    ``matchers[i]`` holds rule i's trigger groups (its ``triggers``, then its
    ``required_triggers``): the rule runs on a file only if every group matches; an empty
    tuple means the rule runs on every file. Rules given as registry entries are imported
    when a file first needs them.
    """

    specs: tuple[RuleSpec, ...]
    matchers: tuple[tuple[TriggerMatcher, ...], ...]
    option_names: frozenset[str] = frozenset()
    """Options that add trigger words (``trigger_word_options``) to some rule."""
    _with_options: dict[tuple[frozenset[str], ...], RuleSet] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )
    _classes: dict[int, type[Rule]] = dataclasses.field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, rules: Sequence[RuleSpec], options: Mapping[str, Any] | None = None) -> RuleSet:
        option_names = frozenset(name for rule in rules for name in rule.trigger_word_options)
        return cls(tuple(rules), _trigger_matchers(rules, options), option_names)

    @property
    def rules(self) -> tuple[type[Rule], ...]:
        """Every rule's class (imports them all)."""
        return tuple(self._rule(i) for i in range(len(self.specs)))

    def _rule(self, index: int) -> type[Rule]:
        found = self._classes.get(index)
        if found is None:
            spec = self.specs[index]
            found = self._classes[index] = spec.load() if isinstance(spec, RuleEntry) else spec
        return found

    def for_options(self, options: Mapping[str, Any] | None) -> RuleSet:
        """This rule set with the trigger words ``options`` add (itself when they add none)."""
        if not options or not any(options.get(name) for name in self.option_names):
            return self
        key = tuple(option_words(options, spec.trigger_word_options) for spec in self.specs)
        found = self._with_options.get(key)
        if found is None:
            matchers = _trigger_matchers(self.specs, options)
            found = self._with_options[key] = dataclasses.replace(
                self, matchers=matchers, _with_options={}, _classes=self._classes
            )
        return found

    def candidates(self, source: str, options: Mapping[str, Any] | None = None) -> list[type[Rule]]:
        """The rules whose trigger groups all occur in ``source`` (and rules without triggers).

        Rules sharing a trigger pattern (AF101-AF103 do) search the text once per pattern,
        and a rule's second group is searched only when its first matched.
        """
        return self.load(self.matching(source, range(len(self.specs)), options))

    def load(self, indexes: Sequence[int]) -> list[type[Rule]]:
        """The classes of the rules at ``indexes`` (imported on first use)."""
        return [self._rule(i) for i in indexes]

    def matching(self, text: str, indexes: Sequence[int], options: Mapping[str, Any] | None) -> list[int]:
        """Of the rules at ``indexes``, those whose trigger groups all occur in ``text``."""
        matchers = self.for_options(options).matchers
        answers: dict[int, bool] = {}
        literals_seen: dict[str, bool] = {}
        return [
            i for i in indexes if all(_answer(matcher, text, answers, literals_seen) for matcher in matchers[i])
        ]

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
        codes = [spec.code for spec in self.specs]
        return self.load(self.code_matching(source, [codes.index(rule.code) for rule in rules], options, tree))

    def code_matching(
        self,
        source: str,
        indexes: Sequence[int],
        options: Mapping[str, Any] | None,
        tree: ast.Module | Exception | None = None,
    ) -> list[int]:
        """:meth:`code_candidates` by index: no rule class is imported."""
        if isinstance(tree, Exception) or any(not self.matchers[i] for i in indexes):
            return list(indexes)
        code = without_prose(source, tree)
        if code is None:
            return list(indexes)
        return self.matching(code, indexes, options)


def _answer(matcher: TriggerMatcher, source: str, answers: dict[int, bool], seen: dict[str, bool]) -> bool:
    """``matcher.search(source)``, remembered by matcher for one file."""
    answer = answers.get(id(matcher))
    if answer is None:
        answer = answers[id(matcher)] = matcher.search(source, seen)
    return answer


def _trigger_matchers(
    rules: Sequence[_Triggered], options: Mapping[str, Any] | None
) -> tuple[tuple[TriggerMatcher, ...], ...]:
    """Each rule's trigger groups as matchers; equal patterns share one matcher."""
    shared: dict[str, TriggerMatcher] = {}
    result = []
    for rule in rules:
        groups = []
        texts = (
            trigger_text(rule.triggers),
            required_text(rule.required_triggers, rule.trigger_word_options, options),
        )
        for text in texts:
            if text is not None:
                found = shared.get(text)
                if found is None:
                    found = shared[text] = TriggerMatcher.of_text(text)
                groups.append(found)
        result.append(tuple(groups))
    return tuple(result)


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
    from agentfuse.lint import traversal

    module = traversal.parse_module(source)
    findings, _ = traversal.run_rules(module, source, rules, path=path, options=options or {})
    return findings


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
        return parse_error(path, f"cannot decode file: {one_line(exc)}", line)


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
        chosen = rule_set.matching(source, range(len(rule_set.specs)), options)
        if not chosen:
            return FileOutcome([], source)
        tree = limits.python_tree(source)
        rules = rule_set.load(rule_set.code_matching(source, chosen, options, tree))
    elif rules:
        tree = limits.python_tree(source)
        rules = rule_set.code_candidates(source, rules, options, tree)
    if not rules:
        return FileOutcome([], source)
    from agentfuse.lint import traversal  # libcst: only for a file some rule still wants

    return traversal.check_file(
        source, tree, rules, path=path, options=options, keep_tree=keep_tree, apply_noqa=apply_noqa
    )


def _decode_error_line(data: bytes, exc: Exception) -> int:
    if isinstance(exc, UnicodeDecodeError):
        return data.count(b"\n", 0, exc.start) + 1
    return 1


def one_line(error: object) -> str:
    """An error's text on one line (reports hold one line per finding)."""
    return " ".join(str(error).split())
