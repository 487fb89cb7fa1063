"""Webhook alerts (ntfy, Slack, Discord): fire-and-forget, de-duplicated, never raised.

:meth:`Alerter.send` only checks the de-duplication window and puts the alert on a bounded
queue; one daemon worker thread posts it with ``urllib`` and the policy's ``timeout_s``. A dead
or slow webhook therefore costs the agent a queue put, never a network wait. A full queue drops
the alert (counted in :attr:`Alerter.stats`). A failed post becomes an ``alert_failed`` event
with the webhook reduced to scheme and host. Titles and bodies pass through
:func:`~agentfuse.runtime.redaction.redact` too: an ntfy.sh topic is readable by anyone who knows
its name. Queued alerts are flushed at interpreter exit (for at most ``timeout_s``), so the
alert of a halt that ends the process still goes out.

Formats (``alerts.format``, else guessed from the URL):

* ``slack`` (``hooks.slack.com``): ``{"text": "*title*\\nbody"}``
* ``discord`` (``discord.com``/``discordapp.com`` ``/api/webhooks/...``):
  ``{"content": "**title**\\nbody", "allowed_mentions": {"parse": []}}`` (no @everyone pings)
* ``ntfy`` (anything else): the body as plain text, with ``Title``, ``Tags`` and ``Priority``
  headers; a non-ASCII title is sent as an RFC 2047 encoded word, which ntfy decodes.
* ``json`` (only when configured): one generic JSON object for any receiver (a relay to
  PagerDuty or Teams, your own endpoint): ``{"schema": "agentfuse.alert/1", "kind", "title",
  "body", "agent", "run", "ts"}`` (``ts`` in ISO-8601 UTC; ``run`` null for agent-wide alerts).
"""

from __future__ import annotations

import atexit
import base64
import dataclasses
import json
import os
import queue
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from agentfuse.runtime.events import EventLog, format_ts
from agentfuse.runtime.redaction import redact, redact_url
from agentfuse.runtime.policy import Alerts, Policy

FORMATS = ("ntfy", "slack", "discord", "json")
ALERT_SCHEMA = "agentfuse.alert/1"
DEFAULT_QUEUE_SIZE = 100
DISCORD_MAX_CHARS = 2000
SLACK_MAX_CHARS = 3000
NTFY_MAX_BYTES = 4096
"""ntfy turns longer messages into attachments; Discord rejects content over 2000 chars."""
_MAX_DEDUPE_KEYS = 1000
USER_AGENT = "agentfuse-alerts"
"""Discord's CDN refuses urllib's default ``Python-urllib`` agent."""
_HEADER_UNSAFE = re.compile(r"[\r\n\x00]+")


@dataclasses.dataclass(frozen=True)
class AlertStats:
    """What happened to the alerts handed to :meth:`Alerter.send` so far."""

    sent: int = 0
    failed: int = 0
    dropped: int = 0
    suppressed: int = 0


@dataclasses.dataclass(frozen=True)
class _Alert:
    kind: str
    title: str
    body: str
    run: str | None
    at: float
    """When it was raised (wall clock), for the ``json`` format's ``ts``."""


def detect_format(url: str, configured: str | None = None) -> str:
    """The payload format: the configured one if valid, else guessed from the webhook URL."""
    if configured and configured.lower() in FORMATS:
        return configured.lower()
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "ntfy"
    host = (parts.hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    if (host.endswith("discord.com") or host.endswith("discordapp.com")) and parts.path.startswith(
        "/api/webhooks"
    ):
        return "discord"
    return "ntfy"


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _header_value(text: str) -> str:
    """A single-line header value; non-ASCII as an RFC 2047 encoded word."""
    text = _HEADER_UNSAFE.sub(" ", text).strip()
    if text.isascii():
        return text
    return "=?UTF-8?B?" + base64.b64encode(text.encode("utf-8")).decode("ascii") + "?="


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def build_request(
    url: str,
    fmt: str,
    kind: str,
    title: str,
    body: str,
    *,
    agent: str | None = None,
    run: str | None = None,
    at: float | None = None,
) -> urllib.request.Request:
    """The HTTP POST carrying one alert in ``fmt``; only http(s) URLs are accepted.

    ``agent``, ``run`` and ``at`` (epoch seconds, default now) are sent by the ``json`` format.
    """
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"webhook must be an http(s) URL, got scheme {scheme or 'none'!r}")
    headers = {"User-Agent": USER_AGENT}
    if fmt == "slack":
        text = _truncate(f"*{_slack_escape(title)}*\n{_slack_escape(body)}", SLACK_MAX_CHARS)
        data = json.dumps({"text": text}).encode("utf-8")
        headers["Content-Type"] = "application/json"
    elif fmt == "json":
        document = {
            "schema": ALERT_SCHEMA,
            "kind": kind,
            "title": title,
            "body": body,
            "agent": agent,
            "run": run,
            "ts": format_ts(time.time() if at is None else at),
        }
        data = json.dumps(document, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json; charset=utf-8"
    elif fmt == "discord":
        content = _truncate(f"**{title}**\n{body}", DISCORD_MAX_CHARS)
        data = json.dumps({"content": content, "allowed_mentions": {"parse": []}}).encode("utf-8")
        headers["Content-Type"] = "application/json"
    else:
        data = body.encode("utf-8")[:NTFY_MAX_BYTES]
        data = data.decode("utf-8", "ignore").encode("utf-8")
        headers["Content-Type"] = "text/plain; charset=utf-8"
        headers["Title"] = _header_value(title)
        headers["Tags"] = _header_value(f"agentfuse,{kind}")
        headers["Priority"] = "high"
    return urllib.request.Request(url, data=data, headers=headers, method="POST")


def _failure_reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return "http_status"
    if isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError):
        return "timeout"
    if isinstance(error, urllib.error.URLError):
        return "unreachable"
    if isinstance(error, ValueError):
        return "invalid_webhook"
    return "error"


