"""CrewAI under CrewFuse: a real crew in CrewAI's own venv (``crewai_venv.py``) against the stand-in here.

Each test writes a policy, starts the stand-in provider in this process (it counts the requests
that reach it) and runs ``crewai_run.py`` in the CrewAI venv: agents ``planner`` and
``researcher`` take turns over sequential tasks, one model request each, until a refusal stops
``crew.kickoff()``. Every agent is a child run ``<crew run>/<role>`` of the crew's run. The books
are then read here, from the same SQLite file, and through ``agentfuse status --json``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import crewai_venv
from agentfuse.runtime.stores import open_store
from agentfuse.testing.standin import StandIn
from instrument_helpers import GPT4O_CALL_MICROS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # the first test may build the venv
RUNNER = Path(__file__).with_name("crewai_run.py")
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "crewai"
OUTCOME = "crew-outcome:"
crewai_python = crewai_venv.crewai_python_fixture


@pytest.fixture()
def standin() -> Iterator[StandIn]:
    with StandIn() as provider:
        yield provider


def crewai_env(folder: Path) -> dict[str, str]:
    """The environment of a CrewAI process: its own storage in ``folder``, no telemetry leaving loopback."""
    return {
        **os.environ,
        "XDG_DATA_HOME": str(folder / "xdg-data"),
        "XDG_CACHE_HOME": str(folder / "xdg-cache"),
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "OTEL_SDK_DISABLED": "true",
        "OPENAI_API_KEY": "none",
    }


class Runner:
    """``crewai_run.py --serve`` in the CrewAI venv: one crew run per request, CrewAI imported once."""

    def __init__(self, python: Path, folder: Path) -> None:
        self.stderr = folder / "runner.stderr"
        with open(self.stderr, "w") as err:
            self.process = subprocess.Popen(
                [str(python), str(RUNNER), "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                text=True, cwd=folder, env=crewai_env(folder),
            )

    def run(self, args: list[str]) -> dict[str, Any]:
        """One crew run to its end: the refusal's class and run id, the crew's run id, ..."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(args) + "\n")
        self.process.stdin.flush()
        for line in self.process.stdout:
            if line.startswith(OUTCOME):
                outcome: dict[str, Any] = json.loads(line[len(OUTCOME):])
                assert "error" not in outcome, outcome["error"]
                return outcome
        raise AssertionError(f"the crew runner ended: {self.stderr.read_text()[-4000:]}")

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def runner(crewai_python: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runner]:
    started = Runner(crewai_python, tmp_path_factory.mktemp("crewai-runner"))
    yield started
    started.close()


class Crew:
    """One policy, store and event log in ``tmp_path``, and the runs of the crew under it."""

    def __init__(self, runner: Runner, tmp_path: Path, standin: StandIn) -> None:
        self.runner = runner
        self.tmp_path = tmp_path
        self.standin = standin
        self.policy = tmp_path / "policy.yaml"
        self.store_url = f"sqlite:///{tmp_path / 'state.db'}"
        self.stop_file = tmp_path / "STOP"

    def write_policy(self, budget: dict[str, Any], *, researcher_usd: float | None = None,
                     breaker: dict[str, Any] | None = None, max_attempts: int = 3) -> None:
        policy: dict[str, Any] = {
            "version": 1,
            "agent": "crew-test",
            "budget": {"estimate_usd": 0.0002, **budget},
            "breaker": breaker or {"failure_threshold": 5, "cooldown_s": 300},
            "fail_fast": {"max_attempts": max_attempts},
            "kill_switch": {"stop_file": "STOP"},
            "events": {"path": "events.jsonl"},
            "store": self.store_url,
        }
        if researcher_usd is not None:
            policy["children"] = {"researcher": {"run_usd": researcher_usd}}
        self.policy.write_text(yaml.safe_dump(policy))

    def run(self, *args: str) -> dict[str, Any]:
        """Run the crew until it ends; then the fuse and guard are closed: nothing stays instrumented or hooked."""
        outcome = self.runner.run([str(self.policy), self.standin.openai_url, *args])
        assert outcome["instrumented_after_close"] == []
        assert outcome["hooks_after_close"] == 0
        return outcome

    def events(self, kind: str) -> list[dict[str, Any]]:
        log = self.tmp_path / "events.jsonl"
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.exists() else []
        return [line for line in lines if line["event"] == kind]

    def spent_micros(self, run_id: str) -> int:
        store = open_store(self.store_url, create=False)
        try:
            run = store.get_run(run_id)
            assert run is not None, run_id
            return run.spent_micros
        finally:
            store.close()

    def status_runs(self) -> dict[str, dict[str, Any]]:
        out = subprocess.run(
            [sys.executable, "-m", "agentfuse", "status", "--json", "--store", self.store_url],
            check=True, capture_output=True, text=True,
        ).stdout
        return {run["run_id"]: run for agent in json.loads(out)["agents"] for run in agent["active_runs"]}


