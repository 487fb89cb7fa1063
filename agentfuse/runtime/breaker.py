"""The durable circuit breaker as pure transitions: closed -> open -> half_open -> closed/open.

A backend reads the :class:`BreakerRecord`, calls :func:`admit` in the gate and
:func:`after_call` in the settlement, and writes back what they return, all inside its one
atomic operation. In half-open exactly one probe is let through across processes; the probe
holds a lease (``probe_lease_s``) so a prober killed mid-call does not wedge the breaker.
"""

from __future__ import annotations

import dataclasses

from agentfuse.runtime.stores.base import BreakerRecord, BreakerSpec, BreakerState, Outcome


@dataclasses.dataclass(slots=True)
class BreakerAdmission:
    """The breaker's answer to one gate (not frozen: it is built on every call)."""

    allowed: bool
    record: BreakerRecord
    probe: bool = False
    transition: BreakerState | None = None
    retry_after_s: float | None = None


def _take_probe(record: BreakerRecord, spec: BreakerSpec, now: float, reservation_id: str) -> BreakerRecord:
    return dataclasses.replace(
        record,
        state=BreakerState.HALF_OPEN,
        probe_id=reservation_id,
        probe_expires_at=now + spec.probe_lease_s,
    )


def admit(record: BreakerRecord, spec: BreakerSpec, now: float, reservation_id: str) -> BreakerAdmission:
    """Let a call through a closed breaker, refuse it on an open one, or hand out the probe."""
    if record.state is BreakerState.CLOSED:
        return BreakerAdmission(True, record)
    if record.state is BreakerState.OPEN:
        opened_at = record.opened_at if record.opened_at is not None else now
        reopen_at = opened_at + spec.cooldown_s
        if now < reopen_at:
            return BreakerAdmission(False, record, retry_after_s=reopen_at - now)
        probe = _take_probe(record, spec, now, reservation_id)
        return BreakerAdmission(True, probe, probe=True, transition=BreakerState.HALF_OPEN)
    lease_until = record.probe_expires_at if record.probe_id is not None else None
    if lease_until is None or lease_until <= now:
        return BreakerAdmission(True, _take_probe(record, spec, now, reservation_id), probe=True)
    return BreakerAdmission(False, record, retry_after_s=lease_until - now)


def after_call(
    record: BreakerRecord,
    spec: BreakerSpec,
    now: float,
    reservation_id: str,
    outcome: Outcome,
    counts: bool,
) -> tuple[BreakerRecord, BreakerState | None]:
    """The breaker after a call ended; returns the new record and the transition, if any."""
    failed = outcome is Outcome.FAILURE and counts
    is_probe = record.state is BreakerState.HALF_OPEN and record.probe_id == reservation_id
    if is_probe:
        if outcome is Outcome.SUCCESS:
            return BreakerRecord(), BreakerState.CLOSED
        if failed:
            return _opened(record, now), BreakerState.OPEN
        return dataclasses.replace(record, probe_id=None, probe_expires_at=None), None
    if record.state is not BreakerState.CLOSED or not counts:
        return record, None  # uncounted, or a late result of a call admitted before opening
    if outcome is Outcome.SUCCESS:
        return (record if record.consecutive_failures == 0 else BreakerRecord()), None
    if outcome is not Outcome.FAILURE:
        return record, None
    failures = record.consecutive_failures + 1
    if failures >= spec.failure_threshold:
        return _opened(dataclasses.replace(record, consecutive_failures=failures), now), BreakerState.OPEN
    return dataclasses.replace(record, consecutive_failures=failures), None


def _opened(record: BreakerRecord, now: float) -> BreakerRecord:
    return BreakerRecord(
        state=BreakerState.OPEN,
        consecutive_failures=record.consecutive_failures,
        opened_at=now,
    )
