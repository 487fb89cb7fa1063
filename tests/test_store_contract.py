"""One contract suite for every Store backend: the same behaviour from SQLite and from Redis.

Each test runs against a fresh SQLite file and a fresh key prefix on a real ``redis-server``
(started on a free loopback port, no persistence). The Redis store runs with ``clock=client`` here
so an injected clock drives both backends alike; ``test_redis_store.py`` covers Redis ``TIME``.
The last tests replay one random sequence of operations on both backends and demand identical
results, which checks the Lua scripts against the Python decision rules they mirror.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfuse.runtime import stores
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    BooksLoss,
    BooksStore,
    CapDeclaration,
    BreakerRecord,
    BreakerSpec,
    BreakerState,
    GateRequest,
    GateResult,
    HaltRecord,
    OperatorStore,
    Outcome,
    RateLimitSpec,
    Settlement,
    Store,
)
from agentfuse.runtime.stores.redis import RedisStore
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.redis_server import RedisServer
from tests.runtime_helpers import start_worker

NOW = 1_800_000_000.0
DAY = "2027-01-15"

StoreFactory = Callable[[], Store]


@pytest.fixture
def open_store(url: str) -> Iterator[StoreFactory]:
    """A function opening another handle on the test's store (``url`` of conftest.py)."""
    opened: list[Store] = []

    def make() -> Store:
        opened.append(stores.open_store(url))
        return opened[-1]

    yield make
    for store in opened:
        store.close()


