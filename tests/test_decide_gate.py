"""``decide_gate`` as a table: plain inputs -> the decision, its reason and every figure it returns.

The rows follow the gate order: halts (operator, kill switch, budget), the breaker, rate limits,
the money caps of the run and its ancestors, their token caps, the daily and hourly money
windows, the daily and hourly token windows, steps, retries, the wall clock, attempts. Each cap
has its boundary rows (exactly at the cap: allowed; one micro-dollar or one token over: refused).
The ordering rows trip two rules at once, for every pair, and expect the earlier one.

Inputs are plain values: ``run`` and ``parents`` fill :class:`RunInfo`, ``halts`` fill
:class:`HaltRecord`, ``breaker``/``rate``/``tokens`` the snapshot's records, ``breaker_spec``
and ``rate_limit`` the request's specs; any other key is a :class:`GateSnapshot` or
:class:`GateRequest` field.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from typing import Any

import pytest

from agentfuse.runtime.decisions import GateDecision, GateSnapshot, TokenWindows, decide_gate
from agentfuse.runtime.stores.base import (
    BreakerRecord,
    BreakerSpec,
    BreakerState,
    GateRequest,
    GateResult,
    HaltRecord,
    RateLimitRecord,
    RateLimitSpec,
    RunInfo,
)

NOW = 1_800_000_000.0
DAY = "2027-01-15"
CAP = 1_000_000  # one dollar, in micro-dollars
EST = 10_000  # one cent: the default estimate of a call
LOGIN = {"action": "login", "max": 2, "window_s": 900.0, "cooldown_s": 1800.0}
LOGIN_NO_COOLDOWN = {**LOGIN, "cooldown_s": 0.0}
DECLARER = "/srv/other agent/policy.yaml"
RESUME = "clear it with `agentfuse resume`"
DROP = (
    f", declared by the policy {DECLARER} (the strictest {{what}} any policy declares for the agent binds"
    " all of its processes); if that policy no longer runs, drop its declaration:"
    " agentfuse store caps --agent a --drop '/srv/other agent/policy.yaml'"
)

RUN: dict[str, Any] = {"run_id": "r", "agent": "a", "parent_id": None, "cap_micros": None, "started_at": NOW - 60}
HALT: dict[str, Any] = {
    "agent": "a", "run_id": "", "reason": "maintenance", "source": "operator", "created_at": NOW - 5,
}
REQUEST: dict[str, Any] = {
    "reservation_id": "g1",
    "agent": "a",
    "run_id": "r",
    "action": "call",
    "estimate_micros": EST,
    "now": NOW,
    "day_key": DAY,
    "minute": int(NOW // 60),
}
SNAPSHOT_SCALARS = {"day_micros": 0, "hour_micros": 0, "action_failures": 0, "daily_declared": None,
                    "hourly_declared": None}


def build(inputs: dict[str, Any]) -> tuple[GateSnapshot, GateRequest]:
    """The snapshot and request that the plain ``inputs`` of a row describe."""
    given = dict(inputs)
    chain = [RunInfo(**{**RUN, **given.pop("run", {})})]
    chain += [RunInfo(**{**RUN, "run_id": f"p{n}", **parent}) for n, parent in enumerate(given.pop("parents", []), 1)]
    breaker = dict(given.pop("breaker", {}))
    breaker["state"] = BreakerState(breaker.get("state", "closed"))
    rate = given.pop("rate", None)
    tokens = given.pop("tokens", None)
    snapshot = GateSnapshot(
        chain=chain,
        halts=[HaltRecord(**{**HALT, **halt}) for halt in given.pop("halts", [])],
        breaker=BreakerRecord(**breaker),
        rate=None if rate is None else RateLimitRecord(**rate),
        tokens=None if tokens is None else TokenWindows(**tokens),
        **{name: given.pop(name, default) for name, default in SNAPSHOT_SCALARS.items()},
    )
    spec = given.pop("rate_limit", None)
    breaker_spec = BreakerSpec(**given.pop("breaker_spec", {}))
    request = GateRequest(
        **{**REQUEST, **given}, breaker=breaker_spec, rate_limit=None if spec is None else RateLimitSpec(**spec)
    )
    return snapshot, request


def plain(decision: GateDecision) -> dict[str, Any]:
    """The decision as plain values: what a row expects."""
    result = decision.result
    written = {
        "breaker": None if decision.breaker is None else _record(decision.breaker),
        "rate": None if decision.rate is None else dataclasses.asdict(decision.rate),
    }
    if result.refusal is not None:
        refusal = result.refusal
        return {"allowed": False, "kind": refusal.kind, "reason": refusal.reason, "halt": result.halt is not None,
                "figures": dict(refusal.figures), **written}
    transition = result.breaker_transition
    return {
        "allowed": True,
        "probe": result.probe,
        "breaker_transition": None if transition is None else transition.value,
        "rate_limit_tripped": result.rate_limit_tripped,
        "remaining_s": result.remaining_s,
        "usage_fraction": result.usage_fraction,
        "breaker_clean": result.breaker_clean,
        "tokens_capped": result.tokens_capped,
        **written,
    }


def _record(record: BreakerRecord) -> dict[str, Any]:
    return {**dataclasses.asdict(record), "state": record.state.value}


def ok(**expected: Any) -> dict[str, Any]:
    """An allowed call; unnamed figures are those of a call that no rule constrains."""
    return {
        "allowed": True, "probe": False, "breaker_transition": None, "rate_limit_tripped": False,
        "remaining_s": None, "usage_fraction": 0.0, "breaker_clean": True, "tokens_capped": False,
        "breaker": None, "rate": None, **expected,
    }


def refused(kind: str, reason: str | None = None, *, halt: bool = False, says: str | None = None,
            **figures: Any) -> dict[str, Any]:
    """A refusal of ``kind`` for ``reason`` (default: the kind) with exactly ``figures``; ``halt``:
    it halts the run. ``says``: its message, where the row pins it."""
    expected = {"allowed": False, "kind": kind, "reason": reason or kind, "halt": halt, "figures": figures,
                "breaker": None, "rate": None}
    return expected if says is None else {**expected, "says": says}


BUDGET_FIGURES: dict[str, Any] = {"estimate_usd": "0.01", "cap_usd": "1.00"}
TOKEN_FIGURES: dict[str, Any] = {"estimate_tokens": 100, "cap_tokens": 1000}
Row = tuple[str, dict[str, Any], dict[str, Any]]

ROWS: list[Row] = [
    ("nothing-constrains-the-call", {}, ok()),
    # -- halts: the kill switch, an operator, a budget; the first listed decides ----------------------
    (
        "agent-halted-by-an-operator",
        {"halts": [{}]},
        refused("halted", "maintenance", halted_run="", source="operator",
                says=f"agent 'a' is halted (maintenance, by operator); {RESUME}"),
    ),
    (
        "kill-switch-halt",
        {"halts": [{"reason": "kill_switch", "source": "kill_switch", "figures": {"stop_file": "/srv/STOP"}}]},
        refused("halted", "kill_switch", stop_file="/srv/STOP", halted_run="", source="kill_switch"),
    ),
    (
        "run-halted-by-its-budget-keeps-the-figures",
        {"halts": [{"run_id": "r", "reason": "run_budget", "source": "budget",
                    "figures": {"capped_run": "r", "used_usd": "1.00", **BUDGET_FIGURES}}]},
        refused("halted", "run_budget", capped_run="r", used_usd="1.00", **BUDGET_FIGURES, halted_run="r",
                source="budget", says=f"run r of agent 'a' is halted (run_budget, by budget); {RESUME}"),
    ),
    (
        "halt-figures-named-reason-or-halt-are-not-repeated",
        {"halts": [{"figures": {"reason": "x", "halt": True, "note": "disk full"}}]},
        refused("halted", "maintenance", note="disk full", halted_run="", source="operator"),
    ),
    (
        "the-first-of-two-halts-decides",
        {"halts": [{"run_id": "r", "reason": "fail_fast", "source": "fail_fast"}, {}]},
        refused("halted", "fail_fast", halted_run="r", source="fail_fast"),
    ),
    # -- the breaker ------------------------------------------------------------------------------
    (
        "breaker-open-in-its-cooldown",
        {"breaker": {"state": "open", "consecutive_failures": 5, "opened_at": NOW - 10},
         "breaker_spec": {"cooldown_s": 60}},
        refused("circuit_open", state="open", consecutive_failures=5, retry_after_s=50.0,
                says="circuit breaker of agent 'a' is open; next probe in 50.0s"),
    ),
    (
        "breaker-open-one-second-before-its-cooldown-ends",
        {"breaker": {"state": "open", "consecutive_failures": 5, "opened_at": NOW - 59},
         "breaker_spec": {"cooldown_s": 60}},
        refused("circuit_open", state="open", consecutive_failures=5, retry_after_s=1.0),
    ),
    (
        "breaker-open-with-no-opening-time-waits-a-whole-cooldown",
        {"breaker": {"state": "open", "consecutive_failures": 5}, "breaker_spec": {"cooldown_s": 60}},
        refused("circuit_open", state="open", consecutive_failures=5, retry_after_s=60.0),
    ),
    (
        "breaker-open-at-the-end-of-its-cooldown-hands-out-the-probe",
        {"breaker": {"state": "open", "consecutive_failures": 5, "opened_at": NOW - 60},
         "breaker_spec": {"cooldown_s": 60, "probe_lease_s": 30}},
        ok(probe=True, breaker_transition="half_open", breaker_clean=False,
           breaker={"state": "half_open", "consecutive_failures": 5, "opened_at": NOW - 60, "probe_id": "g1",
                    "probe_expires_at": NOW + 30}),
    ),
    (
        "breaker-half-open-while-another-probe-holds-the-lease",
        {"breaker": {"state": "half_open", "consecutive_failures": 5, "opened_at": NOW - 90, "probe_id": "g0",
                     "probe_expires_at": NOW + 30}},
        refused("circuit_open", state="half_open", consecutive_failures=5, retry_after_s=30.0,
                says="circuit breaker of agent 'a' is half_open; next probe in 30.0s"),
    ),
    (
        "breaker-half-open-whose-probe-lease-ends-now-hands-out-a-new-probe",
        {"breaker": {"state": "half_open", "consecutive_failures": 5, "opened_at": NOW - 90, "probe_id": "g0",
                     "probe_expires_at": NOW}, "breaker_spec": {"probe_lease_s": 30}},
        ok(probe=True, breaker_clean=False,
           breaker={"state": "half_open", "consecutive_failures": 5, "opened_at": NOW - 90, "probe_id": "g1",
                    "probe_expires_at": NOW + 30}),
    ),
    (
        "breaker-closed-with-failures-lets-the-call-through-but-is-not-clean",
        {"breaker": {"consecutive_failures": 2}},
        ok(breaker_clean=False),
    ),
    # -- rate limits --------------------------------------------------------------------------------
    (
        "rate-limit-first-admission",
        {"action": "login", "rate_limit": LOGIN},
        ok(rate={"admissions": (NOW,), "cooldown_until": None}),
    ),
    (
        "rate-limit-admission-that-fills-the-window-starts-the-cooldown",
        {"action": "login", "rate_limit": LOGIN, "rate": {"admissions": (NOW - 100,)}},
        ok(rate_limit_tripped=True, rate={"admissions": (NOW - 100, NOW), "cooldown_until": NOW + 1800}),
    ),
    (
        "rate-limit-window-full",
        {"action": "login", "rate_limit": LOGIN_NO_COOLDOWN, "rate": {"admissions": (NOW - 100, NOW - 50)}},
        refused("rate_limited", action="login", max=2, window_s=900.0, retry_after_s=800.0,
                says="action 'login' is rate-limited (2 per 900s, cooldown 0s); retry in 800.0s"),
    ),
    (
        "rate-limit-admission-exactly-one-window-old-has-left-it",
        {"action": "login", "rate_limit": LOGIN_NO_COOLDOWN, "rate": {"admissions": (NOW - 900, NOW - 50)}},
        ok(rate_limit_tripped=True, rate={"admissions": (NOW - 50, NOW), "cooldown_until": None}),
    ),
    (
        "rate-limit-in-its-cooldown",
        {"action": "login", "rate_limit": LOGIN,
         "rate": {"admissions": (NOW - 1000, NOW - 950), "cooldown_until": NOW + 10}},
        refused("rate_limited", action="login", max=2, window_s=900.0, retry_after_s=10.0),
    ),
    (
        "rate-limit-cooldown-ending-now-admits",
        {"action": "login", "rate_limit": LOGIN,
         "rate": {"admissions": (NOW - 1000, NOW - 950), "cooldown_until": NOW}},
        ok(rate={"admissions": (NOW,), "cooldown_until": None}),
    ),
    # -- the money cap of the run and of its ancestors --------------------------------------------
    ("run-cap-half-used", {"run": {"cap_micros": CAP, "spent_micros": CAP // 2 - EST}}, ok(usage_fraction=0.5)),
    ("run-cap-reached-exactly", {"run": {"cap_micros": CAP, "spent_micros": CAP - EST}}, ok(usage_fraction=1.0)),
    (
        "run-cap-one-micro-dollar-over",
        {"run": {"cap_micros": CAP, "spent_micros": CAP - EST + 1}},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="0.990001", **BUDGET_FIGURES,
                says="run r would exceed its cap: spent+reserved $0.990001 + estimate $0.01 > cap $1.00"),
    ),
    (
        "run-cap-counts-reservations-as-spent",
        {"run": {"cap_micros": CAP, "spent_micros": 500_000, "reserved_micros": CAP - EST - 500_000 + 1}},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="0.990001", **BUDGET_FIGURES),
    ),
    (
        "run-cap-spent-refuses-a-call-with-no-estimate",
        {"run": {"cap_micros": CAP, "spent_micros": CAP}, "estimate_micros": 0},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="1.00", estimate_usd="0.00",
                cap_usd="1.00"),
    ),
    (
        "run-cap-with-one-micro-dollar-left-admits-a-call-with-no-estimate",
        {"run": {"cap_micros": CAP, "spent_micros": CAP - 1}, "estimate_micros": 0},
        ok(usage_fraction=(CAP - 1) / CAP),
    ),
    (
        "run-cap-of-zero-refuses-every-call",
        {"run": {"cap_micros": 0}, "estimate_micros": 0},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="0.00", estimate_usd="0.00",
                cap_usd="0.00"),
    ),
    (
        "parent-cap-reached-exactly",
        {"parents": [{"cap_micros": CAP, "spent_micros": CAP - EST}]},
        ok(usage_fraction=1.0),
    ),
    (
        "parent-cap-one-micro-dollar-over",
        {"parents": [{"cap_micros": CAP, "spent_micros": CAP - EST + 1}]},
        refused("budget", "ancestor_budget", halt=True, capped_run="p1", used_usd="0.990001", **BUDGET_FIGURES,
                says="run p1 would exceed its cap: spent+reserved $0.990001 + estimate $0.01 > cap $1.00"),
    ),
    (
        "grandparent-cap-one-micro-dollar-over",
        {"parents": [{"cap_micros": 2 * CAP}, {"cap_micros": CAP, "spent_micros": CAP - EST + 1}]},
        refused("budget", "ancestor_budget", halt=True, capped_run="p2", used_usd="0.990001", **BUDGET_FIGURES),
    ),
    # -- the token cap of the run and of its ancestors (only with token windows in the snapshot) --------
    (
        "run-token-cap-reached-exactly",
        {"tokens": {}, "run": {"token_cap": 1000, "spent_tokens": 900}, "estimate_tokens": 100},
        ok(usage_fraction=1.0, tokens_capped=True),
    ),
    (
        "run-token-cap-one-token-over",
        {"tokens": {}, "run": {"token_cap": 1000, "spent_tokens": 901}, "estimate_tokens": 100},
        refused("budget", "run_token_budget", halt=True, capped_run="r", used_tokens=901, **TOKEN_FIGURES,
                says="run r would exceed its token cap: used+reserved 901 + estimate 100 > cap 1,000 tokens"
                     " (budget.run_tokens)"),
    ),
    (
        "run-token-cap-counts-reserved-tokens",
        {"tokens": {}, "run": {"token_cap": 1000, "spent_tokens": 500, "reserved_tokens": 401},
         "estimate_tokens": 100},
        refused("budget", "run_token_budget", halt=True, capped_run="r", used_tokens=901, **TOKEN_FIGURES),
    ),
    (
        "run-token-cap-spent-refuses-a-call-with-no-token-estimate",
        {"tokens": {}, "run": {"token_cap": 1000, "spent_tokens": 1000}},
        refused("budget", "run_token_budget", halt=True, capped_run="r", used_tokens=1000, estimate_tokens=0,
                cap_tokens=1000),
    ),
    (
        "parent-token-cap-one-token-over",
        {"tokens": {}, "parents": [{"token_cap": 1000, "spent_tokens": 901}], "estimate_tokens": 100},
        refused("budget", "ancestor_token_budget", halt=True, capped_run="p1", used_tokens=901, **TOKEN_FIGURES),
    ),
    (
        "token-caps-are-not-checked-without-token-windows",
        {"run": {"token_cap": 1000, "spent_tokens": 5000}, "estimate_tokens": 100},
        ok(),
    ),
    ("token-windows-with-no-token-cap", {"tokens": {}, "estimate_tokens": 100}, ok(tokens_capped=True)),
    # -- the agent's daily and hourly money windows ----------------------------------------------------
    ("daily-cap-reached-exactly", {"day_micros": CAP - EST, "daily_cap_micros": CAP}, ok(usage_fraction=1.0)),
    (
        "daily-cap-one-micro-dollar-over",
        {"day_micros": CAP - EST + 1, "daily_cap_micros": CAP},
        refused("budget", "daily_budget", used_usd="0.990001", **BUDGET_FIGURES,
                says="agent 'a' would exceed its daily cap: spent+reserved $0.990001 + estimate $0.01 > cap $1.00"),
    ),
    (
        "daily-cap-spent-refuses-a-call-with-no-estimate",
        {"day_micros": CAP, "daily_cap_micros": CAP, "estimate_micros": 0},
        refused("budget", "daily_budget", used_usd="1.00", estimate_usd="0.00", cap_usd="1.00"),
    ),
    (
        "daily-cap-declared-stricter-by-another-policy-binds",
        {"day_micros": CAP - EST + 1, "daily_cap_micros": 5 * CAP, "daily_declared": (CAP, DECLARER)},
        refused("budget", "daily_budget", used_usd="0.990001", **BUDGET_FIGURES, declared_by=DECLARER,
                says="agent 'a' would exceed its daily cap: spent+reserved $0.990001 + estimate $0.01 > cap $1.00"
                     + DROP.format(what="daily cap")),
    ),
    (
        "daily-cap-declared-by-another-policy-binds-a-policy-without-one",
        {"day_micros": CAP - EST + 1, "daily_declared": (CAP, DECLARER)},
        refused("budget", "daily_budget", used_usd="0.990001", **BUDGET_FIGURES, declared_by=DECLARER),
    ),
    (
        "daily-cap-declared-looser-elsewhere-leaves-the-own-cap",
        {"day_micros": CAP - EST + 1, "daily_cap_micros": CAP, "daily_declared": (5 * CAP, DECLARER)},
        refused("budget", "daily_budget", used_usd="0.990001", **BUDGET_FIGURES),
    ),
    (
        "daily-cap-declared-equal-elsewhere-is-the-own-cap",
        {"day_micros": CAP - EST + 1, "daily_cap_micros": CAP, "daily_declared": (CAP, DECLARER)},
        refused("budget", "daily_budget", used_usd="0.990001", **BUDGET_FIGURES),
    ),
    (
        "daily-cap-declared-elsewhere-reached-exactly",
        {"day_micros": CAP - EST, "daily_cap_micros": 5 * CAP, "daily_declared": (CAP, DECLARER)},
        ok(usage_fraction=1.0),
    ),
    ("hourly-cap-reached-exactly", {"hour_micros": CAP - EST, "hourly_cap_micros": CAP}, ok(usage_fraction=1.0)),
    (
        "hourly-cap-one-micro-dollar-over",
        {"hour_micros": CAP - EST + 1, "hourly_cap_micros": CAP},
        refused("budget", "hourly_budget", used_usd="0.990001", **BUDGET_FIGURES,
                says="agent 'a' would exceed its hourly cap: spent+reserved $0.990001 + estimate $0.01 > cap $1.00"),
    ),
    (
        "hourly-cap-declared-stricter-by-another-policy-binds",
        {"hour_micros": CAP - EST + 1, "hourly_cap_micros": 5 * CAP, "hourly_declared": (CAP, DECLARER)},
        refused("budget", "hourly_budget", used_usd="0.990001", **BUDGET_FIGURES, declared_by=DECLARER,
                says="agent 'a' would exceed its hourly cap: spent+reserved $0.990001 + estimate $0.01 > cap $1.00"
                     + DROP.format(what="hourly cap")),
    ),
    # -- the agent's daily and hourly token windows ----------------------------------------------------
    (
        "daily-token-cap-reached-exactly",
        {"tokens": {"day_tokens": 900}, "daily_token_cap": 1000, "estimate_tokens": 100},
        ok(usage_fraction=1.0, tokens_capped=True),
    ),
    (
        "daily-token-cap-one-token-over",
        {"tokens": {"day_tokens": 901}, "daily_token_cap": 1000, "estimate_tokens": 100},
        refused("budget", "daily_token_budget", used_tokens=901, **TOKEN_FIGURES,
                says="agent 'a' would exceed its daily token cap: used+reserved 901 + estimate 100 > cap 1,000"
                     " tokens (budget.daily_tokens)"),
    ),
    (
        "daily-token-cap-spent-refuses-a-call-with-no-token-estimate",
        {"tokens": {"day_tokens": 1000}, "daily_token_cap": 1000},
        refused("budget", "daily_token_budget", used_tokens=1000, estimate_tokens=0, cap_tokens=1000),
    ),
    (
        "daily-token-cap-declared-stricter-by-another-policy-binds",
        {"tokens": {"day_tokens": 901, "daily_declared": (1000, DECLARER)}, "daily_token_cap": 5000,
         "estimate_tokens": 100},
        refused("budget", "daily_token_budget", used_tokens=901, **TOKEN_FIGURES, declared_by=DECLARER,
                says="agent 'a' would exceed its daily token cap: used+reserved 901 + estimate 100 > cap 1,000"
                     " tokens (budget.daily_tokens)" + DROP.format(what="daily token cap")),
    ),
    (
        "hourly-token-cap-reached-exactly",
        {"tokens": {"hour_tokens": 900}, "hourly_token_cap": 1000, "estimate_tokens": 100},
        ok(usage_fraction=1.0, tokens_capped=True),
    ),
    (
        "hourly-token-cap-one-token-over",
        {"tokens": {"hour_tokens": 901}, "hourly_token_cap": 1000, "estimate_tokens": 100},
        refused("budget", "hourly_token_budget", used_tokens=901, **TOKEN_FIGURES),
    ),
    (
        "hourly-token-cap-declared-stricter-by-another-policy-binds",
        {"tokens": {"hour_tokens": 901, "hourly_declared": (1000, DECLARER)}, "estimate_tokens": 100},
        refused("budget", "hourly_token_budget", used_tokens=901, **TOKEN_FIGURES, declared_by=DECLARER),
    ),
    (
        "usage-is-the-highest-fraction-of-any-cap",
        {"run": {"cap_micros": CAP, "spent_micros": CAP // 4 - EST, "token_cap": 1000, "spent_tokens": 500},
         "day_micros": 8 * CAP // 10 - EST, "daily_cap_micros": CAP, "hour_micros": CAP // 2 - EST,
         "hourly_cap_micros": CAP, "tokens": {"hour_tokens": 800}, "hourly_token_cap": 1000, "estimate_tokens": 100},
        ok(usage_fraction=0.9, tokens_capped=True),
    ),
    # -- steps, retries, the wall clock, attempts ----------------------------------------------------
    ("steps-one-below-the-maximum", {"run": {"steps": 9}, "max_steps": 10}, ok()),
    (
        "steps-at-the-maximum",
        {"run": {"steps": 10}, "max_steps": 10},
        refused("max_steps", halt=True, steps=10, max_steps=10, says="run r has made 10 steps (max_steps 10)"),
    ),
    ("max-steps-zero-refuses-the-first-step", {"max_steps": 0}, refused("max_steps", halt=True, steps=0, max_steps=0)),
    ("failures-at-the-retry-maximum", {"run": {"failures": 3}, "max_retries_total": 3}, ok()),
    (
        "failures-one-over-the-retry-maximum",
        {"run": {"failures": 4}, "max_retries_total": 3},
        refused("max_retries_total", halt=True, failures=4, max_retries_total=3,
                says="run r has failed 4 times (max_retries_total 3)"),
    ),
    (
        "one-second-before-the-deadline",
        {"run": {"started_at": NOW - 3599}, "timeout_s": 3600.0},
        ok(remaining_s=1.0),
    ),
    (
        "at-the-deadline",
        {"run": {"started_at": NOW - 3600}, "timeout_s": 3600.0},
        refused("timeout", halt=True, elapsed_s=3600.0, timeout_s=3600.0,
                says="run r started 3600.0s ago (timeout_s 3600)"),
    ),
    (
        "past-the-deadline",
        {"run": {"started_at": NOW - 4000}, "timeout_s": 3600.0},
        refused("timeout", halt=True, elapsed_s=4000.0, timeout_s=3600.0),
    ),
    ("action-failures-one-below-max-attempts", {"action_failures": 1, "max_attempts": 2}, ok()),
    (
        "action-failures-at-max-attempts",
        {"action_failures": 2, "max_attempts": 2},
        refused("max_attempts", action="call", failures=2, max_attempts=2,
                says="action 'call' of run r failed 2 times (fail_fast.max_attempts 2)"),
    ),
    # -- a refusal writes back nothing a later rule would have taken ------------------------------------
    (
        "a-budget-refusal-after-a-rate-admission-uses-no-rate-slot",
        {"action": "login", "rate_limit": LOGIN, "run": {"cap_micros": CAP, "spent_micros": CAP}},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="1.00", **BUDGET_FIGURES),
    ),
    (
        "a-budget-refusal-when-the-breaker-would-probe-takes-no-probe",
        {"breaker": {"state": "open", "consecutive_failures": 5, "opened_at": NOW - 600},
         "run": {"cap_micros": CAP, "spent_micros": CAP}},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="1.00", **BUDGET_FIGURES),
    ),
]

# One input per rule that trips it alone, in gate order, and what it decides.
TRIPS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("halted", {"halts": [{}]}, refused("halted", "maintenance", halted_run="", source="operator")),
    (
        "circuit_open",
        {"breaker": {"state": "open", "consecutive_failures": 5, "opened_at": NOW - 10}},
        refused("circuit_open", state="open", consecutive_failures=5, retry_after_s=290.0),
    ),
    (
        "rate_limited",
        {"action": "login", "rate_limit": LOGIN, "rate": {"admissions": (NOW - 1,), "cooldown_until": NOW + 10}},
        refused("rate_limited", action="login", max=2, window_s=900.0, retry_after_s=10.0),
    ),
    (
        "run_budget",
        {"run": {"cap_micros": CAP, "spent_micros": CAP}},
        refused("budget", "run_budget", halt=True, capped_run="r", used_usd="1.00", **BUDGET_FIGURES),
    ),
    (
        "ancestor_budget",
        {"parents": [{"cap_micros": CAP, "spent_micros": CAP}]},
        refused("budget", "ancestor_budget", halt=True, capped_run="p1", used_usd="1.00", **BUDGET_FIGURES),
    ),
    (
        "run_token_budget",
        {"tokens": {}, "run": {"token_cap": 1000, "spent_tokens": 1000}, "estimate_tokens": 100},
        refused("budget", "run_token_budget", halt=True, capped_run="r", used_tokens=1000, **TOKEN_FIGURES),
    ),
    (
        "ancestor_token_budget",
        {"tokens": {}, "parents": [{"token_cap": 1000, "spent_tokens": 1000}], "estimate_tokens": 100},
        refused("budget", "ancestor_token_budget", halt=True, capped_run="p1", used_tokens=1000, **TOKEN_FIGURES),
    ),
    (
        "daily_budget",
        {"day_micros": CAP, "daily_cap_micros": CAP},
        refused("budget", "daily_budget", used_usd="1.00", **BUDGET_FIGURES),
    ),
    (
        "hourly_budget",
        {"hour_micros": CAP, "hourly_cap_micros": CAP},
        refused("budget", "hourly_budget", used_usd="1.00", **BUDGET_FIGURES),
    ),
    (
        "daily_token_budget",
        {"tokens": {"day_tokens": 1000}, "daily_token_cap": 1000, "estimate_tokens": 100},
        refused("budget", "daily_token_budget", used_tokens=1000, **TOKEN_FIGURES),
    ),
    (
        "hourly_token_budget",
        {"tokens": {"hour_tokens": 1000}, "hourly_token_cap": 1000, "estimate_tokens": 100},
        refused("budget", "hourly_token_budget", used_tokens=1000, **TOKEN_FIGURES),
    ),
    ("max_steps", {"run": {"steps": 5}, "max_steps": 5}, refused("max_steps", halt=True, steps=5, max_steps=5)),
    (
        "max_retries_total",
        {"run": {"failures": 2}, "max_retries_total": 1},
        refused("max_retries_total", halt=True, failures=2, max_retries_total=1),
    ),
    (
        "timeout",
        {"run": {"started_at": NOW - 100}, "timeout_s": 100.0},
        refused("timeout", halt=True, elapsed_s=100.0, timeout_s=100.0),
    ),
    (
        "max_attempts",
        {"action_failures": 1, "max_attempts": 1},
        refused("max_attempts", action="call", failures=1, max_attempts=1),
    ),
]


def merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Both inputs at once: records merged field by field, lists item by item; no field set twice."""
    merged = dict(first)
    for key, value in second.items():
        if key not in merged:
            merged[key] = value
        elif isinstance(value, dict):
            merged[key] = merge(merged[key], value)
        elif isinstance(value, list):
            mine = merged[key]
            merged[key] = [merge(a, b) for a, b in zip(mine, value)] + mine[len(value):] + value[len(mine):]
        else:
            assert merged[key] == value, f"{key} set twice: {merged[key]!r} and {value!r}"
    return merged


