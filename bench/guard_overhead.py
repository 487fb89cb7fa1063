"""What a guarded call costs with the SQLite store, and whether it stays flat as the ledger grows.

    .venv/bin/python bench/guard_overhead.py                     # the numbers in bench/RESULTS.md
    .venv/bin/python bench/guard_overhead.py --calls 2000 --ledger 0,100000 --processes 1,8
    .venv/bin/python bench/guard_overhead.py --stages [--events]      # p50 per stage of one call
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        .venv/bin/python bench/guard_overhead.py --only-calls 2300 [--events] [--tokens caps|counted|uncapped]

Measures, per ledger size: p50/p99 microseconds added per guarded no-op call (``guard.call(noop)``
minus a bare ``noop()``), by default (a plain success settles inside the next gate's transaction)
and with ``defer_settlement=False`` (two transactions per call), each as the median of
``--rounds`` alternating rounds, plus the default mode's p50 in its fastest round (this shared
machine has slow phases, at about half speed, lasting seconds to minutes), and where the time goes
(each store transaction alone, and the guard's own Python against a store that answers at once;
that column reads about twice its usual value when a row was measured in a slow phase).
Then guarded calls per second with 1 and N processes on one store file.
Every gate is active (run, daily and hourly caps, max_steps, retries, timeout, attempts);
``--tokens caps`` adds run, daily and hourly token caps (calls declaring no tokens), ``--tokens
counted`` also has each call reserve and be charged 100 tokens (``--tokens uncapped``: the
tokens without the caps). ``--only-calls N`` makes N
guarded calls after 50 warm-up calls and exits: under callgrind, the difference between two N
divided by theirs is the instructions per call, whatever the machine's load.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentfuse.runtime.guard import Guard, enforce  # noqa: E402
from agentfuse.runtime.policy import Budget, Breaker, Events, FailFast, Policy  # noqa: E402
from agentfuse.runtime.stores.base import GateRequest, GateResult, Outcome, Settlement, SettleResult  # noqa: E402
from agentfuse.runtime.stores.sqlite import SQLiteStore  # noqa: E402

BIG = Decimal("1000000000")


TOKEN_CAPS = {
    "off": {},
    "caps": {"run_tokens": 10**14, "daily_tokens": 10**14, "hourly_tokens": 10**14},
    "counted": {"run_tokens": 10**14, "daily_tokens": 10**14, "hourly_tokens": 10**14, "estimate_tokens": 100},
    "uncapped": {"estimate_tokens": 100},
}
"""``--tokens``: no token caps; token caps only; token caps and 100 tokens per call; 100 tokens per
call and no token cap (tokens are counted whatever the caps)."""


def bench_policy(durability: str, events_path: str | None, tokens: str = "off") -> Policy:
    """Every gate on, caps high enough never to refuse."""
    return Policy(
        agent="bench",
        budget=Budget(
            run_usd=BIG,
            daily_usd=BIG,
            hourly_usd=BIG,
            max_steps=10**12,
            max_retries_total=10**9,
            timeout_s=10**9,
            estimate_usd=Decimal("0.000001"),
            **TOKEN_CAPS[tokens],  # type: ignore[arg-type]
        ),
        breaker=Breaker(failure_threshold=5, cooldown_s=60),
        fail_fast=FailFast(max_attempts=3),
        events=Events(path=events_path),
        store_durability=durability,
    )


def noop() -> None:
    return None


def timings_us(fn: Callable[[], object], n: int) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(n):
        start = clock()
        fn()
        samples.append((clock() - start) / 1000)
    samples.sort()
    return samples


def pct(samples: list[float], q: float) -> float:
    return samples[min(len(samples) - 1, int(len(samples) * q))]


_HISTORY_INSERT = (
    "INSERT INTO ledger (reservation_id, run_id, agent, action, estimate_micros, cost_micros, day_key,"
    " minute, created_at, settled_at, outcome) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)


def grow_ledger(path: Path, rows: int) -> None:
    """Append settled history rows (what months of calls leave behind) straight into the ledger."""
    db = sqlite3.connect(path)
    have = db.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    base = time.time_ns() - 10**15
    batch = []
    for i in range(have, rows):
        rid = f"{base + i:016x}00000000"
        batch.append((rid, "history", "bench", "call", 1, 1, "2020-01-01", 0, 0.0, 0.0, "success"))
        if len(batch) == 50_000:
            db.executemany(_HISTORY_INSERT, batch)
            batch.clear()
    db.executemany(_HISTORY_INSERT, batch)
    db.commit()
    # Months of history arrive in one bulk load here, not call by call with the usual
    # checkpoints: fold it into the database file so the WAL is as small as in steady use.
    busy, wal_frames, moved = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy or wal_frames != moved:
        raise RuntimeError(f"could not checkpoint the grown ledger ({busy}, {wal_frames}, {moved})")
    db.close()


def store_parts_us(store: SQLiteStore, run_id: str, n: int) -> tuple[float, float, float]:
    """p50 of the bare transactions: gate, settle, and gate carrying one deferred settlement."""
    now = time.time()

    def request(rid: str, deferred: tuple[Settlement, ...] = ()) -> GateRequest:
        return GateRequest(rid, "bench", run_id, "call", 1, now, "2030-01-01", int(now // 60), settle_first=deferred)

    def settlement(rid: str) -> Settlement:
        return Settlement(rid, "bench", run_id, "call", 1, now, Outcome.SUCCESS)

    gate, settle, combined = [], [], []
    previous: tuple[Settlement, ...] = ()
    for i in range(n):
        rid = f"{time.time_ns():016x}{i:08x}"
        start = time.perf_counter_ns()
        store.gate(request(rid))
        middle = time.perf_counter_ns()
        store.settle(settlement(rid))
        end = time.perf_counter_ns()
        rid = f"{time.time_ns():016x}{i:08x}"
        store.gate(request(rid, previous))
        previous = (settlement(rid),)
        gate.append((middle - start) / 1000)
        settle.append((end - middle) / 1000)
        combined.append((time.perf_counter_ns() - end) / 1000)
    store.settle(previous[0])
    return statistics.median(gate), statistics.median(settle), statistics.median(combined)


class _NullStore:
    """Answers every gate and settle at once: what is left is the guard's own Python."""

    def gate(self, request: GateRequest) -> GateResult:
        return GateResult(remaining_s=1e9, breaker_clean=True)

    def settle(self, settlement: Settlement) -> SettleResult:
        return SettleResult(settled=True)


