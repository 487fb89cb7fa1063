"""``agentfuse metrics``: the store's figures in the Prometheus text format (``agentfuse[prometheus]``).

``--listen HOST:PORT`` (default ``127.0.0.1:9464``) serves them at ``/metrics``; ``--once`` prints
them and exits. Every scrape reads the store through the same gathering as ``status --json``
(:func:`agentfuse.operator.status.gather_status`), so the two always agree. Refusals by reason
come from the policy's event log (the store keeps no refusal counts): the lines in the log file
when the command starts, then every line appended to it, across rotations.

It uses ``prometheus-client`` (metric families, escaping, content negotiation with OpenMetrics,
gzip) rather than a hand-written format. Scrapes are served one at a time from the thread that
opened the store: the SQLite store keeps one connection per thread. The metric names are listed
in docs/observability.md; docs/grafana-dashboard.json is built on them.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import signal
import socket
import sys
import time
import wsgiref.simple_server
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import FrameType
from typing import IO, Any

from agentfuse.cli_args import duration
from agentfuse.operator import commands as operator
from agentfuse.operator import status as status_data
from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.redaction import redact
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.stores.base import BreakerState, OperatorStore

DEFAULT_LISTEN = "127.0.0.1:9464"
"""9464: the port Prometheus exporters of OpenTelemetry use by convention."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_stale_after = duration(maximum_s=operator.MAX_STALE_AFTER_S, what="--stale-after")


