"""The ``Store`` protocol: a few coarse atomic operations that every backend implements.

Every operation that decides (``gate``, ``settle``, ``halt``, ``resume``, ``open_run``) is ONE
atomic unit in the backend (SQLite: one ``BEGIN IMMEDIATE`` transaction; Redis: one Lua script),
so two workers can never pass a check with the same last cent. The decision rules themselves are
pure functions in :mod:`agentfuse.runtime.decisions` and :mod:`agentfuse.runtime.breaker`; a
backend reads the state they need, calls them (or mirrors them in Lua) and writes the effects.

Values are frozen dataclasses, except the four built on every guarded call (``RunInfo``,
``GateRequest``, ``GateResult``, ``Settlement``): those are ``slots`` dataclasses, because a
frozen one pays an ``object.__setattr__`` per field, which was a quarter of a call's CPU
instructions (bench/RESULTS.md). Nothing changes them after they are built; treat them as values.

Money is integer micro-dollars everywhere (``*_micros``); tokens (input + output of a call) are
integer counts (``*_tokens``), reserved and settled with the money in the same operation. Times are
wall-clock seconds since the epoch (``now``), taken from the guard's injected clock. A backend that
cannot be reached raises :class:`agentfuse.runtime.errors.StoreUnavailable`; it never leaks a
driver exception.

Semantics every backend must keep (the contract suite checks them):

* Run rows hold *subtree* totals (money and tokens): a reservation or settlement of a run is added
  to the run and every ancestor, so a cap check is one read per run in the chain, never a ledger sum.
* Tokens are counted whatever the caps (a parent's or another policy's cap may need them); a
  settlement with ``tokens=None`` charges the reserved token estimate (never under-counted).
* Agent windows: per-(agent, day_key) and per-(agent, minute) buckets of spent + reserved; the
  hourly cap sums the last 60 minute buckets (``minute - 59 .. minute``).
* A reservation is settled at most once (``settle`` of an unknown or settled id is a no-op that
  returns ``SettleResult(settled=False)``). Unsettled reservations stay counted forever.
* A refused ``gate`` writes nothing except the durable halt named in ``GateResult.halt`` (and
  the deferred settlements of ``GateRequest.settle_first``, which are applied either way).
* ``open_run`` creates a run or returns the existing one unchanged (cap, start time, parent).
* Each reservation records the pid and host of the process that made it (the store runs in
  that process), so an operator can tell a reservation left by a dead process (``runs --stale``)
  and settle it explicitly (``reconcile``, recorded durably, never silently).
* ``claim`` is one atomic insert-if-absent (or if expired); ``record_start`` inserts the start,
  counts the window and starts the cooldown in one atomic unit.
* Time never runs backwards for an agent's books: ``open_run``, ``gate`` and ``settle`` given a
  ``now`` before the agent's latest reservation use that reservation's time (and, for a gate,
  the later of the two days), so a wall clock stepped back never reopens an hourly or daily
  window, a cooldown or a deadline (:func:`agentfuse.runtime.decisions.effective_time`).
* Every policy's daily and hourly caps are declared in the store (``declare_caps``) and a gate
  enforces the strictest declared cap of the agent as well as the request's own.
* An agent's books carry an identity (``create_identity``); a handle that pinned it refuses
  every later gate of the agent once the store holds another identity or none (lost data).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

AGENT_WIDE = ""
"""``run_id`` of a halt that applies to every run of the agent."""


class BreakerState(str, enum.Enum):
    """The three states of a circuit breaker."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(str, enum.Enum):
    """How a guarded call ended, as far as the counters care."""

    SUCCESS = "success"
    FAILURE = "failure"
    """Counts for the run's retries, the action's attempts and (if ``breaker_counts``) the breaker."""
    NEUTRAL = "neutral"
    """Cancelled, interrupted or refused deeper down: settle the money, count nothing."""