class Alerter:
    """Posts alerts to the policy's webhook from a background thread; see the module docstring.

    With no webhook configured it is a no-op with the same interface.
    """

    def __init__(
        self,
        config: Alerts,
        *,
        events: EventLog | None = None,
        agent: str = "agentfuse",
        clock: Callable[[], float] = time.monotonic,
        queue_size: int = DEFAULT_QUEUE_SIZE,
    ) -> None:
        self.config = config
        self.url = config.webhook or None
        self.format = detect_format(self.url, config.format) if self.url else None
        self._events = events
        self._agent = agent
        self._clock = clock
        self._queue: queue.Queue[_Alert | None] = queue.Queue(maxsize=max(queue_size, 1))
        self._opener = urllib.request.build_opener()
        self._lock = threading.Lock()
        self._last_sent: dict[str, float] = {}
        self._counts = {"sent": 0, "failed": 0, "dropped": 0, "suppressed": 0}
        self._worker: threading.Thread | None = None
        self._closed = False
        self._pid = os.getpid()

    @classmethod
    def from_policy(cls, policy: Policy, events: EventLog | None) -> Alerter:
        """The alerter of a policy's ``alerts:`` section (a no-op one without a webhook)."""
        return cls(policy.alerts, events=events, agent=policy.agent)

    @property
    def enabled(self) -> bool:
        return self.url is not None

    @property
    def stats(self) -> AlertStats:
        with self._lock:
            return AlertStats(**self._counts)

    def send(
        self,
        kind: str,
        title: str,
        body: str,
        *,
        dedupe_key: str | None = None,
        run: str | None = None,
    ) -> None:
        """Queue an alert and return at once; never raises, never waits on the network.

        The same ``dedupe_key`` (default: kind and title) is sent at most once per
        ``dedupe_window_s``, measured from the last alert actually queued.
        """
        if self.url is None:
            return
        if os.getpid() != self._pid:
            self._reset_after_fork()
        key = dedupe_key if dedupe_key is not None else f"{kind}\x00{title}"
        with self._lock:
            if self._closed:
                self._counts["dropped"] += 1
                return
            now = self._clock()
            last = self._last_sent.get(key)
            if last is not None and now - last < self.config.dedupe_window_s:
                self._counts["suppressed"] += 1
                return
            try:
                self._queue.put_nowait(_Alert(kind, title, body, run, time.time()))
            except queue.Full:
                self._counts["dropped"] += 1
                return
            self._remember(key, now)
            self._start_worker()

    def _reset_after_fork(self) -> None:
        """A forked child has no worker thread, and its lock may have been held mid-fork."""
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queue = queue.Queue(maxsize=self._queue.maxsize)
        self._worker = None

    def _remember(self, key: str, now: float) -> None:
        """Record ``key`` as sent; forget keys whose window is over when there are many."""
        if len(self._last_sent) >= _MAX_DEDUPE_KEYS:
            window = self.config.dedupe_window_s
            self._last_sent = {k: t for k, t in self._last_sent.items() if now - t < window}
        self._last_sent[key] = now

    def _start_worker(self) -> None:
        """Start the worker on the first alert, and flush at interpreter exit.

        The typical alert is a halt, after which the agent often exits at once: without the
        exit hook the daemon worker would die with the alert still queued.
        """
        if self._worker is None:
            self._worker = threading.Thread(
                target=self._run, name=f"agentfuse-alerts-{self._agent}", daemon=True
            )
            self._worker.start()
            atexit.register(self._flush_at_exit)

    def _flush_at_exit(self) -> None:
        self.close(timeout=self.config.timeout_s)

    def _run(self) -> None:
        while True:
            alert = self._queue.get()
            if alert is None:
                return
            self._deliver(alert)

    def _deliver(self, alert: _Alert) -> None:
        assert self.url is not None and self.format is not None
        try:
            request = build_request(
                self.url, self.format, alert.kind, redact(alert.title), redact(alert.body),
                agent=redact(self._agent), run=None if alert.run is None else redact(alert.run), at=alert.at,
            )
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                status = response.status
        except Exception as error:  # noqa: BLE001 - any failure is reported, none is raised
            with self._lock:
                self._counts["failed"] += 1
            message = str(error).replace(self.url, redact_url(self.url))
            self._emit(
                "alert_failed", alert, reason=_failure_reason(error),
                error=f"{type(error).__name__}: {message}",
            )
            return
        with self._lock:
            self._counts["sent"] += 1
        self._emit("alert_sent", alert, reason=None, status=status)

    def _emit(self, event: str, alert: _Alert, *, reason: str | None, **figures: Any) -> None:
        if self._events is None or self.url is None:
            return
        try:
            self._events.emit(
                event, agent=self._agent, run=alert.run, reason=reason, kind=alert.kind,
                title=alert.title, url=redact_url(self.url), format=self.format, **figures,
            )
        except Exception:  # noqa: BLE001 - the event log reports its own write errors
            return

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued, then stop the worker; gives up after ``timeout`` seconds.

        A webhook that hangs cannot hold the caller longer than ``timeout``: the worker is a
        daemon thread and is abandoned.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            worker = self._worker
        if worker is None:
            return
        atexit.unregister(self._flush_at_exit)
        deadline = time.monotonic() + max(timeout, 0.0)
        try:
            self._queue.put(None, timeout=max(timeout, 0.0))
        except queue.Full:
            return
        worker.join(max(deadline - time.monotonic(), 0.0))
