"""``agentfuse status``, ``runs``, ``reconcile`` and ``watch`` in subprocesses, on real SQLite stores
filled by real guarded runs (workers in their own processes, one of them killed with SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.runtime_helpers import REPO, count_lines, recording_webhook, run_worker, start_worker, store_url

SCHEMA = json.loads((REPO / "tests" / "data" / "status.schema.json").read_text(encoding="utf-8"))
WEBHOOK_TOKEN = "tok3nSecretValue42"


def agentfuse_cli(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m agentfuse ARGS`` as an operator would (stdout is a pipe, not a TTY)."""
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})},
        timeout=60,
    )


def write_policy(
    folder: Path,
    *,
    agent: str = "publisher",
    db: Path | None = None,
    webhook: str | None = None,
    extra: str = "",
    store: str | None = None,
) -> Path:
    """A policy file with caps, an event log next to it and the given store (URL or SQLite file) and webhook."""
    lines = [
        "version: 1",
        f"agent: {agent}",
        "budget: {run_usd: 5, daily_usd: 20, hourly_usd: 5, max_steps: 200, max_retries_total: 10,"
        " timeout_s: 3600, estimate_usd: 0.02}",
        "breaker: {failure_threshold: 5, cooldown_s: 300}",
        "fail_fast: {max_attempts: 3, halt_on: [PermissionError]}",
        "events: {path: events.jsonl}",
        f"store: '{store or store_url(db or folder / 'state.db')}'",
    ]
    if webhook:
        lines.append(f"alerts: {{webhook: '{webhook}'}}")
    path = folder / f"{agent}.yaml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    """Poll real processes' progress (not the passing of time)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def kill_mid_call(policy: Path, folder: Path) -> str:
    """Start a worker, SIGKILL it inside its first call (reservation open); return its run id."""
    calls = folder / "killed-calls.txt"
    proc = start_worker(
        {
            "policy_file": str(policy),
            "calls_file": str(calls),
            "release_file": str(folder / "never"),
            "estimate_usd": "0.50",
        }
    )
    try:
        assert proc.stdout is not None
        run_id = json.loads(proc.stdout.readline())["run_id"]
        wait_until(lambda: count_lines(calls) == 1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)  # reaped: its pid is gone, not a zombie
    return str(run_id)


