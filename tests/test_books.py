"""Books that cannot be fooled: lost stores are refused until acknowledged, and the strictest cap
any policy declares for an agent binds all of its processes.

Real worker processes spend against a real SQLite file and a real ``redis-server`` (no
persistence, restarted to lose its data); the operator side runs the real ``agentfuse`` command.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from agentfuse import BudgetExceeded, StoreUnavailable, enforce
from agentfuse.runtime.stores.redis import RedisStore
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.redis_server import RedisServer, running_server
from tests.runtime_helpers import FakeClient, count_lines, run_worker, start_worker, store_url
from tests.test_operator_cli import agentfuse_cli

AGENT = "A"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis with no persistence (the default of many installs), per test: it gets restarted."""
    (tmp_path / "redis-data").mkdir()
    yield from running_server(tmp_path / "redis-data")


def write_policy(folder: Path, store: str, *, daily: str | None = None, run: str = "1.00") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    caps = f"run_usd: {run}, estimate_usd: 0.10" + (f", daily_usd: {daily}" if daily else "")
    path = folder / "policy.yaml"
    path.write_text(
        "\n".join([
            "version: 1",
            f"agent: {AGENT}",
            f"budget: {{{caps}}}",
            "breaker: {failure_threshold: 5, cooldown_s: 300}",
            "fail_fast: {max_attempts: 3}",
            f"events: {{path: {folder / 'events.jsonl'}}}",
            f"store: '{store}'",
        ]) + "\n",
        encoding="utf-8",
    )
    return path


def spend(policy: Path, calls_file: Path, run_id: str = "job-1", max_calls: int = 100) -> dict[str, Any]:
    """A new worker process resuming ``run_id``: $0.10 calls until refused or ``max_calls``."""
    return run_worker({
        "policy_file": str(policy), "run_id": run_id, "max_calls": max_calls, "estimate_usd": "0.10",
        "cost_usd": "0.10", "calls_file": str(calls_file),
    })


def refused_at_start(policy: Path, calls_file: Path) -> str:
    """Start a worker that must be refused by ``enforce()``; its stderr."""
    proc = start_worker({"policy_file": str(policy), "run_id": "job-1", "estimate_usd": "0.10",
                         "cost_usd": "0.10", "calls_file": str(calls_file)})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0, "the worker was not refused"
    return err


