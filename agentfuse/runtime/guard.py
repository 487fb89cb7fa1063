"""``enforce()`` and ``Guard``: one run of an agent, guarded.

A :class:`Guard` holds the run (created or resumed in the store, with its parent and caps),
the process's heartbeat and restart-loop check, and the public API: ``guard.step()``,
``@guard``, ``guard.call()``, child runs, claims, halts, instrumentation, ``flush``/``close``.
Each guarded call is a :class:`~agentfuse.runtime.step.Step`, gated and settled by the
:class:`~agentfuse.runtime.step.CallGate` the guard hands it.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import socket
import sys
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar, cast

from agentfuse.runtime import config, errors
from agentfuse.runtime.clock import Clock, system_clock
from agentfuse.runtime.observers import CallObserver, ObservedStep
from agentfuse.runtime.money import MAX_CAP_USD, checked_count, checked_seconds, to_micros, usd_micros
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.policy_loader import load_policy
from agentfuse.runtime.redaction import redact
from agentfuse.runtime.reporting import AlertSink, EventSink, Reporter
from agentfuse.runtime.settlements import DeferredSettlements, apply_at_exit, apply_now
from agentfuse.runtime.step import LOST_BOOKS, CallGate, Step, action_of, guarded
from agentfuse.runtime.stores import open_store
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    BooksStore,
    HaltRecord,
    Heartbeat,
    OperatorStore,
    RestartSpec,
    Store,
)

if TYPE_CHECKING:
    from agentfuse.runtime.pricing import PriceTable

__all__ = ["DEFAULT_CLAIM_TTL_S", "Guard", "ObservedStep", "Step", "enforce"]

F = TypeVar("F", bound=Callable[..., Any])

HEARTBEAT_INTERVAL_S = 5.0
"""A guard writes its heartbeat at most this often (on a gate; no thread)."""
DEFAULT_CLAIM_TTL_S = 7 * 24 * 3600.0
"""How long a claimed message stays taken by default (a week: longer than any retry of it)."""


class Guard:
    """Enforces one policy for one run; build it with :func:`enforce`."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        run_id: str,
        *,
        clock: Clock = system_clock,
        events: EventSink | None = None,
        alerter: AlertSink | None = None,
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
        self._unopened: tuple[str | None, int | None, int | None] | None = None
        """(parent id, cap, token cap) of a run not yet written to the store (it was unreachable)."""
        self._check_books = False
        """Before opening the run, check that the store still holds the agent's books (enforce())."""
        self._report = Reporter(self.agent, run_id, events, alerter)
        self._gate = CallGate(
            policy,
            store,
            clock=clock,
            report=self._report,
            deferred=deferred,
            run_checks=self._run_checks,
            open_run=self._open_run,
        )

    def __repr__(self) -> str:
        return f"Guard(agent={self.agent!r}, run_id={self.run_id!r}, store={self.store!r})"

    @classmethod
    def _opened(
        cls,
        policy: Policy,
        store: Store,
        *,
        run_id: str | None,
        parent_id: str | None,
        cap_micros: int | None,
        token_cap: int | None,
        check_books: bool = False,
        **options: Any,
    ) -> Guard:
        """A guard whose run is created or resumed in the store (retried at the first call if
        the store is down and ``store_unavailable: allow``)."""
        guard = cls(policy, store, run_id or uuid.uuid4().hex, parent_id=parent_id, **options)
        guard._unopened = (parent_id, cap_micros, token_cap)
        guard._check_books = check_books and isinstance(store, BooksStore)
        try:
            guard._open_run()
        except errors.StoreUnavailable as exc:
            if policy.store_unavailable != "allow" or exc.reason in LOST_BOOKS:
                raise
            guard.emit("store_unavailable", reason="store_unavailable", error=str(exc))
        guard._beat(guard.clock())
        return guard

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
            self._gate,
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
        return guarded(fn, functools.partial(self.step, action=action_of(fn)))

    def call(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Call ``fn(*args, **kwargs)`` as one step (action: its qualified name).

        For a coroutine function this returns the guarded coroutine, to be awaited.
        """
        if inspect.iscoroutinefunction(fn):
            return self(fn)(*args, **kwargs)
        with self.step(action=action_of(fn)):
            return fn(*args, **kwargs)

    def child(
        self,
        run_usd: float | str | Decimal | None = None,
        run_id: str | None = None,
        *,
        run_tokens: int | None = None,
    ) -> Guard:
        """A sub-run whose spend and tokens also count against this run and every ancestor."""
        return Guard._opened(
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
            deferred=self._gate.deferred,
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
        self.emit("claimed" if fresh else "claim_skipped", message_id=message_id)
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
        self.emit("halt", reason=reason, source="operator", halted_run=record.run_id)
        return record

    def emit(self, event: str, *, reason: str | None = None, **figures: Any) -> None:
        """Write one event line of this run (a figure named like a fixed field becomes ``figure_<name>``)."""
        self._report.emit(event, reason=reason, **figures)

    # -- what instrumentation reads (agentfuse.runtime.instrument) -----------------------------

    @property
    def default_estimate_micros(self) -> int:
        """What a step that declares no estimate reserves (``budget.estimate_usd``), in micro-dollars."""
        return self._gate.default_estimate_micros

    @property
    def default_tokens(self) -> int:
        """The tokens a step that declares none reserves (``budget.estimate_tokens``, else 0)."""
        return self._gate.default_tokens

    def price_table(self) -> PriceTable:
        """The shipped price table with the policy's ``pricing`` overrides."""
        return self._gate.price_table()

    def cost_of(self, response: Any, step: Step) -> int | None:
        """The cost of a response's usage for ``step`` (micro-dollars), or None when unknown or
        untrusted (then the step settles at its estimate); see :meth:`CallGate.cost_of`."""
        return self._gate.cost_of(response, step)

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
        if self._gate.deferred is not None:
            apply_now(self.store, self._gate.deferred, self._report.log)

    def close(self) -> None:
        """Stop instrumenting; apply deferred settlements; close the store, events and alerts it opened."""
        if "agentfuse.runtime.instrument" in sys.modules:
            self.uninstrument()
        try:
            self.flush()
        except errors.StoreUnavailable as exc:
            self.emit("settle_failed", reason="store_unavailable", error=str(exc))
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

    # -- the run --------------------------------------------------------------------------------

    def _run_checks(self, now: float, step: Step) -> None:
        """Before each gate: the heartbeat when due; a refusal while in a restart-loop cooldown."""
        if now >= self._next_heartbeat:
            self._beat(now)
        if self._restart_until is not None and now < self._restart_until:
            self._refuse_restart_loop(step)

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
        self.emit(
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
                self.emit("store_lost", reason="store_lost", error=str(exc))
                self._report.alert(
                    "store_lost", f"{self.agent}: the store lost its books", str(exc), dedupe_key="store_lost"
                )
            raise
        self._check_books = False
        for warning in warnings:
            self.emit("store_not_durable", reason="store_not_durable", warning=warning)
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
        restart = self.policy.restart_guard
        if restart is None or not self._operator_store:
            return
        now = self.clock()
        spec = RestartSpec(restart.max_starts, restart.window_s, restart.cooldown_s)
        try:
            check = cast(OperatorStore, self.store).record_start(
                self.agent, pid=os.getpid(), host=self._host, now=now, spec=spec
            )
        except errors.StoreUnavailable as exc:
            self.emit("store_unavailable", reason="store_unavailable", error=str(exc))
            return
        if check.cooldown_until is None:
            return
        wait_s = max(0.0, check.cooldown_until - now)
        if check.tripped:
            self.emit(
                "restart_loop",
                reason="restart_loop",
                starts=check.starts_in_window,
                window_s=spec.window_s,
                cooldown_s=spec.cooldown_s,
                action=restart.action,
            )
            then = "this process sleeps" if restart.action == "sleep" else "calls are refused"
            self._report.alert(
                "restart_loop",
                f"{self.agent}: restart loop",
                f"{check.starts_in_window} process starts in {spec.window_s:g}s (restart_guard.max_starts"
                f" {spec.max_starts}); {then} for {wait_s:g}s",
                dedupe_key="restart_loop",
            )
        if restart.action == "sleep":
            sleep(wait_s)
            return
        self._restart_until = check.cooldown_until

    def _refuse_restart_loop(self, step: Step) -> None:
        assert self._restart_until is not None
        figures = {"action": step.action, "cooldown_until": self._restart_until}
        self.emit("refused", reason="restart_loop", **figures)
        raise errors.RestartLoop(
            f"agent {self.agent!r} is in a restart loop (restart_guard); calls are refused for"
            f" {self._restart_until - self.clock():.0f}s more",
            reason="restart_loop",
            agent=self.agent,
            run_id=self.run_id,
            figures=figures,
        )


def _observers(policy: Policy) -> tuple[EventSink, AlertSink]:
    """The policy's event log and alerter."""
    from agentfuse.runtime.alerts import Alerter
    from agentfuse.runtime.events import EventLog

    events = EventLog.from_policy(policy)
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
    store transaction per call instead of two; see :mod:`agentfuse.runtime.settlements`).
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
        shared = parent._gate.deferred if isinstance(parent, Guard) and parent.store is resolved else None
        deferred = shared or DeferredSettlements()
    guard = Guard._opened(
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
    if deferred is not None:  # settled when the guard is collected or the interpreter exits
        weakref.finalize(guard, apply_at_exit, resolved, deferred, events if events.path is not None else None)
    return guard