ORDERING: list[Row] = [
    (f"{earlier}-before-{later}", merge(first, second), expected)
    for (earlier, first, expected), (later, second, _) in itertools.combinations(TRIPS, 2)
]
ORDERING.append(
    ("every-rule-at-once-the-halt-decides", functools.reduce(merge, [inputs for _, inputs, _ in TRIPS]), TRIPS[0][2])
)


def check(inputs: dict[str, Any], expected: dict[str, Any]) -> None:
    snapshot, request = build(inputs)
    decision = decide_gate(snapshot, request)
    got = plain(decision)
    says = expected.get("says")
    assert got == {key: value for key, value in expected.items() if key != "says"}
    result = decision.result
    if result.refusal is None:
        assert result.halt is None and decision.reserve
        return
    assert not decision.reserve
    if says is not None:
        assert result.refusal.message == says
    # a refusal carries nothing else, and a halt records the refusal's reason and figures
    assert dataclasses.replace(result, refusal=None, halt=None) == GateResult()
    if result.halt is not None:
        assert result.halt == HaltRecord(agent="a", run_id="r", reason=expected["reason"], source="budget",
                                         created_at=NOW, figures=expected["figures"])


@pytest.mark.parametrize(("inputs", "expected"), [pytest.param(i, e, id=name) for name, i, e in ROWS])
def test_each_gate_rule_and_its_boundaries(inputs: dict[str, Any], expected: dict[str, Any]) -> None:
    check(inputs, expected)


@pytest.mark.parametrize(("inputs", "expected"), [pytest.param(i, e, id=name) for name, i, e in ORDERING])
def test_the_earlier_rule_decides_when_two_are_hit(inputs: dict[str, Any], expected: dict[str, Any]) -> None:
    check(inputs, expected)


@pytest.mark.parametrize(("inputs", "expected"), [pytest.param(i, e, id=name) for name, i, e in TRIPS])
def test_each_ordering_input_trips_its_rule_alone(inputs: dict[str, Any], expected: dict[str, Any]) -> None:
    check(inputs, expected)


def test_the_table_covers_every_rule_in_gate_order() -> None:
    reasons = [expected["reason"] for _name, _inputs, expected in TRIPS]
    assert reasons == [
        "maintenance", "circuit_open", "rate_limited", "run_budget", "ancestor_budget", "run_token_budget",
        "ancestor_token_budget", "daily_budget", "hourly_budget", "daily_token_budget", "hourly_token_budget",
        "max_steps", "max_retries_total", "timeout", "max_attempts",
    ]
    refused_in_rows = {expected["reason"] for _name, _inputs, expected in ROWS if not expected["allowed"]}
    assert set(reasons) <= refused_in_rows
