"""One guarded call: the gate before it (reserve or refuse) and the settlement after it.

A :class:`Step` is what the agent holds (``with guard.step() as step``); the :class:`CallGate`
its guard hands it does the work: it builds the request from the policy's figures, lets the
store decide in its one atomic operation (:mod:`agentfuse.runtime.decisions`), turns a refusal
into the matching :class:`~agentfuse.Halted` exception, settles the call (at once, or deferred:
:mod:`agentfuse.runtime.settlements`) and reports each decision (:mod:`agentfuse.runtime.reporting`).
Sync and async steps share one ``begin``/``finish`` pair; only the deadline handling differs.
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
import time
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast
from zoneinfo import ZoneInfo

from agentfuse.runtime import errors
from agentfuse.runtime.clock import Clock
from agentfuse.runtime.money import (
    MAX_AMOUNT_MICROS,
    MAX_AMOUNT_USD,
    MAX_CALL_TOKENS,
    checked_count,
    to_micros,
    usd_micros,
)
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.reporting import Reporter
from agentfuse.runtime.settlements import DeferredSettlements, may_defer, settled_lines
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    BreakerSpec,
    BreakerState,
    GateRequest,
    GateResult,
    HaltRecord,
    Outcome,
    RateLimitSpec,
    Settlement,
    SettleResult,
    Store,
)

if TYPE_CHECKING:
    from agentfuse.runtime.guard import Guard
    from agentfuse.runtime.pricing import PriceTable, Usage

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

LOST_BOOKS = ("store_lost", "store_damaged")
"""``StoreUnavailable`` reasons that refuse even under ``store_unavailable: allow``."""


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


def new_reservation_id() -> str:
    """A reservation id: 16 hex digits of time (the ledger's key grows at its end, where inserts
    are cheap), then 8 random ones separating ids made in the same nanosecond.

    The random bits need not be secret: ``random`` (reseeded in a forked child) rather than
    ``secrets``, which asks the OS for entropy on every call.
    """
    return f"{time.time_ns() << 32 | random.getrandbits(32):024x}"


def action_of(fn: Callable[..., Any]) -> str:
    """The action name of a guarded function: its qualified name."""
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


def guarded(fn: F, new_step: Callable[[], Step]) -> F:
    """``fn`` wrapped so that every call of it is one fresh step (sync or async alike)."""
    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def guarded_async(*args: Any, **kwargs: Any) -> Any:
            async with new_step():
                return await fn(*args, **kwargs)

        return cast(F, guarded_async)

    @functools.wraps(fn)
    def guarded_sync(*args: Any, **kwargs: Any) -> Any:
        with new_step():
            return fn(*args, **kwargs)

    return cast(F, guarded_sync)


def _dotted(cls: type) -> str:
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


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

    def __init__(
        self,
        guard: Guard,
        gate: CallGate,
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
        self._gate = gate
        self.estimate_usd = estimate_usd
        self.action = action
        self.model = model
        self.input_tokens = input_tokens
        self.max_tokens = max_tokens
        self.breaker_key = breaker_key
        self.estimate_tokens = estimate_tokens
        """The tokens the caller said to reserve, if any."""
        self.min_interval_s: float | None = None
        self.reservation_id: str | None = None
        self.estimate_micros = 0
        self.reserved_tokens = 0
        """The tokens reserved at the gate."""
        self.cost_micros: int | None = None
        self.tokens: int | None = None
        """The tokens (input + output) the call used, once recorded; ``None``: charge the reservation."""
        self.usage: Usage | None = None
        """The token usage :meth:`record` read from the response, if any."""
        self.result: GateResult | None = None
        self.deadline: float | None = None
        """The clock time of the run's deadline (``timeout_s``), set by the gate; None without one."""
        self._deadline_hit = False
        self._timer: asyncio.TimerHandle | None = None

    # -- the call's figures ---------------------------------------------------------------------

    @property
    def remaining_s(self) -> float | None:
        """Seconds left before the run's ``timeout_s`` (never negative), or None without one."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self._gate.clock())

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
        self.cost_micros = self._gate.cost_of(response, self)
        return self.cost_micros

    def settings(self) -> dict[str, Any]:
        """The arguments this step was made with: ``guard.step(**step.settings())`` makes another."""
        return {
            "estimate_usd": self.estimate_usd,
            "action": self.action,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "max_tokens": self.max_tokens,
            "breaker_key": self.breaker_key,
            "estimate_tokens": self.estimate_tokens,
        }

    # -- sync and async context manager ---------------------------------------------------------

    def __enter__(self) -> Step:
        self._gate.begin(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gate.finish(self, exc)

    async def __aenter__(self) -> Step:
        self._gate.begin(self)
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
            deadline = self._gate.deadline_error(self)
            self._gate.finish(self, deadline)
            raise deadline from exc
        self._gate.finish(self, exc)

    def _cancel_at_deadline(self, task: asyncio.Task[Any]) -> None:
        self._deadline_hit = True
        task.cancel()

    # -- decorator ------------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        """``@guard.step(...)``: every call of ``fn`` is one fresh step with these settings."""
        settings = self.settings()
        settings["action"] = settings["action"] or action_of(fn)
        return guarded(fn, functools.partial(self.guard.step, **settings))


class CallGate:
    """The gate and the settlement of one guard's steps.

    Built once per guard from its policy, store and clock. It asks the guard for two things
    only, handed in as callables: ``run_checks(now, step)`` before each gate (the process's
    heartbeat, the restart-loop cooldown) and ``open_run()`` inside it (writes the run to the
    store if that did not happen yet; a no-op otherwise).
    """

    def __init__(
        self,
        policy: Policy,
        store: Store,
        *,
        clock: Clock,
        report: Reporter,
        deferred: DeferredSettlements | None,
        run_checks: Callable[[float, Step], None],
        open_run: Callable[[], None],
    ) -> None:
        self.policy = policy
        self.store = store
        self.clock = clock
        self.deferred = deferred
        """Shared with the guard's family; None settles every call in its own transaction."""
        self._report = report
        self._run_checks = run_checks
        self._open_run = open_run
        self._run_open = False
        """Whether ``open_run()`` has returned once (a run, once in the store, stays there)."""
        self._agent = report.agent
        self._run_id = report.run_id
        self._zone = ZoneInfo(policy.timezone)
        self._day: tuple[float, float, str] = (0.0, 0.0, "")
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
        self.default_estimate_micros = to_micros(budget.estimate_usd) if budget.estimate_usd is not None else 0
        """What a step that declares no estimate reserves (``budget.estimate_usd``)."""
        self.default_tokens = budget.estimate_tokens or 0
        """Tokens a step that declares none reserves (``budget.estimate_tokens``)."""
        self._rate_limits = {
            limit.action: RateLimitSpec(limit.action, limit.max, limit.window_s, limit.cooldown_s)
            for limit in policy.rate_limits
        }
        self._degrade = sorted(policy.degrade, key=lambda rung: rung.at)
        self._prices: PriceTable | None = None

    # -- the gate -------------------------------------------------------------------------------

    def begin(self, step: Step) -> None:
        """Reserve the step's estimate in the store, or raise the refusal."""
        if step.reservation_id is not None:
            raise RuntimeError("a step can be entered once; call guard.step(...) for each call")
        now = self.clock()
        step.action = step.action or "call"
        self._run_checks(now, step)
        if self._stop_file is not None and os.path.exists(self._stop_file):
            self._kill_switch_engaged(now, step)
        step.estimate_micros = self._estimate(step)
        tokens = step.reserved_tokens = (
            self.default_tokens
            if step.estimate_tokens is None and step.max_tokens is None
            else self._estimate_tokens(step)
        )
        step.reservation_id = new_reservation_id()
        budget = self.policy.budget
        request = GateRequest(
            reservation_id=step.reservation_id,
            agent=self._agent,
            run_id=self._run_id,
            action=step.action,
            estimate_micros=step.estimate_micros,
            now=now,
            day_key=self._day_key(now),
            minute=int(now // 60),
            breaker=self._breaker if not step.breaker_key else self._keyed_breaker(step.breaker_key),
            rate_limit=self._rate_limits.get(step.action),
            daily_cap_micros=self._daily_cap,
            hourly_cap_micros=self._hourly_cap,
            max_steps=budget.max_steps,
            max_retries_total=budget.max_retries_total,
            timeout_s=budget.timeout_s,
            max_attempts=self.policy.fail_fast.max_attempts,
            settle_first=self.deferred.peek() if self.deferred is not None else (),
            estimate_tokens=tokens,
            daily_token_cap=budget.daily_tokens,
            hourly_token_cap=budget.hourly_tokens,
        )
        try:
            if not self._run_open:
                self._open_run()
                self._run_open = True
            result = self.store.gate(request)
        except errors.StoreUnavailable as exc:
            self._on_store_unavailable(step, exc)
            return
        if self.deferred is not None:
            self.deferred.discard(request.settle_first)
        step.result = result
        log = self._report.log
        if log is not None:  # one write for the settlements this gate applied and its own decision
            lines = settled_lines(log, request.settle_first)
            if result.refusal is None:
                figures: dict[str, Any] = {"action": step.action, "estimate_micros": step.estimate_micros}
                if tokens:
                    figures["estimate_tokens"] = tokens
                if result.probe:
                    figures["probe"] = True
                lines.append(log.line("allowed", agent=self._agent, run=self._run_id, **figures))
            log.write(lines)
        if result.refusal is not None:
            self._refuse(step, result)
        if result.remaining_s is not None:
            step.deadline = now + result.remaining_s
        if self._degrade:
            self._apply_degrade(step, result.usage_fraction)
        if result.breaker_transition is BreakerState.HALF_OPEN:
            self._report.emit("breaker_half_open", action=step.action)
        if result.rate_limit_tripped:
            self._report_rate_limit(step, request.rate_limit)

    def _report_rate_limit(self, step: Step, spec: RateLimitSpec | None) -> None:
        self._report.emit("rate_limit_tripped", reason="rate_limited", action=step.action)
        if spec is None:
            return
        then = (
            f" refused for the next {spec.cooldown_s:g}s"
            if spec.cooldown_s > 0
            else " further calls wait for the window to slide"
        )
        self._report.alert(
            "rate_limit",
            f"{self._agent}: rate limit of {spec.action!r} reached",
            f"{spec.max} calls of {spec.action!r} in {spec.window_s:g}s;{then}",
            dedupe_key=f"rate_limit:{spec.action}",
        )

    def _day_key(self, now: float) -> str:
        """The calendar day of ``now`` in the policy's time zone (kept until the day ends)."""
        start, end, key = self._day
        if start <= now < end:
            return key
        local = datetime.datetime.fromtimestamp(now, self._zone)
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        next_midnight = (midnight + datetime.timedelta(days=1)).replace(tzinfo=None)
        end = next_midnight.replace(tzinfo=self._zone).timestamp()
        self._day = (midnight.timestamp(), end, local.date().isoformat())
        return self._day[2]

    def _kill_switch_engaged(self, now: float, step: Step) -> None:
        """The STOP file exists: halt the agent durably (once) and refuse the call."""
        try:
            already_halted = any(h.run_id == AGENT_WIDE for h in self.store.halts(self._agent))
            if not already_halted:
                self.store.halt(
                    HaltRecord(
                        agent=self._agent,
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
            self._report.emit("halt", reason="kill_switch", source="kill_switch", stop_file=str(self._stop_file))
            self._report.alert(
                "halt",
                f"{self._agent}: kill switch engaged",
                f"STOP file {self._stop_file} exists; every run of {self._agent} is halted"
                " until `agentfuse resume`",
                dedupe_key="kill_switch",
            )
        self._report.emit("refused", reason="kill_switch", action=step.action, stop_file=str(self._stop_file))
        raise errors.KillSwitchEngaged(
            f"kill switch engaged: {self._stop_file} exists",
            agent=self._agent,
            run_id=self._run_id,
            figures={"stop_file": str(self._stop_file)},
        )

    def _halt_message(self, refusal_reason: str, figures: Mapping[str, Any]) -> str:
        """How a durable halt reads to the agent, with the exact command that clears it."""
        source = figures.get("source", "operator")
        halted_run = figures.get("halted_run", AGENT_WIDE)
        resume = f"agentfuse resume --agent {shlex.quote(self._agent)}"
        if halted_run == AGENT_WIDE:
            return f"agent {self._agent!r} is halted ({refusal_reason}, by {source}); clear it with `{resume}`"
        return (
            f"run {halted_run} of agent {self._agent!r} is halted ({refusal_reason}, by {source});"
            f" clear it with `{resume} --run {shlex.quote(str(halted_run))}`"
        )

    def _refuse(self, step: Step, result: GateResult) -> None:
        refusal = result.refusal
        assert refusal is not None
        if refusal.kind == "halted":
            refusal = dataclasses.replace(refusal, message=self._halt_message(refusal.reason, refusal.figures))
        figures = {"action": step.action, **refusal.figures}
        self._report.emit("refused", reason=refusal.reason, **figures)
        alert: tuple[str, str, str] | None = None  # kind, title, de-duplication key
        if result.halt is not None:
            self._report.emit("halt", reason=refusal.reason, **{"source": result.halt.source, **figures})
            kind = "cap_hit" if refusal.kind == "budget" else "halt"
            alert = (kind, f"run halted ({refusal.reason})", f"halt:{self._run_id}:{refusal.reason}")
        elif refusal.kind == "budget":
            alert = ("cap_hit", f"{refusal.reason.replace('_', ' ')} reached", f"cap:{refusal.reason}")
        elif refusal.kind == "max_attempts":
            title = f"{step.action!r} refused after repeated failures"
            alert = ("max_attempts", title, f"max_attempts:{self._run_id}:{step.action}")
        if alert is not None:
            kind, title, key = alert
            self._report.alert(kind, f"{self._agent}: {title}", refusal.message, dedupe_key=key)
        raise REFUSALS[refusal.kind](
            refusal.message,
            reason=refusal.reason,
            agent=self._agent,
            run_id=self._run_id,
            figures=figures,
        )

    def _on_store_unavailable(self, step: Step, exc: errors.StoreUnavailable) -> None:
        self._report.emit("store_unavailable", reason="store_unavailable", action=step.action, error=str(exc))
        self._report.alert("store_unavailable", f"{self._agent}: store unavailable", str(exc), dedupe_key="store")
        lost = exc.reason in LOST_BOOKS  # never fails open: the books themselves are gone
        if lost or self.policy.store_unavailable != "allow":
            raise errors.StoreUnavailable(
                str(exc) if lost else f"{exc} (failing closed; policy store_unavailable: allow fails open)",
                reason=exc.reason,
                agent=self._agent,
                run_id=self._run_id,
            ) from None
        step.result = None  # fail open: the call runs unguarded and nothing is settled

    def _estimate(self, step: Step) -> int:
        if step.estimate_usd is not None:
            return usd_micros(step.estimate_usd, "estimate_usd")
        if step.model is not None and step.max_tokens is not None:
            estimate = self.price_table().estimate_micros(step.model, step.input_tokens or 0, step.max_tokens)
            if estimate is not None:
                if estimate > MAX_AMOUNT_MICROS:
                    raise ValueError(
                        f"the estimate for {step.max_tokens} output tokens of {step.model} is above"
                        f" the most one call may reserve (${MAX_AMOUNT_USD}); lower max_tokens"
                    )
                return int(estimate)
        return self.default_estimate_micros

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

    def deadline_error(self, step: Step) -> errors.DeadlineExceeded:
        """The error an async step raises when the run's deadline cancelled its call."""
        timeout = self.policy.budget.timeout_s
        return errors.DeadlineExceeded(
            f"run {self._run_id} reached its deadline (timeout_s {timeout:g}); the call was cancelled",
            agent=self._agent,
            run_id=self._run_id,
            figures={"timeout_s": timeout, "action": step.action},
        )

    # -- the settlement -------------------------------------------------------------------------

    def finish(self, step: Step, exc: BaseException | None) -> None:
        """Settle the step (``exc``: what its block raised): at once, or deferred to the next gate."""
        result = step.result
        if result is None or step.reservation_id is None:
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
            halt = self._fail_fast_halt(step, exc)
        cost = step.cost_micros if step.cost_micros is not None else step.estimate_micros
        deferred = self.deferred is not None and may_defer(
            result, outcome, cost, step.estimate_micros, step.tokens, step.reserved_tokens
        )
        settlement = Settlement(
            reservation_id=step.reservation_id,
            agent=self._agent,
            run_id=self._run_id,
            action=step.action or "call",
            cost_micros=cost,
            now=self.clock(),
            outcome=outcome,
            breaker_counts=counts and not deferred,
            breaker=self._breaker if not step.breaker_key else self._keyed_breaker(step.breaker_key),
            halt=halt,
            tokens=step.tokens,
        )
        if deferred:
            assert self.deferred is not None
            self.deferred.add(settlement)  # its "settled" line is written when the store applies it
            return
        try:
            settled = self.store.settle(settlement)
        except errors.StoreUnavailable as exc_store:
            # The reservation stays counted, so spend is not under-counted; the agent goes on.
            self._report.emit("settle_failed", reason="store_unavailable", action=step.action, error=str(exc_store))
            return
        self._report_settlement(step, settlement, settled, exc)

    def _fail_fast_halt(self, step: Step, exc: BaseException) -> HaltRecord | None:
        """The durable halt for an error named in ``fail_fast.halt_on``, if it is one."""
        matched = exception_matches(type(exc), self.policy.fail_fast.halt_on)
        if matched is None:
            return None
        return HaltRecord(
            agent=self._agent,
            run_id=self._run_id,
            reason="fail_fast",
            source="fail_fast",
            created_at=self.clock(),
            figures={"exception": _dotted(type(exc)), "halt_on": matched, "action": step.action},
        )

    def _report_settlement(
        self, step: Step, settlement: Settlement, settled: SettleResult, exc: BaseException | None
    ) -> None:
        report = self._report
        figures: dict[str, Any] = {"action": step.action, "cost_micros": settlement.cost_micros}
        if settlement.tokens is not None:
            figures["tokens"] = settlement.tokens
        if settlement.outcome is Outcome.FAILURE and exc is not None:
            report.emit(
                "failure",
                reason=_dotted(type(exc)),
                run_failures=settled.run_failures,
                action_failures=settled.action_failures,
                **figures,
            )
        else:
            report.emit("settled", outcome=settlement.outcome.value, **figures)
        if settled.breaker_transition is BreakerState.OPEN:
            report.emit("breaker_open", reason="circuit_open", consecutive_failures=settled.consecutive_failures)
            report.alert(
                "breaker_open",
                f"{self._agent}: circuit breaker open",
                f"{settled.consecutive_failures} consecutive failures; calls refused for"
                f" {self._breaker.cooldown_s:g}s, then one probe decides",
                dedupe_key="breaker_open",
            )
        elif settled.breaker_transition is BreakerState.CLOSED:
            report.emit("breaker_closed", reason="probe_succeeded")
        if settlement.halt is not None:
            report.emit("halt", reason="fail_fast", **{"source": "fail_fast", **settlement.halt.figures})
            report.alert(
                "halt",
                f"{self._agent}: run halted (fail_fast)",
                f"{settlement.halt.figures.get('exception')} matched fail_fast.halt_on; run"
                f" {self._run_id} is halted until `agentfuse resume`",
                dedupe_key=f"halt:{self._run_id}:fail_fast",
            )
        max_attempts = self.policy.fail_fast.max_attempts
        if max_attempts is not None and settled.action_failures == max_attempts:
            report.alert(
                "max_attempts",
                f"{self._agent}: {step.action!r} failed {max_attempts} times",
                f"fail_fast.max_attempts reached for {step.action!r} in run {self._run_id};"
                " further attempts are refused",
                dedupe_key=f"max_attempts:{self._run_id}:{step.action}",
            )

    def _keyed_breaker(self, key: str) -> BreakerSpec:
        """The policy's breaker under its own key (``guard.step(breaker_key=...)``)."""
        return dataclasses.replace(self._breaker, key=key)

    def _breaker_counts(self, exc_type: type[BaseException]) -> bool:
        config = self.policy.breaker
        if exception_matches(exc_type, config.ignore) is not None:
            return False
        if config.count:
            return exception_matches(exc_type, config.count) is not None
        return True

    # -- cost -----------------------------------------------------------------------------------

    def price_table(self) -> PriceTable:
        """The shipped price table with the policy's ``pricing`` overrides (loaded on first use)."""
        if self._prices is None:
            from agentfuse.runtime.pricing import PriceTable

            self._prices = PriceTable.default().with_overrides(self.policy.pricing)
        return self._prices

    def cost_of(self, response: Any, step: Step) -> int | None:
        """The call's cost from its usage; None (settle at the estimate) when unknown or untrusted.

        Sets ``step.usage`` (and ``step.tokens`` for valid usage). Usage with negative, NaN or
        non-numeric counts is never priced (a count clamped to 0 would under-count the call):
        it settles at the reservation, with a ``usage_invalid`` event. A cost above
        ``MAX_AMOUNT_USD`` is counted as that maximum, with the same event.
        """
        from agentfuse.runtime.pricing import extract_usage, usage_problem

        usage = step.usage = extract_usage(response)
        if usage is None:
            self._report.emit("cost_unknown", reason="no_usage", action=step.action)
            return None
        problem = usage_problem(usage)
        if problem is not None:
            self._report.emit(
                "usage_invalid", reason="invalid_usage", action=step.action, model=usage.model, problem=problem
            )
            return None
        step.tokens = self._tokens_of(usage, step)
        cost = self.price_table().cost_micros(usage)
        if cost is None:
            self._report.emit("cost_unknown", reason="unknown_model", action=step.action, model=usage.model)
            return None
        if cost > MAX_AMOUNT_MICROS:
            self._report.emit(
                "usage_invalid", reason="cost_above_maximum", action=step.action, model=usage.model,
                priced_micros=int(cost), counted_micros=MAX_AMOUNT_MICROS,
            )
            return MAX_AMOUNT_MICROS
        return int(cost)

    def _tokens_of(self, usage: Usage, step: Step) -> int | None:
        """The input + output tokens of valid usage; None (charge the reservation) when it names
        none (a library's own cost with no counts); at most ``MAX_CALL_TOKENS``, with an event."""
        tokens: int = usage.input_tokens + usage.output_tokens
        if tokens == 0 and usage.reported_cost_usd is not None:
            return None
        if tokens > MAX_CALL_TOKENS:
            self._report.emit(
                "usage_invalid", reason="tokens_above_maximum", action=step.action, model=usage.model,
                reported_tokens=tokens, counted_tokens=MAX_CALL_TOKENS,
            )
            return MAX_CALL_TOKENS
        return tokens
