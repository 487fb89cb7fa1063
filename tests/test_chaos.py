"""Chaos: workers SIGKILLed at random while they spend, for both stores; redis-server killed too.

Eight worker processes spend against one agent's daily cap and their own runs' caps; a
controller SIGKILLs a random worker about every 100 ms (at least 40 kills: on a loaded 2-core
machine the workers reach their caps after 47-60 restarts) and restarts it on the same run id.
Afterwards the books must balance: settled + reserved spend within every cap, no lost or
negative ledger entries, each run's step counter equal to its ledger entries, every halt seen
during the test still set, and a breaker in one of its three states consistent with its
counters. Loopback only, bounded to well under 60 s.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfuse.runtime.money import to_micros
from agentfuse.runtime.stores.base import BreakerState, HaltRecord, Store
from agentfuse.runtime.stores.redis import RedisStore
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.redis_server import RedisServer, running_server
from tests.runtime_helpers import FakeClient, count_lines, make_policy, store_url

AGENT = "chaos"
WORKERS = 8
MIN_KILLS = 40
KILL_EVERY_S = 0.1
HARD_LIMIT_S = 50.0
RUN_USD = "3.00"
DAILY_USD = "20.00"
FAILURE_THRESHOLD = 5
POLICY: dict[str, Any] = {
    "agent": AGENT,
    "budget": {"run_usd": RUN_USD, "daily_usd": DAILY_USD, "estimate_usd": "0.01"},
    "breaker": {"failure_threshold": FAILURE_THRESHOLD, "cooldown_s": 0.2},
}


class ProviderHiccup(Exception):
    """A transient provider error: counts for retries and the breaker."""


def worker(spec: dict[str, Any]) -> None:
    """Spend on one run until a cap or a halt refuses (then write why), waiting out breaker trips."""
    from agentfuse import CircuitOpen, Halted, enforce

    guard = enforce(make_policy(**POLICY), run_id=spec["run_id"], store=spec["store"])
    client = FakeClient(counter_file=Path(spec["calls_file"]))
    rng = random.Random(os.getpid())
    while True:
        try:
            with guard.step() as step:
                time.sleep(rng.uniform(0.005, 0.03))  # the request in flight: kills land here too
                client.chat.completions.create()
                if rng.random() < 0.08:
                    raise ProviderHiccup("503")
                step.record(cost_usd=rng.choice(("0.002", "0.005", "0.01")))
        except CircuitOpen:
            time.sleep(0.02)
        except ProviderHiccup:
            pass
        except Halted as exc:
            guard.close()
            Path(spec["done_file"]).write_text(exc.reason, encoding="utf-8")
            return


def start(spec: dict[str, Any]) -> multiprocessing.process.BaseProcess:
    """Fork a worker: no interpreter start-up, so a restart is as fast as a supervisor's."""
    process = multiprocessing.get_context("fork").Process(target=worker, args=(spec,), daemon=True)
    process.start()
    return process


# -- reading the books ------------------------------------------------------------------------------


def ledger_of(store: Store, run_id: str) -> list[tuple[int, int | None]]:
    """(estimate, cost or None while unsettled) of every reservation of the run."""
    if isinstance(store, RedisStore):
        return list(store.ledger(AGENT, run_id).values())
    assert isinstance(store, SQLiteStore)
    with sqlite3.connect(store.path) as db:
        rows = db.execute(
            "SELECT estimate_micros, CASE WHEN settled_at IS NULL THEN NULL ELSE cost_micros END"
            " FROM ledger WHERE run_id = ?",
            (run_id,),
        ).fetchall()
    return [(int(estimate), None if cost is None else int(cost)) for estimate, cost in rows]


