"""``enforce()`` and ``Guard``: the gate before every model call and the settlement after it.

The decisions live in the store's one atomic operation (:mod:`agentfuse.runtime.decisions`);
this module is the thin shell around them: it builds the request, turns a refusal into the
matching :class:`~agentfuse.Halted` exception, settles the call, and reports every decision as
an event (and an alert for halts, cap hits, breaker trips and rate-limit trips). Sync and async
steps share one ``_begin``/``_finish`` pair; only the deadline handling differs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import inspect
import os
import random
import shlex
import socket
import sys
import threading
import time
import uuid
import weakref
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar, cast
from zoneinfo import ZoneInfo

from agentfuse.runtime import config, errors
from agentfuse.runtime.clock import Clock, system_clock
from agentfuse.runtime.observers import CallObserver, CallWatch
from agentfuse.runtime.policy import (
    MAX_AMOUNT_MICROS,
    MAX_AMOUNT_USD,
    MAX_CALL_TOKENS,
    MAX_CAP_USD,
    Policy,
    checked_count,
    checked_seconds,
    load_policy,
    to_micros,
    usd_micros,
)
from agentfuse.runtime.redaction import redact
from agentfuse.runtime.stores import open_store
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    BooksStore,
    BreakerSpec,
    BreakerState,
    GateRequest,
    GateResult,
    HaltRecord,
    Heartbeat,
    OperatorStore,
    Outcome,
    RateLimitSpec,
    RestartSpec,
    Settlement,
    SettleResult,
    Store,
)

F = TypeVar("F", bound=Callable[..., Any])

REFUSALS: Mapping[str, type[errors.Halted]] = {
    "halted": errors.RunHalted,
    "circuit_open": errors.CircuitOpen,
    "rate_limited": errors.RateLimited,
    "budget": errors.BudgetExceeded,
    "max_steps": errors.StepLimitExceeded,
    "max_retries_total": errors.RetryLimitExceeded,
    "timeout": errors.DeadlineExceeded,
    "max_attempts": errors.AttemptsExhausted,
}
"""Refusal kind (from the store) -> the exception raised to the agent."""

HEARTBEAT_INTERVAL_S = 5.0
"""A guard writes its heartbeat at most this often (on a gate; no thread)."""
DEFAULT_CLAIM_TTL_S = 7 * 24 * 3600.0
"""How long a claimed message stays taken by default (a week: longer than any retry of it)."""

LOST_BOOKS = ("store_lost", "store_damaged")
"""``StoreUnavailable`` reasons that refuse even under ``store_unavailable: allow``."""

_EVENT_FIELDS = frozenset({"ts", "agent", "run", "event", "reason"})
"""Names an event's own fields take; a figure with one of them is renamed ``figure_<name>``."""


def exception_matches(exc_type: type[BaseException], names: Iterable[str]) -> str | None:
    """The first of ``names`` naming a class in ``exc_type``'s MRO, or None.

    A name is bare (``PermissionError``) or dotted (``openai.AuthenticationError``); a dotted
    name also matches a class re-exported from a private submodule (``openai._exceptions``).
    """
    wanted = tuple(names)
    if not wanted:
        return None
    for cls in exc_type.__mro__:
        module = cls.__module__
        for name in wanted:
            prefix, _, bare = name.rpartition(".")
            if bare not in (cls.__name__, cls.__qualname__):
                continue
            if not prefix or prefix == module or module.startswith(prefix + "."):
                return name
            if module == "builtins" and prefix == "builtins":
                return name
    return None


def _new_reservation_id() -> str:
    """Time-ordered, so the ledger's primary key grows at its end (cheap inserts).

    The 32 random bits only separate ids made in the same nanosecond (they need not be secret:
    ``random`` is reseeded in a forked child, and is several microseconds cheaper than
    ``secrets``, which reads the OS's entropy on every call).
    """
    return f"{time.time_ns() << 32 | random.getrandbits(32):024x}"  # 16 hex digits of time, 8 random


class DeferredSettlements:
    """Plain successes whose settlement rides on the next gate of the same guard family.

    A success that cost no more than its estimate, on a clean breaker, changes nothing a cap
    check can see except lowering spent+reserved; so instead of its own transaction it is
    applied at the start of the next gate's transaction (or at ``close()``/``flush()``). Until
    then the call is counted at its estimate: other processes may see a little more spend than
    there is, never less, and a killed process leaves exactly that (never under-counted).
    """

    def __init__(self) -> None:
        self._items: list[Settlement] = []
        self._lock = threading.Lock()

    def add(self, settlement: Settlement) -> None:
        with self._lock:
            self._items.append(settlement)

    def peek(self) -> tuple[Settlement, ...]:
        with self._lock:
            return tuple(self._items)

    def discard(self, applied: tuple[Settlement, ...]) -> None:
        """Forget settlements the store has applied (by identity)."""
        if not applied:
            return
        with self._lock:
            count = len(applied)
            if count == 1 and self._items and self._items[0] is applied[0]:
                del self._items[0]  # the usual case: one call, then the next
                return
            if all(mine is theirs for mine, theirs in zip(self._items[:count], applied)):
                del self._items[:count]  # the usual case: what was applied is what came first
                return
            done = {id(item) for item in applied}
            self._items = [item for item in self._items if id(item) not in done]


