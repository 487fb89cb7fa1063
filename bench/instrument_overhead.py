"""What guard.instrument() adds per call on top of the guard itself, against the stand-in provider.

    .venv/bin/python bench/instrument_overhead.py [--calls 300] [--rounds 7] [--network]
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file=/dev/null \
        .venv/bin/python bench/instrument_overhead.py --callgrind hand|instrumented --calls 100

Two ways of making the same OpenAI-SDK chat call, answered with the stand-in provider's own
response body, in alternating rounds: by hand (``with guard.step(...) as step: ...;
step.record(answer)``) and under ``guard.instrument()`` (the plain SDK call). Both pass the
same gate and settle the same usage on the same SQLite store; the difference of their
per-round medians is what the instrumentation costs (the estimate from the request, reading
the usage from the response). Prints each round and the median difference in microseconds,
of the wall clock and of the calling thread's CPU time (``time.thread_time_ns``: the provider
answers in-process, so every call's work is in this thread; time spent waiting for a core on
a loaded machine is left out).

By default the answer comes through an in-process ``httpx2.MockTransport`` handed to the SDK (its
supported test hook) serving ``StandIn.openai_chat``: a loopback round trip on this shared 2-core
machine varies by milliseconds between rounds, which buries a difference of microseconds.
``--network`` sends to the stand-in over loopback instead.

``--callgrind MODE`` makes ``--calls`` calls of one mode only, with callgrind collecting just
around them (``callgrind_control -i on/off``): the instructions per call, compared between the
two modes, are the instrumentation's cost independent of the machine's load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import openai  # noqa: E402

from agentfuse.runtime.guard import enforce  # noqa: E402
from agentfuse.runtime.policy import Budget, Breaker, Events, FailFast, Policy  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402

MESSAGES = [{"role": "user", "content": "Summarise the quarterly report in three bullet points."}]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per round and mode")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--network", action="store_true", help="over loopback to the stand-in server")
    parser.add_argument("--callgrind", choices=("hand", "instrumented"), help="one mode, collected by callgrind")
    args = parser.parse_args()
    policy = Policy(
        agent="bench",
        budget=Budget(max_steps=10**9, estimate_usd=Decimal("0.001")),  # both modes reserve the same
        breaker=Breaker(failure_threshold=5, cooldown_s=60),
        fail_fast=FailFast(),
        events=Events(path=None),
    )
    with tempfile.TemporaryDirectory() as folder, StandIn() as provider:
        guard = enforce(policy, store=f"sqlite:///{folder}/state.db")
        http_client = None
        if not args.network:
            import json

            import httpx2

            def answer(request: httpx2.Request) -> httpx2.Response:
                return httpx2.Response(200, json=provider.openai_chat(json.loads(request.content), 1))

            http_client = httpx2.Client(transport=httpx2.MockTransport(answer))
        client = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0, http_client=http_client)

        def by_hand() -> None:
            with guard.step(estimate_usd="0.001", action="openai.chat.completions", model="gpt-4o") as step:
                step.record(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20))

        def instrumented() -> None:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)  # noqa: AF101

        def round_of(fn: object, instrument: bool) -> tuple[float, float]:
            """(wall-clock p50, this thread's CPU-time p50) of one round, in microseconds."""
            if instrument:
                guard.instrument()
            wall, cpu = [], []
            for _ in range(args.calls):
                start, start_cpu = time.perf_counter_ns(), time.thread_time_ns()
                fn()  # type: ignore[operator]
                cpu.append(time.thread_time_ns() - start_cpu)
                wall.append(time.perf_counter_ns() - start)
            if instrument:
                guard.uninstrument()
            return statistics.median(wall) / 1000, statistics.median(cpu) / 1000

        if args.callgrind:
            return collected(args.callgrind, by_hand, instrumented, args.calls, guard)
        for _ in range(50):
            by_hand()
        walls, cpus = [], []
        for number in range(args.rounds):
            hand, hand_cpu = round_of(by_hand, False)
            auto, auto_cpu = round_of(instrumented, True)
            walls.append(auto - hand)
            cpus.append(auto_cpu - hand_cpu)
            print(f"round {number + 1}: p50 by hand {hand:8.1f} us (CPU {hand_cpu:7.1f}), instrumented"
                  f" {auto:8.1f} us (CPU {auto_cpu:7.1f}), difference {auto - hand:+7.1f} us"
                  f" (CPU {auto_cpu - hand_cpu:+6.1f})", flush=True)
        guard.close()
    print(f"instrumentation overhead, median of {args.rounds} rounds: {statistics.median(walls):+.1f} us per call"
          f" wall clock, {statistics.median(cpus):+.1f} us of the thread's CPU time")
    return 0


def collected(mode: str, by_hand: object, instrumented: object, calls: int, guard: object) -> int:
    """Make ``calls`` calls of ``mode`` with callgrind collecting only around them."""
    fn = instrumented if mode == "instrumented" else by_hand
    if mode == "instrumented":
        guard.instrument()  # type: ignore[attr-defined]
    for _ in range(50):
        fn()  # type: ignore[operator]
    control = ["callgrind_control", "-i"]
    subprocess.run([*control, "on", str(os.getpid())], check=True, capture_output=True)
    time.sleep(0.5)  # callgrind picks the command up between basic blocks
    for _ in range(calls):
        fn()  # type: ignore[operator]
    subprocess.run([*control, "off", str(os.getpid())], check=True, capture_output=True)
    print(f"{mode}: {calls} calls collected; divide callgrind's instruction total by {calls}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
