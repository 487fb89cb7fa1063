"""Configuration from the environment: ``AGENTFUSE_POLICY`` and ``AGENTFUSE_STORE`` for every
operator command and for ``enforce()``; argument > environment > policy > default; and no
variable that switches the fuse off. Real SQLite files, the installed ``agentfuse`` script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentfuse import PolicyError, enforce
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.operator_helpers import OPERATOR_COMMANDS, agentfuse, clean_env, write_policy_file
from tests.runtime_helpers import run_worker


def make_store(path: Path) -> Path:
    """A real, empty SQLite store at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    SQLiteStore(path).close()
    return path


def halt_reasons(path: Path, agent: str = "publisher") -> list[str]:
    store = SQLiteStore(path)
    try:
        return [halt.reason for halt in store.halts(agent)]
    finally:
        store.close()


@pytest.fixture()
def layout(tmp_path: Path) -> dict[str, Path]:
    """A policy naming its own store, and two other stores: one for the environment, one for arguments."""
    policy = write_policy_file(tmp_path / "proj", store="sqlite:///policy-store.db")
    run_worker({"policy_file": str(policy), "max_calls": 1})  # creates the policy's store
    return {
        "policy": policy,
        "policy_store": tmp_path / "proj" / "policy-store.db",
        "env_store": make_store(tmp_path / "env" / "env-store.db"),
        "arg_store": make_store(tmp_path / "arg" / "arg-store.db"),
        "dir": tmp_path,
    }


@pytest.mark.parametrize("command", OPERATOR_COMMANDS, ids=" ".join)
def test_every_operator_command_works_with_only_agentfuse_policy_set(
    layout: dict[str, Path], command: list[str]
) -> None:
    result = agentfuse(*command, cwd=layout["dir"], env={"AGENTFUSE_POLICY": "proj/policy.yaml"})
    assert "Traceback" not in result.stderr
    if command[0] == "reconcile":  # it read the policy's store: the run is not there
        assert result.returncode == 1 and "no run 'no-such-run'" in result.stderr
    else:
        assert result.returncode == 0, result.stdout + result.stderr
    if command == ["status", "--json"]:
        document = json.loads(result.stdout)
        assert document["store"] == f"sqlite:///{layout['policy_store']}"
        assert document["agents"][0]["caps_known"] is True  # the policy came from the environment
    if command[0] == "halt":
        assert halt_reasons(layout["policy_store"]) == ["operator test"]


def test_agentfuse_store_alone_names_the_store(layout: dict[str, Path]) -> None:
    result = agentfuse("halt", "--agent", "publisher", "--reason", "env store", cwd=layout["dir"],
                       env={"AGENTFUSE_STORE": "sqlite:///env/env-store.db"})
    assert result.returncode == 0, result.stderr
    assert f"store: sqlite:///{layout['env_store']}" in result.stdout
    assert halt_reasons(layout["env_store"]) == ["env store"]


def test_store_precedence_argument_then_environment_then_policy(layout: dict[str, Path]) -> None:
    cwd = layout["dir"]
    policy_only = agentfuse("halt", "--agent", "publisher", "--reason", "policy", "--policy", "proj/policy.yaml",
                            cwd=cwd)
    env_over_policy = agentfuse("halt", "--agent", "publisher", "--reason", "env", "--policy", "proj/policy.yaml",
                                cwd=cwd, env={"AGENTFUSE_STORE": "sqlite:///env/env-store.db"})
    argument_over_env = agentfuse(
        "halt", "--agent", "publisher", "--reason", "argument", "--store", "sqlite:///arg/arg-store.db", cwd=cwd,
        env={"AGENTFUSE_STORE": "sqlite:///env/env-store.db", "AGENTFUSE_POLICY": "proj/policy.yaml"},
    )
    for result in (policy_only, env_over_policy, argument_over_env):
        assert result.returncode == 0, result.stderr
    assert halt_reasons(layout["policy_store"]) == ["policy"]
    assert halt_reasons(layout["env_store"]) == ["env"]
    assert halt_reasons(layout["arg_store"]) == ["argument"]


