"""Acceptance across real processes on one real SQLite file: kill -9, races, breaker, halts, CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfuse.runtime.money import from_micros
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.runtime_helpers import REPO, count_lines, recording_webhook, run_worker, start_worker, store_url

pytestmark = pytest.mark.slow

NOW = 1_800_000_000.0
DAY = "2027-01-15"  # the UTC day of NOW


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll a condition on real processes (their progress, not the passing of time)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))


def agentfuse_cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def test_kill_9_mid_run_then_resume_makes_exactly_the_remaining_calls(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    spec = {
        "store": store_url(tmp_path / "state.db"),
        "policy": {"budget": {"run_usd": "0.25", "estimate_usd": "0.01"}},
        "run_id": uuid.uuid4().hex,
        "calls_file": str(calls),
        "latency_s": 0.05,
    }
    victim = start_worker(spec)
    wait_until(lambda: count_lines(calls) >= 10)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    made_before = count_lines(calls)
    assert 10 <= made_before < 25

    report = run_worker(spec)
    total = count_lines(calls)
    assert 24 <= total <= 25
    assert report["refusal"] == {"type": "BudgetExceeded", "reason": "run_budget"}
    run = SQLiteStore(tmp_path / "state.db").get_run(spec["run_id"])
    assert run is not None and run.spent_micros + run.reserved_micros == 250_000
    assert report["calls"] == total - made_before


def test_eight_processes_race_on_one_daily_cap(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    go = tmp_path / "go"
    spec = {
        "store": store_url(tmp_path / "state.db"),
        "policy": {"budget": {"daily_usd": "1.00", "estimate_usd": "0.01"}},
        "calls_file": str(calls),
        "go_file": str(go),
        "now": NOW,
    }
    SQLiteStore(tmp_path / "state.db").close()
    workers = [start_worker(spec) for _ in range(8)]
    go.touch()
    reports = [finish(proc) for proc in workers]
    totals = SQLiteStore(tmp_path / "state.db").agent_totals("tester", day_key=DAY, minute=int(NOW // 60))
    assert Decimal("0.99") <= from_micros(totals.day_micros) <= Decimal("1.00")
    assert count_lines(calls) == sum(r["calls"] for r in reports) == 100
    assert {r["refusal"]["reason"] for r in reports} == {"daily_budget"}


def test_breaker_opens_refuses_new_processes_and_admits_one_probe_of_four(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    base = {
        "store": store_url(tmp_path / "state.db"),
        "policy": {"breaker": {"failure_threshold": 3, "cooldown_s": 60}},
        "calls_file": str(calls),
    }
    opener = run_worker({**base, "mode": "fail", "now": NOW})
    assert count_lines(calls) == 3 and opener["refusal"]["type"] == "CircuitOpen"

    during_cooldown = run_worker({**base, "mode": "once", "now": NOW + 30})
    assert during_cooldown["refusal"]["type"] == "CircuitOpen" and count_lines(calls) == 3

    go, release = tmp_path / "go", tmp_path / "release"
    half_open = {**base, "mode": "once", "now": NOW + 61, "go_file": str(go), "release_file": str(release)}
    workers = [start_worker(half_open) for _ in range(4)]
    go.touch()
    wait_until(lambda: sum(proc.poll() is not None for proc in workers) == 3)
    assert count_lines(calls) == 4  # the probe is inside its call, holding it
    release.touch()
    reports = [finish(proc) for proc in workers]
    refused = [r for r in reports if r["refusal"] is not None]
    assert len(refused) == 3 and {r["refusal"]["type"] for r in refused} == {"CircuitOpen"}
    assert count_lines(calls) == 4
    breaker = SQLiteStore(tmp_path / "state.db").get_breaker("tester")
    assert breaker.state.value == "closed"


def test_operator_halt_refuses_survives_restart_and_resume_clears_it(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    url = store_url(tmp_path / "state.db")
    spec = {"store": url, "mode": "once", "calls_file": str(calls)}
    assert run_worker(spec)["refusal"] is None

    halted = agentfuse_cli("halt", "--agent", "tester", "--reason", "bill too high", "--store", url)
    assert halted.returncode == 0, halted.stderr
    assert "halted agent 'tester'" in halted.stdout
    for _ in range(2):  # the next call, and again after a restart
        report = run_worker(spec)
        assert report["refusal"] == {"type": "RunHalted", "reason": "bill too high"}
    assert count_lines(calls) == 1

    resumed = agentfuse_cli("resume", "--agent", "tester", "--store", url)
    assert resumed.returncode == 0, resumed.stderr
    assert run_worker(spec)["refusal"] is None and count_lines(calls) == 2


def test_halt_of_one_run_leaves_other_runs_alone(tmp_path: Path) -> None:
    url = store_url(tmp_path / "state.db")
    run_id = uuid.uuid4().hex
    assert run_worker({"store": url, "mode": "once", "run_id": run_id})["refusal"] is None
    assert agentfuse_cli("halt", "--agent", "tester", "--run", run_id, "--reason", "x", "--store", url).returncode == 0
    assert run_worker({"store": url, "mode": "once", "run_id": run_id})["refusal"]["type"] == "RunHalted"
    assert run_worker({"store": url, "mode": "once"})["refusal"] is None
    plain = agentfuse_cli("resume", "--agent", "tester", "--store", url)
    assert plain.returncode == 0 and f"run {run_id} is still halted" in plain.stdout
    assert agentfuse_cli("resume", "--agent", "tester", "--run", run_id, "--store", url).returncode == 0
    assert run_worker({"store": url, "mode": "once", "run_id": run_id})["refusal"] is None


POLICY_YAML = """\
version: 1
agent: tester
budget: {{run_usd: 1.00, estimate_usd: 0.01}}
breaker: {{failure_threshold: 3, cooldown_s: 60}}
fail_fast: {{max_attempts: 2}}
kill_switch: {{stop_file: STOP}}
store: {store}
"""


def test_stop_file_refuses_and_the_halt_survives_until_resume_with_policy(tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_YAML.format(store=store_url(tmp_path / "state.db")))
    spec = {"policy_file": str(policy), "mode": "once", "calls_file": str(calls)}
    assert run_worker(spec)["refusal"] is None

    (tmp_path / "STOP").touch()
    assert run_worker(spec)["refusal"] == {"type": "KillSwitchEngaged", "reason": "kill_switch"}
    (tmp_path / "STOP").unlink()
    assert run_worker(spec)["refusal"] == {"type": "RunHalted", "reason": "kill_switch"}
    assert count_lines(calls) == 1

    resumed = agentfuse_cli("resume", "--agent", "tester", "--policy", str(policy))
    assert resumed.returncode == 0, resumed.stderr
    assert run_worker(spec)["refusal"] is None and count_lines(calls) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["halt", "--agent", "a", "--store", "sqlite:///x.db"], "--reason"),
        (["halt", "--agent", "a", "--reason", "r"], "--store"),
        (["halt", "--agent", "a", "--reason", "r", "--store", "mysql://h/db"], "unknown store URL"),
        (["halt", "--agent", "a", "--reason", " ", "--store", "sqlite:///x.db"], "must say why"),
        (["resume", "--agent", "a", "--policy", "missing.yaml"], "missing.yaml"),
        (["resume", "--agent", "a", "--store", "sqlite:///x.db", "--all-runs", "--run", "r"], "exclude"),
    ],
)
def test_operator_commands_bad_usage_exit_2_without_traceback(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = agentfuse_cli(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_invalid_policy_for_operator_commands_is_reported_with_its_line(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nagent: a\nbudget: {run_usd: ten}\nbreaker: {}\nfail_fast: {}\n")
    result = agentfuse_cli("halt", "--agent", "a", "--reason", "r", "--policy", str(policy), cwd=tmp_path)
    assert result.returncode == 2 and "policy.yaml:3" in result.stderr and "Traceback" not in result.stderr


def test_operator_halt_with_a_policy_alerts_and_logs_the_event(tmp_path: Path) -> None:
    with recording_webhook() as hook:
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            POLICY_YAML.format(store=store_url(tmp_path / "state.db"))
            + f"alerts: {{webhook: '{hook.url}', format: ntfy}}\n"
        )
        SQLiteStore.from_url(store_url(tmp_path / "state.db")).close()  # operator commands never create a store
        halted = agentfuse_cli("halt", "--agent", "tester", "--reason", "runaway bill", "--policy", str(policy))
        assert halted.returncode == 0, halted.stderr
        assert hook.arrived.wait(10)
        (touch := tmp_path / "STOP").touch()
        resumed = agentfuse_cli("resume", "--agent", "tester", "--policy", str(policy))
        assert resumed.returncode == 0 and "STOP file" in resumed.stdout
        touch.unlink()
    titles = [r["headers"]["Title"] for r in hook.received]
    assert titles == ["tester: halted by an operator", "tester: resumed by an operator"]
    assert "runaway bill" in hook.received[0]["body"]
    events = [json.loads(line) for line in (tmp_path / ".agentfuse" / "events.jsonl").read_text().splitlines()]
    decisions = [(e["event"], e["reason"]) for e in events if e["event"] != "alert_sent"]
    assert decisions == [("halt", "runaway bill"), ("resume", None)]
    assert sum(e["event"] == "alert_sent" for e in events) == 2
