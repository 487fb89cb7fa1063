"""Shared set-up of the framework adapter tests: a ``researcher`` sub-agent with its own cap, an
operator halting the agent from another process, and the runs ``status --json`` shows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from decimal import Decimal
from typing import Any

import pytest

import agentfuse
from agentfuse.runtime.guard import Guard
from agentfuse.runtime.policy import ChildCaps
from agentfuse.testing.standin import StandIn
from halted_helpers import Fuses
from instrument_helpers import GPT4O_CALL_MICROS, books


def with_researcher(fuses: Fuses, budget: dict[str, Any], researcher_usd: str = "5", **policy: Any) -> Guard:
    """A guard whose policy gives the sub-agent ``researcher`` a run cap (``children:``)."""
    return fuses(budget, children=(("researcher", ChildCaps(Decimal(researcher_usd))),), **policy)


def operator_halt_at(fuses: Fuses, guard: Guard, requests: int) -> Callable[[int], None]:
    """A callback that runs ``agentfuse halt`` (a real subprocess) once the stand-in saw ``requests``."""

    def operator(seen: int) -> None:
        if seen == requests:
            subprocess.run(
                [sys.executable, "-m", "agentfuse", "halt", "--agent", guard.agent, "--store", fuses.url,
                 "--reason", "operator test"],
                check=True, capture_output=True,
            )

    return operator


def status_runs(fuses: Fuses | str) -> dict[str, dict[str, Any]]:
    """The active runs ``agentfuse status --json`` shows (for the fuses' store, or a store URL), by run id."""
    url = fuses if isinstance(fuses, str) else fuses.url
    out = subprocess.run(
        [sys.executable, "-m", "agentfuse", "status", "--json", "--store", url],
        check=True, capture_output=True, text=True,
    ).stdout
    return {run["run_id"]: run for agent in json.loads(out)["agents"] for run in agent["active_runs"]}


class RefusalContract:
    """The acceptance tests every framework adapter passes; a test module subclasses it as ``Test...``.

    ``run(guard, standin, on_call)`` runs the framework's agent loop ``planner -> researcher ->
    planner ...`` (one model request each) until a refusal, calling ``on_call(requests so far)``
    before each handover, and returns the refusal the caller received.
    """

    actions = frozenset({"planner", "researcher"})

    def run(self, guard: Guard, standin: StandIn, on_call: Callable[[int], None] | None = None) -> BaseException:
        raise NotImplementedError

    def test_a_run_budget_stops_the_agent(self, fuses: Fuses, standin: StandIn) -> None:
        guard = with_researcher(fuses, {"run_usd": "0.0015"})  # three calls of 450 micro-dollars, not four
        refusal = self.run(guard, standin)
        assert isinstance(refusal, agentfuse.BudgetExceeded)
        assert standin.requests == 3
        assert fuses.refused() == 1
        assert books(guard).spent_micros == 3 * GPT4O_CALL_MICROS

    def test_a_step_limit_stops_the_agent(self, fuses: Fuses, standin: StandIn) -> None:
        guard = with_researcher(fuses, {"max_steps": 4, "run_usd": 10})
        refusal = self.run(guard, standin)
        assert isinstance(refusal, agentfuse.StepLimitExceeded)
        # max_steps counts each run's own steps: four planner calls (parent), four researcher calls (child)
        assert standin.requests == 8
        assert refusal.run_id == guard.run_id
        assert fuses.refused() == 1  # no retry of the refused call

    def test_a_stop_file_stops_the_agent(self, fuses: Fuses, standin: StandIn, tmp_path: Path) -> None:
        stop = tmp_path / "STOP"
        guard = with_researcher(fuses, {"run_usd": 10}, stop_file=str(stop))
        refusal = self.run(guard, standin, lambda n: stop.touch() if n == 2 else None)
        assert isinstance(refusal, agentfuse.KillSwitchEngaged)
        assert standin.requests == 2
        assert fuses.refused() == 1

    def test_an_operator_halt_stops_the_agent(self, fuses: Fuses, standin: StandIn) -> None:
        guard = with_researcher(fuses, {"run_usd": 10})
        refusal = self.run(guard, standin, operator_halt_at(fuses, guard, 2))
        assert isinstance(refusal, agentfuse.RunHalted)
        assert standin.requests == 2
        assert fuses.refused() == 1

    def test_a_sub_agent_is_a_child_run_with_its_own_cap(self, fuses: Fuses, standin: StandIn) -> None:
        guard = with_researcher(fuses, {"run_usd": 10}, researcher_usd="0.0006")  # one researcher call, not two
        refusal = self.run(guard, standin)
        assert standin.requests == 3  # planner, researcher, planner; the researcher's second call is refused
        assert isinstance(refusal, agentfuse.BudgetExceeded)
        assert refusal.run_id == f"{guard.run_id}/researcher"
        child = guard.store.get_run(f"{guard.run_id}/researcher")
        assert child is not None and child.parent_id == guard.run_id
        assert child.spent_micros == GPT4O_CALL_MICROS
        assert books(guard).spent_micros == 3 * GPT4O_CALL_MICROS  # the parent's includes its child's
        assert {line["action"] for line in fuses.lines("allowed")} == self.actions

    def test_status_json_shows_the_child_under_its_parent(self, fuses: Fuses, standin: StandIn) -> None:
        guard = with_researcher(fuses, {"run_usd": 10}, researcher_usd="0.0006")
        self.run(guard, standin)
        books(guard)
        runs = status_runs(fuses)
        child = runs[f"{guard.run_id}/researcher"]
        assert child["parent_id"] == guard.run_id
        assert child["spent_usd"] == pytest.approx(GPT4O_CALL_MICROS / 1e6)
        assert runs[guard.run_id]["spent_usd"] == pytest.approx(3 * GPT4O_CALL_MICROS / 1e6)
