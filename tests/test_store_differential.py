"""SQLite and Redis decide alike: random histories run on both, compared operation by operation.

The gate rules exist twice, as Python (:mod:`agentfuse.runtime.decisions`, used by the SQLite
store) and as Lua (``agentfuse/runtime/stores/lua/``). Hypothesis draws histories of two agents
and runs each against a real SQLite file and a real ``redis-server`` (``clock=client``, so one
injected clock drives both): runs and child runs (some of the other agent) with money and token
caps; gates allowed and refused (every cap, steps, retries, deadline, attempts, rate limits,
breakers opening and probing, halts) with deferred settlements riding along; settlements of every
outcome (some with a fail-fast halt, some of a reservation already settled); operator halts and
resumes; reconciliations; other policies' declared caps; a clock that jumps ahead and steps back.
Every result must be equal field by field (allowed or refused, reason, message, figures, the halt
written, probe, breaker transition, remaining time, usage fraction), and so must the books after
each operation: every run's money, tokens, steps and failures, the halts, the breakers, both
agents' daily and hourly windows, the open reservations; at the end also the day buckets, the
declarations and the reconciliations. Orders the stores leave open (ties) are not compared.

The examples are fixed (``derandomize``), so the coverage check is stable; ``bench/
store_differential.py`` runs fresh random histories for as long as one likes. The last tests
are divergences the histories found, each kept as a plain example.
"""

from __future__ import annotations

import collections
import datetime
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from agentfuse.runtime.stores.base import (
    BreakerRecord,
    BreakerSpec,
    CapDeclaration,
    GateRequest,
    GateResult,
    HaltRecord,
    Outcome,
    RateLimitSpec,
    Settlement,
)
from agentfuse.runtime.stores.redis import RedisStore
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.redis_server import RedisServer

START = 1_800_000_000.0
AGENTS = ("a", "b")

Operation = tuple[str, dict[str, Any]]
Reservation = tuple[str, str, str, str]
"""(reservation id, run id, agent, action) of a gate the history let through."""


def _maybe(*values: Any) -> st.SearchStrategy[Any]:
    """One of ``values`` or ``None``, as often as each value."""
    return st.sampled_from((None, *values))


PICK = st.integers(0, 10**6)
"""Which of the runs or reservations at hand an operation takes (modulo their number)."""
BREAKER = st.builds(
    BreakerSpec,
    key=st.sampled_from(("", "", "", "model-x")),
    failure_threshold=st.sampled_from((1, 2, 3)),
    cooldown_s=st.sampled_from((60.0, 300.0)),
    probe_lease_s=st.sampled_from((90.0, 30.0)),
)
SETTLE = st.fixed_dictionaries(
    {
        "pick": PICK,
        "cost_micros": st.sampled_from((10_000, 0, 500, 30_000, 90_000)),
        "outcome": st.sampled_from((Outcome.SUCCESS, Outcome.FAILURE, Outcome.SUCCESS, Outcome.NEUTRAL)),
        "breaker_counts": st.sampled_from((True, True, False)),
        "breaker": BREAKER,
        "tokens": st.sampled_from((400, None, 0, 2_500)),
        "fail_fast": st.sampled_from((False,) * 7 + (True,)),
    }
)
GATE = st.fixed_dictionaries(
    {
        "run": PICK,
        "action": st.sampled_from(("call", "login", "call", "publish")),
        "rate_cooldown_s": st.sampled_from((0.0, 120.0)),
        "deferred": st.lists(SETTLE, max_size=2),
        "estimate_micros": st.sampled_from((10_000, 0, 1_000, 1_000, 25_000, 60_000)),
        "estimate_tokens": st.sampled_from((500, 0, 0, 1_500)),
        "daily_cap_micros": st.sampled_from((250_000, None, 3_000_000)),
        "hourly_cap_micros": st.sampled_from((350_000, None, None)),
        "max_steps": st.sampled_from((None, 12, 40)),
        "max_retries_total": st.sampled_from((None, 1, 4)),
        "timeout_s": st.sampled_from((None, 20_000.5, 2_000.0)),
        "max_attempts": st.sampled_from((None, 2, 1)),
        "daily_token_cap": st.sampled_from((30_000, None, None)),
        "hourly_token_cap": st.sampled_from((8_000, None, None)),
        "breaker": BREAKER,
    }
)
ARGUMENTS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "gate": GATE,
    "settle": SETTLE,
    "clock": st.fixed_dictionaries({"step": st.sampled_from(
        (30.0, 0.0, 0.1, 0.5, 3.0, 59.9, 200.0, 1800.0, 3600.0, 86_400.0, -2.0, -7200.0, -86_400.0)
    )}),
    "open_run": st.fixed_dictionaries({
        "agent": st.sampled_from(AGENTS), "parent": PICK,
        "cap_micros": st.sampled_from((120_000, None, 50_000, 400_000)), "token_cap": _maybe(3_000, 10_000),
    }),
    "resume": st.fixed_dictionaries({"run": PICK, "agent_wide": st.sampled_from((True, False))}),
    "halt": st.fixed_dictionaries({"run": PICK, "agent_wide": st.booleans()}),
    "settle_again": SETTLE,
    "reconcile": st.fixed_dictionaries({"pick": PICK, "zero": st.booleans()}),
    "declare_caps": st.fixed_dictionaries({
        "agent": st.sampled_from(AGENTS), "policy": st.sampled_from(("host:/etc/p1.yaml", "host:/etc/p2.yaml")),
        "daily_micros": _maybe(500_000), "hourly_micros": _maybe(200_000),
        "daily_tokens": _maybe(20_000), "hourly_tokens": _maybe(6_000),
    }),
}
KINDS = (
    ("gate",) * 10 + ("settle",) * 5 + ("clock",) * 3 + ("open_run", "resume", "resume")
    + ("halt", "settle_again", "reconcile", "declare_caps")
)
"""Gates, settlements and clock moves weigh more than the operators' acts."""
OPERATION = st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), ARGUMENTS[kind]))
HISTORY = st.lists(OPERATION, min_size=25, max_size=70)


