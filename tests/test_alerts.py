"""Webhook alerts against a real HTTP server on 127.0.0.1, and against dead webhooks."""

from __future__ import annotations

import email.header
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agentfuse import BudgetExceeded, Guard, Halted, enforce
from agentfuse.runtime.alerts import Alerter, AlertStats, detect_format
from agentfuse.runtime.events import EventLog
from agentfuse.runtime.policy import Alerts, Breaker, Budget, Events, FailFast, Policy
from tests.runtime_helpers import REPO, FakeClient, make_policy, store_url

RETURNS_AT_ONCE_S = 0.1
"""``send`` must return in well under this, whatever the webhook does."""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class WebhookServer:
    """A real ``ThreadingHTTPServer``; requests land in ``received``; ``status`` is the reply."""

    url: str
    received: queue.Queue[Received] = field(default_factory=queue.Queue)
    status: int = 200

    def next(self) -> Received:
        return self.received.get(timeout=5)


@pytest.fixture
def server() -> Iterator[WebhookServer]:
    state = WebhookServer(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = self.rfile.read(length)
            state.received.put(Received(self.path, dict(self.headers.items()), body))
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def events_of(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def timed_send(alerter: Alerter, *args: str, **kwargs: str) -> float:
    started = time.perf_counter()
    alerter.send(*args, **kwargs)
    return time.perf_counter() - started


def test_ntfy_gets_a_plain_body_with_title_tags_and_priority(server: WebhookServer, tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    alerter = Alerter(Alerts(webhook=server.url + "/agent-topic"), events=events, agent="publisher")
    alerter.send("halt", "publisher halted", "budget: $5.01 of $5.00", run="r1")
    got = server.next()
    alerter.close()
    events.close()
    assert got.path == "/agent-topic"
    assert got.body.decode("utf-8") == "budget: $5.01 of $5.00"
    assert got.headers["Title"] == "publisher halted"
    assert got.headers["Tags"] == "agentfuse,halt"
    assert got.headers["Priority"] == "high"
    assert got.headers["Content-Type"].startswith("text/plain")
    assert alerter.stats == AlertStats(sent=1)
    [sent] = events_of(tmp_path / "events.jsonl")
    assert (sent["event"], sent["agent"], sent["run"], sent["status"]) == (
        "alert_sent", "publisher", "r1", 200)
    assert "agent-topic" not in json.dumps(sent)


def test_ntfy_title_with_non_ascii_is_rfc2047_encoded(server: WebhookServer) -> None:
    alerter = Alerter(Alerts(webhook=server.url + "/t"))
    alerter.send("halt", "Müller’s agent ⚠ halted\r\nX-Injected: 1", "body")
    got = server.next()
    alerter.close()
    decoded = email.header.decode_header(got.headers["Title"])
    title = "".join(part.decode(charset or "ascii") if isinstance(part, bytes) else part
                    for part, charset in decoded)
    assert title == "Müller’s agent ⚠ halted X-Injected: 1"
    assert "X-Injected" not in got.headers


def test_alert_text_is_redacted_before_it_leaves(server: WebhookServer) -> None:
    alerter = Alerter(Alerts(webhook=server.url + "/t"))
    alerter.send("store_unavailable", "store redis://:hunter2@cache down",
                 "cannot reach redis://:hunter2@cache:6379/0")
    got = server.next()
    alerter.close()
    assert got.body == b"cannot reach redis://:***@cache:6379/0"
    assert "hunter2" not in got.headers["Title"]


def test_slack_format_posts_text_json(server: WebhookServer) -> None:
    alerter = Alerter(Alerts(webhook=server.url + "/services/T/B/x", format="slack"))
    alerter.send("breaker_open", "breaker open", "5 failures <in a row> & cooling down")
    got = server.next()
    alerter.close()
    assert got.headers["Content-Type"] == "application/json"
    assert json.loads(got.body) == {
        "text": "*breaker open*\n5 failures &lt;in a row&gt; &amp; cooling down"}


def test_discord_format_posts_content_json_without_mentions(server: WebhookServer) -> None:
    alerter = Alerter(Alerts(webhook=server.url + "/api/webhooks/1/tok", format="discord"))
    alerter.send("cap_hit", "daily cap hit", "@everyone " + "x" * 3000)
    got = server.next()
    alerter.close()
    payload = json.loads(got.body)
    assert payload["content"].startswith("**daily cap hit**\n@everyone xxx")
    assert len(payload["content"]) == 2000
    assert payload["allowed_mentions"] == {"parse": []}


@pytest.mark.parametrize(
    "url, configured, expected",
    [
        ("https://hooks.slack.com/services/T0/B0/abc", None, "slack"),
        ("https://discord.com/api/webhooks/1/abc", None, "discord"),
        ("https://discordapp.com/api/webhooks/1/abc", None, "discord"),
        ("https://ptb.discord.com/api/webhooks/1/abc", None, "discord"),
        ("https://discord.com/channels/1/2", None, "ntfy"),
        ("https://ntfy.sh/topic", None, "ntfy"),
        ("https://ntfy.example.org/topic", None, "ntfy"),
        ("https://hooks.slack.com/services/T0/B0/abc", "ntfy", "ntfy"),
        ("https://example.org/hook", "Slack", "slack"),
    ],
)
def test_format_is_configured_or_guessed_from_the_url(
    url: str, configured: str | None, expected: str
) -> None:
    assert detect_format(url, configured) == expected


def test_refused_connection_returns_at_once_and_logs_alert_failed(
    closed_port: int, tmp_path: Path
) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    url = f"http://127.0.0.1:{closed_port}/secret-topic-123"
    alerter = Alerter(Alerts(webhook=url, timeout_s=3.0), events=events, agent="a")
    elapsed = timed_send(alerter, "halt", "halted", "why")
    alerter.close(timeout=5)
    events.close()
    assert elapsed < RETURNS_AT_ONCE_S
    [failed] = events_of(tmp_path / "events.jsonl")
    assert failed["event"] == "alert_failed"
    assert failed["reason"] == "unreachable"
    assert failed["url"] == f"http://127.0.0.1:{closed_port}/***"
    assert "refused" in failed["error"].lower()
    assert "secret-topic-123" not in (tmp_path / "events.jsonl").read_text()
    assert alerter.stats == AlertStats(failed=1)


def test_a_webhook_that_never_answers_times_out_in_the_background(silent_port: int, tmp_path: Path) -> None:
    events = EventLog(tmp_path / "events.jsonl")
    alerter = Alerter(Alerts(webhook=f"http://127.0.0.1:{silent_port}/t", timeout_s=0.4),
                      events=events, agent="a")
    elapsed = max(timed_send(alerter, "halt", f"alert {i}", "body") for i in range(3))
    alerter.close(timeout=10)
    events.close()
    assert elapsed < RETURNS_AT_ONCE_S
    failures = events_of(tmp_path / "events.jsonl")
    assert [e["reason"] for e in failures] == ["timeout"] * 3
    assert alerter.stats.failed == 3


def test_close_gives_up_on_a_hanging_webhook_after_its_timeout(silent_port: int) -> None:
    alerter = Alerter(Alerts(webhook=f"http://127.0.0.1:{silent_port}/t", timeout_s=30))
    alerter.send("halt", "halted", "body")
    started = time.perf_counter()
    alerter.close(timeout=0.2)
    assert time.perf_counter() - started < 1.0


def test_http_error_status_is_logged_as_alert_failed(server: WebhookServer, tmp_path: Path) -> None:
    server.status = 500
    events = EventLog(tmp_path / "events.jsonl")
    alerter = Alerter(Alerts(webhook=server.url + "/t"), events=events)
    alerter.send("halt", "halted", "body")
    server.next()
    alerter.close()
    events.close()
    [failed] = events_of(tmp_path / "events.jsonl")
    assert (failed["event"], failed["reason"]) == ("alert_failed", "http_status")
    assert "500" in failed["error"]


def test_a_non_http_webhook_is_refused_not_opened(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read")
    events = EventLog(tmp_path / "events.jsonl")
    alerter = Alerter(Alerts(webhook=secret.as_uri()), events=events)
    alerter.send("halt", "halted", "body")
    alerter.close()
    events.close()
    [failed] = events_of(tmp_path / "events.jsonl")
    assert (failed["event"], failed["reason"]) == ("alert_failed", "invalid_webhook")


def test_the_same_alert_is_sent_once_per_window(server: WebhookServer) -> None:
    clock = FakeMonotonic()
    alerter = Alerter(Alerts(webhook=server.url + "/t", dedupe_window_s=300), clock=clock)
    alerter.send("breaker_open", "breaker open", "first")
    clock.now += 299.9
    alerter.send("breaker_open", "breaker open", "inside the window")
    alerter.send("breaker_open", "breaker open", "custom key", dedupe_key="other")
    clock.now += 0.1
    alerter.send("breaker_open", "breaker open", "window over")
    alerter.close()
    bodies = []
    while not server.received.empty():
        bodies.append(server.received.get().body.decode())
    assert sorted(bodies) == ["custom key", "first", "window over"]
    assert alerter.stats == AlertStats(sent=3, suppressed=1)


def test_a_full_queue_drops_and_counts_instead_of_blocking(silent_port: int) -> None:
    alerter = Alerter(Alerts(webhook=f"http://127.0.0.1:{silent_port}/t", timeout_s=5),
                      queue_size=1)
    elapsed = max(timed_send(alerter, "halt", f"alert {i}", "body") for i in range(6))
    dropped = alerter.stats.dropped
    alerter.close(timeout=0.1)
    assert elapsed < RETURNS_AT_ONCE_S
    assert dropped >= 4


def test_without_a_webhook_the_alerter_is_a_no_op_that_starts_no_thread() -> None:
    threads_before = threading.active_count()
    alerter = Alerter(Alerts(webhook=None))
    alerter.send("halt", "halted", "body")
    assert not alerter.enabled
    assert threading.active_count() == threads_before
    alerter.close()
    assert alerter.stats == AlertStats()


def test_send_after_close_is_dropped_quietly(server: WebhookServer) -> None:
    alerter = Alerter(Alerts(webhook=server.url + "/t"))
    alerter.close()
    alerter.send("halt", "halted", "body")
    assert alerter.stats == AlertStats(dropped=1)
    assert server.received.empty()


def test_from_policy_uses_the_policy_webhook_and_agent(server: WebhookServer, tmp_path: Path) -> None:
    policy = Policy(agent="publisher", budget=Budget(), breaker=Breaker(), fail_fast=FailFast(),
                    alerts=Alerts(webhook=server.url + "/api/webhooks/1/x", format="discord"))
    events = EventLog(tmp_path / "events.jsonl")
    alerter = Alerter.from_policy(policy, events)
    alerter.send("halt", "halted", "body")
    server.next()
    alerter.close()
    events.close()
    assert alerter.format == "discord"
    assert events_of(tmp_path / "events.jsonl")[0]["agent"] == "publisher"
    silent = Alerter.from_policy(
        Policy(agent="a", budget=Budget(), breaker=Breaker(), fail_fast=FailFast()), None)
    assert not silent.enabled


# -- through the guard: the acceptance case ------------------------------------------------------


def spend_until_refused(guard: Guard, client: FakeClient) -> tuple[Halted, list[float]]:
    """Make $0.01 calls until the guard refuses; the wall time of every step."""
    durations = []
    for _ in range(1000):
        started = time.perf_counter()
        try:
            with guard.step() as step:
                client.chat.completions.create(messages=[{"role": "user", "content": "hi"}])
                step.record(cost_usd="0.01")
        except Halted as refusal:
            durations.append(time.perf_counter() - started)
            return refusal, durations
        durations.append(time.perf_counter() - started)
    raise AssertionError("never refused")


@pytest.mark.parametrize("fmt", ["ntfy", "slack", "discord"])
def test_a_budget_halt_reaches_the_webhook_in_each_format(
    server: WebhookServer, tmp_path: Path, fmt: str
) -> None:
    policy = make_policy(
        agent="publisher", budget={"run_usd": "0.05", "estimate_usd": "0.01"},
        alerts=Alerts(webhook=server.url + "/hook-secret", format=fmt),
        events=Events(path=str(tmp_path / "events.jsonl")),
    )
    guard = enforce(policy, store=store_url(tmp_path / "state.db"))
    client = FakeClient()
    refusal, _ = spend_until_refused(guard, client)
    got = server.next()
    guard.close()
    assert isinstance(refusal, BudgetExceeded)
    assert client.calls == 5
    text = got.body.decode("utf-8")
    if fmt == "ntfy":
        assert "publisher" in got.headers["Title"]
    else:
        text = json.loads(text)["text" if fmt == "slack" else "content"]
        assert "publisher" in text
    assert guard.run_id in text  # the alert says which run stopped
    sent = [e for e in events_of(tmp_path / "events.jsonl") if e["event"] == "alert_sent"]
    assert len(sent) == 1 and "hook-secret" not in json.dumps(sent)


def test_a_dead_webhook_neither_slows_nor_breaks_the_agent(silent_port: int, tmp_path: Path) -> None:
    policy = make_policy(
        agent="publisher", budget={"run_usd": "0.05", "estimate_usd": "0.01"},
        alerts=Alerts(webhook=f"http://127.0.0.1:{silent_port}/topic", timeout_s=0.5),
        events=Events(path=str(tmp_path / "events.jsonl")),
    )
    guard = enforce(policy, store=store_url(tmp_path / "state.db"))
    client = FakeClient()
    refusal, durations = spend_until_refused(guard, client)
    with pytest.raises(Halted):
        with guard.step():
            client.chat.completions.create()
    guard.close()
    assert isinstance(refusal, Halted) and client.calls == 5
    assert max(durations) < policy.alerts.timeout_s / 2
    failed = [e for e in events_of(tmp_path / "events.jsonl") if e["event"] == "alert_failed"]
    assert [e["reason"] for e in failed] == ["timeout"]


def test_an_alert_sent_just_before_the_process_exits_still_arrives(server: WebhookServer) -> None:
    script = (
        "import sys\n"
        "from agentfuse.runtime.alerts import Alerter\n"
        "from agentfuse.runtime.policy import Alerts\n"
        "Alerter(Alerts(webhook=sys.argv[1])).send('halt', 'halted', 'last words')\n"
        "sys.exit(3)\n"
    )
    done = subprocess.run([sys.executable, "-c", script, server.url + "/t"], cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 3, done.stderr
    assert server.next().body == b"last words"
    assert done.stderr == ""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_sends_through_its_own_worker(server: WebhookServer) -> None:
    alerter = Alerter(Alerts(webhook=server.url + "/t"))
    alerter.send("halt", "from parent", "parent")
    assert server.next().body == b"parent"
    pid = os.fork()
    if pid == 0:  # the child: send, flush, exit without running pytest's teardown
        alerter.send("halt", "from child", "child")
        alerter.close(timeout=5)
        os._exit(0 if alerter.stats.sent >= 1 and alerter.stats.failed == 0 else 1)
    _, status = os.waitpid(pid, 0)
    alerter.close()
    assert server.next().body == b"child"
    assert os.waitstatus_to_exitcode(status) == 0
