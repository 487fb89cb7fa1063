"""The gate and rate-limit decisions as pure functions of (state, request).

A backend gathers a :class:`GateSnapshot` inside its atomic operation, calls
:func:`decide_gate`, and writes the returned effects in the same operation. Nothing here reads
a clock, a file or a store, so every rule is testable with plain values.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from agentfuse.runtime import breaker
from agentfuse.runtime.money import from_micros
from agentfuse.runtime.stores.base import (
    BreakerRecord,
    BreakerState,
    GateRequest,
    GateResult,
    HaltRecord,
    RateLimitRecord,
    RateLimitSpec,
    Refusal,
    RunInfo,
)


@dataclasses.dataclass(slots=True)
class GateSnapshot:
    """The state one gate reads: the run and its ancestors (run first), halts, windows.

    Not frozen, like the other values built on every call here: a frozen dataclass costs about
    twice as much to build. Nothing changes them once built.
    """

    chain: Sequence[RunInfo]
    halts: Sequence[HaltRecord]
    breaker: BreakerRecord
    rate: RateLimitRecord | None
    day_micros: int
    hour_micros: int
    action_failures: int
    daily_declared: tuple[int, str] | None = None
    """The strictest daily cap any policy declared for the agent, and who declared it."""
    hourly_declared: tuple[int, str] | None = None
    tokens: TokenWindows | None = None
    """The token windows; ``None`` only when no token cap can bind this gate (none on a run of the
    chain, none in the request, none declared): the token checks are then skipped."""


@dataclasses.dataclass(slots=True)
class TokenWindows:
    """The agent's tokens (spent + reserved) in its windows, and the strictest declared token caps."""

    day_tokens: int = 0
    hour_tokens: int = 0
    daily_declared: tuple[int, str] | None = None
    """The strictest daily token cap any policy declared for the agent, and who declared it."""
    hourly_declared: tuple[int, str] | None = None

    @property
    def declared(self) -> bool:
        return self.daily_declared is not None or self.hourly_declared is not None


@dataclasses.dataclass(slots=True)
class GateDecision:
    """A gate's result plus the state to write back (``None``: leave unchanged)."""

    result: GateResult
    breaker: BreakerRecord | None = None
    rate: RateLimitRecord | None = None

    @property
    def reserve(self) -> bool:
        return self.result.allowed


@dataclasses.dataclass(slots=True)
class RateAdmission:
    allowed: bool
    record: RateLimitRecord
    tripped: bool = False
    retry_after_s: float = 0.0


def admit_rate(record: RateLimitRecord, spec: RateLimitSpec, now: float) -> RateAdmission:
    """At most ``spec.max`` admissions in the sliding window, then a cooldown once it fills."""
    if record.cooldown_until is not None and now < record.cooldown_until:
        return RateAdmission(False, record, retry_after_s=record.cooldown_until - now)
    recent = tuple(t for t in record.admissions if t > now - spec.window_s)
    if len(recent) >= spec.max:
        return RateAdmission(False, record, retry_after_s=recent[-spec.max] + spec.window_s - now)
    admitted = (recent + (now,))[-spec.max :]
    filled = len(admitted) >= spec.max
    cooldown = now + spec.cooldown_s if filled and spec.cooldown_s > 0 else None
    return RateAdmission(True, RateLimitRecord(admitted, cooldown), tripped=filled)


