"""policy.yaml -> a validated, immutable :class:`Policy`.

The value types below are the contract between the loader and the guard. Money is held as
``Decimal`` (exact); the store counts integer micro-dollars (:func:`to_micros`).
"""

from __future__ import annotations

import dataclasses
from decimal import ROUND_CEILING, Decimal
from pathlib import Path

MICROS_PER_USD = 1_000_000


def to_micros(usd: Decimal | int | float | str) -> int:
    """USD -> integer micro-dollars, rounded up so spend is never under-counted."""
    return int(Decimal(str(usd)).scaleb(6).to_integral_value(rounding=ROUND_CEILING))


def from_micros(micros: int) -> Decimal:
    """Integer micro-dollars -> USD as an exact ``Decimal``."""
    return Decimal(micros).scaleb(-6)


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


@dataclasses.dataclass(frozen=True)
class Breaker:
    """Durable circuit breaker: open after ``failure_threshold`` consecutive failures."""

    failure_threshold: int = 5
    cooldown_s: float = 300.0
    count: tuple[str, ...] = ()
    """Exception class names that count as failures; empty means all but ``Halted``."""
    ignore: tuple[str, ...] = ()
    """Exception class names that never count (e.g. a validation error of the agent's own)."""


@dataclasses.dataclass(frozen=True)
class FailFast:
    """Errors that halt at once, and the cap on failed attempts of one action in a run."""

    max_attempts: int | None = None
    halt_on: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``max`` calls of ``action`` per ``window_s``, then refuse for ``cooldown_s``."""

    action: str
    max: int
    window_s: float
    cooldown_s: float = 0.0


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


@dataclasses.dataclass(frozen=True)
class Alerts:
    """Where alerts go. ``format``: ``ntfy``, ``slack`` or ``discord`` (else guessed by URL)."""

    webhook: str | None = None
    format: str | None = None
    timeout_s: float = 3.0
    dedupe_window_s: float = 300.0


@dataclasses.dataclass(frozen=True)
class Events:
    """The JSONL event log: a path (relative to the policy's folder) and its rotation."""

    path: str | None = ".agentfuse/events.jsonl"
    max_bytes: int = 10 * 1024 * 1024
    backup_count: int = 5
    rotate_when: str | None = None
    """``midnight`` or ``D`` to rotate by day (``TimedRotatingFileHandler``); None: by size only."""


@dataclasses.dataclass(frozen=True)
class ModelPrice:
    """USD per one million tokens."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None = None


@dataclasses.dataclass(frozen=True)
class RestartGuard:
    """Crash-loop guard: more than ``max_starts`` starts in ``window_s`` -> cool down."""

    max_starts: int = 4
    window_s: float = 60.0
    cooldown_s: float = 3600.0
    action: str = "refuse"  # or "sleep"


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
    source: Path | None = None
    """The file the policy was loaded from; relative paths in it resolve against its folder."""

    def resolve_path(self, path: str) -> Path:
        """A path from the policy, relative to the policy file's folder."""
        p = Path(path).expanduser()
        if p.is_absolute() or self.source is None:
            return p
        return self.source.parent / p

    def rate_limit_for(self, action: str | None) -> RateLimit | None:
        if action is None:
            return None
        return next((r for r in self.rate_limits if r.action == action), None)
