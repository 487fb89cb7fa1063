"""Typed values read out of composed YAML nodes, each problem recorded with its file:line:col.

:class:`NodeReader` never constructs tagged objects: it checks every tag against the standard
ones, types plain scalars by the YAML 1.1 rules itself, fills in ``${VAR}`` references, and
records an issue (then returns :data:`INVALID`) instead of raising, so that all issues of a
file are reported at once. The policy's sections are read by its subclass in
:mod:`agentfuse.runtime.policy_validation`.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import yaml

from agentfuse.runtime.errors import PolicyIssue
from agentfuse.runtime.money import MAX_AMOUNT_USD, MAX_CAP_USD, MAX_COUNT, MAX_SECONDS, short_repr

_Y = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_Y + "str", _Y + "int", _Y + "float", _Y + "bool", _Y + "null")
_MAP, _SEQ, _MERGE = _Y + "map", _Y + "seq", _Y + "merge"
_TEXT_TAGS = frozenset({_STR, _Y + "timestamp", _Y + "value", _MERGE})
"""Scalars read as their text: no policy key wants a date, and ``<<`` as a value is just text."""
_SCALAR_TAGS = _TEXT_TAGS | {_INT, _FLOAT, _BOOL, _NULL}
_ALLOWED_TAGS = _SCALAR_TAGS | {_MAP, _SEQ}

_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

Parse = Callable[[yaml.Node, str], Any]
"""A field parser: (value node, dotted key name) -> the value, or INVALID (issue recorded)."""


class Invalid(enum.Enum):
    """Marks a value that failed validation (its issue is already recorded)."""

    INVALID = 0


INVALID = Invalid.INVALID


def child_nodes(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly inside ``node``: a mapping's keys and values, a list's items."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def dotted(section: str, key: str) -> str:
    """``budget`` + ``run_usd`` -> ``budget.run_usd``; a very long key is cut short."""
    key = key if len(key) <= 40 else key[:37] + "..."
    return f"{section}.{key}" if section else key


def is_blank(node: yaml.Node) -> bool:
    """Whether a document is an empty null (``---`` alone)."""
    return node.tag == _NULL and node.value == ""


def shown_value(value: object) -> str:
    """A value for a message: short, and never a URL (webhooks and store URLs carry secrets)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return short_repr(value)
    text = str(value)
    if "://" in text or "@" in text:
        return "a URL or address (hidden)"
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    return "a list" if isinstance(node, yaml.SequenceNode) else "a single value"


def _fits(node: yaml.Node) -> bool:
    """Whether the node's tag is standard and suits its kind (``!!int {a: 1}`` does not)."""
    if isinstance(node, yaml.ScalarNode):
        return node.tag in _SCALAR_TAGS
    return node.tag == (_MAP if isinstance(node, yaml.MappingNode) else _SEQ)


def _tag_shown(tag: str) -> str:
    return tag.replace(_Y, "!!", 1) if tag.startswith(_Y) else tag