@pytest.fixture()
def fleet(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A store with one finished run (3 calls at $0.04) and one killed mid-call ($0.50 reserved)."""
    policy = write_policy(tmp_path)
    done = run_worker({"policy_file": str(policy), "max_calls": 3, "estimate_usd": "0.05", "cost_usd": "0.04"})
    killed = kill_mid_call(policy, tmp_path)
    yield {"policy": policy, "db": tmp_path / "state.db", "done": done["run_id"], "killed": killed, "dir": tmp_path}


def test_status_json_follows_the_documented_schema_and_shows_spend_against_caps(fleet: dict[str, Any]) -> None:
    result = agentfuse_cli("status", "--policy", str(fleet["policy"]), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    jsonschema.validate(document, SCHEMA)
    (agent,) = document["agents"]
    assert agent["agent"] == "publisher" and agent["caps_known"] is True
    assert agent["today"]["used_usd"] == pytest.approx(0.12 + 0.50)
    assert agent["today"]["cap_usd"] == 20.0 and agent["last_hour"]["cap_usd"] == 5.0
    runs = {run["run_id"]: run for run in agent["active_runs"]}
    assert runs[fleet["done"]]["spent_usd"] == pytest.approx(0.12)
    assert runs[fleet["done"]]["steps"] == 3 and runs[fleet["done"]]["max_steps"] == 200
    assert runs[fleet["killed"]]["reserved_usd"] == pytest.approx(0.50)
    assert runs[fleet["killed"]]["unsettled"] == 1
    workers = {worker["run_id"]: worker for worker in agent["workers"]}
    assert workers[fleet["killed"]]["alive"] is False
    assert agent["breakers"][0]["state"] == "closed"
    assert [event["event"] for event in agent["last_events"]][-1] == "allowed"  # the killed call


def test_status_with_only_a_store_shows_spend_and_says_caps_are_unknown(fleet: dict[str, Any]) -> None:
    url = store_url(fleet["db"])
    table = agentfuse_cli("status", "--store", url)
    assert table.returncode == 0, table.stderr
    assert "agent publisher" in table.stdout
    assert "$0.62 (cap unknown: pass --policy)" in table.stdout
    assert "\x1b[" not in table.stdout  # stdout is a pipe: no colour
    document = json.loads(agentfuse_cli("status", "--store", url, "--json").stdout)
    jsonschema.validate(document, SCHEMA)
    assert document["agents"][0]["caps_known"] is False
    assert document["agents"][0]["today"]["cap_usd"] is None


def test_status_halts_and_open_breaker_are_shown_with_reason_and_time_to_half_open(fleet: dict[str, Any]) -> None:
    from agentfuse import enforce

    guard = enforce(fleet["policy"])
    for attempt in range(5):
        with pytest.raises(TimeoutError), guard.step(action=f"post-{attempt}"):
            raise TimeoutError("provider timed out")
    guard.close()
    halted = agentfuse_cli(
        "halt", "--agent", "publisher", "--reason", "bill too high", "--policy", str(fleet["policy"])
    )
    assert halted.returncode == 0, halted.stderr
    document = json.loads(agentfuse_cli("status", "--policy", str(fleet["policy"]), "--json").stdout)
    jsonschema.validate(document, SCHEMA)
    agent = document["agents"][0]
    assert [(h["run_id"], h["reason"], h["source"]) for h in agent["halts"]] == [(None, "bill too high", "operator")]
    (breaker,) = agent["breakers"]
    assert breaker["state"] == "open" and breaker["consecutive_failures"] == 5
    assert 0 < breaker["half_open_in_s"] <= 300
    table = agentfuse_cli("status", "--policy", str(fleet["policy"])).stdout
    assert "HALTED agent-wide: bill too high (by operator" in table
    assert "OPEN since" in table and "half-open in" in table


def test_status_never_prints_the_webhook_or_a_store_password(tmp_path: Path) -> None:
    policy = write_policy(tmp_path, webhook=f"https://hooks.slack.com/services/T0/B0/{WEBHOOK_TOKEN}")
    run_worker({"policy_file": str(policy), "max_calls": 1})
    for extra in ([], ["--json"]):
        result = agentfuse_cli("status", "--policy", str(policy), *extra)
        assert result.returncode == 0, result.stderr
        assert WEBHOOK_TOKEN not in result.stdout + result.stderr
    refused = agentfuse_cli("status", "--store", f"redis://:{WEBHOOK_TOKEN}@127.0.0.1:1/0")
    assert refused.returncode != 0
    assert WEBHOOK_TOKEN not in refused.stdout + refused.stderr
    assert "Traceback" not in refused.stderr


def test_runs_lists_every_run_and_stale_lists_only_the_killed_workers_reservation(fleet: dict[str, Any]) -> None:
    listing = json.loads(agentfuse_cli("runs", "--policy", str(fleet["policy"]), "--json").stdout)
    assert {run["run_id"] for run in listing["runs"]} == {fleet["done"], fleet["killed"]}
    stale = json.loads(agentfuse_cli("runs", "--stale", "--policy", str(fleet["policy"]), "--json").stdout)
    (reservation,) = stale["stale_reservations"]
    assert reservation["run_id"] == fleet["killed"]
    assert reservation["estimate_usd"] == pytest.approx(0.50)
    assert reservation["pid"] is not None and "not running on this host" in reservation["stale_reason"]
    table = agentfuse_cli("runs", "--stale", "--store", store_url(fleet["db"])).stdout
    assert fleet["killed"] in table and "agentfuse reconcile RUN" in table


def test_runs_stale_leaves_out_a_live_workers_open_reservation(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    calls, release = tmp_path / "calls.txt", tmp_path / "release"
    proc = start_worker(
        {"policy_file": str(policy), "calls_file": str(calls), "release_file": str(release), "max_calls": 1}
    )
    try:
        wait_until(lambda: count_lines(calls) == 1)
        stale = json.loads(agentfuse_cli("runs", "--stale", "--policy", str(policy), "--json").stdout)
        assert stale["stale_reservations"] == []
    finally:
        release.touch()
        proc.communicate(timeout=30)
    assert proc.returncode == 0


@pytest.mark.parametrize(("settle_as", "day_total"), [("zero", 0.12), ("reserved", 0.62)])
def test_reconcile_settles_the_stale_reservation_explicitly_and_logs_it(
    fleet: dict[str, Any], settle_as: str, day_total: float
) -> None:
    result = agentfuse_cli(
        "reconcile", fleet["killed"], "--settle-as", settle_as, "--reason", "checked the provider's usage page",
        "--policy", str(fleet["policy"]),
    )
    assert result.returncode == 0, result.stderr
    assert f"as {settle_as}" in result.stdout
    document = json.loads(agentfuse_cli("status", "--policy", str(fleet["policy"]), "--json").stdout)
    assert document["agents"][0]["today"]["used_usd"] == pytest.approx(day_total)
    stale = json.loads(agentfuse_cli("runs", "--stale", "--policy", str(fleet["policy"]), "--json").stdout)
    assert stale["stale_reservations"] == []
    events = [json.loads(line) for line in (fleet["dir"] / "events.jsonl").read_text().splitlines()]
    (logged,) = [event for event in events if event["event"] == "reconciled"]
    assert logged["run"] == fleet["killed"] and logged["settle_as"] == settle_as
    assert logged["reason"] == "checked the provider's usage page"
    store = SQLiteStore(fleet["db"])
    try:
        (record,) = store.reconciliations("publisher")
    finally:
        store.close()
    assert record.settle_as == settle_as and record.reason == "checked the provider's usage page"
    again = agentfuse_cli(
        "reconcile", fleet["killed"], "--settle-as", "zero", "--reason", "x", "--policy", str(fleet["policy"])
    )
    assert again.returncode == 0 and "no stale reservations" in again.stdout


def test_watch_exits_0_when_heartbeats_are_fresh_and_1_with_an_alert_when_stale(
    fleet: dict[str, Any], tmp_path: Path
) -> None:
    fresh = agentfuse_cli("watch", "--stale-after", "600", "--store", store_url(fleet["db"]))
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    assert "ok    publisher" in fresh.stdout
    with recording_webhook() as hook:
        policy = write_policy(tmp_path, db=fleet["db"], webhook=hook.url, agent="publisher")
        stale = agentfuse_cli("watch", "--stale-after", "0.001", "--alert", "--policy", str(policy))
        assert stale.returncode == 1, stale.stderr
        assert "STALE publisher" in stale.stdout
        assert hook.arrived.wait(10)
    assert "last heartbeat" in hook.received[0]["body"] and "may be dead or stuck" in hook.received[0]["body"]
    never = agentfuse_cli("watch", "--agent", "ghost", "--store", store_url(fleet["db"]))
    assert never.returncode == 1 and "no heartbeat ever" in never.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["watch", "--alert", "--store", "sqlite:///x.db"], "--alert needs --policy"),
        (["watch", "--stale-after", "-5", "--store", "sqlite:///x.db"], "--stale-after must be more than 0"),
        (["reconcile", "nope", "--settle-as", "half", "--reason", "r", "--store", "sqlite:///x.db"], "invalid choice"),
        (["reconcile", "r1", "--settle-as", "zero", "--reason", " ", "--store", "sqlite:///x.db"], "must say why"),
        (["report", "--html", "r.html", "--since", "soon", "--store", "sqlite:///x.db"], "is not a duration"),
        (["status", "--store", "mysql://h/db"], "unknown store URL"),
    ],
)
def test_bad_usage_exits_2_with_a_message_and_no_traceback(tmp_path: Path, args: list[str], message: str) -> None:
    result = agentfuse_cli(*args, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_reconcile_of_an_unknown_run_fails_with_a_message(fleet: dict[str, Any]) -> None:
    result = agentfuse_cli(
        "reconcile", "nope", "--settle-as", "zero", "--reason", "r", "--store", store_url(fleet["db"])
    )
    assert result.returncode == 1
    assert "no run 'nope'" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["status"], ["runs"], ["watch"], ["report", "--html", "r.html"],
        ["halt", "--agent", "a", "--reason", "r"], ["resume", "--agent", "a"],
        ["reconcile", "r1", "--settle-as", "zero", "--reason", "r"],
    ],
)
def test_operator_commands_never_create_a_missing_store(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "typo" / "typo.db"
    result = agentfuse_cli(*command, "--store", "sqlite:///typo/typo.db", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"no store at {missing}" in result.stderr and "Traceback" not in result.stderr
    assert "halted" not in result.stdout
    assert not missing.parent.exists()


def status_on_a_terminal(policy: Path, env: dict[str, str]) -> str:
    """``agentfuse status`` with its stdout on a real pseudo-terminal; what it wrote there."""
    leader, follower = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agentfuse", "status", "--policy", str(policy)],
            stdout=follower,
            stderr=subprocess.PIPE,
            env={**{k: v for k, v in os.environ.items() if k != "NO_COLOR"}, "PYTHONPATH": str(REPO), **env},
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(leader)
    return b"".join(chunks).decode()


def test_status_colours_only_on_a_terminal_without_no_color(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    run_worker({"policy_file": str(policy), "max_calls": 1})
    coloured = status_on_a_terminal(policy, {})
    assert "\x1b[1magent publisher\x1b[0m" in coloured
    plain = status_on_a_terminal(policy, {"NO_COLOR": "1"})
    assert "agent publisher" in plain and "\x1b[" not in plain


def test_status_lists_recent_and_live_workers_not_every_process_that_ever_ran(tmp_path: Path) -> None:
    from agentfuse.runtime.stores.base import Heartbeat

    policy = write_policy(tmp_path)
    run_worker({"policy_file": str(policy), "max_calls": 1})
    store = SQLiteStore(tmp_path / "state.db")
    try:
        store.record_heartbeat(Heartbeat("publisher", "old-run", 999_999, "elsewhere", time.time() - 7200))
    finally:
        store.close()
    document = json.loads(agentfuse_cli("status", "--policy", str(policy), "--json").stdout)
    workers = document["agents"][0]["workers"]
    assert len(workers) == 1 and workers[0]["run_id"] != "old-run"