def guard_only_us(n: int) -> float:
    guard = Guard(bench_policy("normal", None), _NullStore(), "bench")  # type: ignore[arg-type]
    return pct(timings_us(lambda: guard.call(noop), n), 0.5)


_STAGES = (
    ("BEGIN", "BEGIN IMMEDIATE"),
    ("UPDATE ledger", "settle the deferred call (UPDATE ledger)"),
    ("PRAGMA data_version", "data_version check"),
    ("SELECT run_id", "gate read (one SELECT: runs, halts, windows, attempts, breaker)"),
    ("INSERT INTO ledger", "reserve (INSERT INTO ledger)"),
    ("UPDATE runs", "run totals (UPDATE runs, settlement and reservation together)"),
    ("INSERT INTO agent_windows", "day and minute buckets (one upsert)"),
    ("COMMIT", "COMMIT (WAL append, no fsync)"),
)


def _stage_of(sql: str) -> str:
    for prefix, label in _STAGES:
        if sql.startswith(prefix):
            return label
    return "other SQL (heartbeat, settlements that are not plain)"


def _timed_connection(spent: collections.defaultdict[str, float]) -> type[sqlite3.Connection]:
    """A connection class adding each statement's time to ``spent[stage]``, whether it runs
    through the connection (reads) or through a cursor (the store's transactions)."""

    class TimedCursor(sqlite3.Cursor):
        def execute(self, sql: str, parameters: Any = (), /) -> TimedCursor:
            start = time.perf_counter_ns()
            try:
                return super().execute(sql, parameters)
            finally:
                spent[_stage_of(sql)] += (time.perf_counter_ns() - start) / 1000

    class TimedConnection(sqlite3.Connection):
        def cursor(self, factory: Any = TimedCursor) -> sqlite3.Cursor:  # type: ignore[override]
            return super().cursor(factory)

        def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
            return self.cursor().execute(sql, parameters)

    return TimedConnection


def _timed(fn: Callable[..., Any], spent: collections.defaultdict[str, float], stage: str) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter_ns()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[stage] += (time.perf_counter_ns() - start) / 1000

    return timed