class NodeReader:
    """Reads typed values from the nodes of one document, collecting every issue on the way."""

    def __init__(self, path: str, environ: Mapping[str, str], *, unset_ok: bool = False) -> None:
        self.path = path
        self.environ = environ
        self.unset_ok = unset_ok
        self.issues: list[PolicyIssue] = []
        self._constructor = yaml.constructor.SafeConstructor()
        self._resolver = yaml.resolver.Resolver()

    # -- recording ------------------------------------------------------------------------

    def add(self, where: yaml.Node | yaml.Mark, message: str, fix: str) -> None:
        mark = where.start_mark if isinstance(where, yaml.Node) else where
        self.issues.append(PolicyIssue(self.path, mark.line + 1, mark.column + 1, message, fix))

    def check_tags(self, root: yaml.Node) -> None:
        """Report every non-standard tag; such nodes are then skipped, never constructed."""
        seen: set[int] = set()
        pending = [root]
        while pending:
            node = pending.pop()
            if id(node) in seen:
                continue
            seen.add(id(node))
            if node.tag not in _ALLOWED_TAGS:
                self.add(
                    node,
                    f"tag {_tag_shown(node.tag)} is not allowed: a policy holds plain values only",
                    "remove the tag and write the value itself",
                )
            elif not _fits(node):
                self.add(
                    node, f"tag {_tag_shown(node.tag)} cannot mark {_kind(node)}", "remove the tag"
                )
            pending.extend(child_nodes(node))

    # -- scalars --------------------------------------------------------------------------

    def _interpolate(self, node: yaml.ScalarNode, name: str) -> str | Invalid:
        """``${VAR}``, ``${VAR:-default}`` (default also when VAR is empty), ``$${`` -> ``${``."""
        text, pieces, pos, ok = node.value, [], 0, True
        for match in [*_ENV_REF.finditer(text), None]:
            end = match.start() if match else len(text)
            literal = text[pos:end]
            if "${" in literal:
                self.add(
                    node,
                    f"{name} has a malformed ${{...}} reference",
                    "write ${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $${ for"
                    " a literal ${",
                )
                return INVALID
            pieces.append(literal)
            if match is None:
                break
            pos = match.end()
            if match.group(0) == "$${":
                pieces.append("${")
                continue
            variable, default = match.group(1), match.group(2)
            value = self.environ.get(variable)
            if value is None or (value == "" and default is not None):
                value = default
            if value is None:
                ok = False
                if self.unset_ok:  # a placeholder filled in at run time: nothing to check
                    continue
                self.add(
                    node,
                    f"{name} uses ${{{variable}}}, which is not set",
                    f"set {variable} in the environment, or give a default: ${{{variable}:-value}}",
                )
                ok = False
                continue
            pieces.append(value)
        return "".join(pieces) if ok else INVALID

    def scalar(
        self, node: yaml.Node, name: str, expected: str, fix: str
    ) -> tuple[Any, str] | Invalid:
        """(typed value, text) of a scalar, after interpolation; an issue for lists and mappings.

        An interpolated value is typed by what it became (``${CAP}`` with CAP=5 is the int 5);
        ``text`` lets string keys take it as written (an agent named by ``${NAME}`` = ``007``).
        """
        if not _fits(node):
            return INVALID  # reported by check_tags
        if not isinstance(node, yaml.ScalarNode):
            self.add(node, f"{name} must be {expected}, got {_kind(node)}", fix)
            return INVALID
        text, tag = node.value, node.tag
        if tag == _STR and "${" in text:
            interpolated = self._interpolate(node, name)
            if interpolated is INVALID:
                return INVALID
            text = interpolated
            tag = self._resolver.resolve(yaml.ScalarNode, text, (True, False))
        if tag in _TEXT_TAGS:
            return text, text
        value = self._construct(yaml.ScalarNode(tag, text, node.start_mark, node.end_mark))
        return INVALID if value is INVALID else (value, text)

    def _number(
        self,
        node: yaml.Node,
        name: str,
        *,
        minimum: int,
        inclusive: bool,
        maximum: Decimal,
        fix: str,
        integral: bool = False,
        decimal_text: bool = False,
        unit: str = "",
        over_fix: str | None = None,
    ) -> Decimal | Invalid:
        """A finite number (never a boolean) past ``minimum`` and at most ``maximum``.

        ``decimal_text`` also allows text such as "5.00". The maximum is what both stores keep
        exactly (see :data:`MAX_CAP_USD`); ``unit`` names it in the message.
        """
        noun = "a whole number" if integral else "a number"
        read = self.scalar(node, name, noun, fix)
        if read is INVALID:
            return INVALID
        value, _ = read
        number: Decimal | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = Decimal(value)  # exact at any size (str() of a huge int raises)
        elif isinstance(value, float):
            number = Decimal(str(value))
        elif isinstance(value, str) and decimal_text and _DECIMAL_TEXT.fullmatch(value):
            number = Decimal(value)
        if (
            number is None
            or not number.is_finite()
            or (integral and number != number.to_integral_value())
        ):
            self.add(node, f"{name} must be {noun}, got {shown_value(value)}", fix)
            return INVALID
        if number < minimum or (number == minimum and not inclusive):
            relation = "at least" if inclusive else "greater than"
            self.add(node, f"{name} must be {relation} {minimum:g}, got {shown_value(value)}", fix)
            return INVALID
        if number > maximum:
            self.add(
                node,
                f"{name} must be at most {maximum:f}{unit}, got {shown_value(value)}",
                over_fix or f"write {maximum:f} or less",
            )
            return INVALID
        return number

    def money(self, node: yaml.Node, name: str) -> Decimal | Invalid:
        """A cap: USD above 0, from a number or a decimal string ("5.00"), exactly."""
        fix = "write a number such as 10.0 (USD), or remove the line for no cap"
        over_fix = (
            f"write {MAX_CAP_USD} or less, or remove the line for no cap (the stores keep"
            " larger sums inexactly)"
        )
        return self._number(
            node, name, minimum=0, inclusive=False, maximum=MAX_CAP_USD, fix=fix,
            decimal_text=True, unit=" (USD)", over_fix=over_fix,
        )

    def amount(self, node: yaml.Node, name: str) -> Decimal | Invalid:
        """One call's USD (``estimate_usd``): above 0, at most :data:`MAX_AMOUNT_USD`."""
        fix = "write a number such as 0.02 (USD per call), or remove the line"
        return self._number(
            node, name, minimum=0, inclusive=False, maximum=MAX_AMOUNT_USD, fix=fix,
            decimal_text=True, unit=" (USD)",
            over_fix=f"write {MAX_AMOUNT_USD} or less (the most one call may reserve)",
        )

    def price(self, node: yaml.Node, name: str) -> Decimal | Invalid:
        fix = "write USD per million tokens, such as 2.50"
        return self._number(
            node, name, minimum=0, inclusive=True, maximum=MAX_AMOUNT_USD, fix=fix,
            decimal_text=True, unit=" (USD per million tokens)",
        )

    def count(
        self, node: yaml.Node, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT
    ) -> int | Invalid:
        fix = f"write a whole number such as {max(minimum, 1) * 100}"
        number = self._number(
            node, name, minimum=minimum, inclusive=True, maximum=Decimal(maximum), fix=fix,
            integral=True,
        )
        return number if number is INVALID else int(number)

    def seconds(self, node: yaml.Node, name: str, *, allow_zero: bool = False) -> float | Invalid:
        fix = "write a number of seconds such as 300"
        number = self._number(
            node, name, minimum=0, inclusive=allow_zero, maximum=Decimal(MAX_SECONDS), fix=fix,
            unit=" seconds", over_fix=f"write {MAX_SECONDS:.0f} or less (about 31 years)",
        )
        return number if number is INVALID else float(number)

    def fraction(self, node: yaml.Node, name: str) -> float | Invalid:
        fix = "write a fraction of the budget above 0 and at most 1, such as 0.8"
        number = self._number(
            node, name, minimum=0, inclusive=False, maximum=Decimal(1), fix=fix, over_fix=fix
        )
        return number if number is INVALID else float(number)

    def text(
        self,
        node: yaml.Node,
        name: str,
        *,
        fix: str,
        pattern: re.Pattern[str] | None = None,
        choices: tuple[str, ...] = (),
        nullable: bool = False,
        secret: bool = False,
    ) -> str | None | Invalid:
        """A string key; ``choices`` match case-sensitively, ``secret`` values are never shown."""
        read = self.scalar(node, name, "a string", fix)
        if read is INVALID:
            return INVALID
        value, text = read
        if value is None and nullable:
            return None
        shown = "the value (hidden)" if secret else shown_value(value)
        if not isinstance(value, str):
            if node.value != text:  # interpolated: take what the variable held, as text
                value = text
            else:
                if value is not None and not choices and not secret:  # 007 or yes as a name
                    fix = f'put it in quotes: "{node.value}"'
                self.add(node, f"{name} must be a string, got {shown}", fix)
                return INVALID
        if not value:
            if not nullable:
                self.add(node, f"{name} must not be empty", fix)
            return None if nullable else INVALID
        if choices and value not in choices:
            self.add(node, f"{name} must be one of {', '.join(choices)}; got {shown}", fix)
            return INVALID
        if pattern is not None and not pattern.fullmatch(value):
            self.add(node, f"{name} is not valid: {shown}", fix)
            return INVALID
        return value

    def class_names(self, node: yaml.Node, name: str) -> tuple[str, ...] | Invalid:
        """Exception class names, bare or dotted; one name or a list of them."""
        fix = "list exception class names, such as [PermissionError, openai.AuthenticationError]"
        items = node.value if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ else [node]
        names = [
            self.text(
                item, f"{name}[{i}]" if item is not node else name, fix=fix, pattern=_CLASS_NAME
            )
            for i, item in enumerate(items)
        ]
        return INVALID if INVALID in names else tuple(str(n) for n in names)

    # -- mappings and lists ---------------------------------------------------------------

    def mapping(
        self, node: yaml.Node, name: str, fix: str
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | Invalid:
        """Key -> (key node, value node); duplicates reported at both places, merges applied."""
        if not _fits(node):
            return INVALID  # reported by check_tags
        if not isinstance(node, yaml.MappingNode):
            where = name or "the policy"
            self.add(
                node, f"{where} must be a mapping of keys to values, got {self._got(node)}", fix
            )
            return INVALID
        items: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: list[tuple[yaml.Node, yaml.Node]] = []
        for key, value in node.value:
            if key.tag == _MERGE:
                merged.extend(self._merge_sources(value, name, fix))
                continue
            if not _fits(key):
                continue  # reported by check_tags
            if not isinstance(key, yaml.ScalarNode):
                where = name or "the policy"
                self.add(key, f"a key in {where} is {_kind(key)}", "keys are plain names")
                continue
            if key.value in items:
                first = items[key.value][0]
                full = dotted(name, key.value)
                self.add(
                    key,
                    f"duplicate key {full} (first at line {first.start_mark.line + 1})",
                    "keep one of them",
                )
                self.add(
                    first,
                    f"key {full} is repeated at line {key.start_mark.line + 1}",
                    "keep one of them",
                )
                continue
            items[key.value] = (key, value)
        for key, value in merged:
            items.setdefault(key.value, (key, value))
        return items

    def _merge_sources(
        self, node: yaml.Node, name: str, fix: str
    ) -> list[tuple[yaml.Node, yaml.Node]]:
        """The pairs a ``<<`` merge key brings in; with a list of mappings, the first wins."""
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        pairs: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for source in sources:
            items = self.mapping(source, dotted(name, "<<"), fix)
            if items is not INVALID:
                for key, pair in items.items():
                    pairs.setdefault(key, pair)
        return list(pairs.values())

    def _got(self, node: yaml.Node) -> str:
        """What was found instead: a list, a mapping, or a scalar as written (not interpolated)."""
        if not isinstance(node, yaml.ScalarNode):
            return _kind(node)
        if node.tag in _TEXT_TAGS:
            return shown_value(node.value)
        value = self._construct(node)
        return "an invalid value" if value is INVALID else shown_value(value)

    def _construct(self, node: yaml.ScalarNode) -> Any:
        """An int, float, bool or null by the YAML 1.1 rules (``1_000``, ``yes``, ``.inf``).

        An explicit tag the text does not fit (``!!int ten``) is an issue, not an exception.
        """
        try:
            return self._constructor.yaml_constructors[node.tag](self._constructor, node)
        except (ValueError, KeyError):
            self.add(
                node,
                f"{shown_value(node.value)} is not a valid {_tag_shown(node.tag)}",
                "remove the tag, or write a value that fits it",
            )
            return INVALID

    def items_list(
        self,
        node: yaml.Node,
        name: str,
        parse_item: Callable[[yaml.Node, str], Any],
        example: str,
    ) -> list[tuple[yaml.Node, Any]] | Invalid:
        """A YAML list parsed item by item; returns (item node, value) for the valid items."""
        if not _fits(node):
            return INVALID  # reported by check_tags
        if not isinstance(node, yaml.SequenceNode):
            got = self._got(node)
            self.add(node, f"{name} must be a list, got {got}", f"write a list, such as {example}")
            return INVALID
        parsed = [(item, parse_item(item, f"{name}[{i}]")) for i, item in enumerate(node.value)]
        return [(item, value) for item, value in parsed if value is not INVALID]