class Step:
    """One guarded call: a context manager (sync or async) or, unentered, a decorator.

    Inside the block: ``step.remaining_s`` (seconds to the run's deadline, for the client's
    ``timeout=``), ``step.model`` / ``step.min_interval_s`` (the degrade ladder), and
    ``step.record(response)`` or ``step.record(cost_usd=..., tokens=...)``.

    Tokens: the step reserves ``estimate_tokens``, else ``input_tokens + max_tokens`` when it
    declares ``max_tokens``, else the policy's ``budget.estimate_tokens`` (else none), and is
    charged the input + output tokens of the usage :meth:`record` reads (or is given); with no
    usage, the reservation stays the charge.
    """

    usage: Any = None
    """The token usage :meth:`record` read from the response (a ``pricing.Usage``), if any."""
    tokens: int | None = None
    """The tokens (input + output) the call used, once recorded; ``None``: charge the reservation."""
    estimate_tokens: int | None = None
    """The tokens the caller said to reserve, if any."""
    reserved_tokens = 0
    """The tokens reserved at the gate."""

    def __init__(
        self,
        guard: Guard,
        *,
        estimate_usd: float | str | Decimal | None = None,
        action: str | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        breaker_key: str | None = None,
        estimate_tokens: int | None = None,
    ) -> None:
        self.guard = guard
        self.estimate_usd = estimate_usd
        self.action = action
        self.model = model
        self.input_tokens = input_tokens
        self.max_tokens = max_tokens
        self.breaker_key = breaker_key
        if estimate_tokens is not None:
            self.estimate_tokens = estimate_tokens
        self.min_interval_s: float | None = None
        self.reservation_id: str | None = None
        self.estimate_micros = 0
        self.cost_micros: int | None = None
        self.result: GateResult | None = None
        self._deadline: float | None = None
        self._deadline_hit = False
        self._timer: asyncio.TimerHandle | None = None

    # -- the call's figures ---------------------------------------------------------------------

    @property
    def remaining_s(self) -> float | None:
        """Seconds left before the run's ``timeout_s`` (never negative), or None without one."""
        if self._deadline is None:
            return None
        return max(0.0, self._deadline - self.guard.clock())

    def record(
        self,
        response: Any = None,
        *,
        cost_usd: float | str | Decimal | None = None,
        tokens: int | None = None,
    ) -> int | None:
        """Record the call's real cost, from a provider response or given; returns micro-dollars.

        With neither a known price nor ``cost_usd`` the estimate is settled and an event says so.
        A ``cost_usd`` that is negative, NaN, infinite, a boolean or above ``MAX_AMOUNT_USD``
        raises ``ValueError`` (the call then settles at its estimate); so does a ``tokens``
        (input + output, when the response's usage is not readable) that is not a whole number
        from 0 to ``MAX_CALL_TOKENS``.
        """
        if tokens is not None:
            self.tokens = checked_count(tokens, "tokens", maximum=MAX_CALL_TOKENS)
        if cost_usd is not None:
            self.cost_micros = usd_micros(cost_usd, "cost_usd")
            return self.cost_micros
        if response is None and tokens is not None:
            return self.cost_micros
        self.cost_micros = self.guard._cost_of(response, self)
        return self.cost_micros

    # -- sync and async context manager ---------------------------------------------------------

    def __enter__(self) -> Step:
        self.guard._begin(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.guard._finish(self, exc)

    async def __aenter__(self) -> Step:
        self.guard._begin(self)
        remaining = self.remaining_s
        if remaining is not None:
            task = asyncio.current_task()
            if task is not None:
                loop = asyncio.get_running_loop()
                self._timer = loop.call_at(loop.time() + remaining, self._cancel_at_deadline, task)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._deadline_hit and isinstance(exc, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and hasattr(task, "uncancel"):
                task.uncancel()
            deadline = self.guard._deadline_error(self)
            self.guard._finish(self, deadline)
            raise deadline from exc
        self.guard._finish(self, exc)

    def _cancel_at_deadline(self, task: asyncio.Task[Any]) -> None:
        self._deadline_hit = True
        task.cancel()

    # -- decorator ------------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        """``@guard.step(...)``: every call of ``fn`` is one fresh step with these settings."""
        return self.guard._wrap(fn, self._settings())

    def _settings(self) -> dict[str, Any]:
        return {
            "estimate_usd": self.estimate_usd,
            "action": self.action,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "max_tokens": self.max_tokens,
            "breaker_key": self.breaker_key,
            "estimate_tokens": self.estimate_tokens,
        }


class ObservedStep(Step):
    """A :class:`Step` that tells the guard's observers (see :mod:`agentfuse.runtime.observers`)."""

    _watches: tuple[CallWatch, ...] = ()

    @contextlib.contextmanager
    def _watching_gate(self) -> Iterator[None]:
        """Start the observers' watches, then tell them what the gate inside decided."""
        self._watches = tuple(observer.watch(self) for observer in self.guard.observers)
        try:
            yield
        except BaseException as error:
            for watch in self._watches:
                watch.refused(self, error)
            raise
        for watch in self._watches:
            watch.allowed(self)

    def _finished(self, error: BaseException | None) -> None:
        for watch in self._watches:
            watch.finished(self, error)

    def __enter__(self) -> Step:
        with self._watching_gate():
            super().__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        finally:
            self._finished(exc)

    async def __aenter__(self) -> Step:
        with self._watching_gate():
            await super().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        error = exc
        try:
            await super().__aexit__(exc_type, exc, tb)
        except BaseException as raised:  # the deadline turns a cancellation into DeadlineExceeded
            error = raised
            raise
        finally:
            self._finished(error)


class Guard:
    """Enforces one policy for one run; build it with :func:`enforce`."""

    _check_books = False
    """Before opening the run, check that the store still holds the agent's books (enforce())."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        run_id: str,
        *,
        clock: Clock = system_clock,
        events: Any = None,
        alerter: Any = None,
        owns_store: bool = False,
        owns_observers: bool | None = None,
        deferred: DeferredSettlements | None = None,
        claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
        observers: Sequence[CallObserver] = (),
        parent_id: str | None = None,
    ) -> None:
        self.policy = policy
        self.store = store
        self.run_id = run_id
        self.clock = clock
        self.events = events
        self.alerter = alerter
        self.agent = policy.agent
        self.parent_id = parent_id
        self.observers = tuple(observers)
        self._step_class = ObservedStep if self.observers else Step
        """Chosen once: a guard without observers never pays for them."""
        self._owns_store = owns_store
        self._owns_observers = owns_store if owns_observers is None else owns_observers
        """Whether ``close()`` closes the events and alerter (a child guard shares its parent's)."""
        self.claim_ttl_s = claim_ttl_s
        self._operator_store = isinstance(store, OperatorStore)
        self._host = socket.gethostname()
        self._next_heartbeat = float("-inf")
        self._restart_until: float | None = None
        """While the clock is before this, calls are refused: the agent is in a restart loop."""
        self._deferred = deferred
        """Shared with child guards; None settles every call in its own transaction."""
        self._unopened: tuple[str | None, int | None, int | None] | None = None
        """(parent id, cap, token cap) of a run not yet written to the store (it was unreachable)."""
        self._zone = ZoneInfo(policy.timezone)
        self._stop_file = (
            policy.resolve_path(policy.kill_switch.stop_file) if policy.kill_switch.stop_file else None
        )
        self._breaker = BreakerSpec(
            key="",
            failure_threshold=policy.breaker.failure_threshold,
            cooldown_s=policy.breaker.cooldown_s,
            probe_lease_s=max(policy.breaker.cooldown_s, 1.0),
        )
        budget = policy.budget
        self._daily_cap = to_micros(budget.daily_usd) if budget.daily_usd is not None else None
        self._hourly_cap = to_micros(budget.hourly_usd) if budget.hourly_usd is not None else None
        self._default_estimate = to_micros(budget.estimate_usd) if budget.estimate_usd is not None else 0
        self._daily_token_cap = budget.daily_tokens
        self._hourly_token_cap = budget.hourly_tokens
        self._token_windows = budget.daily_tokens is not None or budget.hourly_tokens is not None
        self._default_tokens = budget.estimate_tokens or 0
        """Tokens a step that declares none reserves (``budget.estimate_tokens``)."""
        self._max_steps = budget.max_steps
        self._max_retries_total = budget.max_retries_total
        self._timeout_s = budget.timeout_s
        self._max_attempts = policy.fail_fast.max_attempts
        self._rate_limits = {
            limit.action: RateLimitSpec(limit.action, limit.max, limit.window_s, limit.cooldown_s)
            for limit in policy.rate_limits
        }
        self._degrade = sorted(policy.degrade, key=lambda step: step.at)
        self._prices: Any = None
        self._events_on = events is not None and getattr(events, "path", True) is not None
        self._day: tuple[float, float, str] = (0.0, 0.0, "")

    def __repr__(self) -> str:
        return f"Guard(agent={self.agent!r}, run_id={self.run_id!r}, store={self.store!r})"

    # -- public API -----------------------------------------------------------------------------

    def step(
        self,
        estimate_usd: float | str | Decimal | None = None,
        action: str | None = None,
        *,
        model: str | None = None,
        input_tokens: int | None = None,
        max_tokens: int | None = None,
        breaker_key: str | None = None,
        estimate_tokens: int | None = None,
    ) -> Step:
        """A guarded step: ``with guard.step(...) as step``, ``async with``, or a decorator.

        ``breaker_key`` gives the call its own breaker (e.g. one per provider) instead of the
        agent's; ``model``/``input_tokens``/``max_tokens`` estimate the cost from the price table.
        Tokens reserved: ``estimate_tokens``, else ``input_tokens + max_tokens`` when
        ``max_tokens`` is given, else the policy's ``budget.estimate_tokens`` (see :class:`Step`).
        """
        return self._step_class(
            self,
            estimate_usd=estimate_usd,
            action=action,
            model=model,
            input_tokens=input_tokens,
            max_tokens=max_tokens,
            breaker_key=breaker_key,
            estimate_tokens=estimate_tokens,
        )

    def __call__(self, fn: F) -> F:
        """``@guard``: every call of ``fn`` is a step whose action is ``fn.__qualname__``."""
        return self._wrap(fn, {})

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` as one step (action: its qualified name).

        For a coroutine function this returns the guarded coroutine, to be awaited.
        """
        if inspect.iscoroutinefunction(fn):
            return self._wrap(fn, {})(*args, **kwargs)
        with self.step(action=_action_of(fn)):
            return fn(*args, **kwargs)

    def child(
        self,
        run_usd: float | str | Decimal | None = None,
        run_id: str | None = None,
        *,
        run_tokens: int | None = None,
    ) -> Guard:
        """A sub-run whose spend and tokens also count against this run and every ancestor."""
        return _open_guard(
            self.policy,
            self.store,
            run_id=run_id,
            parent_id=self.run_id,
            cap_micros=usd_micros(run_usd, "run_usd", maximum=MAX_CAP_USD) if run_usd is not None else None,
            token_cap=checked_count(run_tokens, "run_tokens") if run_tokens is not None else None,
            clock=self.clock,
            events=self.events,
            alerter=self.alerter,
            owns_store=False,
            owns_observers=False,
            deferred=self._deferred,
            claim_ttl_s=self.claim_ttl_s,
            observers=self.observers,
        )

    @contextlib.contextmanager
    def claim(self, message_id: str, ttl_s: float | None = None) -> Iterator[bool]:
        """``with guard.claim(message_id) as fresh:`` take a message BEFORE working on it.

        The claim is written durably (one atomic insert-if-absent) before the body runs, so a
        process killed mid-message never works on it again: ``fresh`` is False for a message
        already claimed and not expired (``ttl_s``, default ``claim_ttl_s``). A body that raises
        keeps its claim too (at most once); let it expire, or use a new id, to retry.
        """
        if not self._operator_store:
            raise TypeError(f"guard.claim() needs a store with claims; {self.store!r} has none")
        store = cast(OperatorStore, self.store)
        ttl = checked_seconds(self.claim_ttl_s if ttl_s is None else ttl_s, "claim ttl_s")
        if ttl <= 0:
            raise ValueError(f"claim ttl_s must be positive, got {ttl}")
        fresh = store.claim(
            self.agent, message_id, run_id=self.run_id, pid=os.getpid(), host=self._host, now=self.clock(), ttl_s=ttl
        )
        self._emit("claimed" if fresh else "claim_skipped", message_id=message_id)
        yield fresh

    def halt(self, reason: str, *, scope_agent: bool = False) -> HaltRecord:
        """Halt this run (or the whole agent) durably, as an operator would."""
        record = HaltRecord(
            agent=self.agent,
            run_id=AGENT_WIDE if scope_agent else self.run_id,
            reason=reason,
            source="operator",
            created_at=self.clock(),
        )
        self.store.halt(record)
        self._emit("halt", reason=reason, source="operator", halted_run=record.run_id)
        return record

    # -- provider SDK instrumentation (agentfuse.runtime.instrument) ---------------------------

    def instrument(self, client: Any = None) -> Any:
        """Gate every request of the installed provider SDKs with this guard (one line, no wraps).

        ``guard.instrument(client)`` gates that client object only (and returns it). Each
        request is one step, settled from the usage the provider reports, streams included;
        which guard a request is charged to is described in
        :mod:`agentfuse.runtime.instrument.core`. Instrumenting twice is a no-op.
        """
        from agentfuse.runtime.instrument import instrument

        return instrument(self, client)

    def uninstrument(self, client: Any = None) -> None:
        """Stop gating with this guard (or ``client`` only); the last guard restores the SDKs exactly."""
        from agentfuse.runtime.instrument import uninstrument

        uninstrument(self, client)

    def flush(self) -> None:
        """Apply deferred settlements now, and settle instrumented streams left open (``close()`` too)."""
        instrumented = sys.modules.get("agentfuse.runtime.instrument.core")
        if instrumented is not None:
            instrumented.settle_open_streams(self)
        if self._deferred is None:
            return
        pending = self._deferred.peek()
        for settlement in pending:
            self.store.settle(settlement)
        self._deferred.discard(pending)
        if self._events_on:
            self.events.write(_settled_lines(self.events, pending))

    def close(self) -> None:
        """Stop instrumenting; apply deferred settlements; close the store, events and alerts it opened."""
        if "agentfuse.runtime.instrument" in sys.modules:
            self.uninstrument()
        try:
            self.flush()
        except errors.StoreUnavailable as exc:
            self._emit("settle_failed", reason="store_unavailable", error=str(exc))
        if self._owns_store:
            self.store.close()
        if self._owns_observers:
            if self.alerter is not None:
                self.alerter.close()
            if self.events is not None:
                self.events.close()

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the gate -------------------------------------------------------------------------------

    def _begin(self, step: Step) -> None:
        if step.reservation_id is not None:
            raise RuntimeError("a step can be entered once; call guard.step(...) for each call")
        now = self.clock()
        step.action = step.action or "call"
        if now >= self._next_heartbeat:
            self._beat(now)
        if self._restart_until is not None and now < self._restart_until:
            self._refuse_restart_loop(step)
        self._check_kill_switch(now, step)
        step.estimate_micros = self._estimate(step)
        tokens = (
            self._default_tokens
            if step.estimate_tokens is None and step.max_tokens is None
            else self._estimate_tokens(step)
        )
        if tokens:
            step.reserved_tokens = tokens
        step.reservation_id = _new_reservation_id()
        request = GateRequest(
            reservation_id=step.reservation_id,
            agent=self.agent,
            run_id=self.run_id,
            action=step.action,
            estimate_micros=step.estimate_micros,
            now=now,
            day_key=self._day_key(now),
            minute=int(now // 60),
            breaker=self._breaker_for(step),
            rate_limit=self._rate_limits.get(step.action),
            daily_cap_micros=self._daily_cap,
            hourly_cap_micros=self._hourly_cap,
            max_steps=self._max_steps,
            max_retries_total=self._max_retries_total,
            timeout_s=self._timeout_s,
            max_attempts=self._max_attempts,
            settle_first=self._deferred.peek() if self._deferred is not None else (),
        )
        if tokens:
            request.estimate_tokens = tokens
        if self._token_windows:  # set only when capped: a guard without token caps pays nothing here
            request.daily_token_cap = self._daily_token_cap
            request.hourly_token_cap = self._hourly_token_cap
        try:
            if self._unopened is not None:
                self._open_run()
            result = self.store.gate(request)
        except errors.StoreUnavailable as exc:
            self._on_store_unavailable(step, exc)
            return
        if self._deferred is not None:
            self._deferred.discard(request.settle_first)
        step.result = result
        if self._events_on:
            # One write for the settlements this gate applied and the gate's own decision.
            lines = _settled_lines(self.events, request.settle_first)
            if result.refusal is None:
                figures: dict[str, Any] = {"action": step.action, "estimate_micros": step.estimate_micros}
                if tokens:
                    figures["estimate_tokens"] = tokens
                if result.probe:
                    figures["probe"] = True
                lines.append(self.events.line("allowed", agent=self.agent, run=self.run_id, **figures))
            self.events.write(lines)
        if result.refusal is not None:
            self._refuse(step, result)
        if result.remaining_s is not None:
            step._deadline = now + result.remaining_s
        if self._degrade:
            self._apply_degrade(step, result.usage_fraction)
        if result.breaker_transition is BreakerState.HALF_OPEN:
            self._emit("breaker_half_open", action=step.action)
        if result.rate_limit_tripped:
            spec = request.rate_limit
            self._emit("rate_limit_tripped", reason="rate_limited", action=step.action)
            if spec is not None:
                self._alert(
                    "rate_limit",
                    f"{self.agent}: rate limit of {spec.action!r} reached",
                    f"{spec.max} calls of {spec.action!r} in {spec.window_s:g}s;"
                    + (
                        f" refused for the next {spec.cooldown_s:g}s"
                        if spec.cooldown_s > 0
                        else " further calls wait for the window to slide"
                    ),
                    dedupe_key=f"rate_limit:{spec.action}",
                )

    def _open_run(self) -> None:
        """Create or resume the run in the store (retried at the next call if the store was down)."""
        if self._unopened is None:
            return
        parent_id, cap_micros, token_cap = self._unopened
        now = self.clock()
        if self._check_books:
            self._open_books(now)
        tokens = {} if token_cap is None else {"token_cap": token_cap}  # a store from before token caps takes none
        try:
            run = self.store.open_run(
                self.run_id, agent=self.agent, parent_id=parent_id, cap_micros=cap_micros, now=now, **tokens
            )
        except KeyError:
            raise ValueError(f"parent run {parent_id!r} does not exist in {self.store!r}") from None
        self._unopened = None
        figures: dict[str, Any] = {}
        if run.token_cap is not None:
            figures = {"token_cap": run.token_cap, "spent_tokens": run.spent_tokens}
        self._emit(
            "run_started" if run.steps == 0 and run.spent_micros == run.reserved_micros == 0 else "run_resumed",
            parent=run.parent_id,
            cap_micros=run.cap_micros,
            spent_micros=run.spent_micros,
            reserved_micros=run.reserved_micros,
            steps=run.steps,
            **figures,
        )

    def _open_books(self, now: float) -> None:
        """Check that the store still holds the agent's books; declare the policy's caps."""
        from agentfuse.runtime.stores import books

        try:
            warnings = books.open_books(cast(BooksStore, self.store), self.policy, host=self._host, now=now)
        except errors.StoreUnavailable as exc:
            if exc.reason == "store_lost":
                self._emit("store_lost", reason="store_lost", error=str(exc))
                self._alert("store_lost", f"{self.agent}: the store lost its books", str(exc), dedupe_key="store_lost")
            raise
        self._check_books = False
        for warning in warnings:
            self._emit("store_not_durable", reason="store_not_durable", warning=warning)
            books.announce(warning)

    def _beat(self, now: float) -> None:
        """Record this process's heartbeat (a store that is down only delays it)."""
        if not self._operator_store:
            return
        self._next_heartbeat = now + HEARTBEAT_INTERVAL_S
        beat = Heartbeat(agent=self.agent, run_id=self.run_id, pid=os.getpid(), host=self._host, at=now)
        try:
            cast(OperatorStore, self.store).record_heartbeat(beat)
        except errors.StoreUnavailable:
            return

    def _check_restarts(self, sleep: Callable[[float], None]) -> None:
        """Record this process's start; in a restart loop, refuse calls (or sleep) for the cooldown."""
        config = self.policy.restart_guard
        if config is None or not self._operator_store:
            return
        now = self.clock()
        spec = RestartSpec(config.max_starts, config.window_s, config.cooldown_s)
        try:
            check = cast(OperatorStore, self.store).record_start(
                self.agent, pid=os.getpid(), host=self._host, now=now, spec=spec
            )
        except errors.StoreUnavailable as exc:
            self._emit("store_unavailable", reason="store_unavailable", error=str(exc))
            return
        if check.cooldown_until is None:
            return
        wait_s = max(0.0, check.cooldown_until - now)
        if check.tripped:
            self._emit(
                "restart_loop",
                reason="restart_loop",
                starts=check.starts_in_window,
                window_s=spec.window_s,
                cooldown_s=spec.cooldown_s,
                action=config.action,
            )
            then = "this process sleeps" if config.action == "sleep" else "calls are refused"
            self._alert(
                "restart_loop",
                f"{self.agent}: restart loop",
                f"{check.starts_in_window} process starts in {spec.window_s:g}s (restart_guard.max_starts"
                f" {spec.max_starts}); {then} for {wait_s:g}s",
                dedupe_key="restart_loop",
            )
        if config.action == "sleep":
            sleep(wait_s)
            return
        self._restart_until = check.cooldown_until

    def _refuse_restart_loop(self, step: Step) -> None:
        assert self._restart_until is not None
        figures = {"action": step.action, "cooldown_until": self._restart_until}
        self._emit("refused", reason="restart_loop", **figures)
        raise errors.RestartLoop(
            f"agent {self.agent!r} is in a restart loop (restart_guard); calls are refused for"
            f" {self._restart_until - self.clock():.0f}s more",
            reason="restart_loop",
            agent=self.agent,
            run_id=self.run_id,
            figures=figures,
        )

    def _halt_message(self, refusal_reason: str, figures: Mapping[str, Any]) -> str:
        """How a durable halt reads to the agent, with the exact command that clears it."""
        source = figures.get("source", "operator")
        halted_run = figures.get("halted_run", AGENT_WIDE)
        resume = f"agentfuse resume --agent {shlex.quote(self.agent)}"
        if halted_run == AGENT_WIDE:
            return f"agent {self.agent!r} is halted ({refusal_reason}, by {source}); clear it with `{resume}`"
        return (
            f"run {halted_run} of agent {self.agent!r} is halted ({refusal_reason}, by {source});"
            f" clear it with `{resume} --run {shlex.quote(str(halted_run))}`"
        )

    def _day_key(self, now: float) -> str:
        """The calendar day of ``now`` in the policy's time zone (cached until the day ends)."""
        start, end, key = self._day
        if start <= now < end:
            return key
        local = datetime.datetime.fromtimestamp(now, self._zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        next_midnight = (midnight + datetime.timedelta(days=1)).replace(tzinfo=None)
        end = next_midnight.replace(tzinfo=self._zone).timestamp()
        self._day = (midnight.timestamp(), end, local.date().isoformat())
        return self._day[2]

    def _check_kill_switch(self, now: float, step: Step) -> None:
        if self._stop_file is None or not os.path.exists(self._stop_file):
            return
        try:
            already_halted = any(h.run_id == AGENT_WIDE for h in self.store.halts(self.agent))
            if not already_halted:
                self.store.halt(
                    HaltRecord(
                        agent=self.agent,
                        run_id=AGENT_WIDE,
                        reason="kill_switch",
                        source="kill_switch",
                        created_at=now,
                        figures={"stop_file": str(self._stop_file)},
                    )
                )
        except errors.StoreUnavailable:
            already_halted = True  # the STOP file alone refuses; the durable record waits for the store
        if not already_halted:
            self._emit("halt", reason="kill_switch", source="kill_switch", stop_file=str(self._stop_file))
            self._alert(
                "halt",
                f"{self.agent}: kill switch engaged",
                f"STOP file {self._stop_file} exists; every run of {self.agent} is halted"
                " until `agentfuse resume`",
                dedupe_key="kill_switch",
            )
        self._emit("refused", reason="kill_switch", action=step.action, stop_file=str(self._stop_file))
        raise errors.KillSwitchEngaged(
            f"kill switch engaged: {self._stop_file} exists",
            agent=self.agent,
            run_id=self.run_id,
            figures={"stop_file": str(self._stop_file)},
        )

    def _refuse(self, step: Step, result: GateResult) -> None:
        refusal = result.refusal
        assert refusal is not None
        if refusal.kind == "halted":
            refusal = dataclasses.replace(refusal, message=self._halt_message(refusal.reason, refusal.figures))
        figures = {"action": step.action, **refusal.figures}
        self._emit("refused", reason=refusal.reason, **figures)
        alert: tuple[str, str, str] | None = None  # kind, title, de-duplication key
        if result.halt is not None:
            self._emit("halt", reason=refusal.reason, **{"source": result.halt.source, **figures})
            kind = "cap_hit" if refusal.kind == "budget" else "halt"
            alert = (kind, f"run halted ({refusal.reason})", f"halt:{self.run_id}:{refusal.reason}")
        elif refusal.kind == "budget":
            alert = ("cap_hit", f"{refusal.reason.replace('_', ' ')} reached", f"cap:{refusal.reason}")
        elif refusal.kind == "max_attempts":
            title = f"{step.action!r} refused after repeated failures"
            alert = ("max_attempts", title, f"max_attempts:{self.run_id}:{step.action}")
        if alert is not None:
            kind, title, key = alert
            self._alert(kind, f"{self.agent}: {title}", refusal.message, dedupe_key=key)
        raise REFUSALS[refusal.kind](
            refusal.message,
            reason=refusal.reason,
            agent=self.agent,
            run_id=self.run_id,
            figures=figures,
        )

    def _on_store_unavailable(self, step: Step, exc: errors.StoreUnavailable) -> None:
        self._emit("store_unavailable", reason="store_unavailable", action=step.action, error=str(exc))
        self._alert("store_unavailable", f"{self.agent}: store unavailable", str(exc), dedupe_key="store")
        lost = exc.reason in LOST_BOOKS  # never fails open: the books themselves are gone
        if lost or self.policy.store_unavailable != "allow":
            raise errors.StoreUnavailable(
                str(exc) if lost else f"{exc} (failing closed; policy store_unavailable: allow fails open)",
                reason=exc.reason,
                agent=self.agent,
                run_id=self.run_id,
            ) from None
        step.result = None  # fail open: the call runs unguarded and nothing is settled

    def _estimate(self, step: Step) -> int:
        if step.estimate_usd is not None:
            return usd_micros(step.estimate_usd, "estimate_usd")
        if step.model is not None and step.max_tokens is not None:
            estimate = self._price_table().estimate_micros(step.model, step.input_tokens or 0, step.max_tokens)
            if estimate is not None:
                if estimate > MAX_AMOUNT_MICROS:
                    raise ValueError(
                        f"the estimate for {step.max_tokens} output tokens of {step.model} is above"
                        f" the most one call may reserve (${MAX_AMOUNT_USD}); lower max_tokens"
                    )
                return int(estimate)
        return self._default_estimate

    def _estimate_tokens(self, step: Step) -> int:
        """The tokens a step declares: ``estimate_tokens``, else ``input_tokens + max_tokens``."""
        if step.estimate_tokens is not None:
            return checked_count(step.estimate_tokens, "estimate_tokens", maximum=MAX_CALL_TOKENS)
        input_tokens = checked_count(step.input_tokens or 0, "input_tokens")
        total = input_tokens + checked_count(step.max_tokens, "max_tokens")
        if total > MAX_CALL_TOKENS:
            raise ValueError(
                f"input_tokens + max_tokens ({total}) is above the most tokens one call may reserve"
                f" ({MAX_CALL_TOKENS}); lower max_tokens"
            )
        return total

    def _apply_degrade(self, step: Step, fraction: float) -> None:
        for rung in self._degrade:
            if fraction < rung.at:
                break
            if rung.model is not None:
                step.model = rung.model
            if rung.min_interval_s is not None:
                step.min_interval_s = rung.min_interval_s

    # -- the settlement -------------------------------------------------------------------------

    def _finish(self, step: Step, exc: BaseException | None) -> None:
        if step.result is None or step.reservation_id is None:
            return  # refused (nothing reserved) or failed open
        halt = None
        counts = False
        if exc is None:
            outcome = Outcome.SUCCESS
            counts = True
        elif isinstance(exc, errors.Halted) or not isinstance(exc, Exception):
            outcome = Outcome.NEUTRAL  # a refusal deeper down, a cancellation, an interrupt
        else:
            outcome = Outcome.FAILURE
            counts = self._breaker_counts(type(exc))
            matched = exception_matches(type(exc), self.policy.fail_fast.halt_on)
            if matched is not None:
                halt = HaltRecord(
                    agent=self.agent,
                    run_id=self.run_id,
                    reason="fail_fast",
                    source="fail_fast",
                    created_at=self.clock(),
                    figures={"exception": _dotted(type(exc)), "halt_on": matched, "action": step.action},
                )
        cost = step.cost_micros if step.cost_micros is not None else step.estimate_micros
        tokens = step.tokens
        deferrable = (
            self._deferred is not None
            and outcome is Outcome.SUCCESS
            and step.result.breaker_clean
            and not step.result.probe
            and cost <= step.estimate_micros
            and (tokens is None or tokens <= step.reserved_tokens or not step.result.tokens_capped)
        )
        settlement = Settlement(
            reservation_id=step.reservation_id,
            agent=self.agent,
            run_id=self.run_id,
            action=step.action or "call",
            cost_micros=cost,
            now=self.clock(),
            outcome=outcome,
            breaker_counts=counts and not deferrable,
            breaker=self._breaker_for(step),
            halt=halt,
        )
        if tokens is not None:
            settlement.tokens = tokens
        if deferrable:
            assert self._deferred is not None
            self._deferred.add(settlement)  # its "settled" line is written when the store applies it
            return
        try:
            settled = self.store.settle(settlement)
        except errors.StoreUnavailable as exc_store:
            # The reservation stays counted, so spend is not under-counted; the agent goes on.
            self._emit("settle_failed", reason="store_unavailable", action=step.action, error=str(exc_store))
            return
        self._report_settlement(step, settlement, settled, exc)

    def _report_settlement(
        self, step: Step, settlement: Settlement, settled: SettleResult, exc: BaseException | None
    ) -> None:
        figures: dict[str, Any] = {"action": step.action, "cost_micros": settlement.cost_micros}
        if settlement.tokens is not None:
            figures["tokens"] = settlement.tokens
        if settlement.outcome is Outcome.FAILURE and exc is not None:
            self._emit(
                "failure",
                reason=_dotted(type(exc)),
                run_failures=settled.run_failures,
                action_failures=settled.action_failures,
                **figures,
            )
        else:
            self._emit("settled", outcome=settlement.outcome.value, **figures)
        if settled.breaker_transition is BreakerState.OPEN:
            self._emit(
                "breaker_open", reason="circuit_open", consecutive_failures=settled.consecutive_failures
            )
            self._alert(
                "breaker_open",
                f"{self.agent}: circuit breaker open",
                f"{settled.consecutive_failures} consecutive failures; calls refused for"
                f" {self._breaker.cooldown_s:g}s, then one probe decides",
                dedupe_key="breaker_open",
            )
        elif settled.breaker_transition is BreakerState.CLOSED:
            self._emit("breaker_closed", reason="probe_succeeded")
        if settlement.halt is not None:
            self._emit("halt", reason="fail_fast", **{"source": "fail_fast", **settlement.halt.figures})
            self._alert(
                "halt",
                f"{self.agent}: run halted (fail_fast)",
                f"{settlement.halt.figures.get('exception')} matched fail_fast.halt_on; run"
                f" {self.run_id} is halted until `agentfuse resume`",
                dedupe_key=f"halt:{self.run_id}:fail_fast",
            )
        max_attempts = self.policy.fail_fast.max_attempts
        if max_attempts is not None and settled.action_failures == max_attempts:
            self._alert(
                "max_attempts",
                f"{self.agent}: {step.action!r} failed {max_attempts} times",
                f"fail_fast.max_attempts reached for {step.action!r} in run {self.run_id};"
                " further attempts are refused",
                dedupe_key=f"max_attempts:{self.run_id}:{step.action}",
            )

    def _breaker_for(self, step: Step) -> BreakerSpec:
        if not step.breaker_key:
            return self._breaker
        return dataclasses.replace(self._breaker, key=step.breaker_key)

    def _breaker_counts(self, exc_type: type[BaseException]) -> bool:
        config = self.policy.breaker
        if exception_matches(exc_type, config.ignore) is not None:
            return False
        if config.count:
            return exception_matches(exc_type, config.count) is not None
        return True

    def _deadline_error(self, step: Step) -> errors.DeadlineExceeded:
        timeout = self.policy.budget.timeout_s
        return errors.DeadlineExceeded(
            f"run {self.run_id} reached its deadline (timeout_s {timeout:g}); the call was cancelled",
            agent=self.agent,
            run_id=self.run_id,
            figures={"timeout_s": timeout, "action": step.action},
        )

    # -- cost -----------------------------------------------------------------------------------

    def _price_table(self) -> Any:
        if self._prices is None:
            from agentfuse.runtime.pricing import PriceTable

            self._prices = PriceTable.default().with_overrides(self.policy.pricing)
        return self._prices

    def _cost_of(self, response: Any, step: Step) -> int | None:
        """The call's cost from its usage; None (settle at the estimate) when unknown or untrusted.

        Usage with negative, NaN or non-numeric counts is never priced (a count clamped to 0
        would under-count the call): it settles at the reservation, with a ``usage_invalid``
        event. A cost above ``MAX_AMOUNT_USD`` is counted as that maximum, with the same event.
        """
        from agentfuse.runtime.pricing import extract_usage, usage_problem

        usage = step.usage = extract_usage(response)
        if usage is None:
            self._emit("cost_unknown", reason="no_usage", action=step.action)
            return None
        problem = usage_problem(usage)
        if problem is not None:
            self._emit(
                "usage_invalid", reason="invalid_usage", action=step.action, model=usage.model, problem=problem
            )
            return None
        step.tokens = self._tokens_of(usage, step)
        cost = self._price_table().cost_micros(usage)
        if cost is None:
            self._emit("cost_unknown", reason="unknown_model", action=step.action, model=usage.model)
            return None
        if cost > MAX_AMOUNT_MICROS:
            self._emit(
                "usage_invalid", reason="cost_above_maximum", action=step.action, model=usage.model,
                priced_micros=int(cost), counted_micros=MAX_AMOUNT_MICROS,
            )
            return MAX_AMOUNT_MICROS
        return int(cost)

    def _tokens_of(self, usage: Any, step: Step) -> int | None:
        """The input + output tokens of valid usage; None (charge the reservation) when it names
        none (a library's own cost with no counts); at most ``MAX_CALL_TOKENS``, with an event."""
        tokens: int = usage.input_tokens + usage.output_tokens
        if tokens == 0 and usage.reported_cost_usd is not None:
            return None
        if tokens > MAX_CALL_TOKENS:
            self._emit(
                "usage_invalid", reason="tokens_above_maximum", action=step.action, model=usage.model,
                reported_tokens=tokens, counted_tokens=MAX_CALL_TOKENS,
            )
            return MAX_CALL_TOKENS
        return tokens

    # -- decorators -----------------------------------------------------------------------------

    def _wrap(self, fn: F, settings: Mapping[str, Any]) -> F:
        options = dict(settings)
        options["action"] = options.get("action") or _action_of(fn)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                async with self.step(**options):
                    return await fn(*args, **kwargs)

            return cast(F, guarded_async)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self.step(**options):
                return fn(*args, **kwargs)

        return cast(F, guarded)

    # -- events and alerts ----------------------------------------------------------------------

    def _emit(self, event: str, *, reason: str | None = None, **figures: Any) -> None:
        if self._events_on:
            safe = {(f"figure_{key}" if key in _EVENT_FIELDS else key): value for key, value in figures.items()}
            self.events.emit(event, agent=self.agent, run=self.run_id, reason=reason, **safe)

    def _alert(self, kind: str, title: str, body: str, *, dedupe_key: str | None = None) -> None:
        if self.alerter is not None:
            self.alerter.send(kind, title, body, dedupe_key=f"{self.agent}:{dedupe_key or kind}", run=self.run_id)


def _action_of(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def _dotted(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _open_guard(
    policy: Policy,
    store: Store,
    *,
    run_id: str | None,
    parent_id: str | None,
    cap_micros: int | None,
    clock: Clock,
    events: Any,
    alerter: Any,
    owns_store: bool,
    deferred: DeferredSettlements | None,
    token_cap: int | None = None,
    owns_observers: bool | None = None,
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
    observers: Sequence[CallObserver] = (),
    check_books: bool = False,
) -> Guard:
    guard = Guard(
        policy,
        store,
        run_id or uuid.uuid4().hex,
        clock=clock,
        events=events,
        alerter=alerter,
        owns_store=owns_store,
        owns_observers=owns_observers,
        deferred=deferred,
        claim_ttl_s=claim_ttl_s,
        observers=observers,
        parent_id=parent_id,
    )
    guard._unopened = (parent_id, cap_micros, token_cap)
    guard._check_books = check_books and isinstance(store, BooksStore)
    try:
        guard._open_run()
    except errors.StoreUnavailable as exc:
        if policy.store_unavailable != "allow" or exc.reason in LOST_BOOKS:
            raise
        guard._emit("store_unavailable", reason="store_unavailable", error=str(exc))
    guard._beat(clock())
    return guard


def _observers(policy: Policy) -> tuple[Any, Any]:
    """The policy's event log and alerter (both optional modules, built from the policy)."""
    try:
        from agentfuse.runtime.events import EventLog
    except ImportError:
        return None, None
    events = EventLog.from_policy(policy)
    try:
        from agentfuse.runtime.alerts import Alerter
    except ImportError:
        return events, None
    return events, Alerter.from_policy(policy, events)


def _call_observers() -> tuple[CallObserver, ...]:
    """OpenTelemetry's observer if the application configured a provider, else none."""
    from agentfuse.runtime.otel import configured_observer

    observer = configured_observer()
    return () if observer is None else (observer,)


def enforce(
    policy: Policy | str | os.PathLike[str] | None = None,
    run_id: str | None = None,
    parent: Guard | str | None = None,
    store: Store | str | None = None,
    *,
    clock: Clock | None = None,
    environ: Mapping[str, str] | None = None,
    defer_settlement: bool = True,
    claim_ttl_s: float = DEFAULT_CLAIM_TTL_S,
    sleep: Callable[[float], None] = time.sleep,
    observers: Sequence[CallObserver] | None = None,
) -> Guard:
    """Guard one run of the agent described by ``policy`` (a path or a :class:`Policy`; default:
    the file named by ``AGENTFUSE_POLICY``).

    ``run_id`` resumes that run (its spend, counters and start time); ``parent`` (a Guard or a
    run id) makes this a child run; ``store`` is a URL or a Store (default: ``AGENTFUSE_STORE``,
    else the policy's ``store:``, else ``sqlite:///.agentfuse/state.db``; a relative SQLite path
    in the policy is in the policy file's folder, see :mod:`agentfuse.runtime.config`).
    ``environ`` (default ``os.environ``) fills in ``${VAR}`` and holds the ``AGENTFUSE_*`` variables.
    ``defer_settlement`` lets a plain success settle inside the next gate's transaction (one
    store transaction per call instead of two; see :class:`DeferredSettlements`).
    ``claim_ttl_s`` is how long :meth:`Guard.claim` keeps a message taken. With the policy's
    ``restart_guard`` the process's start is recorded, and a restart loop refuses calls for
    the cooldown (or, with ``action: sleep``, ``sleep`` waits it out once).
    ``observers`` watch every guarded call (:mod:`agentfuse.runtime.observers`); by default,
    OpenTelemetry when the application has configured a tracer or meter provider (a child run
    shares its parent's).
    """
    if not isinstance(policy, Policy):
        path = config.policy_path(policy, environ)
        if path is None:
            raise errors.PolicyError([errors.PolicyIssue(
                "<enforce>", 1, 1, f"no policy: enforce() was given none and {config.POLICY_ENV} is not set",
                f"pass the policy file, enforce('policy.yaml'), or set {config.POLICY_ENV}=/path/to/policy.yaml",
            )])
        policy = load_policy(path, environ=environ)
    owns_store = not isinstance(store, Store) and not (store is None and isinstance(parent, Guard))
    if isinstance(store, Store):
        resolved: Store = store
    elif store is None and isinstance(parent, Guard):
        resolved = parent.store
    else:
        url = config.store_url(store, policy, environ)
        try:
            resolved = open_store(url, durability=policy.store_durability)
        except ValueError as exc:
            raise errors.PolicyError(
                [errors.PolicyIssue(str(policy.source or "<policy>"), 1, 1, f"store: {redact(str(exc))}")]
            ) from None
    parent_id = parent.run_id if isinstance(parent, Guard) else parent
    budget = policy.budget
    events, alerter = _observers(policy)
    if observers is None:
        observers = parent.observers if isinstance(parent, Guard) else _call_observers()
    deferred = None
    if defer_settlement:
        shared = parent._deferred if isinstance(parent, Guard) and parent.store is resolved else None
        deferred = shared or DeferredSettlements()
    guard = _open_guard(
        policy,
        resolved,
        run_id=run_id,
        parent_id=parent_id,
        cap_micros=to_micros(budget.run_usd) if budget.run_usd is not None else None,
        token_cap=budget.run_tokens,
        clock=clock or system_clock,
        events=events,
        alerter=alerter,
        owns_store=owns_store,
        owns_observers=True,
        deferred=deferred,
        claim_ttl_s=claim_ttl_s,
        observers=observers,
        check_books=True,
    )
    guard._check_restarts(sleep)
    if deferred is not None:
        weakref.finalize(guard, _flush_at_exit, resolved, deferred, guard.events if guard._events_on else None)
    return guard


def _settled_lines(events: Any, applied: Iterable[Settlement]) -> list[dict[str, Any]]:
    """The ``settled`` events of deferred settlements the store has now applied."""
    return [
        events.line(
            "settled",
            agent=item.agent,
            run=item.run_id,
            outcome=item.outcome.value,
            action=item.action,
            cost_micros=item.cost_micros,
            **({} if item.tokens is None else {"tokens": item.tokens}),
        )
        for item in applied
    ]


def _flush_at_exit(store: Store, deferred: DeferredSettlements, events: Any) -> None:
    """Settle what a guard left deferred when it is collected or the interpreter exits."""
    pending = deferred.peek()
    applied = []
    for settlement in pending:
        try:
            store.settle(settlement)
        except (errors.StoreUnavailable, OSError):
            break  # still counted at the estimate: over, never under
        applied.append(settlement)
    deferred.discard(tuple(applied))
    if events is not None and applied:
        with contextlib.suppress(Exception):  # the log may be closed already at exit
            events.write(_settled_lines(events, applied))
