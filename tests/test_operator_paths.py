"""Where the store, the event log and the STOP file are: relative paths in a policy are in the
policy file's folder, for agents and operator commands alike, wherever they are started; a store
given as an argument is relative to the current directory. Real SQLite files, real worker
processes and the installed ``agentfuse`` script."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentfuse import enforce
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.operator_helpers import agentfuse, write_policy_file
from tests.runtime_helpers import run_worker


def spend(policy: Path, cwd: Path, **spec: object) -> dict[str, object]:
    """A worker started in ``cwd`` spending $0.02 a call against ``policy`` (given relative to ``cwd``)."""
    cwd.mkdir(parents=True, exist_ok=True)
    relative = Path(*[".."] * len(cwd.relative_to(policy.parents[1]).parts), *policy.parts[-2:])
    assert (cwd / relative).resolve() == policy.resolve()
    return run_worker(
        {"policy_file": str(relative), "cwd": str(cwd), "estimate_usd": "0.02", "cost_usd": "0.02", **spec}
    )


def test_one_policy_run_from_two_directories_shares_one_daily_cap(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path / "proj", daily_usd="0.05")
    first = spend(policy, tmp_path / "a")
    second = spend(policy, tmp_path / "b")
    assert first["calls"] == 2 and first["refusal"]["reason"] == "daily_budget"  # type: ignore[index]
    assert second["calls"] == 0 and second["refusal"]["reason"] == "daily_budget"  # type: ignore[index]
    assert (tmp_path / "proj" / ".agentfuse" / "state.db").is_file()
    assert not (tmp_path / "a" / ".agentfuse").exists() and not (tmp_path / "b" / ".agentfuse").exists()
    assert (tmp_path / "proj" / "events.jsonl").is_file()


def test_a_halt_from_another_directory_is_the_halt_the_agent_sees(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path / "proj")
    spend(policy, tmp_path / "agent-dir", max_calls=1)
    operator_dir = tmp_path / "ops"
    operator_dir.mkdir()
    halted = agentfuse(
        "halt", "--agent", "publisher", "--reason", "bill too high", "--policy", "../proj/policy.yaml",
        cwd=operator_dir,
    )
    assert halted.returncode == 0, halted.stderr
    store = tmp_path / "proj" / ".agentfuse" / "state.db"
    assert f"store: sqlite:///{store}" in halted.stdout  # the absolute store it wrote to
    assert not (operator_dir / ".agentfuse").exists()
    after = spend(policy, tmp_path / "agent-dir", max_calls=1)
    assert after["calls"] == 0 and after["refusal"] == {"type": "RunHalted", "reason": "bill too high"}

    status = agentfuse("status", "--policy", "../proj/policy.yaml", "--json", cwd=operator_dir)
    assert status.returncode == 0, status.stderr
    document = json.loads(status.stdout)
    assert document["store"] == f"sqlite:///{store}"
    assert [halt["reason"] for halt in document["agents"][0]["halts"]] == ["bill too high"]
    table = agentfuse("status", "--policy", "../proj/policy.yaml", cwd=operator_dir)
    assert f"store sqlite:///{store}" in table.stdout


def test_the_stop_file_and_the_event_log_are_in_the_policy_folder(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path / "proj", stop_file="STOP", events="logs/events.jsonl")
    (tmp_path / "proj" / "STOP").touch()
    refused = spend(policy, tmp_path / "elsewhere", max_calls=1)
    assert refused["refusal"] == {"type": "KillSwitchEngaged", "reason": "kill_switch"}
    lines = (tmp_path / "proj" / "logs" / "events.jsonl").read_text().splitlines()
    assert any(json.loads(line)["event"] == "refused" for line in lines)
    resumed = agentfuse("resume", "--agent", "publisher", "--policy", str(policy), cwd=tmp_path / "elsewhere")
    assert f"the STOP file {tmp_path / 'proj' / 'STOP'} still exists" in resumed.stdout


def test_a_policy_without_a_store_keeps_the_default_store_in_its_folder(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path / "proj", store=None)
    spend(policy, tmp_path / "a", max_calls=1)
    assert (tmp_path / "proj" / ".agentfuse" / "state.db").is_file()
    status = agentfuse("status", "--policy", "proj/policy.yaml", "--json", cwd=tmp_path)
    assert json.loads(status.stdout)["store"] == f"sqlite:///{tmp_path / 'proj' / '.agentfuse' / 'state.db'}"


def test_a_store_argument_is_relative_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    policy = write_policy_file(tmp_path / "proj")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    guard = enforce(policy, store="sqlite:///mine.db")
    guard.close()
    assert isinstance(guard.store, SQLiteStore) and guard.store.path == here / "mine.db"
    assert not (tmp_path / "proj" / "mine.db").exists()
    status = agentfuse("status", "--store", "sqlite:///mine.db", "--json", cwd=here)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["store"] == f"sqlite:///{here / 'mine.db'}"
