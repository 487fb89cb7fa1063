"""``alerts.format: json``: one generic JSON object per alert, posted to a real local server."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfuse import BudgetExceeded, enforce
from agentfuse.runtime.alerts import Alerter, build_request, detect_format
from agentfuse.runtime.errors import PolicyError
from agentfuse.runtime.policy import Alerts
from agentfuse.runtime.policy_loader import load_policy
from tests.runtime_helpers import Webhook, make_policy, recording_webhook, store_url


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    with recording_webhook() as hook:
        yield hook


def test_a_budget_halt_posts_the_generic_json_document(tmp_path: Path, webhook: Webhook) -> None:
    policy = make_policy(
        agent="publisher",
        budget={"run_usd": "0.01", "estimate_usd": "0.01"},
        alerts=Alerts(webhook=webhook.url, format="json"),
    )
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    with guard.step() as step:
        step.record(cost_usd="0.01")
    with pytest.raises(BudgetExceeded):
        with guard.step():
            pass
    guard.close()
    assert webhook.arrived.wait(5)
    (received,) = webhook.received
    assert received["headers"]["Content-Type"] == "application/json; charset=utf-8"
    document = json.loads(received["body"])
    assert set(document) == {"schema", "kind", "title", "body", "agent", "run", "ts"}
    assert document["schema"] == "agentfuse.alert/1"
    assert document["kind"] == "cap_hit" and document["agent"] == "publisher" and document["run"] == guard.run_id
    assert document["title"] == "publisher: run halted (run_budget)"
    assert "cap $0.01" in document["body"]
    sent_at = dt.datetime.fromisoformat(document["ts"].replace("Z", "+00:00"))
    assert abs((dt.datetime.now(dt.timezone.utc) - sent_at).total_seconds()) < 60


def test_the_json_format_redacts_and_keeps_unicode(tmp_path: Path, webhook: Webhook) -> None:
    alerter = Alerter(Alerts(webhook=webhook.url, format="json"), agent="agënt")
    alerter.send("halt", "Stopp für agënt", "store redis://:hunter2@db:6379/0 is down", run=None)
    alerter.close(timeout=5)
    document = json.loads(webhook.received[0]["body"])
    assert document["title"] == "Stopp für agënt" and document["agent"] == "agënt"
    assert "hunter2" not in webhook.received[0]["body"] and "redis://:***@db" in document["body"]
    assert document["run"] is None


def test_json_is_chosen_only_when_configured() -> None:
    assert detect_format("https://example.org/hook", "json") == "json"
    assert detect_format("https://example.org/hook", "JSON") == "json"
    assert detect_format("https://example.org/hook") == "ntfy"
    request = build_request("https://example.org/hook", "json", "halt", "t", "b", agent="a", run="r", at=0.0)
    assert json.loads(request.data)["ts"] == "1970-01-01T00:00:00.000Z"  # type: ignore[arg-type]


def test_the_policy_accepts_format_json_and_names_it_when_the_format_is_wrong(tmp_path: Path) -> None:
    base = "version: 1\nagent: a\nbudget: {run_usd: 1}\nbreaker: {failure_threshold: 3}\nfail_fast: {max_attempts: 1}\n"
    good = tmp_path / "good.yaml"
    good.write_text(base + "alerts: {webhook: 'https://example.org/hook', format: json}\n")
    assert load_policy(good).alerts.format == "json"
    bad = tmp_path / "bad.yaml"
    bad.write_text(base + "alerts: {webhook: 'https://example.org/hook', format: xml}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(bad)
    assert "json" in str(caught.value) and "bad.yaml:6:" in str(caught.value)
