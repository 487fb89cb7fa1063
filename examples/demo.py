"""agentfuse in five minutes: a runaway agent meets the fuse, on the embedded SQLite store.

Run from the repository root: ``python examples/demo.py``. It works in a fresh temporary
folder (the store is the default ``sqlite:///.agentfuse/state.db`` there) and shows:

1. ``agentfuse lint`` on the naive publisher agent, and on its guarded version;
2. a transient error retried in a loop: the breaker opens after 3 failures, not 47,000;
3. a runaway loop: the run budget halts it at $0.25, and a restart does not get a fresh budget;
4. ``kill -9`` in the middle of a run, then a new process resuming the same run id: the run
   makes exactly the calls its budget has left;
5. an operator halt with ``agentfuse halt``, which refuses the next call until ``agentfuse resume``;
6. an unmodified OpenAI-SDK agent under ``guard.instrument()``: the requests reaching the provider
   stop at the budget.

Steps 1-5 use a fake OpenAI-shaped client (examples/fake_llm.py); step 6 runs the real ``openai``
SDK (the ``demo`` extra) against agentfuse's stand-in provider on loopback. No key, no cost.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent
sys.path.insert(0, str(EXAMPLES))

from fake_llm import FakeOpenAI  # noqa: E402

from agentfuse import BudgetExceeded, CircuitOpen, Halted, RunHalted, enforce  # noqa: E402

POLICY = """\
version: 1
agent: {agent}
budget:
  run_usd: 0.25
  daily_usd: 5.00
  max_steps: 1000
  estimate_usd: 0.01
breaker:
  failure_threshold: 3
  cooldown_s: 300
fail_fast:
  halt_on: [PermissionError]
"""


def banner(title: str) -> None:
    print(f"\n=== {title} ===", flush=True)


def agentfuse(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the agentfuse CLI as a user would, echoing the command and what it printed."""
    print("$ agentfuse " + " ".join(args), flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "agentfuse", *args], capture_output=True, text=True, check=False
    )
    print((done.stdout + done.stderr).rstrip() or "(no output)")
    print(f"(exit status {done.returncode})", flush=True)
    return done


def write_policy(agent: str, text: str = POLICY) -> Path:
    path = Path(f"{agent}.yaml")
    path.write_text(text.format(agent=agent), encoding="utf-8")
    return path


def ask(client: FakeOpenAI) -> object:
    return client.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "Draft the next post."}]
    )


def lint_the_agent() -> None:
    banner("1. The linter reads the agent's code")
    agentfuse("lint", str(EXAMPLES / "publisher" / "naive_agent.py"))
    agentfuse("lint", str(EXAMPLES / "publisher" / "guarded_agent.py"))


def breaker_stops_a_retry_storm() -> None:
    banner("2. A transient error, retried in a loop (the 60-hour, 47,000-call incident)")
    client = FakeOpenAI(fail_first=-1)  # the provider is down for good
    guard = enforce(write_policy("flaky-publisher"))
    for attempt in range(1, 10_001):
        try:
            with guard.step(action="draft") as step:
                step.record(ask(client))
        except CircuitOpen as refused:
            print(f"attempt {attempt}: refused before the call: {refused}")
            break
        except Exception as error:  # the agent's own "retry forever" loop
            print(f"attempt {attempt}: {type(error).__name__}: {error}")
    print(f"requests that reached the provider: {client.requests} (of up to 10,000 attempts)")


def budget_halts_a_runaway() -> None:
    banner("3. A runaway loop under a $0.25 run budget")
    client = FakeOpenAI()
    policy = write_policy("runaway-publisher")
    guard = enforce(policy)
    calls = 0
    try:
        while True:
            with guard.step(action="draft") as step:
                step.record(ask(client))
            calls += 1
    except BudgetExceeded as refused:
        print(f"after {calls} calls ($0.01 each): {type(refused).__name__}: {refused}")
    restarted = enforce(policy, run_id=guard.run_id)  # a "restart" resuming the same run
    try:
        with restarted.step(action="draft") as step:
            step.record(ask(client))
        print("restart: the call went through (this would be a bug)")
    except Halted as refused:
        print(f"restart with run {guard.run_id[:8]}: still refused: {type(refused).__name__}")
    print(f"requests that reached the provider: {client.requests}")