@pytest.fixture()
def crew(runner: Runner, tmp_path: Path, standin: StandIn) -> Crew:
    return Crew(runner, tmp_path, standin)


def test_a_run_budget_stops_the_crew(crew: Crew) -> None:
    crew.write_policy({"run_usd": 0.0015})  # three calls of 450 micro-dollars, not four
    outcome = crew.run()
    assert outcome["refusal"] == "BudgetExceeded"
    assert crew.standin.requests == 3
    assert len(crew.events("refused")) == 1  # no retry of the refused call
    assert crew.spent_micros(outcome["crew_run"]) == 3 * GPT4O_CALL_MICROS  # the agents' spend is the crew's


def test_a_step_limit_stops_the_crew(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10, "max_steps": 2})
    outcome = crew.run()
    # max_steps counts each run's own steps: two planner calls, two researcher calls, then the planner's third
    assert outcome["refusal"] == "StepLimitExceeded"
    assert outcome["run_id"] == f"{outcome['crew_run']}/planner"
    assert crew.standin.requests == 4
    assert len(crew.events("refused")) == 1


def test_an_open_breaker_stops_the_crew_and_its_retries(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10}, breaker={"failure_threshold": 3, "cooldown_s": 300}, max_attempts=100)
    crew.standin.fail(500, times=None)  # the openai SDK retries twice, then CrewAI's agent retries the task
    outcome = crew.run()
    assert outcome["refusal"] == "CircuitOpen"
    assert crew.standin.requests == 3  # three failures open the breaker; the fourth attempt is refused
    assert len(crew.events("refused")) == 1


def test_a_stop_file_stops_the_crew(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10})
    outcome = crew.run("--stop-file", str(crew.stop_file), "--at", "2")
    assert outcome["refusal"] == "KillSwitchEngaged"
    assert crew.standin.requests == 2
    assert len(crew.events("refused")) == 1


def test_an_operator_halt_stops_the_crew(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10})
    outcome = crew.run("--halt", "--at", "2")
    assert outcome["refusal"] == "RunHalted"
    assert crew.standin.requests == 2
    assert len(crew.events("refused")) == 1


def test_each_agent_is_a_child_run_with_its_own_cap(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10}, researcher_usd=0.0006)  # one researcher call, not two
    outcome = crew.run()
    parent = outcome["crew_run"]
    assert outcome["refusal"] == "BudgetExceeded"
    assert outcome["run_id"] == f"{parent}/researcher"
    assert crew.standin.requests == 3  # planner, researcher, planner; the researcher's second call is refused
    assert crew.spent_micros(f"{parent}/researcher") == GPT4O_CALL_MICROS
    assert crew.spent_micros(f"{parent}/planner") == 2 * GPT4O_CALL_MICROS
    assert crew.spent_micros(parent) == 3 * GPT4O_CALL_MICROS  # the crew's includes its agents'
    assert {line["action"] for line in crew.events("allowed")} == {"planner", "researcher"}
    assert {line["run"] for line in crew.events("allowed")} == {f"{parent}/planner", f"{parent}/researcher"}
    # fuse.kickoff ran the crew in a copy of the context: the caller is charged to the crew's run again
    assert outcome["charged_after"] == parent
    assert outcome["action_after"] is None

    runs = crew.status_runs()
    for role, calls in (("planner", 2), ("researcher", 1)):
        child = runs[f"{parent}/{role}"]
        assert child["parent_id"] == parent
        assert child["spent_usd"] == pytest.approx(calls * GPT4O_CALL_MICROS / 1e6)
    assert runs[parent]["spent_usd"] == pytest.approx(3 * GPT4O_CALL_MICROS / 1e6)


def test_a_model_no_sdk_instruments_is_gated_by_the_hooks(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10}, researcher_usd=0.0006)
    outcome = crew.run("--custom-llm")  # a BaseLLM posting with urllib: nothing underneath gates it
    parent = outcome["crew_run"]
    assert outcome["refusal"] == "BudgetExceeded"
    assert outcome["run_id"] == f"{parent}/researcher"
    assert crew.standin.requests == 3
    assert len(crew.events("refused")) == 1
    # settled from the usage the LLM tracked (100 in, 20 out at gpt-4o's price), not from the estimate
    assert crew.spent_micros(f"{parent}/researcher") == GPT4O_CALL_MICROS
    assert crew.spent_micros(parent) == 3 * GPT4O_CALL_MICROS