def gate(
    store: Store,
    run_id: str,
    rid: str,
    estimate: int = 10_000,
    *,
    agent: str = "a",
    action: str = "call",
    now: float = NOW,
    **options: Any,
) -> GateResult:
    return store.gate(
        GateRequest(rid, agent, run_id, action, estimate, now, DAY, int(now // 60), **options)
    )


def settle(
    store: Store,
    run_id: str,
    rid: str,
    cost: int,
    outcome: Outcome = Outcome.SUCCESS,
    *,
    agent: str = "a",
    action: str = "call",
    now: float = NOW,
    **options: Any,
) -> Any:
    return store.settle(Settlement(rid, agent, run_id, action, cost, now, outcome, **options))


def open_run(store: Store, run_id: str, cap: int | None = None, parent: str | None = None, agent: str = "a") -> Any:
    return store.open_run(run_id, agent=agent, parent_id=parent, cap_micros=cap, now=NOW)


# -- runs -----------------------------------------------------------------------------------------


def test_open_run_creates_once_and_returns_the_existing_run_unchanged(store: Store) -> None:
    first = open_run(store, "r", cap=5)
    assert (first.run_id, first.agent, first.cap_micros, first.started_at) == ("r", "a", 5, NOW)
    again = store.open_run("r", agent="a", parent_id=None, cap_micros=99, now=NOW + 100)
    assert again == first == store.get_run("r")
    assert store.get_run("missing") is None
    with pytest.raises(KeyError):
        open_run(store, "c", parent="missing")
    assert store.get_run("c") is None


def test_a_run_resumed_from_another_handle_keeps_spend_counters_and_start(open_store: StoreFactory) -> None:
    writer = open_store()
    open_run(writer, "r", cap=50_000)
    for rid in ("1", "2"):
        assert gate(writer, "r", rid).allowed
    settle(writer, "r", "1", 4_000, Outcome.FAILURE)
    reader = open_store()
    run = reader.get_run("r")
    assert run is not None
    assert (run.spent_micros, run.reserved_micros, run.steps, run.failures, run.started_at) == (
        4_000, 10_000, 2, 1, NOW,
    )


# -- money ----------------------------------------------------------------------------------------


def test_settle_once_and_unsettled_reservations_stay_counted(store: Store) -> None:
    open_run(store, "r", cap=30_000)
    assert gate(store, "r", "1").allowed and gate(store, "r", "2").allowed
    assert settle(store, "r", "1", 7_000).settled
    assert not settle(store, "r", "1", 7_000).settled
    assert not settle(store, "r", "unknown", 7_000).settled
    run = store.get_run("r")
    assert run is not None and (run.spent_micros, run.reserved_micros, run.steps) == (7_000, 10_000, 2)
    assert store.unsettled("r") == 1 and store.unsettled() == 1
    totals = store.agent_totals("a", day_key=DAY, minute=int(NOW // 60))
    assert totals.day_micros == totals.hour_micros == 17_000
    assert gate(store, "r", "3").allowed
    refused = gate(store, "r", "4")
    assert refused.refusal is not None and refused.refusal.reason == "run_budget"
    assert refused.refusal.figures["used_usd"] == "0.027" and refused.refusal.figures["cap_usd"] == "0.03"


def test_hundred_cent_reservations_under_a_dollar_cap_are_exactly_one_hundred(store: Store) -> None:
    open_run(store, "r", cap=1_000_000)
    admitted = 0
    for n in range(150):
        if not gate(store, "r", str(n)).allowed:
            break
        settle(store, "r", str(n), 10_000)
        admitted += 1
    run = store.get_run("r")
    assert admitted == 100 and run is not None and run.spent_micros == 1_000_000


def test_a_spent_cap_refuses_even_a_call_with_no_estimate(store: Store) -> None:
    open_run(store, "r", cap=20_000)
    for rid in ("1", "2"):
        assert gate(store, "r", rid, 0, daily_cap_micros=50_000).allowed
        settle(store, "r", rid, 10_000)
    refused = gate(store, "r", "3", 0)
    assert refused.refusal is not None and refused.refusal.reason == "run_budget"
    open_run(store, "other")
    daily = gate(store, "other", "4", 0, daily_cap_micros=20_000)
    assert daily.refusal is not None and daily.refusal.reason == "daily_budget"


def test_a_refused_gate_writes_nothing_but_its_halt(store: Store) -> None:
    open_run(store, "r")
    open_run(store, "capped", cap=5_000)
    daily = gate(store, "r", "1", daily_cap_micros=5_000)
    assert daily.refusal is not None and daily.refusal.reason == "daily_budget" and daily.halt is None
    assert store.halts() == [] and store.unsettled() == 0
    run = store.get_run("r")
    assert run is not None and (run.reserved_micros, run.steps) == (0, 0)
    budget = gate(store, "capped", "2")
    assert budget.refusal is not None and budget.refusal.reason == "run_budget"
    (halt,) = store.halts("a")
    assert halt == budget.halt
    assert (halt.run_id, halt.source, halt.figures["cap_usd"]) == ("capped", "budget", "0.005")
    assert store.agent_totals("a", day_key=DAY, minute=int(NOW // 60)).day_micros == 0


def test_children_count_against_every_ancestor(store: Store) -> None:
    open_run(store, "parent", cap=1_000_000)
    open_run(store, "a-child", cap=500_000, parent="parent")
    open_run(store, "b-child", cap=800_000, parent="parent")
    assert gate(store, "a-child", "1", 500_000).allowed
    settle(store, "a-child", "1", 500_000)
    refused = gate(store, "b-child", "2", 600_000)
    assert refused.refusal is not None and refused.refusal.reason == "ancestor_budget"
    assert refused.refusal.figures["capped_run"] == "parent"
    assert gate(store, "b-child", "halted", 1).refusal is not None  # the budget refusal halted it
    assert store.resume("a", "b-child") == 1
    assert gate(store, "b-child", "3", 500_000).allowed
    settle(store, "b-child", "3", 500_000)
    parent = store.get_run("parent")
    assert parent is not None and parent.spent_micros == 1_000_000 and parent.steps == 0
    assert gate(store, "parent", "4", 1).refusal is not None


def test_hourly_window_is_the_last_sixty_minute_buckets(store: Store) -> None:
    open_run(store, "r")
    cap = {"hourly_cap_micros": 20_000}
    for minute_offset in (0, 30):
        now = NOW + minute_offset * 60
        assert gate(store, "r", f"m{minute_offset}", now=now, **cap).allowed
        settle(store, "r", f"m{minute_offset}", 10_000, now=now)
    assert gate(store, "r", "full", now=NOW + 59 * 60, **cap).refusal is not None
    later = NOW + 60 * 60
    assert store.agent_totals("a", day_key=DAY, minute=int(later // 60)).hour_micros == 10_000
    assert gate(store, "r", "after", now=later, **cap).allowed
    assert store.agent_totals("a", day_key=DAY, minute=int(later // 60)).day_micros == 30_000


# -- tokens ---------------------------------------------------------------------------------------


def tokens_of(store: Store, run_id: str) -> tuple[int, int]:
    run = store.get_run(run_id)
    assert run is not None
    return run.spent_tokens, run.reserved_tokens


def test_a_run_token_cap_admits_reservations_up_to_it_then_refuses_and_halts(store: Store) -> None:
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=NOW, token_cap=1_000)
    for rid in ("1", "2", "3"):
        assert gate(store, "r", rid, 0, estimate_tokens=300).allowed
    assert tokens_of(store, "r") == (0, 900)
    refused = gate(store, "r", "4", 0, estimate_tokens=300)
    assert refused.refusal is not None and refused.refusal.kind == "budget"
    assert refused.refusal.reason == "run_token_budget"
    assert {key: refused.refusal.figures[key] for key in ("used_tokens", "estimate_tokens", "cap_tokens")} == {
        "used_tokens": 900, "estimate_tokens": 300, "cap_tokens": 1_000,
    }
    assert "token cap" in refused.refusal.message and "budget.run_tokens" in refused.refusal.message
    (halt,) = store.halts("a")
    assert (halt.run_id, halt.reason, halt.source) == ("r", "run_token_budget", "budget")
    assert halt.figures["cap_tokens"] == 1_000
    assert tokens_of(store, "r") == (0, 900) and store.unsettled("r") == 3


def test_a_settlement_charges_the_reported_tokens_or_else_the_reservation(store: Store) -> None:
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=NOW, token_cap=1_000)
    assert gate(store, "r", "1", estimate_tokens=400).allowed
    assert settle(store, "r", "1", 5_000, tokens=100).settled
    assert tokens_of(store, "r") == (100, 0)
    assert gate(store, "r", "2", estimate_tokens=400).allowed
    assert settle(store, "r", "2", 5_000).settled  # no usage reported: the reservation is the charge
    assert tokens_of(store, "r") == (500, 0)
    assert gate(store, "r", "3", estimate_tokens=400).allowed
    assert settle(store, "r", "3", 5_000, tokens=650).settled  # more than reserved: counted in full
    assert tokens_of(store, "r") == (1_150, 0)
    refused = gate(store, "r", "4", 0)  # a spent token cap refuses a call that declares no tokens
    assert refused.refusal is not None and refused.refusal.reason == "run_token_budget"
    totals = store.agent_totals("a", day_key=DAY, minute=int(NOW // 60))
    assert (totals.day_tokens, totals.hour_tokens) == (1_150, 1_150)
    assert totals.day_micros == 15_000


def test_a_deferred_settlement_carries_its_tokens(store: Store) -> None:
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=NOW, token_cap=1_000)
    assert gate(store, "r", "1", estimate_tokens=600).allowed
    deferred = Settlement("1", "a", "r", "call", 1_000, NOW, Outcome.SUCCESS, breaker_counts=False, tokens=50)
    assert gate(store, "r", "2", estimate_tokens=900, settle_first=(deferred,)).allowed  # 50 + 900 fit
    assert tokens_of(store, "r") == (50, 900)
    assert store.unsettled("r") == 1


def test_children_tokens_count_against_every_ancestor(store: Store) -> None:
    store.open_run("parent", agent="a", parent_id=None, cap_micros=None, now=NOW, token_cap=1_000)
    store.open_run("child", agent="a", parent_id="parent", cap_micros=None, now=NOW, token_cap=800)
    assert gate(store, "child", "1", estimate_tokens=600).allowed
    settle(store, "child", "1", 0, tokens=700)
    assert tokens_of(store, "parent") == (700, 0) and tokens_of(store, "child") == (700, 0)
    open_run(store, "sibling", parent="parent")
    refused = gate(store, "sibling", "2", estimate_tokens=400)
    assert refused.refusal is not None and refused.refusal.reason == "ancestor_token_budget"
    assert refused.refusal.figures["capped_run"] == "parent"
    assert gate(store, "sibling", "3", estimate_tokens=300).refusal is not None  # the refusal halted it


def test_daily_and_hourly_token_windows_refuse_without_halting(store: Store) -> None:
    open_run(store, "r")
    caps = {"daily_token_cap": 1_000, "hourly_token_cap": 600}
    assert gate(store, "r", "1", estimate_tokens=400, **caps).allowed
    settle(store, "r", "1", 0, tokens=400)
    hourly = gate(store, "r", "2", estimate_tokens=300, **caps)
    assert hourly.refusal is not None and hourly.refusal.reason == "hourly_token_budget"
    assert hourly.halt is None and store.halts() == []
    later = NOW + 61 * 60  # the first call left the hour, not the day
    assert gate(store, "r", "3", estimate_tokens=500, now=later, **caps).allowed
    daily = gate(store, "r", "4", estimate_tokens=200, now=later, **caps)
    assert daily.refusal is not None and daily.refusal.reason == "daily_token_budget"
    assert daily.refusal.figures == {"used_tokens": 900, "estimate_tokens": 200, "cap_tokens": 1_000}
    assert "daily token cap" in daily.refusal.message and "budget.daily_tokens" in daily.refusal.message
    totals = store.agent_totals("a", day_key=DAY, minute=int(later // 60))
    assert (totals.day_tokens, totals.hour_tokens) == (900, 500)
    assert isinstance(store, OperatorStore)
    (day,) = [row for row in store.daily_spend("a") if row.day_key == DAY]
    assert (day.spent_tokens, day.reserved_tokens) == (400, 500)


def test_the_strictest_declared_token_cap_binds_every_gate_of_the_agent(store: Store) -> None:
    assert isinstance(store, BooksStore)
    open_run(store, "r")
    store.declare_caps(CapDeclaration("a", "h:/p1/policy.yaml", None, None, NOW, daily_tokens=500))
    store.declare_caps(CapDeclaration("a", "h:/p2/policy.yaml", 90_000, None, NOW, hourly_tokens=2_000))
    assert [(item.daily_tokens, item.hourly_tokens) for item in store.cap_declarations("a")] == [
        (500, None), (None, 2_000),
    ]
    assert gate(store, "r", "1", estimate_tokens=300).allowed  # the request itself caps no tokens
    refused = gate(store, "r", "2", estimate_tokens=300, daily_token_cap=5_000)
    assert refused.refusal is not None and refused.refusal.reason == "daily_token_budget"
    assert refused.refusal.figures["declared_by"] == "h:/p1/policy.yaml"
    assert refused.refusal.figures["cap_tokens"] == 500
    store.declare_caps(CapDeclaration("a", "h:/p1/policy.yaml", None, None, NOW))  # no caps: no declaration
    assert [item.policy for item in store.cap_declarations("a")] == ["h:/p2/policy.yaml"]


def test_a_gate_says_whether_a_token_cap_bound_it(store: Store) -> None:
    open_run(store, "free")
    assert not gate(store, "free", "1", estimate_tokens=10).tokens_capped
    assert gate(store, "free", "2", estimate_tokens=10, hourly_token_cap=1_000).tokens_capped
    store.open_run("capped", agent="a", parent_id=None, cap_micros=None, now=NOW, token_cap=1_000)
    assert gate(store, "capped", "3").tokens_capped


def test_reconciling_keeps_or_drops_the_reserved_tokens(store: Store) -> None:
    if not isinstance(store, OperatorStore):
        pytest.skip("an operator store")
    open_run(store, "r")
    assert gate(store, "r", "kept", estimate_tokens=300).allowed
    assert gate(store, "r", "dropped", estimate_tokens=200).allowed
    assert sorted(item.estimate_tokens for item in store.open_reservations("a")) == [200, 300]
    assert store.reconcile("kept", settle_as="reserved", reason="provider says it ran", now=NOW) is not None
    assert store.reconcile("dropped", settle_as="zero", reason="never sent", now=NOW) is not None
    assert tokens_of(store, "r") == (300, 0)


def test_threads_sharing_one_store_never_overspend(store: Store) -> None:
    open_run(store, "r", cap=1_000_000)
    admitted: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(40):
            rid = f"{n}-{i}"
            if gate(store, "r", rid).allowed:
                settle(store, "r", rid, 10_000)
                with lock:
                    admitted.append(rid)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run = store.get_run("r")
    assert len(admitted) == 100
    assert run is not None and (run.spent_micros, run.reserved_micros, run.steps) == (1_000_000, 0, 100)


@pytest.mark.slow
def test_eight_processes_race_on_one_daily_cap(url: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    policy = {"agent": "racer", "budget": {"daily_usd": "1.00", "estimate_usd": "0.01"}}
    workers = [
        start_worker({"store": url, "policy": policy, "go_file": str(go), "calls_file": str(tmp_path / "calls")})
        for _ in range(8)
    ]
    for proc in workers:
        assert proc.stdout is not None
        proc.stdout.readline()  # the worker has opened its run
    go.touch()
    calls = 0
    for proc in workers:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        calls += int(__import__("json").loads(out.strip().splitlines()[-1])["calls"])
    store = SQLiteStore.from_url(url) if url.startswith("sqlite") else RedisStore(url)
    totals = store.agent_totals("racer", day_key=_today(), minute=0)
    assert calls == 100 and totals.day_micros == 1_000_000
    assert len((tmp_path / "calls").read_text().splitlines()) == 100


def _today() -> str:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).date().isoformat()


# -- time never runs backwards for the books -------------------------------------------------------


def _gate_on(store: Store, rid: str, now: float, day: str, **options: Any) -> GateResult:
    return store.gate(GateRequest(rid, "a", "r", "call", 10_000, now, day, int(now // 60), **options))


def test_a_clock_stepped_back_never_reopens_the_hourly_or_daily_window(store: Store) -> None:
    open_run(store, "r")
    caps = {"hourly_cap_micros": 20_000, "daily_cap_micros": 30_000}
    assert _gate_on(store, "1", NOW, DAY, **caps).allowed
    settle(store, "r", "1", 20_000)  # the hour is full
    two_hours_back = _gate_on(store, "2", NOW - 7200, DAY, **caps)
    assert two_hours_back.refusal is not None and two_hours_back.refusal.reason == "hourly_budget"
    an_hour_on = NOW + 3600
    assert _gate_on(store, "3", an_hour_on, DAY, **caps).allowed
    settle(store, "r", "3", 10_000, now=an_hour_on)  # the day is full
    a_day_back = _gate_on(store, "4", an_hour_on - 86_400, "2027-01-14", **caps)
    assert a_day_back.refusal is not None and a_day_back.refusal.reason == "daily_budget"
    assert store.agent_totals("a", day_key="2027-01-14", minute=int((an_hour_on - 86_400) // 60)).day_micros == 0


def test_a_clock_stepped_back_neither_extends_a_deadline_nor_backdates_a_new_run(store: Store) -> None:
    open_run(store, "r")
    first = _gate_on(store, "1", NOW + 20, DAY, timeout_s=60.0)
    assert first.remaining_s == 40.0
    back = _gate_on(store, "2", NOW - 3600, DAY, timeout_s=60.0)
    assert back.remaining_s == 40.0  # the books' time stood still; it did not run backwards
    late = store.open_run("late", agent="a", parent_id=None, cap_micros=None, now=NOW - 3600)
    assert late.started_at == NOW + 20


def test_a_breaker_opened_while_the_clock_is_back_keeps_its_whole_cooldown(store: Store) -> None:
    open_run(store, "r")
    spec = BreakerSpec(failure_threshold=1, cooldown_s=60, probe_lease_s=60)
    assert _gate_on(store, "1", NOW + 100, DAY, breaker=spec).allowed
    opened = settle(store, "r", "1", 0, Outcome.FAILURE, now=NOW - 7200, breaker=spec)
    assert opened.breaker_transition is BreakerState.OPEN and store.get_breaker("a").opened_at == NOW + 100
    refused = _gate_on(store, "2", NOW - 7000, DAY, breaker=spec)
    assert refused.refusal is not None and refused.refusal.kind == "circuit_open"
    assert _gate_on(store, "3", NOW + 161, DAY, breaker=spec).probe


# -- the books' identity and declared caps ---------------------------------------------------------


def test_an_identity_is_created_once_and_a_reset_is_recorded_as_a_loss(open_store: StoreFactory) -> None:
    first, second = open_store(), open_store()
    assert isinstance(first, BooksStore) and isinstance(second, BooksStore)
    assert first.identity("a") is None
    made = first.create_identity("a", now=NOW)
    assert second.create_identity("a", now=NOW + 5) == made == second.identity("a")
    assert made.reset_reason is None and made.created_at == NOW
    reset = second.reset_identity("a", now=NOW + 9, reason="redis restarted empty", previous=made.identity)
    assert reset.identity != made.identity and first.identity("a") == reset
    assert first.losses("a") == [BooksLoss("a", NOW + 9, "redis restarted empty", made.identity, reset.identity)]
    assert first.losses("b") == [] and first.identity("b") is None


def test_a_handle_that_pinned_the_books_refuses_once_they_change(open_store: StoreFactory) -> None:
    from agentfuse import StoreUnavailable

    agent_side, operator = open_store(), open_store()
    assert isinstance(agent_side, BooksStore) and isinstance(operator, BooksStore)
    open_run(agent_side, "r")
    agent_side.pin_identity("a", agent_side.create_identity("a", now=NOW).identity)
    assert gate(agent_side, "r", "1").allowed
    operator.reset_identity("a", now=NOW, reason="test", previous="")
    with pytest.raises(StoreUnavailable, match="changed under this process") as refused:
        gate(agent_side, "r", "2")
    assert refused.value.reason == "store_lost"
    assert operator.unsettled("r") == 1  # nothing was reserved by the refused gate


def test_the_strictest_declared_cap_binds_every_gate_of_the_agent(store: Store) -> None:
    assert isinstance(store, BooksStore)
    open_run(store, "r")
    for policy, daily, hourly in (("h:/p1/policy.yaml", 30_000, None), ("h:/p2/policy.yaml", 90_000, 50_000)):
        store.declare_caps(CapDeclaration("a", policy, daily, hourly, NOW))
    own = {"daily_cap_micros": 90_000, "hourly_cap_micros": 50_000}
    for rid in ("1", "2", "3"):
        assert gate(store, "r", rid, **own).allowed
    refused = gate(store, "r", "4", **own)
    assert refused.refusal is not None and refused.refusal.reason == "daily_budget"
    assert refused.refusal.figures["declared_by"] == "h:/p1/policy.yaml"
    assert refused.refusal.figures["cap_usd"] == "0.03"
    assert "agentfuse store caps --agent a --drop h:/p1/policy.yaml" in refused.refusal.message
    assert [item.policy for item in store.cap_declarations("a")] == ["h:/p1/policy.yaml", "h:/p2/policy.yaml"]
    assert store.drop_caps("a", "h:/p1/policy.yaml") == 1 and store.drop_caps("a", "h:/p1/policy.yaml") == 0
    assert gate(store, "r", "5", **own).allowed
    store.declare_caps(CapDeclaration("a", "h:/p2/policy.yaml", None, None, NOW))  # no caps: no declaration
    assert store.cap_declarations() == []


# -- counters and limits --------------------------------------------------------------------------


def test_failures_count_for_run_action_and_breaker_but_neutral_counts_nothing(store: Store) -> None:
    open_run(store, "r")
    for rid in ("1", "2"):
        gate(store, "r", rid)
        result = settle(store, "r", rid, 10_000, Outcome.FAILURE)
    assert (result.run_failures, result.action_failures, result.consecutive_failures) == (2, 2, 2)
    gate(store, "r", "3")
    neutral = settle(store, "r", "3", 10_000, Outcome.NEUTRAL)
    assert neutral.consecutive_failures == 2 and neutral.run_failures == 0
    gate(store, "r", "4")
    success = settle(store, "r", "4", 10_000)
    assert success.consecutive_failures == 0 and store.get_breaker("a").consecutive_failures == 0
    run = store.get_run("r")
    assert run is not None and run.failures == 2


@pytest.mark.parametrize(
    ("options", "kind", "halts"),
    [
        ({"max_steps": 2}, "max_steps", True),
        ({"max_retries_total": 1}, "max_retries_total", True),
        ({"timeout_s": 30.0}, "timeout", True),
        ({"max_attempts": 2}, "max_attempts", False),
    ],
)
def test_step_retry_deadline_and_attempt_limits(store: Store, options: dict[str, Any], kind: str, halts: bool) -> None:
    open_run(store, "r")
    for n in range(2):
        first = gate(store, "r", str(n), now=NOW + n, **options)
        assert first.allowed
        if "timeout_s" in options:
            assert first.remaining_s == 30.0 - n
        settle(store, "r", str(n), 1_000, Outcome.FAILURE)
    refused = gate(store, "r", "late", now=NOW + 40, **options)
    assert refused.refusal is not None and refused.refusal.kind == kind
    assert (refused.halt is not None) == halts
    assert [halt.reason for halt in store.halts("a")] == ([kind] if halts else [])


def test_rate_limit_admits_max_in_its_window_then_cools_down(store: Store) -> None:
    open_run(store, "r")
    spec = RateLimitSpec("login", max=2, window_s=900, cooldown_s=1800)
    results = [
        gate(store, "r", str(n), action="login", now=NOW + n, rate_limit=spec) for n in range(3)
    ]
    assert [r.allowed for r in results] == [True, True, False]
    assert results[1].rate_limit_tripped and not results[0].rate_limit_tripped
    assert results[2].refusal is not None and results[2].refusal.kind == "rate_limited"
    assert not gate(store, "r", "w", action="login", now=NOW + 1000, rate_limit=spec).allowed
    assert gate(store, "r", "x", action="other", now=NOW + 1000).allowed
    assert gate(store, "r", "y", action="login", now=NOW + 1802, rate_limit=spec).allowed


def test_breaker_opens_refuses_then_lets_one_probe_decide(store: Store) -> None:
    open_run(store, "r")
    spec = BreakerSpec(failure_threshold=3, cooldown_s=60, probe_lease_s=60)
    for n in range(3):
        gate(store, "r", str(n), breaker=spec)
        result = settle(store, "r", str(n), 0, Outcome.FAILURE, breaker=spec)
    assert result.breaker_transition is BreakerState.OPEN
    record = store.get_breaker("a")
    assert (record.state, record.consecutive_failures, record.opened_at) == (BreakerState.OPEN, 3, NOW)
    refused = gate(store, "r", "early", now=NOW + 59, breaker=spec)
    assert refused.refusal is not None and refused.refusal.kind == "circuit_open"
    probe = gate(store, "r", "probe", now=NOW + 61, breaker=spec)
    assert probe.probe and probe.breaker_transition is BreakerState.HALF_OPEN
    assert store.get_breaker("a").probe_id == "probe"
    assert not gate(store, "r", "second", now=NOW + 62, breaker=spec).allowed
    reopened = settle(store, "r", "probe", 0, Outcome.FAILURE, now=NOW + 63, breaker=spec)
    assert reopened.breaker_transition is BreakerState.OPEN and store.get_breaker("a").opened_at == NOW + 63
    assert gate(store, "r", "again", now=NOW + 124, breaker=spec).probe
    closed = settle(store, "r", "again", 0, now=NOW + 125, breaker=spec)
    assert closed.breaker_transition is BreakerState.CLOSED
    assert store.get_breaker("a") == BreakerRecord()


def test_a_dead_probers_lease_lapses_and_a_neutral_probe_frees_it(store: Store) -> None:
    open_run(store, "r")
    spec = BreakerSpec(failure_threshold=1, cooldown_s=10, probe_lease_s=30)
    gate(store, "r", "0", breaker=spec)
    settle(store, "r", "0", 0, Outcome.FAILURE, breaker=spec)
    assert gate(store, "r", "dead", now=NOW + 11, breaker=spec).probe  # never settled
    assert not gate(store, "r", "wait", now=NOW + 40, breaker=spec).allowed
    assert gate(store, "r", "next", now=NOW + 41.5, breaker=spec).probe
    settle(store, "r", "next", 0, Outcome.NEUTRAL, now=NOW + 42, breaker=spec)
    record = store.get_breaker("a")
    assert record.state is BreakerState.HALF_OPEN and record.probe_id is None
    assert gate(store, "r", "free", now=NOW + 43, breaker=spec).probe


# -- halts ----------------------------------------------------------------------------------------


def test_halts_are_durable_scoped_and_cleared_only_by_resume(open_store: StoreFactory) -> None:
    store = open_store()
    open_run(store, "r1")
    open_run(store, "r2")
    open_run(store, "child", parent="r1")
    open_run(store, "other", agent="b")
    store.halt(HaltRecord("a", "r1", "maintenance", "operator", NOW, {"by": "ops"}))
    assert gate(store, "child", "1").refusal is not None  # a parent's halt halts its children
    assert gate(store, "r2", "2").allowed
    store.halt(HaltRecord("b", AGENT_WIDE, "kill_switch", "kill_switch", NOW + 1))
    refused = gate(store, "other", "3", agent="b")
    assert refused.refusal is not None and refused.refusal.reason == "kill_switch"
    assert refused.refusal.figures["halted_run"] == AGENT_WIDE
    again = open_store()  # another process sees the same halts
    assert [(h.agent, h.run_id, h.reason) for h in again.halts()] == [
        ("a", "r1", "maintenance"), ("b", "", "kill_switch"),
    ]
    assert again.halts("a")[0].figures == {"by": "ops"}
    assert again.resume("a", "r1") == 1 and again.resume("a", "r1") == 0
    assert again.resume("b") == 1
    assert gate(store, "child", "4").allowed and gate(store, "other", "5", agent="b").allowed


def test_a_fail_fast_halt_is_written_with_the_settlement(store: Store) -> None:
    open_run(store, "r")
    gate(store, "r", "1")
    halt = HaltRecord("a", "r", "fail_fast", "fail_fast", NOW, {"exception": "PermissionError"})
    settle(store, "r", "1", 10_000, Outcome.FAILURE, halt=halt)
    assert store.halts("a") == [halt]
    refused = gate(store, "r", "2")
    assert refused.refusal is not None and refused.refusal.reason == "fail_fast"


# -- both backends agree ----------------------------------------------------------------------------


def _random_operations(seed: int, count: int = 400, steps_back: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """A reproducible mix of gates (some carrying deferred settlements), settlements, halts,
    resumes and clock moves (``steps_back``: some moves go back, up to a day)."""
    rng = random.Random(seed)
    now = NOW
    runs = ["root"]
    open_reservations: list[tuple[str, str, str]] = []
    ops: list[tuple[str, dict[str, Any]]] = [
        ("open", {"run_id": "root", "cap": 1_500_000, "parent": None, "token_cap": 60_000})
    ]
    for n in range(count):
        roll = rng.random()
        now += rng.choice((0.0, 0.5, 3.0, 30.0, 200.0))
        day = DAY
        if steps_back and rng.random() < 0.1:
            now -= rng.choice((2.0, 7200.0, 86_400.0))
            day = "2027-01-14" if rng.random() < 0.5 else DAY
        if roll < 0.06:
            run_id = f"run{n}"
            ops.append(("open", {"run_id": run_id, "cap": rng.choice((None, 100_000, 300_000)),
                                 "parent": rng.choice(runs), "token_cap": rng.choice((None, None, 8_000))}))
            runs.append(run_id)
        elif roll < 0.55:
            run_id, action = rng.choice(runs), rng.choice(("call", "login", "publish"))
            rid = f"g{n}"
            deferred = []
            while open_reservations and rng.random() < 0.25:
                done, done_run, done_action = open_reservations.pop(rng.randrange(len(open_reservations)))
                deferred.append({"rid": done, "run_id": done_run, "action": done_action, "now": now,
                                 "outcome": Outcome.SUCCESS, "cost": rng.choice((0, 1_000)), "counts": False,
                                 "tokens": rng.choice((None, 0, 700))})
            ops.append(("gate", {
                "settle_first": tuple(deferred),
                "rid": rid, "run_id": run_id, "action": action, "now": now, "day": day,
                "estimate": rng.choice((0, 1_000, 10_000, 25_000)),
                "breaker": BreakerSpec(failure_threshold=3, cooldown_s=60.0, probe_lease_s=90.0),
                "rate_limit": RateLimitSpec("login", 2, 300.0, 120.0) if action == "login" else None,
                "daily_cap_micros": 600_000, "hourly_cap_micros": 250_000, "max_steps": 40,
                "max_retries_total": 6, "timeout_s": 20_000.0, "max_attempts": 4,
                "estimate_tokens": rng.choice((0, 500, 1_500)), "daily_token_cap": 45_000,
                "hourly_token_cap": rng.choice((None, 20_000)),
            }))
            open_reservations.append((rid, run_id, action))
        elif roll < 0.8 and open_reservations:
            rid, run_id, action = open_reservations.pop(rng.randrange(len(open_reservations)))
            outcome = rng.choice((Outcome.SUCCESS, Outcome.SUCCESS, Outcome.FAILURE, Outcome.NEUTRAL))
            ops.append(("settle", {
                "rid": rid, "run_id": run_id, "action": action, "now": now, "outcome": outcome,
                "cost": rng.choice((0, 500, 10_000, 30_000)), "counts": rng.random() < 0.8,
                "tokens": rng.choice((None, 0, 400, 2_500)),
            }))
        elif roll < 0.83:
            ops.append(("halt", {"run_id": rng.choice(runs * 8 + [AGENT_WIDE]), "now": now}))
        else:
            ops.append(("resume", {"run_id": rng.choice(runs + [AGENT_WIDE] * 3)}))
    return ops


def _settlement(args: dict[str, Any]) -> Settlement:
    return Settlement(
        args["rid"], "a", args["run_id"], args["action"], args["cost"], args["now"], args["outcome"],
        breaker_counts=args["counts"], breaker=BreakerSpec(failure_threshold=3, cooldown_s=60.0, probe_lease_s=90.0),
        tokens=args["tokens"],
    )


def _apply(store: Store, op: str, args: dict[str, Any]) -> Any:
    if op == "open":
        return store.open_run(
            args["run_id"], agent="a", parent_id=args["parent"], cap_micros=args["cap"], now=NOW,
            token_cap=args["token_cap"],
        )
    if op == "gate":
        a = dict(args)
        rid, run_id, action, now, estimate, day = (
            a.pop(k) for k in ("rid", "run_id", "action", "now", "estimate", "day")
        )
        a["settle_first"] = tuple(_settlement(deferred) for deferred in a["settle_first"])
        return store.gate(GateRequest(rid, "a", run_id, action, estimate, now, day, int(now // 60), **a))
    if op == "settle":
        return store.settle(_settlement(args))
    if op == "halt":
        return store.halt(HaltRecord("a", args["run_id"], "operator_pause", "operator", args["now"], {"n": 1}))
    return store.resume("a", args["run_id"])


def _state(store: Store, run_ids: list[str]) -> Any:
    return (
        [store.get_run(run_id) for run_id in run_ids],
        store.halts("a"),
        store.get_breaker("a"),
        store.agent_totals("a", day_key=DAY, minute=int(NOW // 60) + 10_000),
        store.unsettled(),
    )


@pytest.mark.parametrize(("seed", "steps_back"), [*((seed, False) for seed in range(8)), (14, True), (29, True)])
def test_sqlite_and_redis_give_identical_results_for_one_random_history(
    seed: int, steps_back: bool, tmp_path: Path, redis_server: RedisServer
) -> None:
    sqlite_store = SQLiteStore(tmp_path / "state.db")
    redis_store = RedisStore(redis_server.url(clock="client"))
    ops = _random_operations(seed, steps_back=steps_back)
    refusals: set[str] = set()
    reasons: set[str] = set()
    for index, (op, args) in enumerate(ops):
        expected = _apply(sqlite_store, op, args)
        actual = _apply(redis_store, op, args)
        assert actual == expected, f"operation {index} {op} {args}"
        if isinstance(expected, GateResult) and expected.refusal is not None:
            refusals.add(expected.refusal.kind)
            reasons.add(expected.refusal.reason)
    run_ids = [args["run_id"] for op, args in ops if op == "open"]
    assert _state(redis_store, run_ids) == _state(sqlite_store, run_ids)
    assert len(refusals) >= 3, refusals  # the history exercised several gates, not only the happy path
    assert steps_back or any("token" in reason for reason in reasons), reasons  # and the token caps
    redis_store.close()
    sqlite_store.close()