def worker(policy: str, run_id: str) -> None:
    """The agent process of scenario 4: one $0.01 call after another until refused."""
    client = FakeOpenAI()
    guard = enforce(policy, run_id=run_id)
    try:
        while True:
            with guard.step(action="draft") as step:
                time.sleep(0.02)  # a model call takes a while: the kill lands mid-run, not after it
                step.record(ask(client))
            print("call", flush=True)
    except Halted as refused:
        print(f"refused: {type(refused).__name__}", flush=True)


def kill_and_resume() -> None:
    banner("4. kill -9 in the middle of a run, then resume it in a new process")
    policy = str(write_policy("crashing-publisher"))
    run_id = "demo-run-kill9"
    command = [sys.executable, __file__, "--worker", policy, run_id]
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert first.stdout is not None
    before = 0
    for line in first.stdout:
        if line.startswith("call"):
            before += 1
        if before == 10:
            os.kill(first.pid, signal.SIGKILL)
            break
    first.wait()
    # Calls it finished between its 10th line and the kill are still in the pipe: count them.
    before += sum(line.startswith("call") for line in first.stdout)
    print(f"process 1 made {before} calls and was killed with SIGKILL (exit {first.returncode})")
    second = subprocess.run(command, capture_output=True, text=True, check=True)
    after = sum(line.startswith("call") for line in second.stdout.splitlines())
    last = second.stdout.strip().splitlines()[-1]
    print(f"process 2 resumed run {run_id!r}: {after} more calls, then {last}")
    print(
        f"calls in the run: {before + after} (the $0.25 budget allows 25, a fresh budget would allow 35;"
        " a call the kill cut short stays counted, so 24 completed calls are possible too)"
    )


def operator_halt() -> None:
    banner("5. An operator halts the agent from another terminal")
    client = FakeOpenAI()
    policy = write_policy("supervised-publisher")
    guard = enforce(policy)
    agentfuse("halt", "--agent", "supervised-publisher", "--reason", "reviewing spend", "--policy", str(policy))
    try:
        with guard.step(action="draft") as step:
            step.record(ask(client))
    except RunHalted as refused:
        print(f"next call refused: {refused}")
    agentfuse("resume", "--agent", "supervised-publisher", "--policy", str(policy))
    with guard.step(action="draft") as step:
        step.record(ask(client))
    print(f"after resume the call went through; requests: {client.requests}")


INSTRUMENTED_POLICY = """\
version: 1
agent: {agent}
budget:
  run_usd: 0.0045
  estimate_usd: 0.00045
breaker:
  failure_threshold: 3
  cooldown_s: 300
fail_fast:
  halt_on: [openai.AuthenticationError]
"""


def sdk_agent(base_url: str) -> None:
    """An agent written against the plain OpenAI SDK, with no agentfuse code: drafts until stopped."""
    import openai

    client = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
    while True:
        # Unguarded on purpose: guard.instrument() gates it from outside.
        client.chat.completions.create(  # noqa: AF101
            model="gpt-4o", messages=[{"role": "user", "content": "Draft the next post."}], max_tokens=20
        )


def instrumented_sdk_agent() -> None:
    banner("6. An unmodified OpenAI-SDK agent under guard.instrument()")
    from agentfuse.testing.standin import StandIn

    guard = enforce(write_policy("sdk-publisher", INSTRUMENTED_POLICY))
    guard.instrument()  # the one line: every openai request of this process now passes the gate
    with StandIn() as provider:  # 100 input + 20 output tokens per answer: $0.00045 at gpt-4o prices
        try:
            sdk_agent(provider.openai_url)
        except BudgetExceeded as refused:
            print(f"the agent's next request was refused before it left: {type(refused).__name__}")
        finally:
            guard.uninstrument()
            guard.flush()
        spent = guard.store.get_run(guard.run_id).spent_micros / 1e6
        print(f"requests that reached the stand-in provider: {provider.requests} (the $0.0045 budget allows 10)")
        print(f"spent, settled from the reported usage: ${spent:.6f}")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
        return
    with tempfile.TemporaryDirectory(prefix="agentfuse-demo-") as work:
        os.chdir(work)
        print(f"working in {work}; state in {work}/.agentfuse/state.db (SQLite, the default)")
        lint_the_agent()
        breaker_stops_a_retry_storm()
        budget_halts_a_runaway()
        kill_and_resume()
        operator_halt()
        instrumented_sdk_agent()


if __name__ == "__main__":
    main()
