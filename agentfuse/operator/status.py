"""What the fleet is doing, for ``agentfuse status``, ``runs``, ``watch`` and ``report``.

Gathering reads the store (and, with a policy, its caps and event log) into plain JSON-ready
dicts; formatting turns them into a terminal table. The JSON shape is a documented contract
(``docs/operations.md``, ``STATUS_SCHEMA``): add fields, never rename or remove them.
Secrets never appear: the store URL is redacted and webhooks are not read at all.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import socket
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agentfuse.runtime.events import format_ts, stream_name
from agentfuse.runtime.redaction import redact
from agentfuse.runtime.money import from_micros
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    BreakerRecord,
    BreakerState,
    Heartbeat,
    OperatorStore,
    Reservation,
    RunSummary,
)

STATUS_SCHEMA = "agentfuse.status/1"
DEFAULT_STALE_AFTER_S = 600.0
LAST_EVENTS = 10
_TAIL_BYTES = 256 * 1024
"""How much of the end of the event log is read for the last events."""


def usd(micros: int | None) -> float | None:
    """Micro-dollars -> USD as a JSON number (None stays None)."""
    return None if micros is None else float(from_micros(micros))


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


@dataclasses.dataclass(frozen=True)
class Liveness:
    """How to tell whether a process is alive: this host's pids, other hosts' heartbeats."""

    now: float
    host: str
    stale_after_s: float
    heartbeats: Sequence[Heartbeat]
    alive: Callable[[int], bool] = process_alive

    def process_alive(self, pid: int | None, host: str | None) -> bool | None:
        """True/False when known; None for a reservation that recorded no process."""
        if pid is None or host is None:
            return None
        if host == self.host:
            return self.alive(pid)
        return any(
            beat.pid == pid and beat.host == host and self.now - beat.at <= self.stale_after_s
            for beat in self.heartbeats
        )

    def stale_reason(self, reservation: Reservation) -> str | None:
        """Why the reservation's process is gone, or None if it may still settle it."""
        alive = self.process_alive(reservation.pid, reservation.host)
        if alive is None:
            if self.now - reservation.created_at > self.stale_after_s:
                return f"no process recorded and older than {self.stale_after_s:g}s"
            return None
        if alive:
            return None
        if reservation.host == self.host:
            return f"pid {reservation.pid} is not running on this host"
        return f"no heartbeat from pid {reservation.pid} on {reservation.host} for {self.stale_after_s:g}s"


def liveness(store: OperatorStore, now: float, stale_after_s: float) -> Liveness:
    return Liveness(now, socket.gethostname(), stale_after_s, store.heartbeats())


def stale_reservations(
    store: OperatorStore, live: Liveness, *, agent: str | None = None, run_id: str | None = None
) -> list[tuple[Reservation, str]]:
    """Open reservations whose process is dead, each with the reason."""
    found = []
    for reservation in store.open_reservations(agent, run_id):
        reason = live.stale_reason(reservation)
        if reason is not None:
            found.append((reservation, reason))
    return found


def reservation_json(reservation: Reservation, now: float, stale_reason: str | None = None) -> dict[str, Any]:
    return {
        "reservation_id": reservation.reservation_id,
        "agent": reservation.agent,
        "run_id": reservation.run_id,
        "action": reservation.action,
        "estimate_usd": usd(reservation.estimate_micros),
        "created_at": format_ts(reservation.created_at),
        "age_s": round(now - reservation.created_at, 3),
        "pid": reservation.pid,
        "host": reservation.host,
        "stale_reason": stale_reason,
        "estimate_tokens": reservation.estimate_tokens,
    }