def check_the_books(store: Store, run_ids: list[str], seen_halts: set[tuple[str, str, str]], calls: int) -> None:
    run_cap, daily_cap = to_micros(RUN_USD), to_micros(DAILY_USD)
    total = steps = open_entries = 0
    for run_id in run_ids:
        run = store.get_run(run_id)
        assert run is not None
        ledger = ledger_of(store, run_id)
        assert all(estimate >= 0 and (cost is None or cost >= 0) for estimate, cost in ledger), run_id
        spent = sum(cost for _, cost in ledger if cost is not None)
        reserved = sum(estimate for estimate, cost in ledger if cost is None)
        assert (run.spent_micros, run.reserved_micros) == (spent, reserved), run_id
        assert run.steps == len(ledger), run_id
        assert run.spent_micros + run.reserved_micros <= run_cap, run_id
        total += spent + reserved
        steps += run.steps
        open_entries += sum(1 for _, cost in ledger if cost is None)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    day = store.agent_totals(AGENT, day_key=today, minute=int(time.time() // 60)).day_micros
    assert day == total <= daily_cap
    assert store.unsettled() == open_entries
    assert calls <= steps  # no request without its reservation
    now_halts = {(h.agent, h.run_id, h.reason) for h in store.halts()}
    assert seen_halts <= now_halts
    breaker = store.get_breaker(AGENT)
    assert breaker.state in set(BreakerState)
    if breaker.state is BreakerState.CLOSED:
        assert breaker.consecutive_failures < FAILURE_THRESHOLD and breaker.opened_at is None
        assert breaker.probe_id is None
    else:
        assert breaker.consecutive_failures >= FAILURE_THRESHOLD and breaker.opened_at is not None
        if breaker.state is BreakerState.OPEN:
            assert breaker.probe_id is None


# -- the controller ---------------------------------------------------------------------------------


def _spending_pids(calls_file: Path) -> set[int]:
    """Processes that have made at least one request (the fake client logs its pid per request)."""
    try:
        return {int(line) for line in calls_file.read_text(encoding="utf-8").split()}
    except FileNotFoundError:
        return set()


@pytest.fixture(params=("sqlite", "redis"))
def chaos_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return store_url(tmp_path / "state.db")
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url()


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_sigkilled_workers_never_break_the_books(chaos_url: str, tmp_path: Path) -> None:
    started = time.monotonic()
    calls_file = tmp_path / "calls"
    run_ids = [f"chaos-run-{n}" for n in range(WORKERS)]
    specs = {
        run_id: {"store": chaos_url, "run_id": run_id, "calls_file": str(calls_file),
                 "done_file": str(tmp_path / f"{run_id}.done")}
        for run_id in run_ids
    }
    workers = {run_id: start(spec) for run_id, spec in specs.items()}
    store: Store = RedisStore(chaos_url) if chaos_url.startswith("redis") else SQLiteStore.from_url(chaos_url)
    rng = random.Random(5)
    kills = kills_mid_spend = 0
    finished: dict[str, str] = {}
    seen_halts: set[tuple[str, str, str]] = set()
    operator_halt_at = started + 1.0
    try:
        while workers and time.monotonic() - started < HARD_LIMIT_S:
            for run_id, proc in list(workers.items()):
                if proc.exitcode is not None:
                    assert proc.exitcode == 0, f"{run_id} exited with {proc.exitcode}"
                    finished[run_id] = Path(specs[run_id]["done_file"]).read_text(encoding="utf-8")
                    del workers[run_id]
            if operator_halt_at and time.monotonic() >= operator_halt_at:
                store.halt(HaltRecord(AGENT, run_ids[-1], "chaos_operator", "operator", time.time()))
                operator_halt_at = 0.0
            seen_halts |= {(h.agent, h.run_id, h.reason) for h in store.halts(AGENT)}
            if kills < MIN_KILLS and workers:
                spending = _spending_pids(calls_file)
                candidates = sorted(run_id for run_id, proc in workers.items() if proc.pid in spending)
                victim = rng.choice(candidates or sorted(workers))
                proc = workers[victim]
                proc.kill()
                proc.join()
                if proc.exitcode == -signal.SIGKILL:  # not a worker that had just finished
                    kills += 1
                    kills_mid_spend += bool(candidates)
                    workers[victim] = start(specs[victim])  # resumes its run id
            time.sleep(KILL_EVERY_S)
    finally:
        for proc in workers.values():
            proc.kill()
            proc.join()
    elapsed = time.monotonic() - started
    assert kills >= MIN_KILLS and kills_mid_spend >= MIN_KILLS // 2, (kills, kills_mid_spend)
    assert elapsed < 60
    seen_halts |= {(h.agent, h.run_id, h.reason) for h in store.halts(AGENT)}
    check_the_books(store, run_ids, seen_halts, count_lines(calls_file))
    assert (AGENT, run_ids[-1], "chaos_operator") in seen_halts
    assert set(finished.values()) <= {"run_budget", "daily_budget", "chaos_operator"}
    assert len(finished) == WORKERS, f"only {sorted(finished)} reached a cap or halt in {elapsed:.1f}s"


@pytest.fixture
def persistent_server(tmp_path: Path) -> Iterator[RedisServer]:
    yield from running_server(tmp_path, persistent=True)


@pytest.mark.slow
def test_redis_killed_mid_run_refuses_calls_until_it_is_back(persistent_server: RedisServer) -> None:
    from agentfuse import BudgetExceeded, StoreUnavailable, enforce

    guard = enforce(make_policy(budget={"run_usd": "1.00", "estimate_usd": "0.01"}), store=persistent_server.url())
    client = FakeClient()

    def call() -> None:
        with guard.step() as step:
            client.chat.completions.create()
            step.record(cost_usd="0.01")

    for _ in range(40):
        call()
    with guard.step():  # the server dies while this request is in flight
        client.chat.completions.create()
        persistent_server.kill()
    for _ in range(3):
        with pytest.raises(StoreUnavailable, match="failing closed"):
            call()
    assert client.calls == 41
    persistent_server.start()
    refusal = None
    for _ in range(200):
        try:
            call()
        except BudgetExceeded as exc:
            refusal = exc
            break
    assert refusal is not None and refusal.reason == "run_budget"
    assert client.calls == 100  # the in-flight request was counted; nothing was spent untracked
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.spent_micros + run.reserved_micros == 1_000_000
    assert guard.store.unsettled(guard.run_id) == run.reserved_micros // 10_000
