"""Guarded calls per second and per-call overhead for the SQLite and Redis stores, 1 to N processes.

    .venv/bin/python bench/store_throughput.py                  # the numbers in bench/RESULTS.md
    .venv/bin/python bench/store_throughput.py --seconds 5 --processes 1,4,8 --stores redis \\
        --redis-url redis://127.0.0.1:6379/0

For each store and process count, every process guards no-op calls (``guard.call(noop)``) on its
own run of one agent, with every gate on (run, daily and hourly caps, steps, retries, timeout,
attempts, breaker), for a fixed time after a common start. Reported: aggregate guarded calls/s,
and p50/p99 microseconds per guarded call (a bare no-op costs ~0.05 us, so this is the overhead);
each point is the median of ``--repeat`` runs, with their range (the machine may be shared).
Then the race: N processes spend $0.01 per call against one agent's $10.00 daily cap; the
overshoot (recorded spend above the cap) must be 0 and exactly 1,000 calls must be made.

Without ``--redis-url`` a throwaway ``redis-server`` (loopback, free port, no persistence) is
started and stopped. The Redis store runs in its production mode (windows on Redis ``TIME``).
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agentfuse import BudgetExceeded, enforce  # noqa: E402
from agentfuse.runtime.policy import Budget, Breaker, Events, FailFast, Policy  # noqa: E402
from agentfuse.runtime.stores import open_store  # noqa: E402

BIG = Decimal("1000000000")
RACE_CAP_USD = Decimal("10.00")
RACE_CALL_USD = Decimal("0.01")


def throughput_policy(agent: str) -> Policy:
    """Every gate on, caps high enough never to refuse."""
    return Policy(
        agent=agent,
        budget=Budget(
            run_usd=BIG,
            daily_usd=BIG,
            hourly_usd=BIG,
            max_steps=10**12,
            max_retries_total=10**9,
            timeout_s=10**9,
            estimate_usd=Decimal("0.000001"),
        ),
        breaker=Breaker(failure_threshold=5, cooldown_s=60),
        fail_fast=FailFast(max_attempts=3),
        events=Events(path=None),
    )


def race_policy(agent: str) -> Policy:
    return Policy(
        agent=agent,
        budget=Budget(daily_usd=RACE_CAP_USD, estimate_usd=RACE_CALL_USD),
        breaker=Breaker(failure_threshold=5, cooldown_s=60),
        fail_fast=FailFast(),
        events=Events(path=None),
    )


def noop() -> None:
    return None


def spin(url: str, agent: str, seconds: float, go: Any, results: Any) -> None:
    """One process: guarded no-ops for ``seconds`` after ``go``; reports its latencies (us)."""
    guard = enforce(throughput_policy(agent), store=url)
    for _ in range(200):
        guard.call(noop)
    go.wait()
    clock = time.perf_counter_ns
    samples: list[float] = []
    end = clock() + int(seconds * 1e9)
    while True:
        start = clock()
        guard.call(noop)
        stop = clock()
        samples.append((stop - start) / 1000)
        if stop >= end:
            break
    guard.close()
    results.put(samples)


def race(url: str, agent: str, go: Any, results: Any) -> None:
    """One racer: $0.01 calls until the agent's daily cap refuses; reports its call count."""
    guard = enforce(race_policy(agent), store=url)
    go.wait()
    calls = 0
    while True:
        try:
            with guard.step() as step:
                calls += 1
                step.record(cost_usd=RACE_CALL_USD)
        except BudgetExceeded:
            break
    guard.close()
    results.put(calls)


def run_processes(target: Any, args: tuple[Any, ...], processes: int) -> tuple[list[Any], float]:
    """Start ``processes`` copies of ``target``, release them together; (their results, wall s)."""
    context = multiprocessing.get_context("fork")
    go = context.Event()
    results = context.Queue()
    workers = [context.Process(target=target, args=(*args, go, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    time.sleep(0.5 + 0.1 * processes)  # every worker has opened its run and warmed up
    started = time.perf_counter()
    go.set()
    collected = [results.get(timeout=120) for _ in workers]
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
        if worker.exitcode != 0:
            raise SystemExit(f"a benchmark process failed with exit code {worker.exitcode}")
    return collected, elapsed


def measure(name: str, url: str, process_counts: list[int], seconds: float, repeat: int) -> list[str]:
    """One row per process count: the median of ``repeat`` runs (and their range, since the
    machine is shared), with that run's p50/p99."""
    rows = []
    for processes in process_counts:
        runs = []
        for _ in range(repeat):
            agent = f"bench-{uuid.uuid4().hex[:8]}"
            per_process, _elapsed = run_processes(spin, (url, agent, seconds), processes)
            samples = sorted(s for chunk in per_process for s in chunk)
            runs.append((len(samples) / seconds, samples))  # every process runs `seconds` from one start
        runs.sort(key=lambda run: run[0])
        rate, samples = runs[len(runs) // 2]
        low, high = runs[0][0], runs[-1][0]
        p50 = statistics.median(samples)
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        rows.append(
            f"| {name} | {processes} | {rate:,.0f} | {low:,.0f}-{high:,.0f} | {p50:,.0f} | {p99:,.0f} |"
        )
        print(rows[-1], flush=True)
    return rows


def overshoot(name: str, url: str, processes: int) -> str:
    agent = f"race-{uuid.uuid4().hex[:8]}"
    counts, _elapsed = run_processes(race, (url, agent), processes)
    store = open_store(url)
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    spent = store.agent_totals(agent, day_key=today, minute=int(time.time() // 60)).day_micros
    store.close()
    cap = int(RACE_CAP_USD * 1_000_000)
    row = (
        f"| {name} | {processes} | {sum(counts):,} | ${Decimal(spent) / 1_000_000:.2f} |"
        f" ${Decimal(max(0, spent - cap)) / 1_000_000:.2f} |"
    )
    print(row, flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per point (the median is shown)")
    parser.add_argument("--processes", default="1,4,8", help="process counts, comma-separated")
    parser.add_argument("--stores", default="sqlite,redis", help="sqlite, redis or both")
    parser.add_argument("--redis-url", help="an existing Redis (default: start a throwaway one)")
    args = parser.parse_args(argv)
    try:
        counts = [int(n) for n in args.processes.split(",")]
    except ValueError:
        parser.error(f"--processes takes numbers like 1,4,8, got {args.processes!r}")
    stores = [s.strip() for s in args.stores.split(",")]
    if any(s not in ("sqlite", "redis") for s in stores):
        parser.error(f"--stores takes sqlite and/or redis, got {args.stores!r}")
    server = None
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"sqlite": f"sqlite:///{Path(tmp) / 'bench.db'}"}
        if "redis" in stores:
            if args.redis_url:
                urls["redis"] = args.redis_url
            else:
                if shutil.which("redis-server") is None:
                    print("redis-server is not installed; use --stores sqlite or --redis-url", file=sys.stderr)
                    return 2
                from tests.redis_server import RedisServer

                server = RedisServer(Path(tmp))
                server.start()
                urls["redis"] = f"redis://{server.host}:{server.port}/0?prefix=bench"
        try:
            print("| store | processes | guarded calls/s (median) | range of runs | p50 us/call | p99 us/call |")
            print("|---|---|---|---|---|---|")
            for name in stores:
                measure(name, urls[name], counts, args.seconds, max(1, args.repeat))
            print()
            print("| store | racers | calls made | recorded spend | overshoot |")
            print("|---|---|---|---|---|")
            for name in stores:
                overshoot(name, urls[name], max(counts))
        finally:
            if server is not None:
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