def run_json(summary: RunSummary, now: float, policy: Policy | None) -> dict[str, Any]:
    """One run against its limits (limits are null without the agent's policy)."""
    run = summary.run
    budget = policy.budget if policy is not None else None
    return {
        "run_id": run.run_id,
        "agent": run.agent,
        "parent_id": run.parent_id,
        "spent_usd": usd(run.spent_micros),
        "reserved_usd": usd(run.reserved_micros),
        "cap_usd": usd(run.cap_micros),
        "steps": run.steps,
        "max_steps": budget.max_steps if budget else None,
        "retries": run.failures,
        "max_retries_total": budget.max_retries_total if budget else None,
        "started_at": format_ts(run.started_at),
        "elapsed_s": round(now - run.started_at, 3),
        "timeout_s": budget.timeout_s if budget else None,
        "last_activity_at": format_ts(summary.last_activity_at),
        "unsettled": summary.unsettled,
        "spent_tokens": run.spent_tokens,
        "reserved_tokens": run.reserved_tokens,
        "cap_tokens": run.token_cap,
    }


def day_key(now: float, policy: Policy | None) -> str:
    """The calendar day of ``now`` in the policy's time zone (UTC without a policy)."""
    zone = ZoneInfo(policy.timezone) if policy is not None else datetime.timezone.utc
    return datetime.datetime.fromtimestamp(now, zone).date().isoformat()


def last_events(path: Path | None, agent: str, limit: int = LAST_EVENTS) -> list[dict[str, Any]]:
    """The agent's last events from the end of a JSONL event log (already redacted)."""
    if path is None or not path.exists():
        return []
    with path.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read().decode("utf-8", "replace").splitlines()
    if size > _TAIL_BYTES:
        tail = tail[1:]  # the first line is cut
    found: deque[dict[str, Any]] = deque(maxlen=limit)
    for line in tail:
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("agent") == agent:
            found.append(event)
    return list(found)


def events_path(policy: Policy | None) -> Path | None:
    """The policy's event log file (None without one, or when its lines go to stdout/stderr)."""
    if policy is None or policy.events.path is None or stream_name(policy.events.path) is not None:
        return None
    return policy.resolve_path(policy.events.path)


def gather_status(
    store: OperatorStore,
    *,
    store_url: str,
    policy: Policy | None,
    agent: str | None,
    now: float,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
) -> dict[str, Any]:
    """The status document (schema ``agentfuse.status/1``) of every agent, or of one."""
    live = liveness(store, now, stale_after_s)
    names = [agent] if agent is not None else store.agents()
    if agent is None and policy is not None and policy.agent not in names:
        names.append(policy.agent)
    return {
        "schema": STATUS_SCHEMA,
        "generated_at": format_ts(now),
        "store": redact(store_url),
        "stale_after_s": stale_after_s,
        "agents": [
            _agent_status(store, name, policy if policy is not None and policy.agent == name else None, live)
            for name in sorted(names)
        ],
    }


