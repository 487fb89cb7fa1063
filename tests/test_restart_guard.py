"""Crash-loop guard: a process that keeps dying is refused after ``max_starts`` starts (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentfuse import enforce
from agentfuse.runtime.errors import RestartLoop
from agentfuse.runtime.stores.base import RestartSpec
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.runtime_helpers import REPO, recording_webhook
from tests.test_operator_cli import write_policy

RESTART_GUARD = "restart_guard: {max_starts: 4, window_s: 600, cooldown_s: 3600%s}\n"

CRASHING_AGENT = f"""
import json, os, sys
sys.path.insert(0, {str(REPO)!r})
from agentfuse import Halted, enforce
guard = enforce(sys.argv[1])
try:
    with guard.step(estimate_usd="0.01") as step:
        step.record(cost_usd="0.01")
except Halted as exc:
    print(json.dumps({{"type": type(exc).__name__, "reason": exc.reason, "message": str(exc)}}), flush=True)
    guard.close()
    sys.exit(3)
os._exit(1)  # the bug: the process dies after its first call, and the supervisor restarts it
"""


def start_agent(policy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CRASHING_AGENT, str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=policy.parent,
    )


def test_a_process_dying_five_times_is_refused_at_the_fifth_start_and_the_alert_arrives(tmp_path: Path) -> None:
    with recording_webhook() as hook:
        policy = write_policy(tmp_path, webhook=hook.url, extra=RESTART_GUARD % "")
        crashes = [start_agent(policy) for _ in range(4)]
        assert [crash.returncode for crash in crashes] == [1, 1, 1, 1], [crash.stderr for crash in crashes]
        assert not hook.received
        fifth = start_agent(policy)
        assert fifth.returncode == 3, fifth.stderr
        refusal = json.loads(fifth.stdout)
        assert refusal["type"] == RestartLoop.__name__ and refusal["reason"] == "restart_loop"
        assert "restart loop" in refusal["message"]
        assert hook.arrived.wait(10)
        sixth = start_agent(policy)  # the cooldown is durable: a further restart is refused too
        assert sixth.returncode == 3 and json.loads(sixth.stdout)["reason"] == "restart_loop"
    (alert,) = hook.received  # de-duplicated: one alert for the loop
    assert "5 process starts in 600s" in alert["body"]
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [event["starts"] for event in events if event["event"] == "restart_loop"] == [5]
    store = SQLiteStore(tmp_path / "state.db")
    try:
        (day,) = store.daily_spend("publisher")
        assert day.spent_micros + day.reserved_micros == 40_000  # four calls made, none after
    finally:
        store.close()


def test_sleep_action_waits_out_the_cooldown_once_then_calls_go_through(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, extra=RESTART_GUARD % ", action: sleep")
    store = SQLiteStore(tmp_path / "state.db")
    spec = RestartSpec(max_starts=4, window_s=600, cooldown_s=3600)
    now = 1_800_000_000.0
    for pid in range(1, 5):  # four earlier processes of the loop
        store.record_start("publisher", pid=pid, host="elsewhere", now=now - 10, spec=spec)
    slept: list[float] = []
    guard = enforce(policy, store=store, clock=lambda: now, sleep=slept.append)
    assert slept == [3600.0]
    with guard.step(estimate_usd="0.01") as step:
        step.record(cost_usd="0.01")
    guard.close()
    store.close()


def test_refused_calls_are_refused_without_reaching_the_provider(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, extra=RESTART_GUARD % "")
    store = SQLiteStore(tmp_path / "state.db")
    spec = RestartSpec(max_starts=4, window_s=600, cooldown_s=3600)
    now = 1_800_000_000.0
    for pid in range(1, 5):
        store.record_start("publisher", pid=pid, host="elsewhere", now=now, spec=spec)
    guard = enforce(policy, store=store, clock=lambda: now)
    with pytest.raises(RestartLoop, match="restart loop") as refused:
        with guard.step(estimate_usd="0.01"):
            pytest.fail("the call ran")
    assert refused.value.reason == "restart_loop"
    assert store.open_reservations() == []
    guard.close()
    store.close()
