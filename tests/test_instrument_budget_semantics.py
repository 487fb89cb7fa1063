"""Budget semantics of an unmodified OpenAI-SDK agent under guard.instrument() (scenario S2 of
the agent-budget-semantics suite: 9 tool-call turns, then a final answer), and many workers
against one budget."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

openai = pytest.importorskip("openai")

from agentfuse import Halted, enforce  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from runtime_helpers import make_policy, store_url  # noqa: E402

INPUT_TOKENS = 400
"""What the stand-in reports: at least what the growing conversation is estimated at, as a real model would."""
CALL_MICROS = 1200  # 400 in, 20 out at gpt-4o's price
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]


def agent_run(base_url: str) -> int:
    """A plain tool-calling agent loop: model, tool, model, ... until a final answer. Returns its turns."""
    llm = openai.OpenAI(base_url=base_url, api_key="none", max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "find it"}]
    for turn in range(1, 100):
        reply = llm.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS, max_tokens=20)
        message = reply.choices[0].message
        if not message.tool_calls:
            return turn
        messages.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "ok"})
    raise AssertionError("the scripted run never ended")


def status(url: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "agentfuse", "status", "--json", "--store", url],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode in (0, 1), done.stderr  # 1: an agent is halted (the budget stopped it)
    return json.loads(done.stdout)


def test_the_scripted_run_completes_within_a_large_budget(tmp_path: Path) -> None:
    with StandIn(tool_turns=9, input_tokens=INPUT_TOKENS) as provider:
        guard = enforce(make_policy(budget={"run_usd": 1, "max_steps": 50}), store=store_url(tmp_path / "s.db"))
        guard.instrument()
        try:
            assert agent_run(provider.openai_url) == 10
        finally:
            guard.close()
        assert provider.requests == 10


@pytest.mark.parametrize("n", [1, 3, 5])
@pytest.mark.parametrize("cap", ["max_steps", "run_usd"])
def test_a_budget_of_n_calls_lets_exactly_n_requests_reach_the_provider(tmp_path: Path, n: int, cap: str) -> None:
    budget: dict[str, Any] = {"estimate_usd": Decimal(CALL_MICROS) / 10**6}
    budget.update({"max_steps": n} if cap == "max_steps" else {"run_usd": Decimal(n * CALL_MICROS) / 10**6})
    url = store_url(tmp_path / "s.db")
    with StandIn(tool_turns=9, input_tokens=INPUT_TOKENS) as provider:
        guard = enforce(make_policy(budget=budget), store=url)
        guard.instrument()
        try:
            with pytest.raises(Halted):
                agent_run(provider.openai_url)
        finally:
            guard.close()
        assert provider.requests == n
        served = provider.served
    (run,) = [run for agent in status(url)["agents"] for run in agent["active_runs"]]
    assert run["steps"] == served == n
    assert Decimal(str(run["spent_usd"])) == Decimal(served * CALL_MICROS) / 10**6
    assert Decimal(str(run["reserved_usd"])) == 0


def test_32_threads_never_exceed_the_cap_at_the_provider(tmp_path: Path) -> None:
    cap_calls = 20
    with StandIn(input_tokens=INPUT_TOKENS) as provider:
        guard = enforce(
            make_policy(budget={"run_usd": Decimal(cap_calls * CALL_MICROS) / 10**6,
                                "estimate_usd": Decimal(CALL_MICROS) / 10**6}),
            store=store_url(tmp_path / "s.db"),
        )
        guard.instrument()
        llm = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)

        def worker() -> None:
            for _ in range(5):
                try:
                    llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}],
                                                max_tokens=20)
                except Halted:
                    return

        threads = [threading.Thread(target=worker) for _ in range(32)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        guard.close()
        assert provider.requests == cap_calls


WORKER = """
import sys, openai
from agentfuse import Halted, enforce
guard = enforce(sys.argv[1], run_id="shared")
guard.instrument()
llm = openai.OpenAI(base_url=sys.argv[2], api_key="none", max_retries=0)
try:
    for _ in range(10):
        llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=20)
except Halted:
    pass
guard.close()
"""


@pytest.mark.slow
def test_8_processes_never_exceed_the_cap_at_the_provider(tmp_path: Path) -> None:
    cap_calls = 12
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nagent: many\n"
        f"budget: {{run_usd: {Decimal(cap_calls * CALL_MICROS) / 10**6},"
        f" estimate_usd: {Decimal(CALL_MICROS) / 10**6}}}\n"
        "breaker: {failure_threshold: 5, cooldown_s: 60}\nfail_fast: {halt_on: [PermissionError]}\n"
        f"store: {store_url(tmp_path / 's.db')}\n"
    )
    with StandIn(input_tokens=INPUT_TOKENS) as provider:
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(policy), provider.openai_url], cwd=tmp_path)
            for _ in range(8)
        ]
        for process in workers:
            assert process.wait(timeout=180) == 0
        assert provider.requests == cap_calls