@dataclasses.dataclass(slots=True)
class RunInfo:
    """One run's durable row. Totals include every descendant run."""

    run_id: str
    agent: str
    parent_id: str | None
    cap_micros: int | None
    started_at: float
    spent_micros: int = 0
    reserved_micros: int = 0
    steps: int = 0
    failures: int = 0
    """Failed calls of this run (its own, not descendants'): the retry counter."""
    token_cap: int | None = None
    """The run's token cap (``budget.run_tokens``; input + output tokens of it and its descendants)."""
    spent_tokens: int = 0
    reserved_tokens: int = 0


@dataclasses.dataclass(frozen=True)
class HaltRecord:
    """A durable halt of one run, or of the whole agent when ``run_id == AGENT_WIDE``."""

    agent: str
    run_id: str
    reason: str
    source: str
    """Who halted: ``operator``, ``kill_switch``, ``budget``, ``fail_fast``."""
    created_at: float
    figures: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class BreakerRecord:
    """Durable breaker state for (agent, key)."""

    state: BreakerState = BreakerState.CLOSED
    consecutive_failures: int = 0
    opened_at: float | None = None
    probe_id: str | None = None
    """The reservation holding the half-open probe, if any."""
    probe_expires_at: float | None = None
    """When the probe lease lapses, so a dead prober does not wedge the breaker."""


@dataclasses.dataclass(frozen=True)
class BreakerSpec:
    """Breaker settings of the policy, passed with each call."""

    key: str = ""
    failure_threshold: int = 5
    cooldown_s: float = 300.0
    probe_lease_s: float = 300.0


@dataclasses.dataclass(frozen=True)
class RateLimitSpec:
    """At most ``max`` admissions of an action in ``window_s``, then none for ``cooldown_s``."""

    action: str
    max: int
    window_s: float
    cooldown_s: float = 0.0


@dataclasses.dataclass(frozen=True)
class RateLimitRecord:
    """Durable rate-limit state of (agent, action): recent admission times and the cooldown."""

    admissions: tuple[float, ...] = ()
    cooldown_until: float | None = None


@dataclasses.dataclass(slots=True)
class GateRequest:
    """Everything one gate needs; caps are ``None`` when the policy sets none."""

    reservation_id: str
    agent: str
    run_id: str
    action: str
    estimate_micros: int
    now: float
    day_key: str
    """Calendar day in the policy's time zone, e.g. ``2026-11-23``."""
    minute: int
    """``int(now // 60)``: the bucket of the rolling hourly window."""
    breaker: BreakerSpec = BreakerSpec()
    rate_limit: RateLimitSpec | None = None
    daily_cap_micros: int | None = None
    hourly_cap_micros: int | None = None
    max_steps: int | None = None
    max_retries_total: int | None = None
    timeout_s: float | None = None
    max_attempts: int | None = None
    settle_first: tuple[Settlement, ...] = ()
    """Settlements the guard deferred (plain successes costing no more than their estimate):
    apply each exactly as :meth:`Store.settle` would, first, in the same atomic operation."""
    estimate_tokens: int = 0
    """Tokens (input + output) reserved for the call."""
    daily_token_cap: int | None = None
    hourly_token_cap: int | None = None


@dataclasses.dataclass(frozen=True)
class Refusal:
    """Why a gate refused. ``kind`` picks the exception class; ``reason`` is a stable word."""

    kind: str
    """One of ``halted``, ``circuit_open``, ``rate_limited``, ``budget``, ``max_steps``,
    ``max_retries_total``, ``timeout``, ``max_attempts``."""
    reason: str
    """``halted``: the halt's reason; ``budget``: ``run_budget``, ``ancestor_budget``,
    ``daily_budget``, ``hourly_budget`` (money), ``run_token_budget``, ``ancestor_token_budget``,
    ``daily_token_budget``, ``hourly_token_budget`` (tokens); otherwise equal to ``kind``."""
    message: str
    figures: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(slots=True)
