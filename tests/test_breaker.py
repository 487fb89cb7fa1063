"""The breaker's pure transitions and the rate-limit admission rule."""

from __future__ import annotations

from agentfuse.runtime import breaker
from agentfuse.runtime.decisions import admit_rate
from agentfuse.runtime.stores.base import (
    BreakerRecord,
    BreakerSpec,
    BreakerState,
    Outcome,
    RateLimitRecord,
    RateLimitSpec,
)

SPEC = BreakerSpec(failure_threshold=3, cooldown_s=60, probe_lease_s=60)


def fail(record: BreakerRecord, now: float, rid: str = "r") -> tuple[BreakerRecord, BreakerState | None]:
    return breaker.after_call(record, SPEC, now, rid, Outcome.FAILURE, True)


def test_breaker_opens_after_threshold_consecutive_failures() -> None:
    record = BreakerRecord()
    for _ in range(2):
        record, transition = fail(record, 0)
        assert transition is None and record.state is BreakerState.CLOSED
    record, transition = fail(record, 5)
    assert transition is BreakerState.OPEN and record.opened_at == 5


def test_a_success_resets_the_consecutive_count() -> None:
    record, _ = fail(fail(BreakerRecord(), 0)[0], 0)
    record, _ = breaker.after_call(record, SPEC, 1, "r", Outcome.SUCCESS, True)
    assert record.consecutive_failures == 0
    record, transition = fail(record, 2)
    assert transition is None and record.consecutive_failures == 1


def test_uncounted_failures_change_nothing() -> None:
    record, transition = breaker.after_call(BreakerRecord(), SPEC, 0, "r", Outcome.FAILURE, False)
    assert record == BreakerRecord() and transition is None


def test_open_refuses_until_cooldown_then_exactly_one_probe() -> None:
    opened = BreakerRecord(BreakerState.OPEN, 3, opened_at=100)
    refused = breaker.admit(opened, SPEC, 159, "a")
    assert not refused.allowed and refused.retry_after_s == 1
    probe = breaker.admit(opened, SPEC, 160, "a")
    assert probe.allowed and probe.probe and probe.transition is BreakerState.HALF_OPEN
    second = breaker.admit(probe.record, SPEC, 161, "b")
    assert not second.allowed


def test_probe_lease_lapses_so_a_dead_prober_does_not_wedge() -> None:
    half = breaker.admit(BreakerRecord(BreakerState.OPEN, 3, opened_at=0), SPEC, 60, "dead").record
    again = breaker.admit(half, SPEC, 60 + SPEC.probe_lease_s, "next")
    assert again.allowed and again.probe and again.record.probe_id == "next"


def test_probe_success_closes_and_failure_reopens() -> None:
    half = breaker.admit(BreakerRecord(BreakerState.OPEN, 3, opened_at=0), SPEC, 60, "p").record
    closed, transition = breaker.after_call(half, SPEC, 61, "p", Outcome.SUCCESS, True)
    assert closed == BreakerRecord() and transition is BreakerState.CLOSED
    reopened, transition = fail(half, 62, "p")
    assert reopened.state is BreakerState.OPEN and reopened.opened_at == 62 and transition is BreakerState.OPEN


def test_a_neutral_probe_releases_the_lease() -> None:
    half = breaker.admit(BreakerRecord(BreakerState.OPEN, 3, opened_at=0), SPEC, 60, "p").record
    released, transition = breaker.after_call(half, SPEC, 61, "p", Outcome.NEUTRAL, True)
    assert released.state is BreakerState.HALF_OPEN and released.probe_id is None and transition is None


def test_late_results_of_calls_admitted_before_opening_decide_nothing() -> None:
    opened = BreakerRecord(BreakerState.OPEN, 3, opened_at=0)
    assert breaker.after_call(opened, SPEC, 1, "old", Outcome.SUCCESS, True) == (opened, None)


LOGIN = RateLimitSpec("login", max=2, window_s=900, cooldown_s=1800)


def test_rate_window_fills_trips_the_cooldown() -> None:
    first = admit_rate(RateLimitRecord(), LOGIN, 0)
    second = admit_rate(first.record, LOGIN, 10)
    assert first.allowed and not first.tripped and second.allowed and second.tripped
    assert second.record.cooldown_until == 1810
    assert not admit_rate(second.record, LOGIN, 1000).allowed
    assert admit_rate(second.record, LOGIN, 1810).allowed


def test_sliding_window_without_cooldown() -> None:
    spec = RateLimitSpec("fetch", max=2, window_s=60)
    record = admit_rate(admit_rate(RateLimitRecord(), spec, 0).record, spec, 30).record
    refused = admit_rate(record, spec, 59)
    assert not refused.allowed and refused.retry_after_s == 1
    assert admit_rate(record, spec, 60.5).allowed
