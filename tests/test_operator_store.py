"""The store's operator operations, and how a dead process is told from a live one.

The tests taking ``store`` run on SQLite and on a real redis-server (the fixture is in conftest.py).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from agentfuse import enforce
from agentfuse.operator.status import Liveness, process_alive
from agentfuse.runtime.stores.base import Heartbeat, OperatorStore, Reservation, RestartSpec
from agentfuse.runtime.stores.sqlite import MIGRATIONS, SQLiteStore
from tests.runtime_helpers import make_policy

NOW = 1_800_000_000.0
DAY = "2027-01-15"  # the UTC day of NOW


def open_call(store: Any, agent: str, estimate: str) -> str:
    """A guarded call entered and never left (as by a killed process); returns its run id."""
    guard = enforce(make_policy(agent=agent), store=store, clock=lambda: NOW)
    guard.step(estimate_usd=estimate).__enter__()
    return guard.run_id


def test_reservations_record_the_process_and_reconcile_settles_them_once(store: Any) -> None:
    run_a = open_call(store, "a", "0.30")
    run_b = open_call(store, "b", "0.20")
    (reservation,) = store.open_reservations(agent="a")
    assert (reservation.run_id, reservation.pid, reservation.host) == (run_a, os.getpid(), store.host)
    assert reservation.estimate_micros == 300_000
    assert [r.run_id for r in store.open_reservations(run_id=run_b)] == [run_b]

    zero = store.reconcile(reservation.reservation_id, settle_as="zero", reason="not billed", now=NOW + 1)
    assert zero is not None and zero.cost_micros == 0
    assert store.agent_totals("a", day_key=DAY, minute=int(NOW // 60)).day_micros == 0
    assert store.reconcile(reservation.reservation_id, settle_as="zero", reason="again", now=NOW + 2) is None

    (other,) = store.open_reservations(agent="b")
    reserved = store.reconcile(other.reservation_id, settle_as="reserved", reason="billed", now=NOW + 3)
    assert reserved is not None and reserved.cost_micros == 200_000
    run = store.get_run(run_b)
    assert run is not None and (run.spent_micros, run.reserved_micros) == (200_000, 0)
    assert [(r.agent, r.settle_as, r.reason) for r in store.reconciliations()] == [
        ("a", "zero", "not billed"),
        ("b", "reserved", "billed"),
    ]
    assert store.open_reservations() == []


def test_listings_of_runs_agents_days_breakers_and_heartbeats(store: Any) -> None:
    older = open_call(store, "a", "0.10")
    store.open_run("quiet", agent="a", parent_id=None, cap_micros=None, now=NOW + 50)
    runs = store.list_runs("a")
    assert [summary.run.run_id for summary in runs] == ["quiet", older]
    assert [summary.unsettled for summary in runs] == [0, 1]
    assert store.agents() == ["a"]
    assert [(d.agent, d.day_key, d.reserved_micros) for d in store.daily_spend(since_day=DAY)] == [("a", DAY, 100_000)]
    assert store.daily_spend(since_day="2027-01-16") == []
    assert store.breakers() == []
    store.record_heartbeat(Heartbeat("a", older, 42, "h1", NOW))
    store.record_heartbeat(Heartbeat("a", "quiet", 42, "h1", NOW + 9))  # same process: one row
    store.record_heartbeat(Heartbeat("z", "r", 43, "h2", NOW + 1))
    assert [(b.agent, b.run_id, b.at) for b in store.heartbeats()][:2] == [("a", "quiet", NOW + 9), ("z", "r", NOW + 1)]
    assert len(store.heartbeats("a")) == 2  # the guard's own beat plus process 42
    assert store.agents() == ["a", "z"]


def test_claims_are_taken_once_until_they_expire(store: Any) -> None:
    def take(agent: str, message: str, now: float) -> bool:
        return bool(store.claim(agent, message, run_id="r", pid=1, host="h", now=now, ttl_s=60))

    assert take("a", "m1", NOW)
    assert not take("a", "m1", NOW + 59)
    assert take("b", "m1", NOW + 1)  # another agent's inbox
    assert take("a", "m1", NOW + 60)
    assert not take("a", "m1", NOW + 61)


def test_starts_are_counted_once_per_process_and_the_cooldown_ends(store: Any) -> None:
    spec = RestartSpec(max_starts=2, window_s=60, cooldown_s=100)

    def start(pid: int, at: float, agent: str = "a") -> Any:
        return store.record_start(agent, pid=pid, host="h", now=NOW + at, spec=spec)

    assert start(7, 0).starts_in_window == 1
    assert start(7, 1).starts_in_window == 1
    assert start(8, 2).cooldown_until is None
    tripped = start(9, 3)
    assert tripped.tripped and tripped.cooldown_until == NOW + 103
    later = start(10, 90)  # the window slid, the cooldown holds
    assert later.starts_in_window == 1 and later.cooldown_until == NOW + 103 and not later.tripped
    assert start(11, 104).cooldown_until is None
    assert start(9, 3, agent="other").starts_in_window == 1


def test_a_guard_beats_at_most_every_few_seconds(store: Any) -> None:
    now = [NOW]
    guard = enforce(make_policy(), store=store, clock=lambda: now[0], defer_settlement=False)
    for _ in range(3):
        now[0] += 1
        with guard.step(estimate_usd="0.01"):
            pass
    (beat,) = store.heartbeats("tester")
    assert beat.at == NOW  # written at enforce(); the gates within the next 5s did not write
    now[0] += 5
    with guard.step(estimate_usd="0.01"):
        pass
    assert store.heartbeats("tester")[0].at == NOW + 8
    guard.close()


def test_every_store_has_the_operator_operations(store: Any) -> None:
    assert isinstance(store, OperatorStore)


def test_a_version_1_store_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(MIGRATIONS[0] + "; CREATE TABLE schema_version (version INTEGER NOT NULL);"
                     " INSERT INTO schema_version VALUES (1);")
    db.execute("INSERT INTO runs (run_id, agent, started_at) VALUES ('r', 'a', 1.0)")
    db.execute(
        "INSERT INTO ledger (reservation_id, run_id, agent, action, estimate_micros, day_key, minute, created_at)"
        " VALUES ('x', 'r', 'a', 'call', 5, 'd', 0, 1.0)"
    )
    db.commit()
    db.close()
    store = SQLiteStore(path)
    (old,) = store.open_reservations()
    assert (old.reservation_id, old.pid, old.host) == ("x", None, None)
    assert store.claim("a", "m", run_id="r", pid=1, host="h", now=1.0, ttl_s=5)
    store.close()


def reservation(pid: int | None, host: str | None, created_at: float = NOW) -> Reservation:
    return Reservation("res", "a", "r", "call", 1, created_at, pid, host)


def test_liveness_tells_dead_processes_on_this_host_and_silent_ones_elsewhere() -> None:
    beats = [Heartbeat("a", "r", 7, "far", NOW - 30), Heartbeat("a", "r", 8, "far", NOW - 3600)]
    live = Liveness(NOW, "here", 600.0, beats, alive=lambda pid: pid == 1)
    assert live.stale_reason(reservation(1, "here")) is None
    assert "pid 2 is not running on this host" == live.stale_reason(reservation(2, "here"))
    assert live.stale_reason(reservation(7, "far")) is None
    assert "no heartbeat from pid 8 on far" in str(live.stale_reason(reservation(8, "far")))
    assert live.stale_reason(reservation(None, None, created_at=NOW - 10)) is None
    assert "no process recorded" in str(live.stale_reason(reservation(None, None, created_at=NOW - 700)))


def test_process_alive_for_a_live_a_zombie_and_a_reaped_process() -> None:
    assert process_alive(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    stat = Path(f"/proc/{child.pid}/stat")
    deadline = time.monotonic() + 30
    while stat.read_text().rpartition(")")[2].split()[0] != "Z":  # exited, not yet reaped
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not process_alive(child.pid)
    child.wait()
    assert not process_alive(child.pid)