class GateResult:
    """The outcome of one gate: a reservation, or a refusal (and maybe a new durable halt)."""

    refusal: Refusal | None = None
    halt: HaltRecord | None = None
    """A durable halt written by this gate (budget halts), for events and alerts."""
    probe: bool = False
    """This call holds the half-open probe: its settlement decides the breaker."""
    breaker_transition: BreakerState | None = None
    rate_limit_tripped: bool = False
    """This admission filled the window and started the cooldown."""
    remaining_s: float | None = None
    """Seconds left before the run's deadline, if it has one."""
    usage_fraction: float = 0.0
    """Highest fraction of any money or token cap in use after this reservation (the degrade ladder)."""
    breaker_clean: bool = False
    """The breaker was closed with no counted failures. Only then may the guard defer the
    settlement of a plain success (a store that leaves this False is always settled at once)."""
    tokens_capped: bool = True
    """A token cap bound this gate (the chain's, the request's or a declared one). Without one,
    a success that used more tokens than it reserved may still be deferred (nobody checks them)."""

    @property
    def allowed(self) -> bool:
        return self.refusal is None


@dataclasses.dataclass(slots=True)
class Settlement:
    """The end of one guarded call."""

    reservation_id: str
    agent: str
    run_id: str
    action: str
    cost_micros: int
    now: float
    outcome: Outcome
    breaker_counts: bool = True
    """Whether the outcome is reported to the breaker: a failure counts (policy
    ``breaker.count``/``ignore``), a success resets the count. False for deferred successes,
    which must not reset failures that other processes counted after them."""
    breaker: BreakerSpec = BreakerSpec()
    halt: HaltRecord | None = None
    """A fail-fast halt to write durably in the same transaction."""
    tokens: int | None = None
    """Tokens the call used (input + output); ``None``: the reservation's token estimate."""


@dataclasses.dataclass(frozen=True)
class SettleResult:
    """What a settlement changed."""

    settled: bool
    breaker_state: BreakerState = BreakerState.CLOSED
    breaker_transition: BreakerState | None = None
    consecutive_failures: int = 0
    action_failures: int = 0
    run_failures: int = 0


@dataclasses.dataclass(frozen=True)
class AgentTotals:
    """An agent's money and tokens in its current windows (spent + reserved)."""

    day_micros: int
    hour_micros: int
    day_tokens: int = 0
    hour_tokens: int = 0


@dataclasses.dataclass(frozen=True)
class Heartbeat:
    """A guard's sign of life: which process (pid on host) works on which run, and when."""

    agent: str
    run_id: str
    pid: int
    host: str
    at: float


@dataclasses.dataclass(frozen=True)
class RestartSpec:
    """The policy's ``restart_guard``: more than ``max_starts`` in ``window_s`` -> cool down."""

    max_starts: int
    window_s: float
    cooldown_s: float


@dataclasses.dataclass(frozen=True)
class StartCheck:
    """What recording a process start found."""

    starts_in_window: int
    cooldown_until: float | None = None
    """While ``now`` is before this, the agent is in a restart-loop cooldown."""
    tripped: bool = False
    """This start began the cooldown (alert once)."""


def check_start(starts_in_window: int, cooldown_until: float | None, now: float, spec: RestartSpec) -> StartCheck:
    """The restart guard's decision after a start was recorded (pure; every backend uses it)."""
    if cooldown_until is not None and now < cooldown_until:
        return StartCheck(starts_in_window, cooldown_until)
    if starts_in_window > spec.max_starts:
        return StartCheck(starts_in_window, now + spec.cooldown_s, tripped=True)
    return StartCheck(starts_in_window)


@dataclasses.dataclass(frozen=True)
class RunSummary:
    """A run's row with its activity: the operator's view (``agentfuse runs``)."""

    run: RunInfo
    last_activity_at: float
    """The latest reservation of the run (its start time if it made none)."""
    unsettled: int = 0


@dataclasses.dataclass(frozen=True)
class Reservation:
    """An unsettled reservation and the process (pid on host) that made it."""

    reservation_id: str
    agent: str
    run_id: str
    action: str
    estimate_micros: int
    created_at: float
    pid: int | None
    host: str | None
    estimate_tokens: int = 0


