"""The policy model: one agent's validated, immutable :class:`Policy` and its parts.

These frozen values are the contract between the loader (:mod:`agentfuse.runtime.policy_loader`,
which reads policy.yaml) and the guard. Each checks its numeric fields when built, so a policy
made in code obeys the same bounds as one loaded from a file (:mod:`agentfuse.runtime.money`).
This module imports no YAML: the stores and the decisions import it.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Mapping
from decimal import Decimal
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any

from agentfuse.runtime.money import (
    MAX_CALL_TOKENS,
    MAX_CAP_USD,
    checked_count,
    checked_seconds,
    checked_usd,
    short_repr,
)
from agentfuse.runtime.redaction import redact, redact_url
from agentfuse.runtime.stores import DEFAULT_STORE_URL, absolute_url

MAX_BACKUPS = 1000
"""The most event-log backups: every rotation walks each backup number once."""
AGENT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,128}")
"""The agent names a policy may give: letters, digits, ``_``, ``.`` and ``-``, at most 128."""

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
    raise ValueError(f"{name} must be a fraction above 0 and at most 1, got {short_repr(value)}")


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
