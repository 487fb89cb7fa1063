"""Guard details the operator sees: halt messages that name the fix, observers closed by their owner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentfuse import enforce
from agentfuse.runtime.errors import RunHalted
from agentfuse.runtime.policy import Events
from tests.runtime_helpers import make_policy, store_url


def test_halt_messages_say_who_halted_what_and_the_command_that_clears_it(tmp_path: Path) -> None:
    guard = enforce(make_policy(agent="pub"), store=store_url(tmp_path / "s.db"))
    guard.halt("bill too high", scope_agent=True)
    with pytest.raises(RunHalted) as agent_wide, guard.step(estimate_usd="0.01"):
        pass
    assert str(agent_wide.value) == (
        "agent 'pub' is halted (bill too high, by operator); clear it with `agentfuse resume --agent pub`"
    )
    guard.store.resume("pub")
    guard.halt("looping")
    with pytest.raises(RunHalted) as one_run, guard.step(estimate_usd="0.01"):
        pass
    assert str(one_run.value) == (
        f"run {guard.run_id} of agent 'pub' is halted (looping, by operator);"
        f" clear it with `agentfuse resume --agent pub --run {guard.run_id}`"
    )
    guard.close()


def lines(path: Path) -> list[str]:
    return [json.loads(line)["event"] for line in path.read_text().splitlines()] if path.exists() else []


def test_a_child_shares_and_never_closes_its_parents_event_log(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    parent = enforce(make_policy(events=Events(path=str(log))), store=store_url(tmp_path / "s.db"))
    child = parent.child()
    assert child.events is parent.events
    child.close()
    parent.events.emit("after_child_closed", agent="tester", run=None)
    assert lines(log)[-1] == "after_child_closed"
    parent.close()
    parent.events.emit("after_parent_closed", agent="tester", run=None)
    assert "after_parent_closed" not in lines(log)


def test_a_guard_enforced_under_a_parent_closes_its_own_observers(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    policy = make_policy(events=Events(path=str(log)))
    parent = enforce(policy, store=store_url(tmp_path / "s.db"))
    child = enforce(policy, parent=parent)
    assert child.events is not parent.events and child.store is parent.store
    child.close()
    child.events.emit("child_after_close", agent="tester", run=None)
    parent.events.emit("parent_still_open", agent="tester", run=None)
    assert "child_after_close" not in lines(log) and lines(log)[-1] == "parent_still_open"
    parent.close()