@dataclasses.dataclass(frozen=True)
class Reconciliation:
    """An operator's explicit settlement of a stale reservation (kept durably in the store)."""

    reservation_id: str
    agent: str
    run_id: str
    settle_as: str
    """``reserved`` (counted at its estimate, money and tokens) or ``zero`` (the call cost nothing)."""
    cost_micros: int
    reason: str
    at: float


@dataclasses.dataclass(frozen=True)
class DaySpend:
    """An agent's spent and reserved money and tokens on one calendar day (its policy's time zone)."""

    agent: str
    day_key: str
    spent_micros: int
    reserved_micros: int
    spent_tokens: int = 0
    reserved_tokens: int = 0


@dataclasses.dataclass(frozen=True)
class StoreIdentity:
    """Which books a store holds for one agent: a random id written when the agent is first booked.

    A process remembers the identity it has seen (:mod:`agentfuse.runtime.stores.books`); a store
    that no longer has it lost its data. ``reset_reason`` is set when an operator wrote this
    identity to acknowledge such a loss (``agentfuse store reset --accept-loss``).
    """

    agent: str
    identity: str
    created_at: float
    reset_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class BooksLoss:
    """An operator's acknowledgement that an agent's books were lost (kept in the store)."""

    agent: str
    at: float
    reason: str
    previous: str
    """The identity the lost books had, as far as the operator's side knew (``""``: unknown)."""
    identity: str
    """The identity written by the acknowledgement."""


@dataclasses.dataclass(frozen=True)
class CapDeclaration:
    """The daily and hourly caps one policy declares for its agent (``None``: no such cap)."""

    agent: str
    policy: str
    """Who declares: ``host:/abs/path/policy.yaml``, or ``host:<code ...>`` for a policy built in code."""
    daily_micros: int | None
    hourly_micros: int | None
    declared_at: float
    daily_tokens: int | None = None
    hourly_tokens: int | None = None

    @property
    def empty(self) -> bool:
        """Declares no cap at all (such a declaration is removed, not written)."""
        caps = (self.daily_micros, self.hourly_micros, self.daily_tokens, self.hourly_tokens)
        return all(cap is None for cap in caps)