def register(subparsers: Any) -> None:
    """Add ``metrics`` to the ``agentfuse`` command."""
    parser = subparsers.add_parser(
        "metrics",
        help="serve the store's figures to Prometheus (or print them once)",
        description="Spend and caps per agent (today, last hour), active runs, open reservations,"
        " breaker states, halts, heartbeat ages and refusals by reason, in the Prometheus text"
        " format. Needs `pip install 'agentfuse[prometheus]'`.",
    )
    parser.add_argument("--listen", default=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"where to serve /metrics (default {DEFAULT_LISTEN}; port 0 picks a free one)")
    parser.add_argument("--once", action="store_true", help="print the metrics once and exit")
    parser.add_argument("--agent", default=None, help="only this agent (default: every agent in the store)")
    parser.add_argument("--stale-after", type=_stale_after, default=status_data.DEFAULT_STALE_AFTER_S,
                        metavar="SECONDS", help="a run or worker silent this long is not active (default 600)")
    operator.add_where(parser)
    parser.set_defaults(func=run_metrics)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPv6]:PORT`` -> (host, port); raises ValueError with the fix."""
    host, colon, port = text.strip().rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen {text!r} is not HOST:PORT; write e.g. 127.0.0.1:9464 or [::1]:9464")
    return host, int(port)


class RefusalTally:
    """``refused`` events per (agent, reason) in a JSONL event log, reading only what was added.

    A rotated file (another inode at the path) is read to its end through the descriptor still
    open on it, then the backups rotated after it (``.1`` is the newest, as the event log names
    them), then the new file from its start; a file cut shorter is read again from its start.
    Lines in a backup deleted before it was read are not counted.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.counts: Counter[tuple[str, str]] = Counter()
        self._file: IO[bytes] | None = None
        self._identity: tuple[int, int] | None = None
        self._partial = b""

    def update(self) -> Counter[tuple[str, str]]:
        """Count the lines appended since the last update; returns every count so far."""
        try:
            current = os.stat(self.path)
        except OSError:
            current = None
        if self._file is not None and (current is None or (current.st_dev, current.st_ino) != self._identity):
            self._consume(self._file.read())
            self._close()
            for backup in reversed(self._rotated_after()):
                with contextlib.suppress(OSError), open(backup, "rb") as rotated:
                    self._consume(rotated.read())
                    self._partial = b""
        if self._file is None and current is not None:
            try:
                self._file = open(self.path, "rb")
            except OSError:
                return self.counts
            opened = os.fstat(self._file.fileno())
            self._identity = (opened.st_dev, opened.st_ino)
        if self._file is not None:
            if os.fstat(self._file.fileno()).st_size < self._file.tell():
                self._file.seek(0)
                self._partial = b""
            self._consume(self._file.read())
        return self.counts

    def _rotated_after(self) -> list[Path]:
        """The backups newer than the file we were reading (found by its inode), newest first."""
        newer: list[Path] = []
        for number in itertools.count(1):
            backup = self.path.with_name(f"{self.path.name}.{number}")
            try:
                found = os.stat(backup)
            except OSError:
                return []  # ours is gone: which backups are newer cannot be told
            if (found.st_dev, found.st_ino) == self._identity:
                return newer
            newer.append(backup)
        return newer

    def _consume(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            if b'"refused"' not in line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("event") == "refused":
                self.counts[(str(event.get("agent")), str(event.get("reason") or "-"))] += 1

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._file = None
        self._partial = b""

    def close(self) -> None:
        self._close()


def metric_families(
    document: Mapping[str, Any],
    *,
    last_heartbeats: Mapping[str, float],
    refusals: Mapping[tuple[str, str], int] | None,
) -> list[Any]:
    """The Prometheus metric families of a status document (``agentfuse.status/1``).

    ``last_heartbeats``: each agent's freshest heartbeat age in seconds (as ``watch`` reads it);
    ``refusals``: counts from the event log, or None without one.
    """
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def gauge(name: str, doc: str, labels: Iterable[str], unit: str = "") -> Any:
        return GaugeMetricFamily(name, doc, labels=list(labels), unit=unit)

    agent_label = ("agent",)
    spend_today = gauge("agentfuse_spend_today_usd", "Spent plus reserved today (policy time zone).", agent_label)
    cap_today = gauge("agentfuse_cap_today_usd", "The daily cap (budget.daily_usd); absent without one.", agent_label)
    spend_hour = gauge("agentfuse_spend_last_hour_usd", "Spent plus reserved in the last 60 minutes.", agent_label)
    cap_hour = gauge("agentfuse_cap_last_hour_usd", "The hourly cap (budget.hourly_usd).", agent_label)
    active = gauge("agentfuse_active_runs", "Runs active within --stale-after or with open reservations.", agent_label)
    reservations = gauge("agentfuse_open_reservations", "Unsettled reservations of the active runs.", agent_label)
    run_labels = ("agent", "run", "parent")
    run_spent = gauge("agentfuse_run_spent_usd", "An active run's spend (its sub-runs included).", run_labels)
    run_reserved = gauge("agentfuse_run_reserved_usd", "An active run's open reservations in USD.", run_labels)
    run_cap = gauge("agentfuse_run_cap_usd", "An active run's cap.", run_labels)
    run_steps = gauge("agentfuse_run_steps", "Calls an active run has made.", run_labels)
    breaker_state = gauge("agentfuse_breaker_state", "1 for the breaker's current state, 0 for the others.",
                          ("agent", "key", "state"))
    breaker_failures = gauge("agentfuse_breaker_consecutive_failures", "Failures counted toward opening.",
                             ("agent", "key"))
    halts = gauge("agentfuse_halts", "Durable halts in force (until `agentfuse resume`).", agent_label)
    halted = gauge("agentfuse_halted", "1 per halt in force; run is empty for an agent-wide halt.",
                   ("agent", "run", "reason", "source"))
    workers = gauge("agentfuse_workers", "Processes with a fresh heartbeat or alive on this host.", agent_label)
    workers_alive = gauge("agentfuse_workers_alive", "Of those, the processes known to be alive.", agent_label)
    worker_age = gauge("agentfuse_worker_heartbeat_age_seconds", "Seconds since a worker's last heartbeat.",
                       ("agent", "pid", "host", "run"))
    last_beat = gauge("agentfuse_last_heartbeat_age_seconds", "Seconds since the agent's freshest heartbeat.",
                      agent_label)
    for agent in document["agents"]:
        name = agent["agent"]
        spend_today.add_metric([name], agent["today"]["used_usd"] or 0.0)
        spend_hour.add_metric([name], agent["last_hour"]["used_usd"] or 0.0)
        if agent["today"]["cap_usd"] is not None:
            cap_today.add_metric([name], agent["today"]["cap_usd"])
        if agent["last_hour"]["cap_usd"] is not None:
            cap_hour.add_metric([name], agent["last_hour"]["cap_usd"])
        active.add_metric([name], len(agent["active_runs"]))
        reservations.add_metric([name], sum(run["unsettled"] for run in agent["active_runs"]))
        for run in agent["active_runs"]:
            labels = [name, run["run_id"], run["parent_id"] or ""]
            run_spent.add_metric(labels, run["spent_usd"] or 0.0)
            run_reserved.add_metric(labels, run["reserved_usd"] or 0.0)
            run_steps.add_metric(labels, run["steps"])
            if run["cap_usd"] is not None:
                run_cap.add_metric(labels, run["cap_usd"])
        for breaker in agent["breakers"]:
            for state in BreakerState:
                breaker_state.add_metric([name, breaker["key"], state.value], float(breaker["state"] == state.value))
            breaker_failures.add_metric([name, breaker["key"]], breaker["consecutive_failures"])
        halts.add_metric([name], len(agent["halts"]))
        for halt in agent["halts"]:
            halted.add_metric([name, halt["run_id"] or "", halt["reason"], halt["source"]], 1.0)
        workers.add_metric([name], len(agent["workers"]))
        workers_alive.add_metric([name], sum(1 for worker in agent["workers"] if worker["alive"]))
        for worker in agent["workers"]:
            worker_age.add_metric([name, str(worker["pid"]), worker["host"], worker["run_id"]],
                                  worker["heartbeat_age_s"])
        if name in last_heartbeats:
            last_beat.add_metric([name], last_heartbeats[name])
    families = [spend_today, cap_today, spend_hour, cap_hour, active, reservations, run_spent, run_reserved,
                run_cap, run_steps, breaker_state, breaker_failures, halts, halted, workers, workers_alive,
                worker_age, last_beat]
    if refusals is not None:
        counter = CounterMetricFamily("agentfuse_event_refusals", "Refused calls in the event log, by reason.",
                                      labels=["agent", "reason"])
        wanted = {agent["agent"] for agent in document["agents"]}
        for (name, reason), count in sorted(refusals.items()):
            if name in wanted:
                counter.add_metric([name, reason], count)
        families.append(counter)
    return families


class StoreCollector:
    """A prometheus-client collector reading the store (and event log) at every scrape."""

    def __init__(
        self,
        store: OperatorStore,
        *,
        store_url: str,
        policy: Policy | None,
        agent: str | None,
        stale_after_s: float,
        clock: Callable[[], float] = time.time,
        on_error: Callable[[str], None] = lambda message: None,
    ) -> None:
        self.store = store
        self.store_url = store_url
        self.policy = policy
        self.agent = agent
        self.stale_after_s = stale_after_s
        self.clock = clock
        self.on_error = on_error
        self.store_up = False
        """Whether the last scrape could read the store."""
        log = status_data.events_path(policy)
        self.refusals = RefusalTally(log) if log is not None else None

    def describe(self) -> list[Any]:
        return []  # nothing is read when the collector is registered

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        up = GaugeMetricFamily("agentfuse_store_up", "1 if the store could be read at this scrape.")
        now = self.clock()
        try:
            document = status_data.gather_status(
                self.store, store_url=self.store_url, policy=self.policy, agent=self.agent, now=now,
                stale_after_s=self.stale_after_s,
            )
            last: dict[str, float] = {}
            for beat in self.store.heartbeats(self.agent):
                last[beat.agent] = min(last.get(beat.agent, float("inf")), round(now - beat.at, 3))
        except StoreUnavailable as exc:
            self.store_up = False
            self.on_error(str(exc))
            up.add_metric([], 0.0)
            yield up
            return
        self.store_up = True
        up.add_metric([], 1.0)
        yield up
        refusals = self.refusals.update() if self.refusals is not None else None
        yield from metric_families(document, last_heartbeats=last, refusals=refusals)


class _QuietHandler(wsgiref.simple_server.WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


class _Stop(Exception):
    """SIGTERM or SIGINT: leave the serving loop."""


def _server(host: str, port: int, app: Any) -> wsgiref.simple_server.WSGIServer:
    """A one-request-at-a-time WSGI server on (host, port), IPv6 when the host is."""

    class Server(wsgiref.simple_server.WSGIServer):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    return wsgiref.simple_server.make_server(host, port, app, server_class=Server, handler_class=_QuietHandler)


def run_metrics(args: argparse.Namespace) -> int:
    """``agentfuse metrics``."""
    try:
        from prometheus_client import CollectorRegistry, generate_latest, make_wsgi_app
    except ImportError:
        return operator.fail("agentfuse metrics needs prometheus-client: pip install 'agentfuse[prometheus]'")
    try:
        host, port = parse_listen(args.listen)
    except ValueError as exc:
        return operator.fail(str(exc))
    opened = operator.open_operator(args)
    if isinstance(opened, int):
        return opened
    store, policy, url = opened
    warn = _warner(url)
    collector = StoreCollector(
        store, store_url=url, policy=policy, agent=args.agent, stale_after_s=args.stale_after, on_error=warn
    )
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    try:
        if args.once:
            sys.stdout.write(generate_latest(registry).decode("utf-8"))
            sys.stdout.flush()
            return EXIT_OK if collector.store_up else EXIT_FAILED
        return _serve(host, port, make_wsgi_app(registry))
    finally:
        if collector.refusals is not None:
            collector.refusals.close()
        store.close()


def _warner(url: str) -> Callable[[str], None]:
    def warn(message: str) -> None:
        print(f"agentfuse: metrics: store {redact(url)} unavailable: {message}", file=sys.stderr, flush=True)

    return warn


def _serve(host: str, port: int, app: Any) -> int:
    try:
        server = _server(host, port, app)
    except OSError as exc:
        return operator.fail(f"cannot listen on {host}:{port}: {exc.strerror}", EXIT_FAILED)
    bound = server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    print(f"agentfuse: serving metrics on http://{shown}:{bound}/metrics", file=sys.stderr, flush=True)

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever()
    except _Stop:
        pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
    return EXIT_OK
