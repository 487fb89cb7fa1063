"""``status``, ``runs --stale``, ``reconcile``, ``watch`` and ``report`` on a real redis-server,
filled by real worker processes (one killed mid-call)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.runtime_helpers import run_worker
from tests.test_operator_cli import SCHEMA, agentfuse_cli, kill_mid_call, write_policy
from tests.redis_server import RedisServer


def test_operator_commands_on_a_redis_store(tmp_path: Path, redis_server: RedisServer) -> None:
    url = redis_server.url()
    policy = write_policy(tmp_path, store=url)
    done = run_worker({"policy_file": str(policy), "max_calls": 3, "estimate_usd": "0.05", "cost_usd": "0.04"})
    killed = kill_mid_call(policy, tmp_path)

    status = agentfuse_cli("status", "--policy", str(policy), "--json")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    jsonschema.validate(document, SCHEMA)
    if redis_server.password:
        assert redis_server.password not in status.stdout
    (agent,) = document["agents"]
    assert agent["today"]["used_usd"] == pytest.approx(0.62)
    runs = {run["run_id"]: run for run in agent["active_runs"]}
    assert runs[done["run_id"]]["steps"] == 3 and runs[killed]["unsettled"] == 1

    stale = json.loads(agentfuse_cli("runs", "--stale", "--policy", str(policy), "--json").stdout)
    (reservation,) = stale["stale_reservations"]
    assert reservation["run_id"] == killed and reservation["action"] == "call"
    assert "not running on this host" in reservation["stale_reason"]

    reconciled = agentfuse_cli(
        "reconcile", killed, "--settle-as", "zero", "--reason", "not billed", "--policy", str(policy)
    )
    assert reconciled.returncode == 0, reconciled.stderr
    after = json.loads(agentfuse_cli("status", "--policy", str(policy), "--json").stdout)
    assert after["agents"][0]["today"]["used_usd"] == pytest.approx(0.12)

    assert agentfuse_cli("watch", "--stale-after", "600", "--policy", str(policy)).returncode == 0
    assert agentfuse_cli("watch", "--stale-after", "0.001", "--policy", str(policy)).returncode == 1

    report = tmp_path / "report.html"
    assert agentfuse_cli("report", "--html", str(report), "--policy", str(policy)).returncode == 0
    assert '<svg class="chart spend"' in report.read_text(encoding="utf-8")
