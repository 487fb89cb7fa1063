"""What one gate costs on the Redis store: client CPU, server script time and the round trip.

    .venv/bin/python bench/redis_gate.py                      # the figures in bench/RESULTS.md
    .venv/bin/python bench/redis_gate.py --calls 5000 --rounds 7

One process calls ``RedisStore.gate`` directly (no guard around it), every gate on (run, daily and
hourly caps, steps, retries, timeout, attempts, breaker) and each gate carrying the previous call's
settlement in ``settle_first``, as the guard sends a plain success. Per round: p50 and p99
microseconds per gate (wall), client CPU microseconds per gate (``time.process_time``), and the
server's own microseconds per script call (``INFO commandstats``, ``cmdstat_evalsha``). Each figure
is the median over ``--rounds`` rounds (the machine may be shared). The store runs in its
production mode (windows on Redis ``TIME``), against a throwaway ``redis-server`` (loopback, free
port, no persistence).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis  # noqa: E402

from agentfuse.runtime.stores.base import BreakerSpec, GateRequest, Outcome, Settlement  # noqa: E402
from agentfuse.runtime.stores.redis import RedisStore  # noqa: E402
from tests.redis_server import running_server  # noqa: E402

BIG = 10**15
BREAKER = BreakerSpec(failure_threshold=5, cooldown_s=60.0, probe_lease_s=60.0)


def one_round(url: str, calls: int) -> tuple[float, float, float, float]:
    """(p50 us, p99 us, client CPU us, server us) per gate over ``calls`` gates on a fresh run."""
    store = RedisStore(url)
    agent = run_id = f"bench-{uuid.uuid4().hex[:8]}"
    store.open_run(run_id, agent=agent, parent_id=None, cap_micros=BIG, now=time.time())
    previous: tuple[Settlement, ...] = ()
    samples = []
    server = redis.Redis.from_url(url.split("?")[0])
    clock = time.perf_counter_ns
    for warm in (True, False):
        if not warm:
            server.config_resetstat()
            cpu = time.process_time()
        for n in range(calls if not warm else 200):
            rid = uuid.uuid4().hex
            now = time.time()
            request = GateRequest(
                rid, agent, run_id, "call", 1, now, "2027-01-15", int(now // 60), breaker=BREAKER,
                daily_cap_micros=BIG, hourly_cap_micros=BIG, max_steps=10**12, max_retries_total=10**9,
                timeout_s=1e9, max_attempts=3, settle_first=previous,
            )
            start = clock()
            result = store.gate(request)
            stop = clock()
            assert result.allowed, result
            if not warm:
                samples.append((stop - start) / 1000)
            previous = (
                Settlement(rid, agent, run_id, "call", 1, now, Outcome.SUCCESS, breaker_counts=False, breaker=BREAKER),
            )
    cpu_us = (time.process_time() - cpu) * 1e6 / calls
    stats = server.info("commandstats").get("cmdstat_evalsha", {})
    server_us = float(stats.get("usec_per_call", 0.0))
    store.close()
    server.close()
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99)], cpu_us, server_us


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000, help="gates per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the median of each figure is shown)")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as folder, contextlib.contextmanager(running_server)(Path(folder)) as server:
        url = server.url(prefix="bench")
        rounds = [one_round(url, args.calls) for _ in range(max(1, args.rounds))]
    p50, p99, cpu, script = (statistics.median(column) for column in zip(*rounds))
    print("| p50 us/gate | p99 us/gate | client CPU us/gate | server us/script | rounds x gates |")
    print("|---|---|---|---|---|")
    print(f"| {p50:,.0f} | {p99:,.0f} | {cpu:,.1f} | {script:,.1f} | {len(rounds)} x {args.calls:,} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
