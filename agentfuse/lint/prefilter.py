"""The text pre-filter: does a file's text match a rule's triggers? Fast, and exact.

Python's ``re`` finds a pattern that starts with a literal by scanning for that literal in
C; a pattern starting with ``\\b`` (as most triggers do: ``\\bsubprocess\\b``) is instead
tried at every position of the text, about 40 times slower. So each top-level alternative
that starts with ``\\b`` is searched without it, and the full alternative is then matched
only where the relaxed one matched. Every position where the full pattern matches is one
where the relaxed pattern matches, so the answer is the same as ``pattern.search(text)``.

Before any regex runs, each alternative's required literals (``subprocess`` in
``\\bsubprocess\\.run\\b``; one of ``openai``/``anthropic`` in ``(?:openai|anthropic)``)
are looked for with ``str`` containment, which runs at memory speed; most files of a
general tree contain none of them and never reach the regex engine. A word list
``\\b(?:run|call|...)\\b`` becomes one branch per word, so each one starts with a literal.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterator
from typing import Any

try:
    from re import _constants as sre_constants, _parser as sre_parse  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

_GLOBAL_FLAGS = re.compile(r"\(\?[aiLmsux]+\)")
_PLAIN_WORD = re.compile(r"\w+")
_PLAIN_WORD_LIST = re.compile(r"\\b\(\?:(\w+(?:\|\w+)*)\)\\b")
_BOUNDED_WORD = re.compile(r"\\b(\w+)\\b")
_SYNTAX = re.compile(r"\\.|[()|\[]", re.DOTALL)
"""What :func:`_structure` stops at: an escape (skipped whole), a group, an alternation, a class."""
_GROUPING = re.compile(r"\\.|[()\[]", re.DOTALL)


class _Branch:
    """One alternative: its literals checked first, its regexes compiled on first use (most
    branches of a run never get past their literals, and a run builds about a thousand)."""

    def __init__(self, text: str, flags: int) -> None:
        self.text = text
        self.flags = flags

    @functools.cached_property
    def literals(self) -> tuple[str, ...] | None:
        word = _BOUNDED_WORD.fullmatch(self.text)
        if word is not None and not self.flags & re.IGNORECASE:
            return (word.group(1),)
        return required_literals(self.text, self.flags)

    @functools.cached_property
    def relaxed(self) -> re.Pattern[str]:
        return re.compile(self.text[2:] if self.exact is not None else self.text, self.flags)

    @functools.cached_property
    def exact(self) -> re.Pattern[str] | None:
        return re.compile(self.text, self.flags) if self.text.startswith(r"\b") else None

    def search(self, text: str, seen: dict[str, bool]) -> bool:
        literals = self.literals
        if literals is not None and not any(_contains(text, literal, seen) for literal in literals):
            return False
        exact = self.exact
        if exact is None:
            return self.relaxed.search(text) is not None
        position = 0
        while (found := self.relaxed.search(text, position)) is not None:
            if exact.match(text, found.start()) is not None:
                return True
            position = found.start() + 1
        return False


@dataclasses.dataclass(frozen=True)
class TriggerMatcher:
    """A trigger pattern, searched branch by branch (see the module docstring)."""

    text: str
    flags: int
    branches: tuple[_Branch, ...]

    @classmethod
    def of(cls, pattern: re.Pattern[str]) -> TriggerMatcher:
        return cls.of_text(pattern.pattern, pattern.flags & ~re.UNICODE)

    @classmethod
    def of_text(cls, text: str, flags: int = 0) -> TriggerMatcher:
        """The matcher of ``re.compile(text, flags)``, which it never needs to compile whole."""
        if _GLOBAL_FLAGS.match(text):
            whole = _Branch(text, flags)
            whole.__dict__.update(literals=None, exact=None)
            return cls(text, flags, (whole,))
        return cls(text, flags, tuple(_Branch(branch, flags) for branch in _branches(text)))

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """The whole pattern, compiled."""
        return re.compile(self.text, self.flags)

    def search(self, text: str, seen: dict[str, bool] | None = None) -> bool:
        """Same answer as ``self.pattern.search(text) is not None``.

        ``seen`` remembers which literals ``text`` contains, across the matchers of a run.
        """
        memo = {} if seen is None else seen
        return any(branch.search(text, memo) for branch in self.branches)


def _contains(text: str, literal: str, seen: dict[str, bool]) -> bool:
    found = seen.get(literal)
    if found is None:
        found = seen[literal] = literal in text
    return found


def _branches(pattern: str) -> list[str]:
    """Top-level alternatives, with a group spanning a whole alternative opened up, and a
    word list ``\\b(?:a|b)\\b`` distributed into ``\\ba\\b``, ``\\bb\\b`` (so each branch
    starts with a literal, which ``re`` scans for in C)."""
    result: list[str] = []
    for alternative in split_alternatives(pattern):
        inner = _whole_group(alternative)
        if inner is not None and inner != pattern:
            result.extend(_branches(inner))
            continue
        words = _word_list(alternative)
        if words is not None:
            result.extend(rf"\b{word}\b" for word in words)
        else:
            result.append(alternative)
    return result


def _word_list(text: str) -> list[str] | None:
    """The words of ``\\b(?:w1|w2|...)\\b`` (plain identifiers only), else None."""
    if not (text.startswith(r"\b(?:") and text.endswith(r")\b")):
        return None
    plain = _PLAIN_WORD_LIST.fullmatch(text)
    if plain is not None:  # the common case (a rule's word list), without scanning the syntax
        return plain.group(1).split("|")
    inner = _whole_group(text[2:-2])
    if inner is None:
        return None
    words = split_alternatives(inner)
    return words if all(_PLAIN_WORD.fullmatch(word) for word in words) else None


def _whole_group(text: str) -> str | None:
    """The inside of ``(?:...)`` when that group is all of ``text``, else None."""
    if not text.startswith("(?:") or _closing_paren(text, 0) != len(text) - 1:
        return None
    return text[3:-1]


def split_alternatives(pattern: str) -> list[str]:
    """Split a regex at its top-level ``|`` (not inside groups, classes or escapes)."""
    parts: list[str] = []
    start = 0
    for index, char, depth in _structure(pattern):
        if char == "|" and depth == 0:
            parts.append(pattern[start:index])
            start = index + 1
    parts.append(pattern[start:])
    return parts


def _closing_paren(pattern: str, start: int) -> int:
    """Index of the ``)`` closing the group opened at ``start`` (-1 if unbalanced)."""
    for index, char, depth in _structure(pattern[start:], _GROUPING):
        if char == ")" and depth == 0:
            return start + index
    return -1


def _structure(pattern: str, syntax: re.Pattern[str] | None = None) -> Iterator[tuple[int, str, int]]:
    """``(index, char, depth after it)`` for each ``(``, ``)`` and ``|`` that is syntax
    (only for the parentheses with ``syntax=_GROUPING``)."""
    syntax = syntax or _SYNTAX
    depth = 0
    i = 0
    while (found := syntax.search(pattern, i)) is not None:
        char = found.group()
        if char == "[":
            i = _class_end(pattern, found.start()) + 1
            continue
        i = found.end()
        if char in "()|":
            depth += {"(": 1, ")": -1, "|": 0}[char]
            yield found.start(), char, depth


def _class_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing the character class opened at ``start``."""
    i = start + 1
    if i < len(pattern) and pattern[i] == "^":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    while i < len(pattern) and pattern[i] != "]":
        i += 2 if pattern[i] == "\\" else 1
    return i