def _agent_status(store: OperatorStore, agent: str, policy: Policy | None, live: Liveness) -> dict[str, Any]:
    now = live.now
    today = day_key(now, policy)
    totals = store.agent_totals(agent, day_key=today, minute=int(now // 60))
    budget = policy.budget if policy is not None else None
    runs = [
        summary
        for summary in store.list_runs(agent)
        if summary.unsettled or now - summary.last_activity_at <= live.stale_after_s
    ]
    beats = [
        beat
        for beat in live.heartbeats
        if beat.agent == agent and (now - beat.at <= live.stale_after_s or live.process_alive(beat.pid, beat.host))
    ]
    return {
        "agent": agent,
        "caps_known": policy is not None,
        "today": {
            "day": today,
            "used_usd": usd(totals.day_micros),
            "cap_usd": float(budget.daily_usd) if budget and budget.daily_usd is not None else None,
            "used_tokens": totals.day_tokens,
            "cap_tokens": budget.daily_tokens if budget else None,
        },
        "last_hour": {
            "used_usd": usd(totals.hour_micros),
            "cap_usd": float(budget.hourly_usd) if budget and budget.hourly_usd is not None else None,
            "used_tokens": totals.hour_tokens,
            "cap_tokens": budget.hourly_tokens if budget else None,
        },
        "active_runs": [run_json(summary, now, policy) for summary in runs],
        "breakers": [
            _breaker_json(key, record, policy, now)
            for _, key, record in store.breakers(agent) or [(agent, "", BreakerRecord())]
        ],
        "halts": [
            {
                "run_id": None if halt.run_id == AGENT_WIDE else halt.run_id,
                "reason": redact(halt.reason),
                "source": halt.source,
                "created_at": format_ts(halt.created_at),
            }
            for halt in store.halts(agent)
        ],
        "workers": [
            {
                "pid": beat.pid,
                "host": beat.host,
                "run_id": beat.run_id,
                "heartbeat_at": format_ts(beat.at),
                "heartbeat_age_s": round(now - beat.at, 3),
                "alive": live.process_alive(beat.pid, beat.host),
            }
            for beat in beats
        ],
        "last_events": last_events(events_path(policy), agent),
    }


def _breaker_json(key: str, record: BreakerRecord, policy: Policy | None, now: float) -> dict[str, Any]:
    half_open_in = None
    if record.state is BreakerState.OPEN and record.opened_at is not None and policy is not None:
        half_open_in = round(max(0.0, record.opened_at + policy.breaker.cooldown_s - now), 3)
    return {
        "key": key,
        "state": record.state.value,
        "consecutive_failures": record.consecutive_failures,
        "failure_threshold": policy.breaker.failure_threshold if policy is not None else None,
        "opened_at": format_ts(record.opened_at) if record.opened_at is not None else None,
        "half_open_in_s": half_open_in,
    }


# -- the terminal table -------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Palette:
    """ANSI colours, or none (``NO_COLOR``, or not a terminal)."""

    enabled: bool

    def paint(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    def bad(self, text: str) -> str:
        return self.paint(text, "31")

    def warn(self, text: str) -> str:
        return self.paint(text, "33")

    def good(self, text: str) -> str:
        return self.paint(text, "32")

    def bold(self, text: str) -> str:
        return self.paint(text, "1")


def palette_for(stream: Any, environ: Mapping[str, str] = os.environ) -> Palette:
    """Colour only on a terminal and when ``NO_COLOR`` is unset (https://no-color.org)."""
    return Palette(bool(getattr(stream, "isatty", lambda: False)()) and "NO_COLOR" not in environ)


def money(value: float | None) -> str:
    """``$1,234.5``: up to four decimals, no trailing zeros; ``-`` for none."""
    if value is None:
        return "-"
    whole, _, cents = f"{value:,.4f}".partition(".")
    cents = cents.rstrip("0").ljust(2, "0")
    return f"${whole}" if cents == "00" else f"${whole}.{cents}"


def tokens(value: int | None) -> str:
    """``12,000 tokens``; ``-`` for none."""
    return "-" if value is None else f"{value:,} tokens"


def _against(
    used: float | None,
    cap: float | None,
    colours: Palette,
    caps_known: bool,
    shown: Callable[[Any], str] = money,
) -> str:
    if cap is None:
        return f"{shown(used)} (" + ("no cap" if caps_known else "cap unknown: pass --policy") + ")"
    share = (used or 0.0) / cap if cap else 1.0
    text = f"{shown(used)} of {shown(cap)} ({share:.0%})"
    if share >= 1:
        return colours.bad(text)
    return colours.warn(text) if share >= 0.8 else text


def _limit(value: Any, limit: Any) -> str:
    return f"{value}" if limit is None else f"{value}/{limit}"


def format_table(document: Mapping[str, Any], colours: Palette) -> str:
    """The status document as a readable terminal table."""
    lines = [f"agentfuse status  {document['generated_at']}  store {document['store']}"]
    if not document["agents"]:
        lines.append("  no agents in this store yet")
    for agent in document["agents"]:
        known = agent["caps_known"]
        lines += [
            "",
            colours.bold(f"agent {agent['agent']}"),
            f"  today {agent['today']['day']:<12} "
            + _against(agent["today"]["used_usd"], agent["today"]["cap_usd"], colours, known),
            "  last hour          "
            + _against(agent["last_hour"]["used_usd"], agent["last_hour"]["cap_usd"], colours, known),
        ]
        today, hour = agent["today"], agent["last_hour"]
        if today["used_tokens"] or hour["used_tokens"] or today["cap_tokens"] or hour["cap_tokens"]:
            lines += [
                "  tokens today       " + _against(today["used_tokens"], today["cap_tokens"], colours, known, tokens),
                "  tokens last hour   " + _against(hour["used_tokens"], hour["cap_tokens"], colours, known, tokens),
            ]
        for halt in agent["halts"]:
            scope = f"run {halt['run_id']}" if halt["run_id"] else "agent-wide"
            lines.append(
                colours.bad(f"  HALTED {scope}: {halt['reason']} (by {halt['source']}, {halt['created_at']})")
            )
        for breaker in agent["breakers"]:
            lines.append(f"  breaker {breaker['key'] or '(agent)'}: " + _breaker_text(breaker, colours))
        lines.append(f"  active runs: {len(agent['active_runs'])}")
        runs = agent["active_runs"]
        with_tokens = any(run["spent_tokens"] or run["reserved_tokens"] or run["cap_tokens"] for run in runs)
        lines += format_rows(
            ("run", "spent", "cap", "steps", "retries", "elapsed", "open") + (("tokens",) if with_tokens else ()),
            [
                (
                    run["run_id"],
                    money(run["spent_usd"]),
                    money(run["cap_usd"]),
                    _limit(run["steps"], run["max_steps"]),
                    _limit(run["retries"], run["max_retries_total"]),
                    _limit(f"{run['elapsed_s']:.0f}s", f"{run['timeout_s']:g}s" if run["timeout_s"] else None),
                    str(run["unsettled"]),
                )
                + ((_run_tokens(run),) if with_tokens else ())
                for run in runs
            ],
        )
        lines.append(f"  workers: {len(agent['workers'])}")
        lines += format_rows(
            ("pid", "host", "run", "heartbeat", "alive"),
            [
                (
                    str(worker["pid"]),
                    worker["host"],
                    worker["run_id"],
                    f"{worker['heartbeat_age_s']:.0f}s ago",
                    colours.good("yes") if worker["alive"] else colours.bad("no"),
                )
                for worker in agent["workers"]
            ],
        )
        if agent["last_events"]:
            lines.append("  last events:")
            lines += [
                f"    {event.get('ts', '')} {event.get('event', '')}"
                + (f" ({event['reason']})" if event.get("reason") else "")
                for event in agent["last_events"]
            ]
    return "\n".join(lines)


def _run_tokens(run: Mapping[str, Any]) -> str:
    """A run's tokens (spent + reserved) against its token cap: ``1,200/10,000``."""
    cap = run["cap_tokens"]
    return _limit(f"{run['spent_tokens'] + run['reserved_tokens']:,}", None if cap is None else f"{cap:,}")


def _breaker_text(breaker: Mapping[str, Any], colours: Palette) -> str:
    state = breaker["state"]
    threshold = breaker["failure_threshold"]
    failures = _limit(breaker["consecutive_failures"], threshold)
    if state == "closed":
        return f"closed ({failures} consecutive failures)"
    if state == "open":
        when = breaker["half_open_in_s"]
        left = f"half-open in {when:.0f}s" if when is not None else "cooldown unknown: pass --policy"
        return colours.bad(f"OPEN since {breaker['opened_at']}, {left}")
    return colours.warn("half-open (one probe decides)")


def format_rows(header: Sequence[str], rows: Iterable[Sequence[str]], indent: str = "    ") -> list[str]:
    """Aligned columns under a header (nothing when there are no rows)."""
    rows = list(rows)
    if not rows:
        return []
    widths = [max(len(_visible(cell)) for cell in column) for column in zip(header, *rows)]
    return [
        indent + "  ".join(cell + " " * (width - len(_visible(cell))) for cell, width in zip(row, widths)).rstrip()
        for row in (header, *rows)
    ]


def _visible(text: str) -> str:
    """Text without ANSI colour codes (for column widths)."""
    out, skipping = [], False
    for char in text:
        if char == "\x1b":
            skipping = True
        elif skipping and char == "m":
            skipping = False
        elif not skipping:
            out.append(char)
    return "".join(out)