def _timer_cost_us(path: Path) -> float:
    """What the statement timer adds per statement: a timed minus a plain ``SELECT 1``."""
    spent: collections.defaultdict[str, float] = collections.defaultdict(float)
    timed = sqlite3.connect(path, factory=_timed_connection(spent)).cursor()
    plain = sqlite3.connect(path).cursor()
    timed_us = pct(timings_us(lambda: timed.execute("SELECT 1"), 5000), 0.5)
    plain_us = pct(timings_us(lambda: plain.execute("SELECT 1"), 5000), 0.5)
    timed.connection.close()
    plain.connection.close()
    return max(0.0, timed_us - plain_us)


def stages(args: argparse.Namespace, folder: Path) -> list[str]:
    """Where one guarded call's time goes (default mode, events as chosen): p50 per stage."""
    spent: collections.defaultdict[str, float] = collections.defaultdict(float)
    store = SQLiteStore(folder / "stages.db", durability=args.durability, connection_factory=_timed_connection(spent))
    events = str(folder / "stages.jsonl") if args.events else None
    guard = enforce(bench_policy(args.durability, events), store=store)
    store.gate = _timed(store.gate, spent, "gate")  # type: ignore[method-assign]
    if guard.events is not None:  # what every line pays: building it, and writing lines
        guard.events._line = _timed(guard.events._line, spent, "event lines")  # type: ignore[method-assign]
        guard.events.write = _timed(guard.events.write, spent, "event lines")  # type: ignore[method-assign]
    bare = pct(timings_us(noop, args.calls), 0.5)
    per_call: dict[str, list[float]] = collections.defaultdict(list)
    for n in range(300 + args.calls):
        spent.clear()
        start = time.perf_counter_ns()
        guard.call(noop)
        total = (time.perf_counter_ns() - start) / 1000 - bare
        if n < 300:
            continue  # warm-up
        sql = sum(us for stage, us in spent.items() if stage not in ("gate", "event lines"))
        per_call["store's Python around the SQL (snapshot, decide_gate, result)"].append(spent["gate"] - sql)
        per_call["guard's Python (step, request, settlement, deferral)"].append(
            total - spent["gate"] - spent["event lines"]
        )
        for label in [label for _, label in _STAGES] + ["event lines"]:
            per_call[label].append(spent[label])
        per_call["total added per call"].append(total)
    guard.close()
    store.close()
    timer_us = _timer_cost_us(folder / "calibrate.db")
    # statements a typical call runs: the stages that ran in at least half of the calls
    statements = sum(1 for _, label in _STAGES if sorted(per_call[label])[len(per_call[label]) // 2] > 0)
    python_row = "store's Python around the SQL (snapshot, decide_gate, result)"
    per_call[python_row] = [us - timer_us * statements for us in per_call[python_row]]
    per_call["total added per call"] = [us - timer_us * statements for us in per_call["total added per call"]]
    print(f"# statement timer's own cost: {timer_us:.1f} us per statement, taken off the store's Python"
          f" and the total ({statements} statements per call)")
    rows = ["| stage | p50 us per call |", "|---|---:|"]
    for label, samples in per_call.items():
        samples.sort()
        if label == "event lines" and not args.events:
            continue
        rows.append(f"| {label} | {pct(samples, 0.5):.1f} |")
        print(rows[-1], flush=True)
    return rows


def only_calls(args: argparse.Namespace) -> int:
    """N guarded no-op calls after 50 warm-up calls, nothing printed (for callgrind); ``--events``
    writes the event log to a file."""
    with tempfile.TemporaryDirectory(prefix="agentfuse-bench-") as tmp:
        policy = bench_policy(args.durability, f"{tmp}/events.jsonl" if args.events else None, args.tokens)
        guard = enforce(policy, store=f"sqlite:///{tmp}/state.db", observers=())
        for _ in range(50 + args.only_calls):
            guard.call(noop)
        guard.close()
    return 0


def overhead(args: argparse.Namespace, folder: Path) -> list[str]:
    db_path = folder / "overhead.db"
    events = str(folder / "events.jsonl") if args.events else None
    url = f"sqlite:///{db_path}"
    deferred = enforce(bench_policy(args.durability, events, args.tokens), store=url)
    strict = enforce(bench_policy(args.durability, events, args.tokens), store=url, defer_settlement=False)
    rows = [
        "| ledger entries | overhead p50 / p99 (us), default | default p50, fastest round"
        " | overhead p50 / p99 (us), settle per call"
        " | gate txn p50 | settle txn p50 | gate + deferred settle txn p50 | guard's own Python p50 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for size in args.ledger:
        grow_ledger(db_path, size)
        for guard in (deferred, strict):
            timings_us(lambda: guard.call(noop), 300)  # warm the caches
        bare = pct(timings_us(noop, args.calls), 0.5)
        rounds = []  # alternate the two modes; report the round with the median p50 of each
        for _ in range(args.rounds):
            fast_round = timings_us(lambda: deferred.call(noop), args.calls)
            rounds.append((fast_round, timings_us(lambda: strict.call(noop), args.calls)))
        fast = sorted((r[0] for r in rounds), key=lambda samples: pct(samples, 0.5))[len(rounds) // 2]
        fastest_round = min(pct(r[0], 0.5) for r in rounds)  # the least disturbed round
        slow = sorted((r[1] for r in rounds), key=lambda samples: pct(samples, 0.5))[len(rounds) // 2]
        assert isinstance(deferred.store, SQLiteStore)
        gate_p50, settle_p50, combined_p50 = store_parts_us(deferred.store, deferred.run_id, min(args.calls, 2000))
        python_p50 = guard_only_us(args.calls)  # per row: it doubles when this shared machine slows
        rows.append(
            f"| {size:,} | {pct(fast, 0.5) - bare:.0f} / {pct(fast, 0.99) - bare:.0f}"
            f" | {fastest_round - bare:.0f}"
            f" | {pct(slow, 0.5) - bare:.0f} / {pct(slow, 0.99) - bare:.0f}"
            f" | {gate_p50:.0f} | {settle_p50:.0f} | {combined_p50:.0f} | {python_p50:.0f} |"
        )
        print(rows[-1], flush=True)
    deferred.close()
    strict.close()
    return rows


def _worker(url: str, durability: str, seconds: float, start_at: float, results: multiprocessing.Queue) -> None:
    guard: Guard = enforce(bench_policy(durability, None), store=url)
    while time.time() < start_at:
        time.sleep(0.001)
    calls = 0
    end = start_at + seconds
    while time.time() < end:
        guard.call(noop)
        calls += 1
    guard.close()
    results.put(calls)


def throughput(args: argparse.Namespace, folder: Path) -> list[str]:
    rows = ["| processes | guarded calls/s (all processes) | per process |", "|---:|---:|---:|"]
    context = multiprocessing.get_context("spawn")
    for count in args.processes:
        url = f"sqlite:///{folder / f'throughput-{count}.db'}"
        SQLiteStore.from_url(url).close()
        results: multiprocessing.Queue = context.Queue()
        start_at = time.time() + 2.0 + 0.2 * count
        workers = [
            context.Process(target=_worker, args=(url, args.durability, args.seconds, start_at, results))
            for _ in range(count)
        ]
        for worker in workers:
            worker.start()
        total = sum(results.get(timeout=120) for _ in workers)
        for worker in workers:
            worker.join()
        rate = total / args.seconds
        rows.append(f"| {count} | {rate:,.0f} | {rate / count:,.0f} |")
        print(rows[-1], flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000, help="measured calls per ledger size")
    parser.add_argument(
        "--ledger",
        type=lambda text: [int(part) for part in text.split(",")],
        default=[0, 100_000, 1_000_000],
        help="ledger sizes to measure at (comma-separated, ascending)",
    )
    parser.add_argument(
        "--processes", type=lambda text: [int(part) for part in text.split(",")], default=[1, 8]
    )
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument(
        "--rounds", type=int, default=5,
        help="timed rounds per ledger size (the median round is reported, and the fastest round's p50)"
    )
    parser.add_argument("--durability", choices=("normal", "full"), default="normal")
    parser.add_argument("--events", action="store_true", help="also write the JSONL event log")
    parser.add_argument("--stages", action="store_true", help="only print where one call's time goes")
    parser.add_argument("--tokens", choices=tuple(TOKEN_CAPS), default="off", help="token caps (see above)")
    parser.add_argument("--only-calls", type=int, metavar="N", help="make N guarded calls and exit (callgrind)")
    args = parser.parse_args()
    if args.only_calls is not None:
        return only_calls(args)
    print(f"# guard overhead: python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version},"
          f" {os.cpu_count()} cpus, durability={args.durability}, events={'on' if args.events else 'off'},"
          f" load average {os.getloadavg()[0]:.1f} at start")
    with tempfile.TemporaryDirectory(prefix="agentfuse-bench-") as tmp:
        folder = Path(tmp)
        if args.stages:
            stages(args, folder)
            return 0
        overhead(args, folder)
        throughput(args, folder)
    print(f"# load average {os.getloadavg()[0]:.1f} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