def effective_time(request: GateRequest, latest_at: float, latest_day: str) -> GateRequest:
    """The request as the books see it: never before the agent's latest reservation.

    ``latest_at``/``latest_day`` are the time and day of the agent's latest reservation. A wall
    clock stepped back would otherwise open a new hourly window (an hour back) or a new daily
    one (a day back); instead the books stand still until the clock catches up. A request at or
    after ``latest_at`` is booked as it is (its day is its policy's calendar day).
    """
    if request.now >= latest_at:
        return request
    return dataclasses.replace(
        request,
        now=max(request.now, latest_at),
        minute=max(request.minute, int(latest_at // 60)),
        day_key=max(request.day_key, latest_day),
    )


def _usd(micros: int) -> str:
    """Micro-dollars as a readable USD figure: ``0.25``, ``1.00``, ``0.012345``."""
    amount = from_micros(micros)
    cents = amount.quantize(Decimal("0.01"))
    return f"{cents:.2f}" if amount == cents else f"{amount.normalize():f}"


def _refuse(
    request: GateRequest,
    kind: str,
    message: str,
    /,
    *,
    reason: str | None = None,
    halt: bool = False,
    **figures: Any,
) -> GateDecision:
    refusal = Refusal(kind=kind, reason=reason or kind, message=message, figures=figures)
    record = None
    if halt:
        record = HaltRecord(
            agent=request.agent,
            run_id=request.run_id,
            reason=refusal.reason,
            source="budget",
            created_at=request.now,
            figures=figures,
        )
    return GateDecision(GateResult(refusal=refusal, halt=record))


def _tokens(count: int) -> str:
    """A token count as text: ``12,000``."""
    return f"{count:,}"


def _refuse_window(
    request: GateRequest, window: str, used: int, cap: int, declared_by: str | None, *, tokens: bool = False
) -> GateDecision:
    """A daily or hourly cap (of money, or of ``tokens``) would be exceeded; say which policy
    declared it if not this one."""
    if tokens:
        estimate = request.estimate_tokens
        message = (
            f"agent {request.agent!r} would exceed its {window} token cap: used+reserved"
            f" {_tokens(used)} + estimate {_tokens(estimate)} > cap {_tokens(cap)} tokens"
            f" (budget.{window}_tokens)"
        )
        figures: dict[str, Any] = {"used_tokens": used, "estimate_tokens": estimate, "cap_tokens": cap}
        what, reason = f"{window} token cap", f"{window}_token_budget"
    else:
        estimate = request.estimate_micros
        message = (
            f"agent {request.agent!r} would exceed its {window} cap: spent+reserved"
            f" ${_usd(used)} + estimate ${_usd(estimate)} > cap ${_usd(cap)}"
        )
        figures = {"used_usd": _usd(used), "estimate_usd": _usd(estimate), "cap_usd": _usd(cap)}
        what, reason = f"{window} cap", f"{window}_budget"
    if declared_by is not None:
        message += (
            f", declared by the policy {declared_by} (the strictest {what} any policy declares"
            " for the agent binds all of its processes); if that policy no longer runs, drop its"
            f" declaration: agentfuse store caps --agent {shlex.quote(request.agent)}"
            f" --drop {shlex.quote(declared_by)}"
        )
        figures["declared_by"] = declared_by
    return _refuse(request, "budget", message, reason=reason, **figures)


def decide_gate(snapshot: GateSnapshot, request: GateRequest) -> GateDecision:
    """Every gate in order; the first that refuses decides. Budget refusals halt the run."""
    run = snapshot.chain[0]
    if snapshot.halts:
        halt = snapshot.halts[0]
        scope = f"agent {halt.agent!r}" if halt.run_id == "" else f"run {halt.run_id} of agent {halt.agent!r}"
        return _refuse(
            request,
            "halted",
            f"{scope} is halted ({halt.reason}, by {halt.source}); clear it with `agentfuse resume`",
            reason=halt.reason,
            **{
                **{key: value for key, value in halt.figures.items() if key not in ("reason", "halt")},
                "halted_run": halt.run_id,
                "source": halt.source,
            },
        )
    admission = breaker.admit(snapshot.breaker, request.breaker, request.now, request.reservation_id)
    if not admission.allowed:
        return _refuse(
            request,
            "circuit_open",
            f"circuit breaker of agent {request.agent!r} is {snapshot.breaker.state.value};"
            f" next probe in {admission.retry_after_s:.1f}s",
            state=snapshot.breaker.state.value,
            consecutive_failures=snapshot.breaker.consecutive_failures,
            retry_after_s=admission.retry_after_s,
        )
    rate: RateAdmission | None = None
    if request.rate_limit is not None:
        rate = admit_rate(snapshot.rate or RateLimitRecord(), request.rate_limit, request.now)
        if not rate.allowed:
            spec = request.rate_limit
            return _refuse(
                request,
                "rate_limited",
                f"action {spec.action!r} is rate-limited ({spec.max} per {spec.window_s:g}s,"
                f" cooldown {spec.cooldown_s:g}s); retry in {rate.retry_after_s:.1f}s",
                action=spec.action,
                max=spec.max,
                window_s=spec.window_s,
                retry_after_s=rate.retry_after_s,
            )
    estimate = request.estimate_micros
    needed = estimate if estimate > 0 else 1  # a call with no estimate still needs room: a spent cap refuses
    usage = 0.0  # the highest fraction of any money or token cap in use after this reservation
    for depth, ancestor in enumerate(snapshot.chain):
        cap = ancestor.cap_micros
        if cap is None:
            continue
        used = ancestor.spent_micros + ancestor.reserved_micros
        if used + needed > cap:
            which = "run_budget" if depth == 0 else "ancestor_budget"
            return _refuse(
                request,
                "budget",
                f"run {ancestor.run_id} would exceed its cap: spent+reserved ${_usd(used)}"
                f" + estimate ${_usd(estimate)} > cap ${_usd(cap)}",
                reason=which,
                halt=True,
                capped_run=ancestor.run_id,
                used_usd=_usd(used),
                estimate_usd=_usd(estimate),
                cap_usd=_usd(cap),
            )
        fraction = (used + estimate) / cap if cap else 1.0
        usage = fraction if fraction > usage else usage
    tokens = snapshot.tokens
    windows: tuple[tuple[str, int, int | None, tuple[int, str] | None, int, int, bool], ...] = (
        ("daily", snapshot.day_micros, request.daily_cap_micros, snapshot.daily_declared, estimate, needed, False),
        ("hourly", snapshot.hour_micros, request.hourly_cap_micros, snapshot.hourly_declared, estimate, needed, False),
    )
    if tokens is not None:  # the token caps: the chain's here, the windows' below with the money's
        estimate_tokens = request.estimate_tokens
        needed_tokens = estimate_tokens if estimate_tokens > 0 else 1
        for ancestor in snapshot.chain:
            cap = ancestor.token_cap
            if cap is None:
                continue
            used = ancestor.spent_tokens + ancestor.reserved_tokens
            if used + needed_tokens > cap:
                return _refuse_run_tokens(request, ancestor, used, cap, ancestor is run)
            fraction = (used + estimate_tokens) / cap if cap else 1.0
            usage = fraction if fraction > usage else usage
        windows += (
            ("daily", tokens.day_tokens, request.daily_token_cap, tokens.daily_declared, estimate_tokens,
             needed_tokens, True),
            ("hourly", tokens.hour_tokens, request.hourly_token_cap, tokens.hourly_declared, estimate_tokens,
             needed_tokens, True),
        )
    for window, used, window_cap, declared, amount, room, in_tokens in windows:
        declared_by = None
        if declared is not None and (window_cap is None or declared[0] < window_cap):
            window_cap, declared_by = declared  # another policy of the agent declares a stricter cap
        if window_cap is None:
            continue
        if used + room > window_cap:
            return _refuse_window(request, window, used, window_cap, declared_by, tokens=in_tokens)
        fraction = (used + amount) / window_cap if window_cap else 1.0
        usage = fraction if fraction > usage else usage
    if request.max_steps is not None and run.steps >= request.max_steps:
        return _refuse(
            request,
            "max_steps",
            f"run {run.run_id} has made {run.steps} steps (max_steps {request.max_steps})",
            halt=True,
            steps=run.steps,
            max_steps=request.max_steps,
        )
    if request.max_retries_total is not None and run.failures > request.max_retries_total:
        return _refuse(
            request,
            "max_retries_total",
            f"run {run.run_id} has failed {run.failures} times"
            f" (max_retries_total {request.max_retries_total})",
            halt=True,
            failures=run.failures,
            max_retries_total=request.max_retries_total,
        )
    remaining = None
    if request.timeout_s is not None:
        elapsed = request.now - run.started_at
        remaining = request.timeout_s - elapsed
        if remaining <= 0:
            return _refuse(
                request,
                "timeout",
                f"run {run.run_id} started {elapsed:.1f}s ago (timeout_s {request.timeout_s:g})",
                halt=True,
                elapsed_s=elapsed,
                timeout_s=request.timeout_s,
            )
    if request.max_attempts is not None and snapshot.action_failures >= request.max_attempts:
        return _refuse(
            request,
            "max_attempts",
            f"action {request.action!r} of run {run.run_id} failed {snapshot.action_failures}"
            f" times (fail_fast.max_attempts {request.max_attempts})",
            action=request.action,
            failures=snapshot.action_failures,
            max_attempts=request.max_attempts,
        )
    after = admission.record
    result = GateResult(
        probe=admission.probe,
        breaker_transition=admission.transition,
        rate_limit_tripped=rate is not None and rate.tripped,
        remaining_s=remaining,
        usage_fraction=usage,
        breaker_clean=after.state is BreakerState.CLOSED and after.consecutive_failures == 0,
    )
    if tokens is None:
        result.tokens_capped = False
    changed = after is not snapshot.breaker and after != snapshot.breaker
    return GateDecision(result, after if changed else None, rate.record if rate is not None else None)


def _refuse_run_tokens(request: GateRequest, run: RunInfo, used: int, cap: int, own: bool) -> GateDecision:
    """The token cap of the run (``own``) or of an ancestor would be exceeded: refuse and halt, as money does."""
    estimate = request.estimate_tokens
    return _refuse(
        request,
        "budget",
        f"run {run.run_id} would exceed its token cap: used+reserved {_tokens(used)}"
        f" + estimate {_tokens(estimate)} > cap {_tokens(cap)} tokens (budget.run_tokens)",
        reason="run_token_budget" if own else "ancestor_token_budget",
        halt=True,
        capped_run=run.run_id,
        used_tokens=used,
        estimate_tokens=estimate,
        cap_tokens=cap,
    )
