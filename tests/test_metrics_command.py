"""``agentfuse metrics``: scraped over HTTP on loopback, parsed with prometheus-client's parser,
and compared with ``agentfuse status --json`` on the same store."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from agentfuse import CircuitOpen, RunHalted, enforce
from agentfuse.runtime.events import EventLog
from agentfuse.operator.metrics import RefusalTally, parse_listen
from tests.runtime_helpers import REPO, TransientError, make_policy, store_url

POLICY = """\
version: 1
agent: publisher
budget: {run_usd: 5, daily_usd: 20, hourly_usd: 4, estimate_usd: 0.01}
breaker: {failure_threshold: 3, cooldown_s: 600}
fail_fast: {max_attempts: 10}
events: {path: events.jsonl}
store: sqlite:///state.db
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def cli(folder: Path, *args: str, **popen: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        **popen,
    )


def samples(text: str) -> Samples:
    """Every sample of an exposition, keyed by (sample name, sorted labels)."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Path]:
    """A store with two agents: spend, an open reservation, an open breaker, a halt, refusals."""
    (tmp_path / "policy.yaml").write_text(POLICY)
    guard = enforce(tmp_path / "policy.yaml")
    for _ in range(3):
        with guard.step(action="draft") as step:
            step.record(cost_usd="0.03")
    for _ in range(3):
        with pytest.raises(TransientError):
            with guard.step(action="draft", breaker_key="openai"):
                raise TransientError("503")
    with pytest.raises(CircuitOpen):
        with guard.step(breaker_key="openai"):
            pass
    child = guard.child(run_usd="1.00")
    with child.step() as step:
        step.record(cost_usd="0.02")
    open_call = guard.step(action="slow")
    open_call.__enter__()  # still in flight: its reservation stays open
    guard.flush()
    guard.halt("reviewing spend")
    with pytest.raises(RunHalted):
        with guard.step():
            pass
    helper = enforce(make_policy(agent="helper"), store=store_url(tmp_path / "state.db"))
    with helper.step() as step:
        step.record(cost_usd="0.25")
    helper.close()
    yield tmp_path
    open_call.__exit__(None, None, None)
    guard.close()


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        return response.read().decode("utf-8")


@pytest.fixture
def served(fleet: Path) -> Iterator[tuple[Path, str]]:
    """``agentfuse metrics --listen 127.0.0.1:0`` running; yields its folder and /metrics URL."""
    server = subprocess.Popen(
        [sys.executable, "-m", "agentfuse", "metrics", "--policy", "policy.yaml", "--listen", "127.0.0.1:0"],
        cwd=fleet,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert server.stderr is not None
    line = server.stderr.readline()
    match = re.search(r"serving metrics on (http://127\.0\.0\.1:\d+/metrics)", line)
    assert match, line + server.stderr.read()
    yield fleet, match.group(1)
    server.send_signal(signal.SIGTERM)
    assert server.wait(timeout=30) == 0


def test_scraped_figures_equal_status_json(served: tuple[Path, str]) -> None:
    folder, url = served
    found = samples(scrape(url))
    status = cli(folder, "status", "--json", "--policy", "policy.yaml")
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert value(found, "agentfuse_store_up") == 1
    agents = {agent["agent"]: agent for agent in document["agents"]}
    assert set(agents) == {"publisher", "helper"}
    for name, agent in agents.items():
        assert value(found, "agentfuse_spend_today_usd", agent=name) == agent["today"]["used_usd"]
        assert value(found, "agentfuse_spend_last_hour_usd", agent=name) == agent["last_hour"]["used_usd"]
        assert value(found, "agentfuse_active_runs", agent=name) == len(agent["active_runs"])
        assert value(found, "agentfuse_open_reservations", agent=name) == sum(
            run["unsettled"] for run in agent["active_runs"]
        )
        for run in agent["active_runs"]:
            labels = {"agent": name, "run": run["run_id"], "parent": run["parent_id"] or ""}
            assert value(found, "agentfuse_run_spent_usd", **labels) == run["spent_usd"]
            assert value(found, "agentfuse_run_reserved_usd", **labels) == run["reserved_usd"]
            assert value(found, "agentfuse_run_steps", **labels) == run["steps"]
        for breaker in agent["breakers"]:
            key = breaker["key"]
            assert value(found, "agentfuse_breaker_state", agent=name, key=key, state=breaker["state"]) == 1
            assert value(found, "agentfuse_breaker_consecutive_failures", agent=name, key=key) == (
                breaker["consecutive_failures"]
            )
        assert value(found, "agentfuse_halts", agent=name) == len(agent["halts"])
        assert value(found, "agentfuse_workers", agent=name) == len(agent["workers"])
        for worker in agent["workers"]:
            age = value(found, "agentfuse_worker_heartbeat_age_seconds", agent=name, pid=str(worker["pid"]),
                        host=worker["host"], run=worker["run_id"])
            assert worker["heartbeat_age_s"] - 30 <= age <= worker["heartbeat_age_s"]  # scraped first

    publisher = agents["publisher"]
    assert value(found, "agentfuse_cap_today_usd", agent="publisher") == publisher["today"]["cap_usd"] == 20
    assert value(found, "agentfuse_cap_last_hour_usd", agent="publisher") == 4
    assert ("agentfuse_cap_today_usd", (("agent", "helper"),)) not in found  # its caps are unknown here
    # 3 calls x 0.03, 3 failures at their 0.01 estimate, the child's 0.02, 0.01 in flight
    assert publisher["today"]["used_usd"] == pytest.approx(0.09 + 0.03 + 0.02 + 0.01)
    assert value(found, "agentfuse_open_reservations", agent="publisher") == 1
    assert value(found, "agentfuse_breaker_state", agent="publisher", key="openai", state="open") == 1
    assert value(found, "agentfuse_breaker_state", agent="publisher", key="openai", state="closed") == 0
    (halt,) = publisher["halts"]
    assert value(found, "agentfuse_halted", agent="publisher", run=halt["run_id"], reason="reviewing spend",
                 source="operator") == 1
    assert value(found, "agentfuse_event_refusals_total", agent="publisher", reason="circuit_open") == 1
    assert value(found, "agentfuse_event_refusals_total", agent="publisher", reason="reviewing spend") == 1
    assert value(found, "agentfuse_last_heartbeat_age_seconds", agent="publisher") >= 0


def test_refusals_appended_while_serving_are_counted_once(served: tuple[Path, str]) -> None:
    folder, url = served
    before = value(samples(scrape(url)), "agentfuse_event_refusals_total", agent="publisher", reason="circuit_open")
    guard = enforce(folder / "policy.yaml")
    for _ in range(2):
        with pytest.raises(CircuitOpen):
            with guard.step(breaker_key="openai"):
                pass
    guard.close()
    first = samples(scrape(url))
    again = samples(scrape(url))
    assert value(first, "agentfuse_event_refusals_total", agent="publisher", reason="circuit_open") == before + 2
    assert value(again, "agentfuse_event_refusals_total", agent="publisher", reason="circuit_open") == before + 2


def test_once_prints_the_same_exposition(fleet: Path) -> None:
    once = cli(fleet, "metrics", "--policy", "policy.yaml", "--once")
    assert once.returncode == 0, once.stderr
    found = samples(once.stdout)
    assert value(found, "agentfuse_spend_today_usd", agent="helper") == 0.25
    assert value(found, "agentfuse_active_runs", agent="publisher") == 2
    only = samples(cli(fleet, "metrics", "--policy", "policy.yaml", "--once", "--agent", "helper").stdout)
    assert {dict(labels).get("agent") for _, labels in only} == {"helper", None}


@pytest.mark.parametrize("store", ["none.db", "bad.db"])
def test_a_missing_or_damaged_store_is_said_as_status_says_it(tmp_path: Path, store: str) -> None:
    (tmp_path / "bad.db").write_bytes(b"this is not a database" * 100)
    url = f"sqlite:///{tmp_path}/{store}"
    metrics = cli(tmp_path, "metrics", "--store", url, "--once")
    status = cli(tmp_path, "status", "--store", url)
    assert metrics.returncode == status.returncode != 0
    assert metrics.stderr == status.stderr and metrics.stderr.strip() and "Traceback" not in metrics.stderr
    assert metrics.stdout == ""


def test_a_bad_listen_address_is_a_usage_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "metrics", "--store", "sqlite:///x.db", "--listen", "localhost")
    assert result.returncode == 2 and "HOST:PORT" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("listen", ["9464", "localhost", "127.0.0.1:http", ":9464", "127.0.0.1:70000", "[::1]"])
def test_listen_needs_host_and_port(listen: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(listen)


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:0") == ("::1", 0)
    assert parse_listen("0.0.0.0:9100") == ("0.0.0.0", 9100)


def test_without_prometheus_client_the_command_says_what_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from agentfuse.cli import main\n"
        f"sys.exit(main(['metrics', '--store', 'sqlite:///{tmp_path}/x.db', '--once']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    assert result.returncode == 2 and "pip install 'agentfuse[prometheus]'" in result.stderr


def test_refusal_tally_follows_rotation_without_counting_twice(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=400, backup_count=50)
    tally = RefusalTally(path)
    log.emit("refused", agent="a", run="r", reason="run_budget", action="draft")
    log.emit("allowed", agent="a", run="r", action="draft")
    assert tally.update() == {("a", "run_budget"): 1}
    for number in range(20):  # several rotations
        log.emit("refused", agent="a", run="r", reason="kill_switch" if number % 2 else "run_budget")
        if number % 7 == 0:
            tally.update()
    log.close()
    assert len(list(tmp_path.glob("events.jsonl.*"))) >= 2
    assert tally.update() == {("a", "run_budget"): 11, ("a", "kill_switch"): 10}
    assert tally.update() == {("a", "run_budget"): 11, ("a", "kill_switch"): 10}
    tally.close()


def test_the_grafana_dashboard_queries_only_exported_metrics(fleet: Path) -> None:
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
    ]
    assert exprs and all(panel.get("datasource") for panel in dashboard["panels"] if panel.get("targets"))
    used = {name for expr in exprs for name in re.findall(r"\bagentfuse_[a-z_]+", expr)}
    exported = {name for name, _ in samples(cli(fleet, "metrics", "--policy", "policy.yaml", "--once").stdout)}
    assert used and used <= exported, used - exported