def test_a_refusal_in_an_async_task_stops_the_crew(crew: Crew) -> None:
    crew.write_policy({"run_usd": 10}, researcher_usd=0.0006)
    outcome = crew.run("--async-tasks")  # the researcher's tasks run in threads of their own
    assert outcome["refusal"] == "BudgetExceeded"  # not a kickoff waiting forever on the task's future
    assert outcome["run_id"] == f"{outcome['crew_run']}/researcher"
    assert crew.standin.requests == 3
    assert len(crew.events("refused")) == 1


@pytest.mark.parametrize("kickoff", ["plain", "async"])
def test_a_plain_or_async_kickoff_has_the_same_child_runs(crew: Crew, kickoff: str) -> None:
    crew.write_policy({"run_usd": 10}, researcher_usd=0.0006)
    outcome = crew.run("--kickoff", kickoff)  # crew.kickoff() itself; await fuse.akickoff(crew)
    parent = outcome["crew_run"]
    assert outcome["refusal"] == "BudgetExceeded"
    assert outcome["run_id"] == f"{parent}/researcher"
    assert crew.standin.requests == 3
    assert crew.spent_micros(f"{parent}/researcher") == GPT4O_CALL_MICROS
    assert crew.spent_micros(parent) == 3 * GPT4O_CALL_MICROS
    if kickoff == "async":  # a task of its own: the caller's context is as it was
        assert outcome["charged_after"] == parent


def test_a_tool_that_calls_a_model_is_charged_to_its_agent_and_stops_at_the_first_refusal(
    runner: Runner, tmp_path: Path
) -> None:
    with StandIn(tool_turns=10**6) as provider:  # every answer calls planner's tool: the task never ends
        crew = Crew(runner, tmp_path, provider)
        crew.write_policy({"run_usd": 10, "max_steps": 3})
        outcome = crew.run("--tool")
        # planner, its tool's own request, planner; the tool's second request is the planner run's fourth step
        assert outcome["refusal"] == "StepLimitExceeded"
        assert outcome["run_id"] == f"{outcome['crew_run']}/planner"
        assert provider.requests == 3
    assert len(crew.events("refused")) == 1  # neither handed back to the model as a tool error nor retried
    allowed = crew.events("allowed")
    assert [line["run"] for line in allowed] == [f"{outcome['crew_run']}/planner"] * 3  # the tool's agent's run
    assert [line["action"] for line in allowed] == ["planner", "summarise", "planner"]


def test_the_example_crew_runs_until_its_researcher_is_refused(crewai_python: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(EXAMPLE, tmp_path / "crewai")  # its store and events stay out of the repo
    done = subprocess.run(
        [str(crewai_python), str(copy / "agent.py")], capture_output=True, text=True, timeout=600, cwd=tmp_path,
        env=crewai_env(tmp_path), check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Traceback" not in done.stdout + done.stderr
    # planner, researcher, planner: the researcher's own cap (children:) refuses its second call
    assert "stopped by agentfuse: BudgetExceeded in run " in done.stdout
    assert "/researcher\n" in done.stdout
    assert "requests that reached the stand-in provider: 3\n" in done.stdout
    assert (copy / ".agentfuse" / "state.db").is_file()


def test_the_example_crew_lints_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", str(EXAMPLE)], capture_output=True, text=True, timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_killed_venv_build_is_never_used_and_is_built_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFUSE_TEST_CACHE", str(tmp_path))
    venv = crewai_venv.CachedVenv("probe", ("six",))  # the CrewAI venv's machinery, with a small requirement
    build = subprocess.Popen(
        [sys.executable, str(Path(crewai_venv.__file__)), "--name", "probe", "--requirement", "six"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (venv.folder / "pyvenv.cfg").exists() and build.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(build.pid, signal.SIGKILL)  # the build and the installer under it, mid-install
    build.wait()
    assert (venv.folder / "pyvenv.cfg").exists()
    assert not (venv.folder / crewai_venv.MARKER).exists()

    python = venv.python()  # the half venv is removed and built again
    assert (venv.folder / crewai_venv.MARKER).is_file()
    done = subprocess.run([str(python), "-c", "import agentfuse, six"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
