"""policy.yaml -> a validated, immutable :class:`Policy`.

The value types below are the contract between the loader and the guard. Money is held as
``Decimal`` (exact); the store counts integer micro-dollars (:func:`to_micros`).

Loading (:func:`load_policy`, :func:`load_policy_text`, :func:`policy_issues`) composes YAML
nodes with a bounded SafeLoader and never constructs tagged objects; it validates the nodes
themselves, so every issue carries the file, line and column it is about, and all issues are
reported at once.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import math
import os
import re
import stat
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_CEILING, Context, Decimal
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from agentfuse.runtime.errors import PolicyError, PolicyIssue
from agentfuse.runtime.redaction import redact, redact_url
from agentfuse.runtime.stores import DEFAULT_STORE_URL, absolute_url

MICROS_PER_USD = 1_000_000

MAX_CAP_USD = Decimal(1_000_000_000)
"""The largest cap (run, daily, hourly, a child run's): $10^9, i.e. 10^15 micro-dollars.

Both stores must hold every total exactly: SQLite keeps signed 64-bit integers (9.2 * 10^18
micro-dollars), but the Redis scripts compute in Lua doubles, exact for integers only up to
2^53 (about 9.0 * 10^15 micro-dollars, $9.0 * 10^9). A cap stops its total near itself, so a
capped total stays far inside that range (policies/README.md has the whole argument).
"""
MAX_AMOUNT_USD = Decimal(1_000_000)
"""The largest amount of one call (estimate, cost) and price (USD per million tokens): $10^6.

Far below :data:`MAX_CAP_USD`, so a total that no cap watches (a day without a daily cap)
stays exact on Redis for thousands of calls at this maximum.
"""
MAX_AMOUNT_MICROS = int(MAX_AMOUNT_USD) * MICROS_PER_USD
MAX_COUNT = 10**15
"""The largest count (max_steps, thresholds, token counts, token caps): exact in a Redis double."""
MAX_CALL_TOKENS = 10**12
"""The most tokens one call may reserve or be charged (``estimate_tokens``, a call's usage): far
below :data:`MAX_COUNT`, so a token total no cap watches stays exact on Redis for thousands of
calls at this maximum (the argument of :data:`MAX_AMOUNT_USD`, in tokens)."""
MAX_SECONDS = 1_000_000_000.0
"""The longest duration, about 31.7 years: Python's timeouts (``socket``, ``threading``) take at
most about 9.2 * 10^9 s, and Redis ``EXPIRE`` needs whole seconds that fit its clock."""
MAX_BACKUPS = 1000
"""The most event-log backups: every rotation walks each backup number once."""

_EXACT = Context(prec=MAX_PREC, Emin=MIN_EMIN, Emax=MAX_EMAX)
"""Scaling to micro-dollars in this context never rounds or underflows (1e-30 USD -> 1 micro)."""


def to_micros(usd: Decimal | int | float | str) -> int:
    """USD -> integer micro-dollars, rounded up so spend is never under-counted."""
    amount = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    return int(amount.scaleb(6, _EXACT).to_integral_value(ROUND_CEILING, _EXACT))


def from_micros(micros: int) -> Decimal:
    """Integer micro-dollars -> USD as an exact ``Decimal``."""
    return Decimal(micros).scaleb(-6)


def checked_usd(value: object, name: str, *, maximum: Decimal = MAX_AMOUNT_USD) -> Decimal:
    """``value`` (a number or decimal text, never a boolean) as exact USD from 0 to ``maximum``.

    Anything else raises ``ValueError`` naming ``name`` and the value: a negative amount would
    let later calls run free, NaN compares as nothing, and a larger one cannot be kept exactly.
    """
    amount: Decimal | None = None
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, (float, str)):
        try:
            amount = Decimal(value if isinstance(value, str) else str(value))
        except ArithmeticError:
            amount = None
    if amount is None or not amount.is_finite():
        raise ValueError(f"{name} must be a finite number of USD, got {_shown_code(value)}")
    if amount < 0:
        raise ValueError(f"{name} must not be negative, got {_shown_code(value)}")
    if amount > maximum:
        raise ValueError(f"{name} must be at most {maximum} (USD), got {_shown_code(value)}")
    return amount


def usd_micros(value: object, name: str, *, maximum: Decimal = MAX_AMOUNT_USD) -> int:
    """:func:`checked_usd` in integer micro-dollars, rounded up."""
    return to_micros(checked_usd(value, name, maximum=maximum))


def checked_count(value: object, name: str, *, maximum: int = MAX_COUNT) -> int:
    """A whole number (an int, or an integral float) from 0 to ``maximum``; else ``ValueError``."""
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        count = int(value)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        count = int(value)
    if count is None:
        raise ValueError(f"{name} must be a whole number, got {_shown_code(value)}")
    if not 0 <= count <= maximum:
        raise ValueError(f"{name} must be from 0 to {maximum}, got {_shown_code(value)}")
    return count


def checked_seconds(value: object, name: str) -> float:
    """A number of seconds from 0 to :data:`MAX_SECONDS` (as a float); else ``ValueError``."""
    number = None
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        number = float(value) if not isinstance(value, int) or value.bit_length() < 64 else math.inf
    if number is None or not 0 <= number <= MAX_SECONDS:  # NaN fails the comparison too
        raise ValueError(
            f"{name} must be a number of seconds from 0 to {MAX_SECONDS:.0f}, got {_shown_code(value)}"
        )
    return number


def _shown_code(value: object) -> str:
    """A value for a ``ValueError``: its repr, kept short (a huge int is described, not printed)."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"a whole number of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_Check = Callable[[Any, str], Any]


def _repr_with(value: Any, **shown: object) -> str:
    """The dataclass repr of ``value`` with some fields shown differently (secrets hidden)."""
    fields = ", ".join(
        f"{field.name}={shown[field.name] if field.name in shown else getattr(value, field.name)!r}"
        for field in dataclasses.fields(value)
        if field.repr
    )
    return f"{type(value).__name__}({fields})"


def _check_fields(value: object, section: str, checks: Mapping[str, _Check]) -> None:
    """Check (and normalise) the numeric fields of a frozen value that are not None."""
    for field, check in checks.items():
        current = getattr(value, field)
        if current is not None:
            object.__setattr__(value, field, check(current, f"{section}.{field}"))


_CAP: _Check = partial(checked_usd, maximum=MAX_CAP_USD)
_AMOUNT: _Check = checked_usd
_COUNT: _Check = checked_count
_SECONDS: _Check = checked_seconds
_BACKUPS: _Check = partial(checked_count, maximum=MAX_BACKUPS)
_CALL_TOKENS: _Check = partial(checked_count, maximum=MAX_CALL_TOKENS)


def _fraction(value: object, name: str) -> float:
    """A fraction of a budget: above 0 and at most 1."""
    number = math.nan
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        number = float(value) if not isinstance(value, int) or value.bit_length() < 64 else math.inf
    if 0 < number <= 1:  # NaN fails the comparison (a Decimal NaN would raise in it)
        return number
    raise ValueError(f"{name} must be a fraction above 0 and at most 1, got {_shown_code(value)}")


_BUDGET_CHECKS: Mapping[str, _Check] = MappingProxyType(
    {
        "run_usd": _CAP,
        "daily_usd": _CAP,
        "hourly_usd": _CAP,
        "max_steps": _COUNT,
        "max_retries_total": _COUNT,
        "timeout_s": _SECONDS,
        "estimate_usd": _AMOUNT,
        "run_tokens": _COUNT,
        "daily_tokens": _COUNT,
        "hourly_tokens": _COUNT,
        "estimate_tokens": _CALL_TOKENS,
    }
)


@dataclasses.dataclass(frozen=True)
class Budget:
    """Caps of one run and of the agent; ``None`` means no cap."""

    run_usd: Decimal | None = None
    daily_usd: Decimal | None = None
    hourly_usd: Decimal | None = None
    max_steps: int | None = None
    max_retries_total: int | None = None
    timeout_s: float | None = None
    estimate_usd: Decimal | None = None
    run_tokens: int | None = None
    """Input + output tokens of the run and its descendants."""
    daily_tokens: int | None = None
    """Input + output tokens of the agent per calendar day (the policy's time zone)."""
    hourly_tokens: int | None = None
    """Input + output tokens of the agent in the rolling last hour."""
    estimate_tokens: int | None = None
    """Tokens reserved for a call that declares none (a hand-written ``guard.step()`` without
    ``max_tokens``); an instrumented request reserves at least this."""

    def __post_init__(self) -> None:
        _check_fields(self, "budget", _BUDGET_CHECKS)

    @property
    def token_capped(self) -> bool:
        """Whether any token cap is set."""
        return self.run_tokens is not None or self.daily_tokens is not None or self.hourly_tokens is not None


@dataclasses.dataclass(frozen=True)
class Breaker:
    """Durable circuit breaker: open after ``failure_threshold`` consecutive failures."""

    failure_threshold: int = 5
    cooldown_s: float = 300.0
    count: tuple[str, ...] = ()
    """Exception class names that count as failures; empty means all but ``Halted``."""
    ignore: tuple[str, ...] = ()
    """Exception class names that never count (e.g. a validation error of the agent's own)."""

    def __post_init__(self) -> None:
        _check_fields(self, "breaker", {"failure_threshold": _COUNT, "cooldown_s": _SECONDS})


@dataclasses.dataclass(frozen=True)
class FailFast:
    """Errors that halt at once, and the cap on failed attempts of one action in a run."""

    max_attempts: int | None = None
    halt_on: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_fields(self, "fail_fast", {"max_attempts": _COUNT})


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``max`` calls of ``action`` per ``window_s``, then refuse for ``cooldown_s``."""

    action: str
    max: int
    window_s: float
    cooldown_s: float = 0.0

    def __post_init__(self) -> None:
        _check_fields(self, "rate_limits", {"max": _COUNT, "window_s": _SECONDS, "cooldown_s": _SECONDS})


@dataclasses.dataclass(frozen=True)
class KillSwitch:
    """``stop_file``: a path (relative to the policy's folder) whose existence halts the agent."""

    stop_file: str | None = None


@dataclasses.dataclass(frozen=True)
class DegradeStep:
    """At fraction ``at`` of a budget, hand the caller a cheaper model or a minimum interval."""

    at: float
    model: str | None = None
    min_interval_s: float | None = None

    def __post_init__(self) -> None:
        _check_fields(self, "degrade", {"at": _fraction, "min_interval_s": _SECONDS})


@dataclasses.dataclass(frozen=True)
class Alerts:
    """Where alerts go. ``format``: ``ntfy``, ``slack``, ``discord`` or ``json`` (else guessed by URL)."""

    webhook: str | None = None
    format: str | None = None
    timeout_s: float = 3.0
    dedupe_window_s: float = 300.0

    def __post_init__(self) -> None:
        _check_fields(self, "alerts", {"timeout_s": _SECONDS, "dedupe_window_s": _SECONDS})

    def __repr__(self) -> str:  # the webhook's path and query are its secret
        return _repr_with(self, webhook=None if self.webhook is None else redact_url(self.webhook))


@dataclasses.dataclass(frozen=True)
class Events:
    """The JSONL event log: a path (relative to the policy's folder) and its rotation."""

    path: str | None = ".agentfuse/events.jsonl"
    max_bytes: int = 10 * 1024 * 1024
    backup_count: int = 5
    rotate_when: str | None = None
    """``midnight`` or ``D`` to rotate by day (``TimedRotatingFileHandler``); None: by size only."""

    def __post_init__(self) -> None:
        _check_fields(self, "events", {"max_bytes": _COUNT, "backup_count": _BACKUPS})


@dataclasses.dataclass(frozen=True)
class ModelPrice:
    """USD per one million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None

    def __post_init__(self) -> None:
        _check_fields(self, "pricing", {"input": _AMOUNT, "output": _AMOUNT, "cached_input": _AMOUNT})


@dataclasses.dataclass(frozen=True)
class RestartGuard:
    """Crash-loop guard: more than ``max_starts`` starts in ``window_s`` -> cool down."""

    max_starts: int = 4
    window_s: float = 60.0
    cooldown_s: float = 3600.0
    action: str = "refuse"  # or "sleep"

    def __post_init__(self) -> None:
        _check_fields(
            self, "restart_guard", {"max_starts": _COUNT, "window_s": _SECONDS, "cooldown_s": _SECONDS}
        )


@dataclasses.dataclass(frozen=True)
class ChildCaps:
    """The caps of a sub-agent's child run (``children: {researcher: {run_usd: 0.50}}``)."""

    run_usd: Decimal | None = None
    run_tokens: int | None = None

    def __post_init__(self) -> None:
        _check_fields(self, "children", {"run_usd": _CAP, "run_tokens": _COUNT})


@dataclasses.dataclass(frozen=True)
class Policy:
    """One agent's validated policy."""

    agent: str
    budget: Budget
    breaker: Breaker
    fail_fast: FailFast
    version: int = 1
    rate_limits: tuple[RateLimit, ...] = ()
    kill_switch: KillSwitch = KillSwitch()
    degrade: tuple[DegradeStep, ...] = ()
    alerts: Alerts = Alerts()
    events: Events = Events()
    store: str | None = None
    store_durability: str = "normal"  # or "full": synchronous=FULL, survives power loss
    store_unavailable: str = "deny"  # or "allow": fail open (risky)
    timezone: str = "UTC"
    pricing: tuple[tuple[str, ModelPrice], ...] = ()
    restart_guard: RestartGuard | None = None
    children: tuple[tuple[str, ChildCaps], ...] = ()
    """Caps of sub-agents by name; a framework adapter gives each its own child run."""
    source: Path | None = None
    """The file the policy was loaded from; relative paths in it resolve against its folder."""

    @property
    def folder(self) -> Path:
        """The absolute folder relative paths resolve against: the policy file's (for a policy
        built in code, the current directory)."""
        return self.source.parent.absolute() if self.source is not None else Path.cwd()

    def resolve_path(self, path: str) -> Path:
        """A path from the policy as an absolute path, relative ones against :attr:`folder`."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.folder / p

    @property
    def store_url(self) -> str:
        """The policy's ``store:`` (or the default store), a relative SQLite path made absolute
        against :attr:`folder`; the environment and arguments may override it (see
        :mod:`agentfuse.runtime.config`)."""
        return absolute_url(self.store or DEFAULT_STORE_URL, self.folder)

    def __repr__(self) -> str:  # a store URL may carry a password (often filled in from ${...})
        return _repr_with(self, store=None if self.store is None else redact(self.store))

    def child_caps(self, name: str) -> ChildCaps | None:
        """The caps ``children:`` gives the sub-agent ``name``, if any."""
        return next((caps for child, caps in self.children if child == name), None)

    def rate_limit_for(self, action: str | None) -> RateLimit | None:
        if action is None:
            return None
        return next((r for r in self.rate_limits if r.action == action), None)


# ---------------------------------------------------------------------------------------------
# Loading: YAML nodes (never constructed objects) -> issues with file:line:col, or a Policy.
# ---------------------------------------------------------------------------------------------

MAX_POLICY_BYTES = 256 * 1024
"""Larger files are refused unread: a policy is a few KiB, and parsing is pure Python."""
MAX_EXPANDED_NODES = 10_000
"""Bound on nodes counted with every alias expanded: stops "billion laughs" in linear time."""
MAX_NESTING = 32
MAX_ISSUES = 100

BUDGET_CAPS = (
    "run_usd",
    "daily_usd",
    "hourly_usd",
    "max_steps",
    "max_retries_total",
    "timeout_s",
    "run_tokens",
    "daily_tokens",
    "hourly_tokens",
)
"""The budget keys that cap something (a budget needs one of them)."""

SECTION_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "": (
            "version",
            "agent",
            "budget",
            "breaker",
            "fail_fast",
            "rate_limits",
            "kill_switch",
            "degrade",
            "alerts",
            "events",
            "store",
            "store_durability",
            "store_unavailable",
            "timezone",
            "pricing",
            "restart_guard",
            "children",
        ),
        "budget": (*BUDGET_CAPS, "estimate_usd", "estimate_tokens"),
        "breaker": ("failure_threshold", "cooldown_s", "count", "ignore"),
        "fail_fast": ("max_attempts", "halt_on"),
        "rate_limits": ("action", "max", "window_s", "cooldown_s"),
        "kill_switch": ("stop_file",),
        "degrade": ("at", "model", "min_interval_s"),
        "alerts": ("webhook", "format", "timeout_s", "dedupe_window_s"),
        "events": ("path", "max_bytes", "backup_count", "rotate_when"),
        "pricing": ("input", "output", "cached_input"),
        "restart_guard": ("max_starts", "window_s", "cooldown_s", "action"),
        "children": ("run_usd", "run_tokens"),
    }
)
"""Every key the loader accepts, per section ("" is the top level); the JSON Schema mirrors it."""

REQUIRED_KEYS = ("version", "agent", "budget", "breaker", "fail_fast")

_REQUIRED_EXAMPLES = MappingProxyType(
    {
        "version": "version: 1",
        "agent": "agent: my-agent",
        "budget": "budget: {run_usd: 5.0, daily_usd: 20.0}",
        "breaker": "breaker: {failure_threshold: 5, cooldown_s: 300}",
        "fail_fast": "fail_fast: {max_attempts: 3, halt_on: [PermissionError]}",
    }
)

_Y = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_Y + "str", _Y + "int", _Y + "float", _Y + "bool", _Y + "null")
_MAP, _SEQ, _MERGE = _Y + "map", _Y + "seq", _Y + "merge"
_TEXT_TAGS = frozenset({_STR, _Y + "timestamp", _Y + "value", _MERGE})
"""Scalars read as their text: no policy key wants a date, and ``<<`` as a value is just text."""
_SCALAR_TAGS = _TEXT_TAGS | {_INT, _FLOAT, _BOOL, _NULL}
_ALLOWED_TAGS = _SCALAR_TAGS | {_MAP, _SEQ}

AGENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_DECIMAL_TEXT = re.compile(r"[0-9]+(\.[0-9]+)?")
_ENV_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_ROTATE_WHEN = ("S", "M", "H", "D", "MIDNIGHT", "W0", "W1", "W2", "W3", "W4", "W5", "W6")


_Parse = Callable[[yaml.Node, str], Any]
"""A field parser: (value node, dotted key name) -> the value, or INVALID (issue recorded)."""


class _Invalid(enum.Enum):
    """Marks a value that failed validation (its issue is already recorded)."""

    INVALID = 0


INVALID = _Invalid.INVALID


class _LimitExceeded(yaml.YAMLError):
    """The document is too deep, too large once aliases are expanded, or self-referential."""

    def __init__(self, message: str, mark: yaml.Mark, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.fix = fix


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader used only to compose nodes, bounding nesting and alias expansion.

    Sizes are counted per node as the node completes (children first), so an alias bomb is
    caught after composing its few real nodes, before anything walks the expanded tree.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._expanded_sizes: dict[int, int] = {}
        self._expanded_total = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        mark: yaml.Mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if node is None or id(node) not in self._expanded_sizes:
                raise _LimitExceeded(
                    f"alias *{event.anchor} refers to a node that contains it",
                    mark,
                    "remove the alias; a policy cannot contain itself",
                )
            self._count(self._expanded_sizes[id(node)], mark)
            return node
        self._count(1, mark)
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _LimitExceeded(
                f"values are nested more than {MAX_NESTING} levels deep",
                mark,
                "a policy needs 4 levels at most; flatten this value",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            children = _children(node)
            self._expanded_sizes[id(node)] = 1 + sum(self._expanded_sizes[id(c)] for c in children)
        return node

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        """Add to the document's size with aliases expanded; refuse past the bound."""
        self._expanded_total += nodes
        if self._expanded_total > MAX_EXPANDED_NODES:
            raise _LimitExceeded(
                f"the policy has more than {MAX_EXPANDED_NODES} values, counting an alias"
                " each time it is used",
                mark,
                "write the values out plainly; nested aliases that multiply are refused",
            )


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index in ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _shown(value: object) -> str:
    """A value for a message: short, and never a URL (webhooks and store URLs carry secrets)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, (int, float)):
        return _shown_code(value)
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


class _Checker:
    """Validates a composed document into a Policy, collecting every issue on the way."""

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
            pending.extend(_children(node))

    # -- scalars --------------------------------------------------------------------------

    def _interpolate(self, node: yaml.ScalarNode, name: str) -> str | _Invalid:
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
    ) -> tuple[Any, str] | _Invalid:
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
    ) -> Decimal | _Invalid:
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
            self.add(node, f"{name} must be {noun}, got {_shown(value)}", fix)
            return INVALID
        if number < minimum or (number == minimum and not inclusive):
            relation = "at least" if inclusive else "greater than"
            self.add(node, f"{name} must be {relation} {minimum:g}, got {_shown(value)}", fix)
            return INVALID
        if number > maximum:
            self.add(
                node,
                f"{name} must be at most {maximum:f}{unit}, got {_shown(value)}",
                over_fix or f"write {maximum:f} or less",
            )
            return INVALID
        return number

    def money(self, node: yaml.Node, name: str) -> Decimal | _Invalid:
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

    def amount(self, node: yaml.Node, name: str) -> Decimal | _Invalid:
        """One call's USD (``estimate_usd``): above 0, at most :data:`MAX_AMOUNT_USD`."""
        fix = "write a number such as 0.02 (USD per call), or remove the line"
        return self._number(
            node, name, minimum=0, inclusive=False, maximum=MAX_AMOUNT_USD, fix=fix,
            decimal_text=True, unit=" (USD)",
            over_fix=f"write {MAX_AMOUNT_USD} or less (the most one call may reserve)",
        )

    def price(self, node: yaml.Node, name: str) -> Decimal | _Invalid:
        fix = "write USD per million tokens, such as 2.50"
        return self._number(
            node, name, minimum=0, inclusive=True, maximum=MAX_AMOUNT_USD, fix=fix,
            decimal_text=True, unit=" (USD per million tokens)",
        )

    def count(
        self, node: yaml.Node, name: str, *, minimum: int = 1, maximum: int = MAX_COUNT
    ) -> int | _Invalid:
        fix = f"write a whole number such as {max(minimum, 1) * 100}"
        number = self._number(
            node, name, minimum=minimum, inclusive=True, maximum=Decimal(maximum), fix=fix,
            integral=True,
        )
        return number if number is INVALID else int(number)

    def seconds(self, node: yaml.Node, name: str, *, allow_zero: bool = False) -> float | _Invalid:
        fix = "write a number of seconds such as 300"
        number = self._number(
            node, name, minimum=0, inclusive=allow_zero, maximum=Decimal(MAX_SECONDS), fix=fix,
            unit=" seconds", over_fix=f"write {MAX_SECONDS:.0f} or less (about 31 years)",
        )
        return number if number is INVALID else float(number)

    def fraction(self, node: yaml.Node, name: str) -> float | _Invalid:
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
    ) -> str | None | _Invalid:
        """A string key; ``choices`` match case-sensitively, ``secret`` values are never shown."""
        read = self.scalar(node, name, "a string", fix)
        if read is INVALID:
            return INVALID
        value, text = read
        if value is None and nullable:
            return None
        shown = "the value (hidden)" if secret else _shown(value)
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

    def class_names(self, node: yaml.Node, name: str) -> tuple[str, ...] | _Invalid:
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
    ) -> dict[str, tuple[yaml.Node, yaml.Node]] | _Invalid:
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
                full = _dotted(name, key.value)
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
            items = self.mapping(source, _dotted(name, "<<"), fix)
            if items is not INVALID:
                for key, pair in items.items():
                    pairs.setdefault(key, pair)
        return list(pairs.values())

    def _got(self, node: yaml.Node) -> str:
        """What was found instead: a list, a mapping, or a scalar as written (not interpolated)."""
        if not isinstance(node, yaml.ScalarNode):
            return _kind(node)
        if node.tag in _TEXT_TAGS:
            return _shown(node.value)
        value = self._construct(node)
        return "an invalid value" if value is INVALID else _shown(value)

    def _construct(self, node: yaml.ScalarNode) -> Any:
        """An int, float, bool or null by the YAML 1.1 rules (``1_000``, ``yes``, ``.inf``).

        An explicit tag the text does not fit (``!!int ten``) is an issue, not an exception.
        """
        try:
            return self._constructor.yaml_constructors[node.tag](self._constructor, node)
        except (ValueError, KeyError):
            self.add(
                node,
                f"{_shown(node.value)} is not a valid {_tag_shown(node.tag)}",
                "remove the tag, or write a value that fits it",
            )
            return INVALID

    def section(
        self,
        node: yaml.Node,
        name: str,
        fields: Mapping[str, _Parse],
        *,
        required: tuple[str, ...] = (),
        example: str,
    ) -> tuple[dict[str, Any], set[str]] | _Invalid:
        """Parse a mapping by its field table; returns (valid values, keys present)."""
        items = self.mapping(node, name, f"write it as a mapping, such as {example}")
        if items is INVALID:
            return INVALID
        values: dict[str, Any] = {}
        for key, (key_node, value_node) in items.items():
            full = _dotted(name, key)
            parse = fields.get(key)
            if parse is None:
                self.unknown_key(key_node, key, name, tuple(fields))
                continue
            value = parse(value_node, full)
            if value is not INVALID:
                values[key] = value
        for key in required:
            if key not in items:
                where = f"{name} needs" if name else "the policy needs"
                self.add(
                    node,
                    f"{where} {_dotted(name, key)}",
                    f"add it, such as {_REQUIRED_EXAMPLES.get(key, f'{key}: ...')}",
                )
        return values, set(items)

    def unknown_key(
        self, key_node: yaml.Node, key: str, section: str, allowed: tuple[str, ...]
    ) -> None:
        full = _dotted(section, key)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        close = close or [k for k in allowed if k.lower() == key.lower()]
        homes = [
            s for s, keys in SECTION_KEYS.items() if key in keys and s != _section_kind(section)
        ]
        if close:
            fix = f"did you mean {_dotted(section, close[0])}?"
        elif homes:
            fix = f"it belongs in {homes[0] or 'the top level'}: write {_dotted(homes[0], key)}"
        else:
            fix = f"use one of: {', '.join(allowed)}"
        self.add(key_node, f"unknown key {full}", fix)

    def items_list(
        self,
        node: yaml.Node,
        name: str,
        parse_item: Callable[[yaml.Node, str], Any],
        example: str,
    ) -> list[tuple[yaml.Node, Any]] | _Invalid:
        """A YAML list parsed item by item; returns (item node, value) for the valid items."""
        if not _fits(node):
            return INVALID  # reported by check_tags
        if not isinstance(node, yaml.SequenceNode):
            got = self._got(node)
            self.add(node, f"{name} must be a list, got {got}", f"write a list, such as {example}")
            return INVALID
        parsed = [(item, parse_item(item, f"{name}[{i}]")) for i, item in enumerate(node.value)]
        return [(item, value) for item, value in parsed if value is not INVALID]

    # -- sections -------------------------------------------------------------------------

    def policy(self, root: yaml.Node, source: Path) -> Policy | None:
        fields: dict[str, _Parse] = {
            "version": self.version,
            "agent": partial(
                self.text,
                pattern=AGENT_NAME,
                fix="use letters, digits, '_', '.' and '-' only, such as agent: \"publisher\"",
            ),
            "budget": self.budget,
            "breaker": self.breaker,
            "fail_fast": self.fail_fast,
            "rate_limits": self.rate_limits,
            "kill_switch": self.kill_switch,
            "degrade": self.degrade,
            "alerts": self.alerts,
            "events": self.events,
            "store": self.store,
            "store_durability": partial(
                self.text,
                choices=("normal", "full"),
                fix="write normal (survives a process kill) or full (also a power loss)",
            ),
            "store_unavailable": partial(
                self.text,
                choices=("deny", "allow"),
                fix="write deny (refuse calls when the store is down) or allow (fail open)",
            ),
            "timezone": self.timezone,
            "pricing": self.pricing,
            "restart_guard": self.restart_guard,
            "children": self.children,
        }
        example = "the one `agentfuse init` writes (version: 1, agent: ..., budget: ...)"
        parsed = self.section(root, "", fields, required=REQUIRED_KEYS, example=example)
        if parsed is INVALID:
            return None
        values, _ = parsed
        if self.issues or not {"agent", "budget", "breaker", "fail_fast"} <= values.keys():
            return None  # a required value is a ${VAR} placeholder (unset_ok): valid, but no Policy
        return Policy(**values, source=source)

    def version(self, node: yaml.Node, name: str) -> int | _Invalid:
        read = self.scalar(node, name, "1", "write version: 1")
        if read is INVALID:
            return INVALID
        if read[0] != 1 or isinstance(read[0], bool):
            self.add(
                node,
                f"version {_shown(read[0])} is not supported (this agentfuse reads 1)",
                "write version: 1",
            )
            return INVALID
        return 1

    def budget(self, node: yaml.Node, name: str) -> Budget | _Invalid:
        fields: dict[str, _Parse] = {
            "run_usd": self.money,
            "daily_usd": self.money,
            "hourly_usd": self.money,
            "max_steps": self.count,
            "max_retries_total": self.count,
            "timeout_s": self.seconds,
            "estimate_usd": self.amount,
            "run_tokens": self.count,
            "daily_tokens": self.count,
            "hourly_tokens": self.count,
            "estimate_tokens": partial(self.count, maximum=MAX_CALL_TOKENS),
        }
        parsed = self.section(node, name, fields, example="{run_usd: 5.0, daily_usd: 20.0}")
        if parsed is INVALID:
            return INVALID
        values, present = parsed
        if not present & set(BUDGET_CAPS):
            self.add(
                node,
                "budget sets no cap, so nothing would stop the spending",
                f"set at least one of {', '.join(BUDGET_CAPS)}, such as run_usd: 5.0",
            )
            return INVALID
        return Budget(**values)

    def breaker(self, node: yaml.Node, name: str) -> Breaker | _Invalid:
        fields: dict[str, _Parse] = {
            "failure_threshold": self.count,
            "cooldown_s": self.seconds,
            "count": self.class_names,
            "ignore": self.class_names,
        }
        parsed = self.section(node, name, fields, example="{failure_threshold: 5, cooldown_s: 300}")
        return parsed if parsed is INVALID else Breaker(**parsed[0])

    def fail_fast(self, node: yaml.Node, name: str) -> FailFast | _Invalid:
        fields: dict[str, _Parse] = {"max_attempts": self.count, "halt_on": self.class_names}
        parsed = self.section(
            node, name, fields, example="{max_attempts: 3, halt_on: [PermissionError]}"
        )
        return parsed if parsed is INVALID else FailFast(**parsed[0])

    def rate_limits(self, node: yaml.Node, name: str) -> tuple[RateLimit, ...] | _Invalid:
        example = "{action: login, max: 2, window_s: 900, cooldown_s: 1800}"
        fields: dict[str, _Parse] = {
            "action": partial(self.text, fix="name the action, such as action: login"),
            "max": self.count,
            "window_s": self.seconds,
            "cooldown_s": partial(self.seconds, allow_zero=True),
        }

        def parse_item(item: yaml.Node, item_name: str) -> RateLimit | _Invalid:
            parsed = self.section(
                item, item_name, fields, required=("action", "max", "window_s"), example=example
            )
            if parsed is INVALID or not {"action", "max", "window_s"} <= set(parsed[0]):
                return INVALID
            return RateLimit(**parsed[0])

        limits = self.items_list(node, name, parse_item, f"[{example}]")
        if limits is INVALID:
            return INVALID
        first_line: dict[str, int] = {}
        for item, limit in limits:
            if limit.action in first_line:
                self.add(
                    item,
                    f"{name} has a second limit for action {limit.action!r} (first at"
                    f" line {first_line[limit.action]})",
                    "merge them into one entry",
                )
            first_line.setdefault(limit.action, item.start_mark.line + 1)
        return tuple(limit for _, limit in limits)

    def kill_switch(self, node: yaml.Node, name: str) -> KillSwitch | _Invalid:
        fields: dict[str, _Parse] = {
            "stop_file": partial(self.text, fix="name a file, such as stop_file: STOP")
        }
        parsed = self.section(node, name, fields, example="{stop_file: STOP}")
        return parsed if parsed is INVALID else KillSwitch(**parsed[0])

    def degrade(self, node: yaml.Node, name: str) -> tuple[DegradeStep, ...] | _Invalid:
        example = "{at: 0.8, model: gpt-4o-mini}"
        fields: dict[str, _Parse] = {
            "at": self.fraction,
            "model": partial(self.text, fix="name a model, such as model: gpt-4o-mini"),
            "min_interval_s": self.seconds,
        }

        def parse_item(item: yaml.Node, item_name: str) -> DegradeStep | _Invalid:
            parsed = self.section(item, item_name, fields, required=("at",), example=example)
            if parsed is INVALID:
                return INVALID
            values, present = parsed
            if not present & {"model", "min_interval_s"}:
                self.add(
                    item,
                    f"{item_name} says neither which model to use nor how long to wait",
                    "add model: <cheaper model> or min_interval_s: <seconds>",
                )
                return INVALID
            return DegradeStep(**values) if "at" in values else INVALID

        steps = self.items_list(node, name, parse_item, f"[{example}]")
        return steps if steps is INVALID else tuple(step for _, step in steps)

    def alerts(self, node: yaml.Node, name: str) -> Alerts | _Invalid:
        fields: dict[str, _Parse] = {
            "webhook": self.webhook,
            "format": partial(
                self.text,
                choices=("ntfy", "slack", "discord", "json"),
                fix="write ntfy, slack, discord or json, or remove it to guess from the URL",
            ),
            "timeout_s": self.seconds,
            "dedupe_window_s": partial(self.seconds, allow_zero=True),
        }
        parsed = self.section(node, name, fields, example="{webhook: ${ALERT_WEBHOOK}}")
        return parsed if parsed is INVALID else Alerts(**parsed[0])

    def webhook(self, node: yaml.Node, name: str) -> str | None | _Invalid:
        fix = (
            "write an http:// or https:// URL, such as ${ALERT_WEBHOOK} to keep it out of the file"
        )
        url = self.text(node, name, fix=fix, nullable=True, secret=True)
        if url is INVALID or url is None:
            return url
        scheme, host = _url_parts(url)
        if scheme not in ("http", "https") or not host:
            self.add(node, f"{name} must be an http:// or https:// URL (value hidden)", fix)
            return INVALID
        return url

    def events(self, node: yaml.Node, name: str) -> Events | _Invalid:
        fields: dict[str, _Parse] = {
            "path": partial(
                self.text,
                nullable=True,
                fix="name a file, such as path: .agentfuse/events.jsonl, or null for none",
            ),
            "max_bytes": self.count,
            "backup_count": partial(self.count, minimum=0, maximum=MAX_BACKUPS),
            "rotate_when": self.rotate_when,
        }
        parsed = self.section(node, name, fields, example="{path: .agentfuse/events.jsonl}")
        return parsed if parsed is INVALID else Events(**parsed[0])

    def rotate_when(self, node: yaml.Node, name: str) -> str | None | _Invalid:
        fix = "write one of S, M, H, D, midnight, W0 (Monday) ... W6, or null"
        value = self.text(node, name, fix=fix, nullable=True)
        if value is INVALID or value is None:
            return value
        if value.upper() not in _ROTATE_WHEN:
            self.add(node, f"{name} must be a rotation interval, got {_shown(value)}", fix)
            return INVALID
        return value

    def store(self, node: yaml.Node, name: str) -> str | _Invalid:
        fix = (
            "write sqlite:///relative/path.db, sqlite:////absolute/path.db or"
            " redis://host:6379/0"
        )
        url = self.text(node, name, fix=fix, secret=True)
        if url is INVALID or url is None:
            return INVALID
        scheme, host = _url_parts(url)
        if scheme == "sqlite":
            good = len(url) > len("sqlite:///") and url[6:10] == ":///"
            problem = "needs three slashes then a file path"
        elif scheme in ("redis", "rediss"):
            good = bool(host)
            problem = "needs a host and a valid port, such as redis://localhost:6379/0"
        else:
            good, problem = (
                False,
                f"has scheme {scheme or 'none'}; only sqlite, redis and rediss are known",
            )
        if not good:
            self.add(node, f"{name} {problem} (URL hidden)", fix)
            return INVALID
        return url

    def timezone(self, node: yaml.Node, name: str) -> str | _Invalid:
        fix = "write an IANA time zone name, such as Europe/Paris or UTC"
        value = self.text(node, name, fix=fix)
        if value is INVALID or value is None:
            return INVALID
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            self.add(node, f"{name} {_shown(value)} is not a known time zone", fix)
            return INVALID
        return value

    def pricing(self, node: yaml.Node, name: str) -> tuple[tuple[str, ModelPrice], ...] | _Invalid:
        example = "{gpt-4o: {input: 2.50, output: 10.00, cached_input: 1.25}}"
        models = self.mapping(
            node, name, f"write it as a mapping of model names, such as {example}"
        )
        if models is INVALID:
            return INVALID
        fields: dict[str, _Parse] = {
            "input": self.price,
            "output": self.price,
            "cached_input": self.price,
        }
        prices = []
        for model, (_, value) in models.items():
            parsed = self.section(
                value,
                _dotted(name, model),
                fields,
                required=("input", "output"),
                example="{input: 2.50, output: 10.00}",
            )
            if parsed is not INVALID and {"input", "output"} <= set(parsed[0]):
                prices.append((model, ModelPrice(**parsed[0])))
        return tuple(prices)

    def children(self, node: yaml.Node, name: str) -> tuple[tuple[str, ChildCaps], ...] | _Invalid:
        example = "{researcher: {run_usd: 0.50}}"
        agents = self.mapping(node, name, f"write it as a mapping of sub-agent names, such as {example}")
        if agents is INVALID:
            return INVALID
        fields: dict[str, _Parse] = {"run_usd": self.money, "run_tokens": self.count}
        caps = []
        for child, (_, value) in agents.items():
            parsed = self.section(value, _dotted(name, child), fields, example="{run_usd: 0.50}")
            if parsed is not INVALID:
                caps.append((child, ChildCaps(**parsed[0])))
        return tuple(caps)

    def restart_guard(self, node: yaml.Node, name: str) -> RestartGuard | _Invalid:
        fields: dict[str, _Parse] = {
            "max_starts": self.count,
            "window_s": self.seconds,
            "cooldown_s": self.seconds,
            "action": partial(
                self.text,
                choices=("refuse", "sleep"),
                fix="write refuse (refuse calls until the cooldown ends) or sleep (wait it out once at start)",
            ),
        }
        parsed = self.section(node, name, fields, example="{max_starts: 4, window_s: 60}")
        return parsed if parsed is INVALID else RestartGuard(**parsed[0])


def _url_parts(url: str) -> tuple[str, str | None]:
    """(lower-case scheme, host) of a URL; host is None when missing or malformed (bad port)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return scheme, None
    return scheme, parts.hostname if port_ok else None


def _dotted(section: str, key: str) -> str:
    """``budget`` + ``run_usd`` -> ``budget.run_usd``; a very long key is cut short."""
    key = key if len(key) <= 40 else key[:37] + "..."
    return f"{section}.{key}" if section else key


def _section_kind(section: str) -> str:
    """``rate_limits[2]`` -> ``rate_limits``; ``pricing.gpt-4o`` -> ``pricing``."""
    return section.split("[")[0].split(".")[0]


# -- entry points ---------------------------------------------------------------------------


def _file_issue(
    path: str, message: str, fix: str, line: int = 1, col: int = 1
) -> list[PolicyIssue]:
    return [PolicyIssue(path, line, col, message, fix)]


def _decode(data: bytes | str, path: str) -> str | list[PolicyIssue]:
    if len(data) > MAX_POLICY_BYTES:
        return _file_issue(
            path,
            f"file is larger than {MAX_POLICY_BYTES // 1024} KiB, the limit for a policy",
            "a policy is a few KiB; check that this is the right file",
        )
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.start
        line_start = data.rfind(b"\n", 0, bad) + 1
        line, col = data.count(b"\n", 0, bad) + 1, len(data[line_start:bad].decode("utf-8")) + 1
        return _file_issue(
            path, f"byte 0x{data[bad]:02x} is not UTF-8", "save it as UTF-8", line, col
        )


def _compose(text: str, path: str) -> yaml.Node | None | list[PolicyIssue]:
    """The document's root node (None if empty), or the parse issue."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        return loader.get_single_node()
    except _LimitExceeded as exc:
        return _file_issue(path, exc.message, exc.fix, exc.mark.line + 1, exc.mark.column + 1)
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        return _file_issue(
            path,
            f"character #x{exc.character:04x} is not allowed in YAML",
            "remove it (control characters cannot appear in a policy)",
            line,
            col,
        )
    except yaml.MarkedYAMLError as exc:
        return _syntax_issues(text, path, exc)
    except yaml.YAMLError as exc:
        return _file_issue(path, f"YAML error: {exc}", "check the file's syntax")
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_issues(text: str, path: str, exc: yaml.MarkedYAMLError) -> list[PolicyIssue]:
    """The parser's error in plain words; tabs in indentation, its usual cause, named as such."""
    tabs = [
        PolicyIssue(
            path,
            number,
            line.index("\t") + 1,
            "tab character in the indentation",
            "indent with spaces; YAML does not allow tabs there",
        )
        for number, line in enumerate(text.splitlines(), start=1)
        if "\t" in line[: len(line) - len(line.lstrip(" \t"))] and line.strip()
    ]
    mark = exc.problem_mark or exc.context_mark or yaml.Mark(path, 0, 0, 0, "", 0)
    if tabs and ("\\t" in (exc.problem or "") or any(t.line == mark.line + 1 for t in tabs)):
        return tabs  # the error is the tab itself: PyYAML's words for it would only confuse
    what = ", ".join(part for part in (exc.context, exc.problem) if part)
    fix = "check the quotes, brackets and indentation around this line"
    if exc.problem and "another document" in exc.problem:
        fix = "a policy is one YAML document: remove the second ---"
    opened: tuple[str, int] | None = None
    if exc.context and exc.context_mark and ("flow sequence" in exc.context or "flow mapping" in exc.context):
        opened = ("{" if "mapping" in exc.context else "[", exc.context_mark.line + 1)
    elif exc.context and "flow node" in exc.context:  # a value was due inside [ ] or { }
        opened = _innermost_unclosed(text, mark.index)
        what = exc.problem or what
    if opened is not None:
        opener, opened_at = opened
        closer = "}" if opener == "{" else "]"
        what = f"{exc.problem} (while reading the {opener} opened at line {opened_at})"
        fix = f"close the {opener} opened at line {opened_at} with {closer}"
    line, col = mark.line + 1, mark.column + 1
    lines = text.splitlines()
    if mark.line < len(lines) and "${" in lines[mark.line]:
        fix = 'quote it: "${NAME}" (inside { } or [ ], a bare ${ starts a mapping)'
    return [PolicyIssue(path, line, col, f"YAML syntax error: {what}", fix)]


def _innermost_unclosed(text: str, end: int) -> tuple[str, int] | None:
    """The innermost ``[`` or ``{`` still open at ``end`` and its line, outside quotes and
    comments (PyYAML names only the value it was waiting for, not the bracket)."""
    stack: list[tuple[str, int]] = []
    line, quote, comment, previous = 1, "", False, "\n"
    for char in text[:end]:
        if char == "\n":  # quoted scalars may span lines: a quote stays open
            line, comment = line + 1, False
        elif comment:
            pass
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            stack.append((char, line))
        elif char in "]}" and stack:
            stack.pop()
        previous = char
    return stack[-1] if stack else None


def _finish(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    """Sorted by place, without repeats (an alias reused reports once), capped."""
    unique = sorted(set(issues), key=lambda i: (i.line, i.col, i.message))
    if len(unique) <= MAX_ISSUES:
        return unique
    last = unique[MAX_ISSUES - 1]
    return [
        *unique[: MAX_ISSUES - 1],
        PolicyIssue(
            last.path,
            last.line,
            last.col,
            f"{len(unique) - MAX_ISSUES + 1} more problems not shown",
            "fix the ones above first",
        ),
    ]


def _check_text(
    data: bytes | str, path: str, environ: Mapping[str, str] | None, *, unset_ok: bool = False
) -> tuple[list[PolicyIssue], Policy | None]:
    text = _decode(data, path)
    if isinstance(text, list):
        return text, None
    root = _compose(text, path)
    if isinstance(root, list):
        return root, None
    if root is None or (root.tag == _NULL and root.value == ""):  # no document, or `---` alone
        return (
            _file_issue(
                path, "policy file is empty", "run `agentfuse init` to write a starter policy"
            ),
            None,
        )
    checker = _Checker(path, os.environ if environ is None else environ, unset_ok=unset_ok)
    checker.check_tags(root)
    policy = checker.policy(root, Path(path).resolve())
    return _finish(checker.issues), policy


def _read(path: str) -> bytes | list[PolicyIssue]:
    try:
        status = os.stat(path)
        if stat.S_ISDIR(status.st_mode):
            return _file_issue(path, "is a directory, not a policy file", "name a policy.yaml file")
        if not stat.S_ISREG(status.st_mode):
            return _file_issue(path, "is not a regular file", "name a policy.yaml file")
        with open(path, "rb") as stream:
            return stream.read(MAX_POLICY_BYTES + 1)  # one byte over: _decode reports the size
    except FileNotFoundError:
        return _file_issue(path, "file not found", f"create it with `agentfuse init --path {path}`")
    except OSError as exc:
        return _file_issue(
            path, f"cannot be read: {exc.strerror or exc}", "check the path and its permissions"
        )


def policy_issues(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    unset_ok: bool = False,
) -> list[PolicyIssue]:
    """Every problem in the policy file at ``path``; empty when it is valid.

    ``unset_ok`` (the linter's mode) treats ``${VAR}`` with VAR unset as a placeholder to be
    filled at run time, so a CI job without the agent's secrets does not fail the policy;
    ``enforce()`` and ``check-policy`` report it.
    """
    shown = os.fspath(path)
    data = _read(shown)
    if isinstance(data, list):
        return data
    return _check_text(data, shown, environ, unset_ok=unset_ok)[0]


def load_policy_text(
    text_or_bytes: str | bytes,
    path: str | os.PathLike[str] = "<policy>",
    *,
    environ: Mapping[str, str] | None = None,
) -> Policy:
    """Validate policy text; ``path`` names it in messages and becomes ``Policy.source``."""
    issues, policy = _check_text(text_or_bytes, os.fspath(path), environ)
    if issues or policy is None:
        raise PolicyError(issues)
    return policy


def load_policy(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Policy:
    """Read and validate a policy file; raises PolicyError listing every problem."""
    shown = os.fspath(path)
    data = _read(shown)
    if isinstance(data, list):
        raise PolicyError(data)
    return load_policy_text(data, shown, environ=environ)
