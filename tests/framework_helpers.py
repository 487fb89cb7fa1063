"""Shared set-up of the framework adapter tests: a ``researcher`` sub-agent with its own cap, an
operator halting the agent from another process, and the runs ``status --json`` shows."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest

import agentfuse
from agentfuse.runtime.guard import Guard
from agentfuse.runtime.policy import ChildCaps
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


def status_runs(fuses: Fuses) -> dict[str, dict[str, Any]]:
    """The active runs ``agentfuse status --json`` shows, by run id."""
    out = subprocess.run(
        [sys.executable, "-m", "agentfuse", "status", "--json", "--store", fuses.url],
        check=True, capture_output=True, text=True,
    ).stdout
    return {run["run_id"]: run for agent in json.loads(out)["agents"] for run in agent["active_runs"]}


def assert_researcher_stopped_in_its_child_run(guard: Guard, refusal: BaseException) -> None:
    """One researcher call (450 micro-dollars) in the child run; the parent's spend (three calls) includes it."""
    assert isinstance(refusal, agentfuse.BudgetExceeded)
    assert refusal.run_id == f"{guard.run_id}/researcher"
    child = guard.store.get_run(f"{guard.run_id}/researcher")
    assert child is not None and child.parent_id == guard.run_id
    assert child.spent_micros == GPT4O_CALL_MICROS
    assert books(guard).spent_micros == 3 * GPT4O_CALL_MICROS


def assert_status_shows_the_researcher_under_its_parent(fuses: Fuses, guard: Guard) -> None:
    """``status --json`` lists the child run with its parent id and spend, and the parent's total."""
    books(guard)
    runs = status_runs(fuses)
    child = runs[f"{guard.run_id}/researcher"]
    assert child["parent_id"] == guard.run_id
    assert child["spent_usd"] == pytest.approx(GPT4O_CALL_MICROS / 1e6)
    assert runs[guard.run_id]["spent_usd"] == pytest.approx(3 * GPT4O_CALL_MICROS / 1e6)
