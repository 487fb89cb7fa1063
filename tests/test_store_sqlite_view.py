"""The SQLite gate's skipped read: a gate re-uses what its connection last wrote only while no
other connection has committed (``PRAGMA data_version``) and nothing else ran in between.

Each test interleaves a second connection (another store on the same file, as another process
would be) or another operation, and checks that the gate sees the state as stored.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from agentfuse.runtime.decisions import GateDecision, GateSnapshot, decide_gate
from agentfuse.runtime.stores import sqlite_gate
from agentfuse.runtime.stores.base import GateRequest, HaltRecord, Outcome, Settlement
from agentfuse.runtime.stores.sqlite import SQLiteStore

NOW = 1_800_000_000.0
MINUTE = int(NOW // 60)


def request(rid: str, *, estimate: int = 10_000, now: float = NOW, deferred: tuple[Settlement, ...] = (),
            action: str = "call", **caps: int) -> GateRequest:
    return GateRequest(
        reservation_id=rid,
        agent="a",
        run_id="r",
        action=action,
        estimate_micros=estimate,
        now=now,
        day_key="2027-01-15",
        minute=int(now // 60),
        settle_first=deferred,
        **caps,  # type: ignore[arg-type]
    )


def success(rid: str, cost: int = 10_000, now: float = NOW) -> Settlement:
    return Settlement(rid, "a", "r", "call", cost, now, Outcome.SUCCESS, breaker_counts=False)


def stores(tmp_path: Path, cap_micros: int | None = 100_000) -> tuple[SQLiteStore, SQLiteStore]:
    first = SQLiteStore(tmp_path / "s.db")
    second = SQLiteStore(tmp_path / "s.db")
    first.open_run("r", agent="a", parent_id=None, cap_micros=cap_micros, now=NOW)
    return first, second


def stored_run(path: Path) -> tuple[int, int, int]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT spent_micros, reserved_micros, steps FROM runs WHERE run_id = 'r'").fetchone()


def gate_loop(store: SQLiteStore, prefix: str, calls: int, previous: tuple[Settlement, ...] = ()) -> tuple[int, tuple]:
    """Gate ``calls`` times, each settling the one before (as a guard does); count admissions."""
    allowed = 0
    for i in range(calls):
        rid = f"{prefix}{i:04d}"
        result = store.gate(request(rid, deferred=previous))
        previous = ()
        if result.allowed:
            allowed += 1
            previous = (success(rid),)
    return allowed, previous


def test_the_read_is_skipped_only_while_no_other_connection_commits(tmp_path: Path) -> None:
    first, second = stores(tmp_path)
    allowed_first, pending_first = gate_loop(first, "1-", 3)  # 3 x $0.01 on a $0.10 cap
    assert first._local.connection.view is not None  # the next gate of this connection may skip its read
    allowed_second, pending_second = gate_loop(second, "2-", 4)
    # first's view is stale now (second spent $0.04): the cap must still hold exactly
    allowed_first2, pending_first = gate_loop(first, "3-", 10, pending_first)
    assert (allowed_first, allowed_second, allowed_first2) == (3, 4, 3)
    for store, pending in ((first, pending_first), (second, pending_second)):
        for item in pending:
            store.settle(item)
    assert stored_run(tmp_path / "s.db") == (100_000, 0, 10)


def test_a_halt_written_by_another_connection_refuses_the_next_gate(tmp_path: Path) -> None:
    first, second = stores(tmp_path, cap_micros=None)
    assert first.gate(request("x1")).allowed
    assert first.gate(request("x2", deferred=(success("x1"),))).allowed
    second.halt(HaltRecord("a", "r", "operator says stop", "operator", NOW))
    refused = first.gate(request("x3", deferred=(success("x2"),)))
    assert refused.refusal is not None and refused.refusal.kind == "halted"
    second.resume("a", "r")
    assert first.gate(request("x4")).allowed


def test_a_halt_by_the_same_store_between_gates_is_seen(tmp_path: Path) -> None:
    first, _ = stores(tmp_path, cap_micros=None)
    assert first.gate(request("y1")).allowed
    first.halt(HaltRecord("a", "", "kill switch", "kill_switch", NOW))
    assert not first.gate(request("y2", deferred=(success("y1"),))).allowed


def test_a_failure_settled_between_gates_counts_for_the_retry_cap(tmp_path: Path) -> None:
    first, _ = stores(tmp_path, cap_micros=None)
    assert first.gate(request("f1", max_retries_total=0)).allowed
    assert first.gate(request("f2", max_retries_total=0, deferred=(success("f1"),))).allowed
    first.settle(Settlement("f2", "a", "r", "call", 10_000, NOW, Outcome.FAILURE))
    refused = first.gate(request("f3", max_retries_total=0))
    assert refused.refusal is not None and refused.refusal.kind == "max_retries_total"


def test_the_hourly_window_slides_while_the_view_is_kept(tmp_path: Path) -> None:
    first, _ = stores(tmp_path, cap_micros=None)
    hourly = {"hourly_cap_micros": 30_000}
    previous: tuple[Settlement, ...] = ()
    for i in range(3):
        assert first.gate(request(f"h{i}", deferred=previous, **hourly)).allowed
        previous = (success(f"h{i}"),)
    assert not first.gate(request("h3", deferred=previous, **hourly)).allowed
    later = NOW + 61 * 60  # the three calls have left the rolling hour
    assert first.gate(request("h4", now=later, **hourly)).allowed
    assert first.gate(request("h5", now=later, deferred=(success("h4", now=later),), **hourly)).allowed


def test_steps_counted_through_the_view_match_the_stored_ones(tmp_path: Path) -> None:
    first, second = stores(tmp_path, cap_micros=None)
    allowed, pending = gate_loop(first, "s-", 7)
    result = second.gate(request("s-last", max_steps=7))
    assert allowed == 7 and result.refusal is not None and result.refusal.kind == "max_steps"
    first.settle(pending[0])
    assert stored_run(tmp_path / "s.db") == (70_000, 0, 7)


def test_another_action_reads_its_own_failures(tmp_path: Path) -> None:
    first, _ = stores(tmp_path, cap_micros=None)
    first.settle(Settlement("none", "a", "r", "login", 0, NOW, Outcome.FAILURE))  # unknown id: no-op
    assert first.gate(request("l1", action="login", max_attempts=1)).allowed
    first.settle(Settlement("l1", "a", "r", "login", 0, NOW, Outcome.FAILURE))
    assert first.gate(request("c1", action="call", max_attempts=1)).allowed
    refused = first.gate(request("l2", action="login", max_attempts=1, deferred=(success("c1"),)))
    assert refused.refusal is not None and refused.refusal.kind == "max_attempts"


def test_minute_buckets_older_than_the_hour_are_pruned_and_days_stay(tmp_path: Path) -> None:
    first, _ = stores(tmp_path, cap_micros=None)
    for i in range(0, 180, 7):  # three hours of calls, one every seven minutes
        assert first.gate(request(f"p{i:03d}", now=NOW + i * 60, hourly_cap_micros=10**9)).allowed
    with sqlite3.connect(tmp_path / "s.db") as db:
        minutes = [row[0] for row in db.execute("SELECT bucket FROM agent_windows WHERE bucket LIKE 'minute:%'")]
        (day,) = db.execute("SELECT reserved_micros FROM agent_windows WHERE bucket = 'day:2027-01-15'").fetchone()
    last = MINUTE + 175
    assert minutes and all(last - 60 < int(bucket.split(":")[1]) <= last for bucket in minutes)
    assert day == 26 * 10_000  # the day keeps every call
    assert first.agent_totals("a", day_key="2027-01-15", minute=last).hour_micros == len(minutes) * 10_000


def test_the_values_a_gate_decided_on_stay_as_they_were_while_the_view_moves_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kept view adds each settlement and reservation to its own counters; the run rows and
    token windows it handed to ``decide_gate`` are values and never change afterwards."""
    first = SQLiteStore(tmp_path / "s.db")
    first.open_run("r", agent="a", parent_id=None, cap_micros=None, now=NOW, token_cap=10**9)
    decided: list[tuple[GateSnapshot, list[tuple[object, ...]]]] = []

    def as_values(snapshot: GateSnapshot) -> list[tuple[object, ...]]:
        assert snapshot.tokens is not None
        return [*map(dataclasses.astuple, snapshot.chain), dataclasses.astuple(snapshot.tokens)]

    def recording(snapshot: GateSnapshot, gate_request: GateRequest) -> GateDecision:
        decided.append((snapshot, as_values(snapshot)))
        return decide_gate(snapshot, gate_request)

    monkeypatch.setattr(sqlite_gate, "decide_gate", recording)
    previous: tuple[Settlement, ...] = ()
    for i in range(4):
        assert first.gate(request(f"v{i}", deferred=previous, estimate_tokens=100)).allowed
        previous = (dataclasses.replace(success(f"v{i}"), tokens=50),)
    assert first._local.connection.view is not None  # the later gates went through the kept view
    assert [snapshot.chain[0].steps for snapshot, _ in decided] == [0, 1, 2, 3]
    for snapshot, as_decided in decided:
        assert as_values(snapshot) == as_decided