@runtime_checkable
class Store(Protocol):
    """Durable state of runs, agents, breakers, rate limits and halts."""

    def open_run(
        self,
        run_id: str,
        *,
        agent: str,
        parent_id: str | None,
        cap_micros: int | None,
        now: float,
        token_cap: int | None = None,
    ) -> RunInfo:
        """Create the run (start time ``now``) or return it unchanged if it exists.

        Raises ``KeyError`` if ``parent_id`` names no run. The guard passes ``token_cap`` only
        when the run has one, so a store written before token caps still guards a policy without.
        """

    def gate(self, request: GateRequest) -> GateResult:
        """Check halts, breaker, rate limit, caps, steps, retries, deadline and attempts; reserve."""

    def settle(self, settlement: Settlement) -> SettleResult:
        """Replace the reservation by the cost; count failures; apply the breaker; write a halt."""

    def halt(self, record: HaltRecord) -> None:
        """Write (or overwrite) a durable halt."""

    def resume(self, agent: str, run_id: str = AGENT_WIDE) -> int:
        """Clear the halt of the run (or the agent-wide halt); returns how many were cleared."""

    def get_run(self, run_id: str) -> RunInfo | None:
        """The run's row, or ``None``."""

    def halts(self, agent: str | None = None) -> list[HaltRecord]:
        """Every durable halt (of one agent, if given)."""

    def get_breaker(self, agent: str, key: str = "") -> BreakerRecord:
        """The breaker's durable state (closed if never touched)."""

    def agent_totals(self, agent: str, *, day_key: str, minute: int) -> AgentTotals:
        """Spent + reserved of the agent on ``day_key`` and in the 60 minutes up to ``minute``."""

    def unsettled(self, run_id: str | None = None) -> int:
        """How many reservations are still open (stale ones are left by killed processes)."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class OperatorStore(Store, Protocol):
    """A store with the operator tools: heartbeats, restarts, claims, listings, reconciliation.

    SQLite and Redis implement it. It is kept apart from :class:`Store` so that a minimal store
    (a benchmark's null store, a user's own) still guards calls: the guard then skips heartbeats
    and the restart guard, and ``claim`` says it needs this protocol.
    """

    def record_heartbeat(self, beat: Heartbeat) -> None:
        """Write the process's heartbeat (one row per agent, host and pid; the latest wins)."""

    def heartbeats(self, agent: str | None = None) -> list[Heartbeat]:
        """Every heartbeat (of one agent, if given), newest first."""

    def record_start(self, agent: str, *, pid: int, host: str, now: float, spec: RestartSpec) -> StartCheck:
        """Record a process start (once per pid and host) and apply the restart guard atomically."""

    def claim(
        self, agent: str, message_id: str, *, run_id: str, pid: int, host: str, now: float, ttl_s: float
    ) -> bool:
        """Take the message if nobody holds an unexpired claim on it; True if this call took it."""

    def list_runs(self, agent: str | None = None) -> list[RunSummary]:
        """Every run (of one agent), most recently active first."""

    def open_reservations(self, agent: str | None = None, run_id: str | None = None) -> list[Reservation]:
        """Unsettled reservations (of one agent or run), oldest first."""

    def reconcile(
        self, reservation_id: str, *, settle_as: str, reason: str, now: float
    ) -> Reconciliation | None:
        """Settle an open reservation at its estimate or zero, recording why; None if not open."""

    def reconciliations(self, agent: str | None = None) -> list[Reconciliation]:
        """Every reconciliation (of one agent), oldest first."""

    def daily_spend(self, agent: str | None = None, *, since_day: str = "") -> list[DaySpend]:
        """Per-agent, per-day money from ``since_day`` (an ISO date) on, by day."""

    def breakers(self, agent: str | None = None) -> list[tuple[str, str, BreakerRecord]]:
        """(agent, key, state) of every breaker ever touched."""

    def agents(self) -> list[str]:
        """Every agent the store knows (runs, halts or heartbeats), sorted."""


@runtime_checkable
class BooksStore(Store, Protocol):
    """A store that can tell whether it still holds an agent's books, and that keeps the caps
    every policy declares for an agent (the strictest binds every gate). SQLite and Redis
    implement it; the guard skips both checks for a store without it."""

    def identity(self, agent: str) -> StoreIdentity | None:
        """The agent's books' identity, or ``None`` if the store has none (new, or lost)."""

    def create_identity(self, agent: str, *, now: float) -> StoreIdentity:
        """Write a new identity unless one exists (atomically); return the stored one."""

    def reset_identity(self, agent: str, *, now: float, reason: str, previous: str) -> StoreIdentity:
        """An operator's acknowledgement of lost books: a new identity and a :class:`BooksLoss`."""

    def losses(self, agent: str | None = None) -> list[BooksLoss]:
        """Every acknowledged loss (of one agent), oldest first."""

    def pin_identity(self, agent: str, identity: str) -> None:
        """From now on this handle refuses the agent's gates unless the store holds ``identity``."""

    def declare_caps(self, declaration: CapDeclaration) -> None:
        """Write (or replace) one policy's caps for its agent; with no cap at all, remove them."""

    def cap_declarations(self, agent: str | None = None) -> list[CapDeclaration]:
        """Every declaration (of one agent), by agent and policy."""

    def drop_caps(self, agent: str, policy: str) -> int:
        """Remove one policy's declaration; returns how many were removed (0 or 1)."""

    def durability_warnings(self) -> list[str]:
        """What could make this store forget (e.g. a Redis with no persistence); empty if nothing."""

    def seen_record(self, folder: Path | None) -> tuple[Path, str] | None:
        """Where processes record the identities they have seen in this store, and under which key.

        ``folder`` is the policy's folder (``None``: a policy built in code). ``None`` when there
        is nowhere to keep the record.
        """