def events(policy: Path) -> list[dict[str, Any]]:
    lines = (policy.parent / "events.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


# -- store amnesia -----------------------------------------------------------------------------------


def test_a_redis_restarted_empty_refuses_the_resumed_run_until_an_operator_accepts_the_loss(
    tmp_path: Path, server: RedisServer
) -> None:
    url = server.url()
    policy = write_policy(tmp_path / "proj", url)
    calls = tmp_path / "calls"
    assert spend(policy, calls, max_calls=9)["calls"] == 9  # $0.90 of the run's $1.00
    halted = agentfuse_cli("halt", "--agent", AGENT, "--reason", "look at the bill", "--policy", str(policy))
    assert halted.returncode == 0, halted.stderr
    running = enforce(policy, run_id="job-2")
    server.kill()
    server.start()  # no persistence: the run, its $0.90 and the halt are gone

    err = refused_at_start(policy, calls)
    assert "StoreUnavailable" in err and f"the books of agent '{AGENT}' were lost" in err
    assert f"agentfuse store reset --agent {AGENT} --accept-loss" in err
    with pytest.raises(StoreUnavailable) as refused:
        with running.step():
            pass
    assert refused.value.reason == "store_lost"  # the process that was running notices too
    running.close()
    assert count_lines(calls) == 9
    assert [e["event"] for e in events(policy)].count("store_lost") == 1

    unsure = agentfuse_cli("store", "reset", "--agent", AGENT, "--policy", str(policy))
    assert unsure.returncode == 2 and "--accept-loss" in unsure.stderr
    assert refused_at_start(policy, calls)
    why = "redis ran without AOF"
    accepted = agentfuse_cli(
        "store", "reset", "--agent", AGENT, "--accept-loss", "--reason", why, "--policy", str(policy)
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "loss acknowledged" in accepted.stdout
    (reset,) = [e for e in events(policy) if e["event"] == "store_reset"]
    assert reset["reason"] == "redis ran without AOF" and reset["source"] == "operator"
    (loss,) = RedisStore(url).losses(AGENT)
    assert loss.reason == "redis ran without AOF" and loss.previous and loss.identity != loss.previous

    after = spend(policy, calls)  # accepted: the run starts again from zero, halt and all
    assert after["calls"] == 10 and after["refusal"] == {"type": "BudgetExceeded", "reason": "run_budget"}


def test_every_host_adopts_an_acknowledged_reset(tmp_path: Path, server: RedisServer) -> None:
    url = server.url()
    host_a, host_b = write_policy(tmp_path / "a", url), write_policy(tmp_path / "b", url)
    calls = tmp_path / "calls"
    for policy in (host_a, host_b):
        spend(policy, calls, max_calls=1)
    server.kill()
    server.start()
    assert refused_at_start(host_b, calls)
    reset = agentfuse_cli("store", "reset", "--agent", AGENT, "--accept-loss", "--policy", str(host_a))
    assert reset.returncode == 0, reset.stderr
    assert spend(host_b, calls, max_calls=1)["calls"] == 1  # host B never saw the reset's identity: adopted
    record = json.loads((tmp_path / "b" / ".agentfuse" / "seen-stores.json").read_text(encoding="utf-8"))
    (books,) = record["stores"].values()
    assert books[AGENT]["identity"] == RedisStore(url).identity(AGENT).identity  # type: ignore[union-attr]


def test_a_state_db_emptied_is_refused_as_damaged_until_an_operator_accepts_the_loss(tmp_path: Path) -> None:
    db = tmp_path / "proj" / ".agentfuse" / "state.db"
    policy = write_policy(tmp_path / "proj", store_url(db))
    calls = tmp_path / "calls"
    assert spend(policy, calls, max_calls=9)["calls"] == 9
    db.write_bytes(b"")  # truncated to 0 bytes

    err = refused_at_start(policy, calls)
    assert "StoreUnavailable" in err and "is damaged (the file is empty (0 bytes))" in err
    assert db.stat().st_size == 0 and count_lines(calls) == 9  # not silently re-created
    status = agentfuse_cli("status", "--policy", str(policy))
    assert status.returncode != 0 and "damaged" in status.stderr

    accepted = agentfuse_cli("store", "reset", "--agent", AGENT, "--accept-loss", "--policy", str(policy))
    assert accepted.returncode == 0, accepted.stderr
    (aside,) = db.parent.glob("state.db.damaged-*")
    assert aside.stat().st_size == 0 and f"aside to {aside}" in accepted.stdout
    assert spend(policy, calls)["calls"] == 10
    assert [loss.reason for loss in SQLiteStore(db).losses(AGENT)] == ["an operator accepted the loss"]


def test_a_deleted_state_db_is_refused_because_its_seen_record_remembers_it(tmp_path: Path) -> None:
    db = tmp_path / ".agentfuse" / "state.db"
    policy = write_policy(tmp_path, store_url(db))
    calls = tmp_path / "calls"
    assert spend(policy, calls, max_calls=9)["calls"] == 9
    for name in db.parent.glob("state.db*"):
        if not name.name.endswith(".seen.json"):
            name.unlink()

    err = refused_at_start(policy, calls)
    assert f"the books of agent '{AGENT}' were lost" in err and "state.db.seen.json" in err
    assert count_lines(calls) == 9
    other = agentfuse_cli("store", "reset", "--agent", "B", "--accept-loss", "--policy", str(policy))
    assert other.returncode == 2 and "is the policy of agent 'A', not 'B'" in other.stderr
    from_environment = {"AGENTFUSE_POLICY": str(policy)}
    reset = agentfuse_cli("store", "reset", "--agent", AGENT, "--accept-loss", cwd=tmp_path, env=from_environment)
    assert reset.returncode == 0, reset.stderr
    assert spend(policy, calls)["calls"] == 10


def test_a_redis_that_keeps_nothing_on_disk_is_warned_about_once(
    tmp_path: Path, server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, server.url())
    for run_id in ("one", "two"):
        enforce(policy, run_id=run_id).close()
    lines = [line for line in capfd.readouterr().err.splitlines() if "keeps nothing on disk" in line]
    assert len(lines) == 1 and lines[0].startswith("agentfuse: warning: the Redis store redis://")
    assert "appendonly yes" in lines[0]
    assert [e["event"] for e in events(policy)].count("store_not_durable") == 2  # one per guard


def test_a_policy_folder_that_cannot_keep_a_seen_record_is_warned_about_not_refused(
    tmp_path: Path, server: RedisServer, capfd: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy(tmp_path, server.url())
    (tmp_path / ".agentfuse").write_text("a file where the record's folder would go", encoding="utf-8")
    guard = enforce(policy)
    with guard.step():
        FakeClient().chat.completions.create()
    guard.close()
    err = capfd.readouterr().err
    assert "cannot write the seen record" in err and "would go unnoticed" in err


def test_a_redis_with_an_append_only_file_gets_no_warning(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "aof").mkdir()
    for server in running_server(tmp_path / "aof", persistent=True):
        policy = write_policy(tmp_path, server.url())
        enforce(policy).close()
    assert "warning" not in capfd.readouterr().err
    assert "store_not_durable" not in {e["event"] for e in events(policy)}


def test_a_managed_redis_that_refuses_config_get_is_said_once_and_still_guards(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "acl").mkdir()
    for server in running_server(tmp_path / "acl", password="admin-secret"):
        admin = redis.Redis(host=server.host, port=server.port, password="admin-secret")
        admin.execute_command("ACL", "SETUSER", "agent", "on", ">agent-pw", "~*", "&*", "+@all", "-config")
        url = f"redis://agent:agent-pw@{server.host}:{server.port}/0?prefix=managed"
        guard = enforce(write_policy(tmp_path, url))
        with guard.step():
            FakeClient().chat.completions.create()
        guard.close()
    err = capfd.readouterr().err
    assert err.count("cannot tell whether the Redis store") == 1 and "CONFIG GET refused" in err
    assert "agent-pw" not in err


# -- two policies, one agent ---------------------------------------------------------------------------


@pytest.fixture(params=("sqlite", "redis"))
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return store_url(tmp_path / "shared.db")
    server: RedisServer = request.getfixturevalue("server")
    return server.url()


def test_two_policies_of_one_agent_never_spend_past_the_stricter_daily_cap(tmp_path: Path, shared_url: str) -> None:
    strict = write_policy(tmp_path / "strict", shared_url, daily="1.00", run="10")
    lax = write_policy(tmp_path / "lax", shared_url, daily="5.00", run="10")
    calls = tmp_path / "calls"
    assert spend(strict, calls, max_calls=3)["calls"] == 3
    guard = enforce(lax)
    client = FakeClient()
    with pytest.raises(BudgetExceeded) as refused:
        for _ in range(60):
            with guard.step() as step:
                client.chat.completions.create()
                step.record(cost_usd="0.10")
    guard.close()
    assert client.calls == 7  # $0.30 + $0.70: the strict policy's $1.00, not the lax one's $5.00
    strict_key = f"{socket.gethostname()}:{strict.resolve()}"
    assert refused.value.reason == "daily_budget" and refused.value.figures["declared_by"] == strict_key
    assert f"declared by the policy {strict_key}" in str(refused.value)

    listed = agentfuse_cli("store", "caps", "--agent", AGENT, "--policy", str(lax), "--json")
    assert listed.returncode == 0, listed.stderr
    declared = {item["policy"]: item["daily_usd"] for item in json.loads(listed.stdout)["declarations"]}
    assert declared == {strict_key: "1.000000", f"{socket.gethostname()}:{lax.resolve()}": "5.000000"}
    dropped = agentfuse_cli("store", "caps", "--agent", AGENT, "--drop", strict_key, "--policy", str(lax))
    assert dropped.returncode == 0 and f"dropped the declaration of {strict_key}" in dropped.stdout
    assert spend(lax, calls, run_id="after-drop", max_calls=5)["calls"] == 5  # the lax cap alone binds now
    unknown = agentfuse_cli("store", "caps", "--agent", AGENT, "--drop", strict_key, "--policy", str(lax))
    assert unknown.returncode == 1 and "no declaration" in unknown.stderr