def _day(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.timezone.utc).date().isoformat()


class TwoStores:
    """One history's books, kept on a fresh SQLite file and a fresh Redis prefix at once."""

    def __init__(self, server: RedisServer, coverage: collections.Counter[str]) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="agentfuse-differential-"))
        self.sqlite = SQLiteStore(self.folder / "state.db")
        self.redis = RedisStore(server.url(clock="client"))
        self.coverage = coverage
        self.now = START
        self.latest = START
        self.runs: list[tuple[str, str]] = []  # (run id, agent)
        self.open: list[Reservation] = []
        self.settled: list[Reservation] = []
        self.count = 0
        self.booked = {agent: (0.0, "") for agent in AGENTS}
        """agent -> time and day of its latest reservation: the books' clock, which never goes back."""
        for agent, cap, tokens in (("a", 300_000, 8_000), ("b", None, None)):
            self.open_root(f"root-{agent}", agent, cap, tokens)

    def close(self) -> None:
        self.sqlite.close()
        self.redis.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def both(self, what: str, operation: Callable[[Any], Any]) -> Any:
        """Apply one operation to both stores and demand the same result (or the same exception)."""
        results = []
        for store in (self.sqlite, self.redis):
            try:
                results.append(("returned", operation(store)))
            except Exception as exc:  # noqa: BLE001 - compared below, not swallowed
                results.append(("raised", f"{type(exc).__name__}: {exc.args[:1]}"))
        sqlite_result, redis_result = results
        assert redis_result == sqlite_result, (
            f"{what} at t={self.now!r}:\n sqlite {sqlite_result}\n redis  {redis_result}"
        )
        kind, value = sqlite_result
        assert kind == "returned", f"{what} raised on both stores: {value}"
        return value

    def apply(self, kind: str, args: dict[str, Any]) -> None:
        """One operation of the history, then the books compared."""
        getattr(self, kind)(**args)
        self.same_books()

    def next_id(self, kind: str) -> str:
        self.count += 1
        return f"{kind}{self.count}"

    # -- runs and the clock -----------------------------------------------------------------------

    def open_root(self, run_id: str, agent: str, cap: int | None, tokens: int | None) -> None:
        self.both(
            f"open_run {run_id}",
            lambda store: store.open_run(run_id, agent=agent, parent_id=None, cap_micros=cap, now=self.now,
                                         token_cap=tokens),
        )
        self.runs.append((run_id, agent))

    def open_run(self, agent: str, parent: int, cap_micros: int | None, token_cap: int | None) -> None:
        parent_id = self.runs[parent % len(self.runs)][0]
        run_id = self.next_id("run")
        self.both(
            f"open_run {run_id} under {parent_id}",
            lambda store: store.open_run(
                run_id, agent=agent, parent_id=parent_id, cap_micros=cap_micros, now=self.now, token_cap=token_cap
            ),
        )
        self.runs.append((run_id, agent))

    def clock(self, step: float) -> None:
        self.now += step
        self.latest = max(self.latest, self.now)

    # -- gates and settlements ----------------------------------------------------------------------

    def gate(
        self, run: int, action: str, rate_cooldown_s: float, deferred: list[dict[str, Any]], **options: Any
    ) -> None:
        run_id, agent = self.runs[run % len(self.runs)]
        settle_first = []
        for settle_options in deferred:
            mine = [entry for entry in self.open if entry[2] == agent]
            if mine:
                entry = mine[settle_options["pick"] % len(mine)]
                self.open.remove(entry)
                self.settled.append(entry)
                settle_first.append(self.settlement(entry, settle_options))
        rid = self.next_id("g")
        rate = RateLimitSpec("login", 2, 300.0, rate_cooldown_s) if action == "login" else None
        request = GateRequest(
            rid, agent, run_id, action, now=self.now, day_key=_day(self.now), minute=int(self.now // 60),
            rate_limit=rate, settle_first=tuple(settle_first), **options,
        )
        result: GateResult = self.both(f"gate {request}", lambda store: store.gate(request))
        if result.refusal is None:
            at, day = self.booked[agent]
            self.booked[agent] = (max(at, self.now), max(day, request.day_key))
            self.open.append((rid, run_id, agent, action))
            self.coverage["allowed"] += 1
            self.coverage["probe"] += result.probe
            self.coverage["rate_limit_tripped"] += result.rate_limit_tripped
        else:
            self.coverage[f"refused {result.refusal.kind} {result.refusal.reason}"] += 1
        if result.breaker_transition is not None:
            self.coverage[f"gate -> {result.breaker_transition.value}"] += 1

    def settlement(self, entry: Reservation, options: dict[str, Any]) -> Settlement:
        rid, run_id, agent, action = entry
        halt = None
        if options["fail_fast"] and options["outcome"] is Outcome.FAILURE:
            halt = HaltRecord(agent, run_id, "fail_fast", "fail_fast", self.now, {"exception": "PermissionError"})
        return Settlement(
            rid, agent, run_id, action, options["cost_micros"], self.now, options["outcome"],
            breaker_counts=options["breaker_counts"], breaker=options["breaker"], halt=halt, tokens=options["tokens"],
        )

    def settle(self, **options: Any) -> None:
        if not self.open:
            return
        entry = self.open.pop(options["pick"] % len(self.open))
        self.settled.append(entry)
        settlement = self.settlement(entry, options)
        result = self.both(f"settle {settlement}", lambda store: store.settle(settlement))
        assert result.settled
        if result.breaker_transition is not None:
            self.coverage[f"settle -> {result.breaker_transition.value}"] += 1

    def settle_again(self, **options: Any) -> None:
        """A reservation settled already: both stores change nothing and say so."""
        if self.settled:
            settlement = self.settlement(self.settled[options["pick"] % len(self.settled)], options)
            assert not self.both(f"settle again {settlement}", lambda store: store.settle(settlement)).settled

    def reconcile(self, pick: int, zero: bool) -> None:
        if not self.open:
            return
        entry = self.open.pop(pick % len(self.open))
        self.settled.append(entry)
        settle_as = "zero" if zero else "reserved"
        record = self.both(
            f"reconcile {entry} as {settle_as}",
            lambda store: store.reconcile(entry[0], settle_as=settle_as, reason="stale", now=self.now),
        )
        assert record is not None
        self.coverage["reconciled"] += 1

    # -- halts and declared caps --------------------------------------------------------------------

    def halt(self, run: int, agent_wide: bool) -> None:
        run_id, agent = self.runs[run % len(self.runs)]
        record = HaltRecord(agent, "" if agent_wide else run_id, "operator_pause", "operator", self.now, {"by": "ops"})
        self.both(f"halt {record}", lambda store: store.halt(record))

    def resume(self, run: int, agent_wide: bool) -> None:
        """Clear the halt of one run, or (``agent_wide``) every halt of its agent, one by one."""
        run_id, agent = self.runs[run % len(self.runs)]
        scopes = ["", *(other for other, owner in self.runs if owner == agent)] if agent_wide else [run_id]
        for scope in scopes:
            self.both(f"resume {agent} {scope!r}", lambda store: store.resume(agent, scope))

    def declare_caps(self, agent: str, policy: str, **caps: int | None) -> None:
        declaration = CapDeclaration(agent, policy, declared_at=self.now, **caps)
        self.both(f"declare_caps {declaration}", lambda store: store.declare_caps(declaration))

    # -- the books ------------------------------------------------------------------------------------

    def same_books(self) -> None:
        """The state both stores hold now (orders the stores leave open are sorted first).

        The windows are compared where a gate can read them: from the books' clock on (minute
        buckets older than the hour before the agent's latest reservation are pruned by each
        store on its own schedule; no gate reads them again).
        """
        windows = []
        for agent in AGENTS:
            at, day = self.booked[agent]
            for now in {self.now, self.latest}:
                windows.append((agent, max(day, _day(now)), int(max(at, now) // 60)))

        def books(store: Any) -> Any:
            return (
                sorted(store.list_runs(), key=lambda summary: summary.run.run_id),
                store.halts(),
                sorted(store.breakers()),
                [store.agent_totals(agent, day_key=day, minute=minute) for agent, day, minute in windows],
                store.unsettled(),
                sorted(store.open_reservations(), key=lambda item: (item.created_at, item.reservation_id)),
            )

        self.both("the books", books)

    def same_records(self) -> None:
        """What only operators read: the day buckets, the declarations, the reconciliations."""
        self.both(
            "the day buckets, declarations and reconciliations",
            lambda store: (
                store.daily_spend(),
                store.cap_declarations(),
                sorted(store.reconciliations(), key=lambda record: (record.at, record.reservation_id)),
                store.agents(),
            ),
        )


def _gate(**options: Any) -> Operation:
    """A gate of an explicit history: one call on root-a, no caps unless given."""
    return ("gate", {
        "run": 0, "action": "call", "rate_cooldown_s": 0.0, "deferred": [], "estimate_micros": 10_000,
        "estimate_tokens": 0, "daily_cap_micros": None, "hourly_cap_micros": None, "max_steps": None,
        "max_retries_total": None, "timeout_s": None, "max_attempts": None, "daily_token_cap": None,
        "hourly_token_cap": None, "breaker": BreakerSpec(failure_threshold=2, cooldown_s=60.0, probe_lease_s=30.0),
        **options,
    })


def _settle(outcome: Outcome = Outcome.SUCCESS, **options: Any) -> Operation:
    """The settlement of the oldest open reservation."""
    return ("settle", {
        "pick": 0, "cost_micros": 10_000, "outcome": outcome, "breaker_counts": True,
        "breaker": BreakerSpec(failure_threshold=2, cooldown_s=60.0, probe_lease_s=30.0), "tokens": None,
        "fail_fast": False, **options,
    })


FAILED = Outcome.FAILURE
BREAKER_HISTORY = [
    *[_gate(run=1, action="login")] * 3, _settle(), _settle(),  # root-b's rate limit, 2 per 300 s: fills, refuses
    _gate(), _settle(FAILED), _gate(), _settle(FAILED),  # root-a's breaker opens
    _gate(), ("clock", {"step": 61.0}), _gate(), _gate(),  # refused, then the probe, then refused (lease held)
    _settle(), _gate(), _settle(),  # the probe closes it
    _gate(), _settle(FAILED), _gate(), _settle(FAILED), ("clock", {"step": 61.0}), _gate(), _settle(FAILED),  # reopens
    _gate(run=1, max_attempts=1), _settle(FAILED, breaker_counts=False), _gate(run=1, max_attempts=1),  # attempts
    _gate(run=1), _settle(FAILED, fail_fast=True), _gate(run=1),  # a fail-fast halt
    ("resume", {"run": 1, "agent_wide": True}), _gate(run=1, max_retries_total=1),  # two failures: retries
]
"""Explicit: rate limit, breaker trips, probes (one closing, one reopening), attempts, fail-fast, retries.
Each settlement takes the oldest open reservation."""
CAPS_HISTORY = [
    ("open_run", {"agent": "a", "parent": 0, "cap_micros": 25_000, "token_cap": None}),  # run1 under root-a
    ("open_run", {"agent": "a", "parent": 0, "cap_micros": None, "token_cap": None}),  # run2 under root-a, no cap
    _gate(run=2), _gate(run=2), _gate(run=2), _gate(run=2),  # run1's cap refuses the third and halts run1
    *[_gate(run=3, estimate_micros=60_000)] * 5,  # root-a's $0.30 refuses run2's fifth (ancestor)
    _gate(run=1, daily_cap_micros=25_000), _gate(run=1, hourly_cap_micros=15_000),  # root-b: the hour is full
    _gate(run=1, daily_cap_micros=15_000),  # and the day
    _gate(run=1, estimate_tokens=5_000, hourly_token_cap=4_000),
    _gate(run=1, estimate_tokens=5_000, daily_token_cap=4_000),
    _gate(run=1, max_steps=1), ("resume", {"run": 1, "agent_wide": True}), _gate(run=1),
    ("clock", {"step": 2_500.0}), _gate(run=1, timeout_s=2_000.0), ("resume", {"run": 1, "agent_wide": True}),
    ("halt", {"run": 1, "agent_wide": True}), _gate(run=1), ("resume", {"run": 1, "agent_wide": True}), _gate(run=1),
    ("reconcile", {"pick": 0, "zero": True}), ("settle_again", _settle()[1]),
    ("open_run", {"agent": "a", "parent": 0, "cap_micros": None, "token_cap": None}),  # run3 under root-a
    _gate(run=4, estimate_tokens=9_000),  # run3 has no token cap: root-a's 8,000 tokens refuse (ancestor)
    _gate(run=0, estimate_tokens=9_000),  # root-a's 8,000 tokens
]
"""Explicit: every cap (run, ancestor, daily, hourly, steps, tokens, deadline), a halt and resume, a reconciliation."""


def run_histories(
    server: RedisServer, examples: int, *, derandomize: bool, shrink: bool = True
) -> collections.Counter[str]:
    """Run ``examples`` random histories on both stores; what they exercised, over all of them."""
    coverage: collections.Counter[str] = collections.Counter()

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=derandomize,
        database=None,
        phases=[Phase.explicit, Phase.generate, *([Phase.shrink] if shrink else [])],
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @example(history=BREAKER_HISTORY)
    @example(history=CAPS_HISTORY)
    @given(history=HISTORY)
    def one_history(history: list[Operation]) -> None:
        stores = TwoStores(server, coverage)
        try:
            for kind, args in history:
                stores.apply(kind, args)
            stores.same_records()
        finally:
            stores.close()

    one_history()
    return coverage


EXPECTED = {
    "allowed", "probe", "rate_limit_tripped", "reconciled",
    "refused budget run_budget", "refused budget ancestor_budget", "refused budget daily_budget",
    "refused budget hourly_budget", "refused budget run_token_budget", "refused budget ancestor_token_budget",
    "refused budget daily_token_budget", "refused budget hourly_token_budget",
    "refused max_steps max_steps", "refused max_retries_total max_retries_total", "refused timeout timeout",
    "refused max_attempts max_attempts", "refused circuit_open circuit_open", "refused rate_limited rate_limited",
    "refused halted operator_pause", "refused halted fail_fast", "refused halted run_budget",
    "gate -> half_open", "settle -> open", "settle -> closed",
}
"""What the fixed examples must reach between them, so the comparison covers refusals of every kind."""


@pytest.mark.slow
def test_sqlite_and_redis_agree_on_every_decision_of_random_histories(redis_server: RedisServer) -> None:
    coverage = run_histories(redis_server, examples=40, derandomize=True)
    assert EXPECTED <= set(coverage), sorted(EXPECTED - set(coverage))


# -- divergences the histories found, kept as plain examples -------------------------------------------


@pytest.fixture
def stores(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[SQLiteStore, RedisStore]]:
    sqlite, redis = SQLiteStore(tmp_path / "state.db"), RedisStore(redis_server.url(clock="client"))
    yield sqlite, redis
    sqlite.close()
    redis.close()


def test_a_timeout_halt_keeps_its_exact_elapsed_time_on_both_stores(stores: tuple[SQLiteStore, RedisStore]) -> None:
    """The gate script once wrote halt figures with Lua's JSON encoder, which keeps 14 digits."""
    late = START + 90_092.9
    for store in stores:
        store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=START)
        refused = store.gate(GateRequest("1", "a", "r", "call", 0, late, _day(late), int(late // 60), timeout_s=900.0))
        assert refused.refusal is not None and refused.refusal.kind == "timeout"
    (sqlite_halt,), (redis_halt,) = (store.halts() for store in stores)
    assert sqlite_halt.figures == {"elapsed_s": late - START, "timeout_s": 900.0}
    assert redis_halt == sqlite_halt
    assert [type(value) for value in redis_halt.figures.values()] == [float, float]


def test_a_runs_last_activity_is_its_latest_reservation_even_once_settled(
    stores: tuple[SQLiteStore, RedisStore],
) -> None:
    """Redis once kept no time in a settled ledger entry, so a busy run looked idle since its start."""
    for store in stores:
        store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=START)
        for rid, at in (("1", START + 60.0), ("2", START + 90.5)):
            assert store.gate(GateRequest(rid, "a", "r", "call", 10, at, _day(at), int(at // 60))).allowed
            assert store.settle(Settlement(rid, "a", "r", "call", 10, at + 1.0, Outcome.SUCCESS)).settled
    (sqlite_run,), (redis_run,) = (store.list_runs() for store in stores)
    assert sqlite_run.last_activity_at == START + 90.5
    assert redis_run == sqlite_run


def test_a_breaker_closed_again_is_still_listed_on_both_stores(stores: tuple[SQLiteStore, RedisStore]) -> None:
    """Redis once deleted a breaker's record when it closed again, so the operator's list lost it."""
    spec = BreakerSpec(failure_threshold=1, cooldown_s=60.0, probe_lease_s=60.0)
    for store in stores:
        store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=START)
        for rid, at, outcome in (("1", START, Outcome.FAILURE), ("2", START + 61.0, Outcome.SUCCESS)):
            gated = store.gate(GateRequest(rid, "a", "r", "call", 0, at, _day(at), int(at // 60), breaker=spec))
            assert gated.allowed
            store.settle(Settlement(rid, "a", "r", "call", 0, at, outcome, breaker=spec))
    sqlite_breakers, redis_breakers = (store.breakers() for store in stores)
    assert sqlite_breakers == [("a", "", BreakerRecord())]
    assert redis_breakers == sqlite_breakers


def test_a_refused_gate_leaves_the_hourly_window_to_the_next_reservation(
    stores: tuple[SQLiteStore, RedisStore],
) -> None:
    """Redis once slid its hourly window in a refused gate; the clock stepped back two hours then
    booked a reservation below the window's floor, and its settlement never reached the window."""
    earlier = START - 7200.0
    for store in stores:
        store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=START)
        store.halt(HaltRecord("a", "", "operator_pause", "operator", START))
        assert not store.gate(GateRequest("1", "a", "r", "call", 0, START, _day(START), int(START // 60))).allowed
        store.resume("a")
        assert store.gate(GateRequest("2", "a", "r", "call", 0, earlier, _day(earlier), int(earlier // 60))).allowed
        assert store.settle(Settlement("2", "a", "r", "call", 500, earlier, Outcome.SUCCESS)).settled
    sqlite_totals, redis_totals = (
        store.agent_totals("a", day_key=_day(earlier), minute=int(earlier // 60)) for store in stores
    )
    assert sqlite_totals.hour_micros == 500
    assert redis_totals == sqlite_totals
    for store in stores:
        request = GateRequest(
            "3", "a", "r", "call", 0, earlier, _day(earlier), int(earlier // 60), hourly_cap_micros=1000
        )
        assert store.gate(request).usage_fraction == 0.5


def test_a_refused_gate_ahead_of_the_books_keeps_the_hourly_window(stores: tuple[SQLiteStore, RedisStore]) -> None:
    """A gate refused a day ahead, then the clock stepped back: the hour's $0.03 still counts."""
    later = START + 86_400.0
    decisions = []
    for store in stores:
        store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=START)
        assert store.gate(GateRequest("1", "a", "r", "call", 30_000, START, _day(START), int(START // 60))).allowed
        store.halt(HaltRecord("a", "", "operator_pause", "operator", later))
        assert not store.gate(GateRequest("2", "a", "r", "call", 0, later, _day(later), int(later // 60))).allowed
        store.resume("a")
        request = GateRequest(
            "3", "a", "r", "call", 20_000, START, _day(START), int(START // 60), hourly_cap_micros=40_000
        )
        result = store.gate(request)
        decisions.append((type(store).__name__, result.refusal.reason if result.refusal else "allowed"))
    assert decisions == [("SQLiteStore", "hourly_budget"), ("RedisStore", "hourly_budget")]
