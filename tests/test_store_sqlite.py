"""The SQLite store itself: file, pragmas, schema, URLs, idempotent settlement, threads."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.stores import StoreURLError, open_store
from agentfuse.runtime.stores.base import GateRequest, Outcome, Settlement, Store
from agentfuse.runtime.stores.sqlite import SCHEMA_VERSION, SQLiteStore, path_from_url

NOW = 1_800_000_000.0


def request(run_id: str, rid: str, estimate: int = 10_000, **caps: int) -> GateRequest:
    return GateRequest(
        reservation_id=rid,
        agent="a",
        run_id=run_id,
        action="call",
        estimate_micros=estimate,
        now=NOW,
        day_key="2027-01-15",
        minute=int(NOW // 60),
        **caps,  # type: ignore[arg-type]
    )


def settlement(run_id: str, rid: str, cost: int, outcome: Outcome = Outcome.SUCCESS) -> Settlement:
    return Settlement(rid, "a", run_id, "call", cost, NOW, outcome)


def test_file_is_private_and_its_folder_is_created(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "deep" / "er" / "state.db")
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=NOW)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        assert stat.S_IMODE((tmp_path / "deep" / "er" / name).stat().st_mode) == 0o600
    assert isinstance(store, Store)


@pytest.mark.parametrize(("durability", "synchronous"), [("normal", 1), ("full", 2)])
def test_wal_and_synchronous_follow_durability(tmp_path: Path, durability: str, synchronous: int) -> None:
    store = SQLiteStore(tmp_path / "s.db", durability=durability)
    db = store._connection().db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == synchronous
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000


def test_schema_version_is_recorded_and_a_newer_one_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    SQLiteStore(path).close()
    SQLiteStore(path).close()  # reopening migrates nothing twice
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreUnavailable, match="newer than this agentfuse"):
        SQLiteStore(path)


def test_urls_follow_the_sqlalchemy_convention(tmp_path: Path) -> None:
    assert path_from_url("sqlite:///rel/state.db") == Path("rel/state.db")
    assert path_from_url("sqlite:////abs/state.db") == Path("/abs/state.db")
    assert isinstance(open_store(f"sqlite:///{tmp_path}/x.db"), SQLiteStore)
    for bad in ("sqlite://", "sqlite://host/x.db", "mysql://x", "nonsense"):
        with pytest.raises(StoreURLError if not bad.startswith("sqlite") else ValueError):
            open_store(bad)
    with pytest.raises(StoreURLError, match="durability"):
        open_store(f"sqlite:///{tmp_path}/x.db", durability="maybe")


def test_unwritable_location_is_a_clear_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="cannot create the store file"):
        SQLiteStore(blocker / "state.db")


def test_open_run_returns_the_existing_run_unchanged(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    first = store.open_run("r", agent="a", parent_id=None, cap_micros=5, now=NOW)
    again = store.open_run("r", agent="a", parent_id=None, cap_micros=99, now=NOW + 100)
    assert again == first
    with pytest.raises(KeyError):
        store.open_run("c", agent="a", parent_id="missing", cap_micros=None, now=NOW)


def test_failure_settlement_counts_run_and_action(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=NOW)
    for rid in ("1", "2"):
        store.gate(request("r", rid))
        result = store.settle(settlement("r", rid, 10_000, Outcome.FAILURE))
    assert (result.run_failures, result.action_failures, result.consecutive_failures) == (2, 2, 2)
    store.gate(request("r", "3"))
    neutral = store.settle(settlement("r", "3", 10_000, Outcome.NEUTRAL))
    assert neutral.consecutive_failures == 2 and neutral.run_failures == 0


def test_a_store_locked_past_its_busy_timeout_fails_closed(tmp_path: Path) -> None:
    from agentfuse import StoreUnavailable as PublicStoreUnavailable
    from agentfuse import enforce
    from tests.runtime_helpers import FakeClient, make_policy

    path = tmp_path / "s.db"
    store = SQLiteStore(path, busy_timeout_s=0.05)
    guard = enforce(make_policy(), store=store)
    open_guard = enforce(make_policy(store_unavailable="allow"), run_id=guard.run_id, store=store)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    client = FakeClient()
    try:
        with pytest.raises(PublicStoreUnavailable, match="failing closed"):
            with guard.step():
                client.chat.completions.create()
        with open_guard.step():
            client.chat.completions.create()
    finally:
        blocker.execute("ROLLBACK")
    assert client.calls == 1  # only the fail-open policy let the call through
    assert store.unsettled() == 0


def test_fail_open_policy_starts_while_the_store_is_locked_and_registers_the_run_later(tmp_path: Path) -> None:
    from agentfuse import StoreUnavailable as PublicStoreUnavailable
    from agentfuse import enforce
    from tests.runtime_helpers import FakeClient, make_policy

    path = tmp_path / "s.db"
    store = SQLiteStore(path, busy_timeout_s=0.05)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(PublicStoreUnavailable):
            enforce(make_policy(), store=store)
        guard = enforce(make_policy(store_unavailable="allow"), store=store)
        with guard.step():
            FakeClient().chat.completions.create()
    finally:
        blocker.execute("ROLLBACK")
    assert store.get_run(guard.run_id) is None
    with guard.step():
        pass
    guard.close()
    run = store.get_run(guard.run_id)
    assert run is not None and run.steps == 1


def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    """SQLite forbids carrying a connection across fork(); the store notices and reconnects."""
    import multiprocessing

    from agentfuse import enforce
    from tests.runtime_helpers import make_policy, store_url

    guard = enforce(make_policy(budget={"run_usd": "1.00", "estimate_usd": "0.01"}), store=store_url(tmp_path / "s.db"))
    with guard.step():
        pass
    store = guard.store
    assert isinstance(store, SQLiteStore)
    parent_connection = id(store._connection())
    context = multiprocessing.get_context("fork")
    reused = context.Queue()

    def child() -> None:
        reused.put(id(store._connection()) == parent_connection)
        for _ in range(20):
            with guard.step():
                pass
        guard.close()

    process = context.Process(target=child)
    process.start()
    for _ in range(20):
        with guard.step():
            pass
    assert reused.get(timeout=60) is False
    process.join(60)
    guard.close()
    assert process.exitcode == 0
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.steps == 41 and run.spent_micros + run.reserved_micros == 410_000


def test_a_second_store_on_the_same_file_keeps_the_first_ones_locks(tmp_path: Path) -> None:
    """Opening another store must not close a descriptor of the file (POSIX locks are per process).

    When it did, a second process checkpointed under the first connection's read snapshot: the
    first store kept seeing a halt that an operator had cleared, then read a "malformed" file.
    """
    import subprocess
    import sys

    path = tmp_path / "state.db"
    first = SQLiteStore(path)
    first.open_run("r1", agent="a", parent_id=None, cap_micros=None, now=1.0)
    assert first.gate(request("r1", "res-1")).allowed
    second = SQLiteStore(path)  # e.g. a guard of another agent in the same process
    second.open_run("r2", agent="b", parent_id=None, cap_micros=None, now=1.0)
    script = (
        "import sys; from agentfuse.runtime.stores.sqlite import SQLiteStore;"
        "from agentfuse.runtime.stores.base import HaltRecord;"
        "s = SQLiteStore(sys.argv[1]);"
        "s.halt(HaltRecord(agent='b', run_id='', reason='x', source='operator', created_at=2.0)) "
        "if sys.argv[2] == 'halt' else s.resume('b'); s.close()"
    )
    subprocess.run([sys.executable, "-c", script, str(path), "halt"], check=True)
    assert [h.reason for h in second.halts("b")] == ["x"]
    subprocess.run([sys.executable, "-c", script, str(path), "resume"], check=True)
    assert second.halts("b") == []
    assert first.halts("b") == []


def test_a_version_2_store_migrates_its_windows_and_keeps_its_books(tmp_path: Path) -> None:
    """Schema 3 merged the day and minute buckets: a store written by schema 2 keeps every figure."""
    from agentfuse.runtime.stores.sqlite import MIGRATIONS

    path = tmp_path / "old.db"
    minute = int(NOW // 60)
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        for script in MIGRATIONS[:2]:
            for statement in script.split(";"):
                if statement.strip():
                    db.execute(statement)
        db.execute("INSERT INTO schema_version VALUES (2)")
        db.execute(
            "INSERT INTO runs (run_id, agent, started_at, reserved_micros, steps) VALUES ('r', 'a', ?, 7, 1)", (NOW,)
        )
        db.execute(
            "INSERT INTO ledger (reservation_id, run_id, agent, action, estimate_micros, day_key, minute, created_at)"
            " VALUES ('open', 'r', 'a', 'call', 7, '2027-01-15', ?, ?)",
            (minute, NOW),
        )
        db.executemany(
            "INSERT INTO agent_days VALUES ('a', ?, ?, ?)", [("2027-01-14", 500, 0), ("2027-01-15", 20, 7)]
        )
        db.executemany(
            "INSERT INTO agent_minutes VALUES ('a', ?, ?, ?)",
            [(minute - 90, 500, 0), (minute - 1, 20, 0), (minute, 0, 7)],
        )
    store = SQLiteStore(path)
    assert [(d.day_key, d.spent_micros, d.reserved_micros) for d in store.daily_spend("a")] == [
        ("2027-01-14", 500, 0),
        ("2027-01-15", 20, 7),
    ]
    totals = store.agent_totals("a", day_key="2027-01-15", minute=minute)
    assert (totals.day_micros, totals.hour_micros) == (27, 27)
    assert store.unsettled("r") == 1 and [r.reservation_id for r in store.open_reservations()] == ["open"]
    (summary,) = store.list_runs("a")
    assert summary.unsettled == 1 and summary.last_activity_at == NOW
    # and the store goes on: the open reservation settles into the migrated buckets
    assert store.settle(Settlement("open", "a", "r", "call", 5, NOW, Outcome.SUCCESS)).settled
    totals = store.agent_totals("a", day_key="2027-01-15", minute=minute)
    assert (totals.day_micros, totals.hour_micros) == (25, 25)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert "agent_days" not in tables and "agent_minutes" not in tables and "ledger_unsettled" not in tables
