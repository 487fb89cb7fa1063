"""The guard's events (one JSONL line per decision) and alerts (to a real local HTTP server)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfuse import BudgetExceeded, CircuitOpen, enforce
from agentfuse.runtime.clock import ManualClock
from agentfuse.runtime.policy import Alerts, Events
from tests.runtime_helpers import FakeClient, TransientError, Webhook, make_policy, recording_webhook, store_url


def read_events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with recording_webhook() as hook:
        yield hook


def test_every_decision_is_one_event_line(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    policy = make_policy(
        budget={"run_usd": "0.02", "estimate_usd": "0.01"},
        events=Events(path=str(events)),
    )
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    client = FakeClient(failures=[TransientError("503")])
    with pytest.raises(TransientError):
        with guard.step(action="draft"):
            client.chat.completions.create()
    with guard.step(action="draft") as step:
        step.record(cost_usd="0.01")
    with pytest.raises(BudgetExceeded):
        with guard.step(action="draft"):
            pass
    guard.close()
    lines = read_events(events)
    assert [(e["event"], e["reason"]) for e in lines] == [
        ("run_started", None),
        ("allowed", None),
        ("failure", "tests.runtime_helpers.TransientError"),
        ("allowed", None),
        ("settled", None),
        ("refused", "run_budget"),
        ("halt", "run_budget"),
    ]
    assert all(e["agent"] == "tester" and e["run"] == guard.run_id for e in lines)
    assert lines[4]["cost_micros"] == 10_000 and lines[5]["cap_usd"] == "0.02"
    resumed = enforce(policy, run_id=guard.run_id, store=store_url(tmp_path / "s.db"))
    resumed.close()
    last = read_events(events)[-1]
    assert last["event"] == "run_resumed" and last["spent_micros"] == 20_000 and last["steps"] == 2


def test_breaker_open_sends_one_alert_and_later_refusals_do_not(tmp_path: Path, webhook: Webhook) -> None:
    url, received, arrived = webhook.url, webhook.received, webhook.arrived
    policy = make_policy(
        breaker={"failure_threshold": 2, "cooldown_s": 60},
        alerts=Alerts(webhook=url, format="ntfy", timeout_s=2),
    )
    guard = enforce(policy, store=store_url(tmp_path / "s.db"), clock=ManualClock())
    client = FakeClient(failures=[TransientError()] * 2)
    for _ in range(2):
        with pytest.raises(TransientError):
            with guard.step():
                client.chat.completions.create()
    for _ in range(3):
        with pytest.raises(CircuitOpen):
            with guard.step():
                client.chat.completions.create()
    assert arrived.wait(10)
    guard.close()
    assert len(received) == 1
    assert "circuit breaker open" in received[0]["headers"]["Title"]
    assert "2 consecutive failures" in received[0]["body"]
    assert client.calls == 2


def test_a_dead_webhook_does_not_break_the_agent(tmp_path: Path) -> None:
    policy = make_policy(
        budget={"run_usd": "0.01", "estimate_usd": "0.01"},
        alerts=Alerts(webhook="http://127.0.0.1:9/nothing-listens", timeout_s=0.5),
    )
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    with guard.step():
        pass
    with pytest.raises(BudgetExceeded):
        with guard.step():
            pass
    guard.close()


def test_a_deferred_success_is_logged_settled_when_the_store_applies_it(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    policy = make_policy(budget={"run_usd": "1.00", "estimate_usd": "0.01"}, events=Events(path=str(events)))
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    with guard.step(action="draft") as step:
        step.record(cost_usd="0.004")
    # the success waits for the next gate's transaction: the store and the log agree it is open
    assert guard.store.unsettled(guard.run_id) == 1
    assert [e["event"] for e in read_events(events)] == ["run_started", "allowed"]
    with guard.step(action="review"):
        pass
    lines = read_events(events)
    assert [(e["event"], e.get("action")) for e in lines] == [
        ("run_started", None),
        ("allowed", "draft"),
        ("settled", "draft"),
        ("allowed", "review"),
    ]
    assert lines[2]["cost_micros"] == 4_000 and lines[2]["outcome"] == "success"
    assert guard.store.unsettled(guard.run_id) == 1  # only the review call is open now
    guard.close()  # applies the review call's settlement and logs it
    assert [e["event"] for e in read_events(events)][-1] == "settled"
    assert guard.store.unsettled(guard.run_id) == 0