def required_literals(pattern: str, flags: int = 0) -> tuple[str, ...] | None:
    """Strings one of which every match of ``pattern`` contains; None when unknown."""
    if flags & re.IGNORECASE:
        return None
    try:
        parsed = sre_parse.parse(pattern, flags)
    except Exception:  # a pattern the private parser does not take: no shortcut, no harm
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    found = _sequence_literals(list(parsed))
    if not found or any(not literal for literal in found):
        return None
    return tuple(sorted(found))


def _sequence_literals(items: list[tuple[Any, Any]]) -> set[str] | None:
    """The most selective literal set among a sequence's parts (runs of characters, groups)."""
    options: list[set[str]] = []
    run: list[str] = []
    for op, value in items:
        if op is sre_constants.LITERAL:
            run.append(chr(value))
            continue
        if run:
            options.append({"".join(run)})
            run = []
        nested = _item_literals(op, value)
        if nested:
            options.append(nested)
    if run:
        options.append({"".join(run)})
    if not options:
        return None
    return max(options, key=lambda option: min(len(literal) for literal in option))


def _item_literals(op: Any, value: Any) -> set[str] | None:
    if op is sre_constants.SUBPATTERN:
        return _sequence_literals(list(value[-1]))
    if op is sre_constants.BRANCH:
        union: set[str] = set()
        for alternative in value[1]:
            found = _sequence_literals(list(alternative))
            if not found:
                return None
            union |= found
        return union
    if op in (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT) and value[0] >= 1:
        return _sequence_literals(list(value[2]))
    return None