def test_a_policy_argument_beats_agentfuse_policy(layout: dict[str, Path]) -> None:
    other = write_policy_file(layout["dir"] / "other", agent="other", store="sqlite:///other.db")
    run_worker({"policy_file": str(other), "max_calls": 1})
    result = agentfuse("status", "--policy", str(other), "--json", cwd=layout["dir"],
                       env={"AGENTFUSE_POLICY": "proj/policy.yaml"})
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["store"] == f"sqlite:///{layout['dir'] / 'other' / 'other.db'}"
    assert [agent["agent"] for agent in document["agents"]] == ["other"]


def test_without_a_policy_or_store_an_operator_command_says_how_to_name_one(tmp_path: Path) -> None:
    result = agentfuse("status", cwd=tmp_path)
    assert result.returncode == 2
    assert "AGENTFUSE_POLICY" in result.stderr and "--store" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / ".agentfuse").exists()


def test_enforce_reads_agentfuse_policy_and_agentfuse_store_when_not_given(layout: dict[str, Path]) -> None:
    environ = {"AGENTFUSE_POLICY": str(layout["policy"])}
    guard = enforce(environ=environ)
    guard.close()
    assert guard.agent == "publisher"
    assert isinstance(guard.store, SQLiteStore) and guard.store.path == layout["policy_store"]

    env_store = enforce(environ={**environ, "AGENTFUSE_STORE": f"sqlite:///{layout['env_store']}"})
    env_store.close()
    assert isinstance(env_store.store, SQLiteStore) and env_store.store.path == layout["env_store"]

    argument = enforce(
        layout["policy"], store=f"sqlite:///{layout['arg_store']}",
        environ={"AGENTFUSE_POLICY": "/nonexistent.yaml", "AGENTFUSE_STORE": f"sqlite:///{layout['env_store']}"},
    )
    argument.close()
    assert isinstance(argument.store, SQLiteStore) and argument.store.path == layout["arg_store"]


def test_enforce_without_a_policy_or_agentfuse_policy_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="AGENTFUSE_POLICY"):
        enforce(environ={})


def test_enforce_in_a_process_with_only_agentfuse_policy_set(layout: dict[str, Path]) -> None:
    code = (
        "from agentfuse import enforce\n"
        "guard = enforce()\n"
        "print(guard.agent, guard.store.path)\n"
        "guard.close()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=layout["dir"] / "env", timeout=60,
        env=clean_env({"AGENTFUSE_POLICY": "../proj/policy.yaml"}),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["publisher", str(layout["policy_store"])]


def test_there_is_no_environment_variable_that_switches_the_fuse_off(layout: dict[str, Path]) -> None:
    agentfuse("halt", "--agent", "publisher", "--reason", "stop", "--policy", str(layout["policy"]), cwd=layout["dir"])
    code = (
        "from agentfuse import Halted, enforce\n"
        "guard = enforce()\n"
        "try:\n"
        "    with guard.step():\n"
        "        print('called')\n"
        "except Halted as exc:\n"
        "    print('refused', exc.reason)\n"
    )
    switches = {"AGENTFUSE_DISABLED": "1", "AGENTFUSE_DISABLE": "1", "AGENTFUSE_ENABLED": "0", "AGENTFUSE_OFF": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=layout["dir"], timeout=60,
        env=clean_env({"AGENTFUSE_POLICY": str(layout["policy"]), **switches}),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["refused", "stop"]


def test_check_policy_and_prices_read_agentfuse_policy(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path / "proj")
    policy.write_text(policy.read_text() + "pricing: {house-model: {input: 1.5, output: 2.5}}\n")
    env = {"AGENTFUSE_POLICY": "proj/policy.yaml"}
    checked = agentfuse("check-policy", cwd=tmp_path, env=env)
    assert checked.returncode == 0 and checked.stdout.strip() == "proj/policy.yaml: ok"
    nothing = agentfuse("check-policy", cwd=tmp_path)
    assert nothing.returncode == 2 and "AGENTFUSE_POLICY" in nothing.stderr
    prices = agentfuse("prices", "house-model", "--json", cwd=tmp_path, env=env)
    assert prices.returncode == 0, prices.stderr
    (row,) = json.loads(prices.stdout)["models"]
    assert (row["source"], row["input"], row["output"]) == ("policy", "1.50", "2.50")
