"""``agentfuse report --html``: one self-contained HTML file with inline SVG charts.

Nothing is fetched: no scripts, fonts, stylesheets or images from anywhere, so the file works
offline and from an e-mail attachment. Sections: spend per day per agent against its daily cap
(store), tokens per day against the daily token cap (store; only for agents that used tokens or
have such a cap), the breaker and halt timeline (event log, and the store's current halts and
reconciliations), and the top refusal and failure reasons (event log). Every text is escaped.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import json
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentfuse.runtime.events import format_ts
from agentfuse.runtime.redaction import redact
from agentfuse.runtime.policy import Policy
from agentfuse.operator.status import day_key, events_path, money, usd
from agentfuse.runtime.stores.base import AGENT_WIDE, OperatorStore

TIMELINE_EVENTS = frozenset(
    {
        "halt",
        "resume",
        "breaker_open",
        "breaker_half_open",
        "breaker_closed",
        "restart_loop",
        "reconciled",
        "heartbeat_missing",
    }
)
"""Events drawn on the breaker and halt timeline."""
TOP_REASONS = 8
MAX_EVENT_BYTES = 64 * 1024 * 1024
"""Event logs larger than this are read from their last 64 MiB only."""


@dataclasses.dataclass(frozen=True)
class Mark:
    """One point on the timeline."""

    at: float
    agent: str
    event: str
    detail: str


@dataclasses.dataclass(frozen=True)
class ReportData:
    """Everything the report shows, gathered before rendering (rendering is pure)."""

    generated_at: float
    since: float
    store: str
    days: tuple[str, ...]
    spend: Mapping[str, Mapping[str, float]]
    """agent -> day -> USD (spent + reserved)."""
    daily_caps: Mapping[str, float]
    marks: tuple[Mark, ...]
    halted: tuple[Mark, ...]
    """Halts still in force (drawn as bars up to now)."""
    refusals: tuple[tuple[str, int], ...]
    failures: tuple[tuple[str, int], ...]
    has_events: bool
    tokens: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    """agent -> day -> tokens (used + reserved), for agents that used tokens or have a daily token cap."""
    daily_token_caps: Mapping[str, float] = dataclasses.field(default_factory=dict)


def gather_report(
    store: OperatorStore,
    *,
    store_url: str,
    policy: Policy | None,
    agent: str | None,
    now: float,
    since_s: float,
) -> ReportData:
    """Read the store (and the policy's event log) for the report of the last ``since_s``."""
    since = now - since_s
    days = _days(day_key(since, policy), day_key(now, policy))
    spend: dict[str, dict[str, float]] = {}
    tokens: dict[str, dict[str, float]] = {}
    for row in store.daily_spend(agent, since_day=days[0]):
        spend.setdefault(row.agent, {})[row.day_key] = usd(row.spent_micros + row.reserved_micros) or 0.0
        if row.spent_tokens or row.reserved_tokens:
            tokens.setdefault(row.agent, {})[row.day_key] = float(row.spent_tokens + row.reserved_tokens)
    caps = {}
    token_caps = {}
    if policy is not None and policy.budget.daily_usd is not None and (agent in (None, policy.agent)):
        caps[policy.agent] = float(policy.budget.daily_usd)
        spend.setdefault(policy.agent, {})
    if policy is not None and policy.budget.daily_tokens is not None and (agent in (None, policy.agent)):
        token_caps[policy.agent] = float(policy.budget.daily_tokens)
        tokens.setdefault(policy.agent, {})
    halted = tuple(
        Mark(halt.created_at, halt.agent, "halted", _halt_detail(halt.run_id, redact(halt.reason), halt.source))
        for halt in store.halts(agent)
    )
    marks = [
        Mark(item.at, item.agent, "reconciled", f"run {item.run_id}: {item.settle_as} ({item.reason})")
        for item in store.reconciliations(agent)
        if item.at >= since
    ]
    refusals: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    path = events_path(policy)
    for event in _read_events(path, since):
        if agent is not None and event.get("agent") != agent:
            continue
        name = str(event.get("event"))
        reason = str(event.get("reason") or "-")
        if name == "refused":
            refusals[reason] += 1
        elif name == "failure":
            failures[reason] += 1
        elif name in TIMELINE_EVENTS and name != "reconciled":
            marks.append(Mark(float(event["_at"]), str(event.get("agent")), name, reason))
    return ReportData(
        generated_at=now,
        since=since,
        store=redact(store_url),
        days=days,
        spend=spend,
        daily_caps=caps,
        marks=tuple(sorted(marks, key=lambda mark: mark.at)),
        halted=halted,
        refusals=tuple(refusals.most_common(TOP_REASONS)),
        failures=tuple(failures.most_common(TOP_REASONS)),
        has_events=path is not None and path.exists(),
        tokens=tokens,
        daily_token_caps=token_caps,
    )


def _halt_detail(run_id: str, reason: str, source: str) -> str:
    scope = "agent-wide" if run_id == AGENT_WIDE else f"run {run_id}"
    return f"{scope}: {reason} (by {source})"


def _days(first: str, last: str) -> tuple[str, ...]:
    start = datetime.date.fromisoformat(first)
    end = datetime.date.fromisoformat(last)
    count = max((end - start).days, 0) + 1
    return tuple((start + datetime.timedelta(days=offset)).isoformat() for offset in range(count))


def _read_events(path: Path | None, since: float) -> Iterator[dict[str, Any]]:
    """Events of the log at or after ``since``, each with ``_at`` (epoch seconds)."""
    if path is None or not path.exists():
        return
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - MAX_EVENT_BYTES))
        lines = handle.read().decode("utf-8", "replace").splitlines()
    for line in lines:
        try:
            event = json.loads(line)
            at = datetime.datetime.fromisoformat(str(event["ts"]).replace("Z", "+00:00")).timestamp()
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(event, dict) and at >= since:
            event["_at"] = at
            yield event


# -- rendering ----------------------------------------------------------------------------------

WIDTH = 960
CHART_HEIGHT = 220
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 70, 20, 20, 40
COLOURS = ("#2563eb", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be123c", "#4d7c0f", "#a16207")
MARK_COLOURS = {
    "halt": "#dc2626",
    "halted": "#dc2626",
    "resume": "#16a34a",
    "breaker_open": "#ea580c",
    "breaker_half_open": "#ca8a04",
    "breaker_closed": "#16a34a",
    "restart_loop": "#9333ea",
    "reconciled": "#0891b2",
    "heartbeat_missing": "#6b7280",
}

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #111827; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #4b5563; } .empty { color: #6b7280; font-style: italic; }
svg.chart { display: block; margin: 8px 0; background: #f9fafb; border: 1px solid #e5e7eb; }
svg text { font: 11px system-ui, sans-serif; fill: #374151; }
.legend span { display: inline-block; margin-right: 14px; }
.swatch { display: inline-block; width: 10px; height: 10px; margin-right: 4px; }
"""


def render_html(data: ReportData) -> str:
    """The report as one HTML document (no external resources)."""
    esc = html.escape
    period = f"{format_ts(data.since)} to {format_ts(data.generated_at)}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>agentfuse report</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>agentfuse report</h1>",
        f'<p class="meta">{esc(period)} &middot; store {esc(data.store)}</p>',
        "<h2>Spend per day against the daily cap</h2>",
    ]
    if not data.spend:
        parts.append('<p class="empty">no spend recorded in this period</p>')
    for index, (agent, by_day) in enumerate(sorted(data.spend.items())):
        parts.append(_spend_chart(agent, by_day, data.days, data.daily_caps.get(agent), COLOURS[index % len(COLOURS)]))
    if data.tokens:
        parts.append("<h2>Tokens per day against the daily token cap</h2>")
        for index, (agent, by_day) in enumerate(sorted(data.tokens.items())):
            colour = COLOURS[index % len(COLOURS)]
            cap = data.daily_token_caps.get(agent)
            parts.append(_spend_chart(agent, by_day, data.days, cap, colour, shown=_tokens, kind="tokens"))
    parts.append("<h2>Breaker and halt timeline</h2>")
    parts.append(_timeline(data))
    if not data.has_events:
        parts.append('<p class="empty">no event log read (pass --policy with an events: path for breaker'
                     " events, refusals and failures)</p>")
    parts.append("<h2>Top refusal reasons</h2>")
    parts.append(_bars("refusals", data.refusals, "#dc2626"))
    parts.append("<h2>Top failure reasons</h2>")
    parts.append(_bars("failures", data.failures, "#ea580c"))
    parts.append("</body></html>")
    return "\n".join(parts)


def _tokens(count: float) -> str:
    return f"{count:,.0f} tokens"


def _spend_chart(
    agent: str,
    by_day: Mapping[str, float],
    days: Sequence[str],
    cap: float | None,
    colour: str,
    *,
    shown: Callable[[float], str] = money,
    kind: str = "spend",
) -> str:
    """Bars per day against the daily cap: of money (``spend``), or of ``tokens``."""
    esc = html.escape
    values = [by_day.get(day, 0.0) for day in days]
    top = max([*values, cap or 0.0, 0.01 if kind == "spend" else 1.0]) * 1.1
    plot_w = WIDTH - PAD_LEFT - PAD_RIGHT
    plot_h = CHART_HEIGHT - PAD_TOP - PAD_BOTTOM
    slot = plot_w / max(len(days), 1)

    def y_of(value: float) -> float:
        return PAD_TOP + plot_h * (1 - value / top)

    out = [
        f'<h3>{esc(agent)}</h3>',
        f'<svg class="chart {kind}" data-agent="{esc(agent)}" width="{WIDTH}" height="{CHART_HEIGHT}"'
        f' viewBox="0 0 {WIDTH} {CHART_HEIGHT}" role="img" aria-label="{kind} per day of {esc(agent)}">',
        f'<line x1="{PAD_LEFT}" y1="{PAD_TOP + plot_h}" x2="{WIDTH - PAD_RIGHT}" y2="{PAD_TOP + plot_h}"'
        ' stroke="#9ca3af"/>',
    ]
    for tick in (0.0, top / 2, top):
        out.append(
            f'<text x="{PAD_LEFT - 6}" y="{y_of(tick) + 4:.1f}" text-anchor="end">{esc(shown(tick))}</text>'
        )
    bar_w = max(slot * 0.6, 2.0)
    for index, (day, value) in enumerate(zip(days, values)):
        x = PAD_LEFT + index * slot + (slot - bar_w) / 2
        height = plot_h * value / top
        out.append(
            f'<rect class="bar" x="{x:.1f}" y="{PAD_TOP + plot_h - height:.1f}" width="{bar_w:.1f}"'
            f' height="{height:.1f}" fill="{colour}"><title>{esc(day)}: {esc(shown(value))}</title></rect>'
        )
        if len(days) <= 31 and (index % max(len(days) // 10, 1) == 0 or index == len(days) - 1):
            out.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{CHART_HEIGHT - PAD_BOTTOM + 16}" text-anchor="middle">'
                f"{esc(day[5:])}</text>"
            )
    if cap is not None:
        y = y_of(cap)
        out.append(
            f'<line class="cap" x1="{PAD_LEFT}" y1="{y:.1f}" x2="{WIDTH - PAD_RIGHT}" y2="{y:.1f}"'
            f' stroke="#dc2626" stroke-dasharray="6 4"/>'
            f'<text x="{WIDTH - PAD_RIGHT}" y="{y - 4:.1f}" text-anchor="end">daily cap {esc(shown(cap))}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def _timeline(data: ReportData) -> str:
    esc = html.escape
    agents = sorted({mark.agent for mark in (*data.marks, *data.halted)})
    if not agents:
        return '<p class="empty">no halts, breaker trips, restart loops or reconciliations in this period</p>'
    lane = 28
    height = PAD_TOP + lane * len(agents) + PAD_BOTTOM
    plot_w = WIDTH - PAD_LEFT - 120 - PAD_RIGHT
    left = PAD_LEFT + 120
    span = max(data.generated_at - data.since, 1.0)

    def x_of(at: float) -> float:
        return left + plot_w * min(max((at - data.since) / span, 0.0), 1.0)

    out = [
        f'<svg class="chart timeline" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}"'
        ' role="img" aria-label="breaker and halt timeline">',
    ]
    for row, agent in enumerate(agents):
        y = PAD_TOP + row * lane + lane / 2
        out.append(f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{esc(agent)}</text>')
        out.append(f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#e5e7eb"/>')
        for halt in (mark for mark in data.halted if mark.agent == agent):
            x = x_of(halt.at)
            out.append(
                f'<rect class="halt-span" x="{x:.1f}" y="{y - 6:.1f}" width="{max(left + plot_w - x, 2):.1f}"'
                f' height="12" fill="#fecaca" stroke="#dc2626"><title>halted since {esc(format_ts(halt.at))}:'
                f" {esc(halt.detail)}</title></rect>"
            )
        for mark in (mark for mark in data.marks if mark.agent == agent):
            colour = MARK_COLOURS.get(mark.event, "#374151")
            out.append(
                f'<circle class="mark {esc(mark.event)}" cx="{x_of(mark.at):.1f}" cy="{y:.1f}" r="5"'
                f' fill="{colour}"><title>{esc(format_ts(mark.at))} {esc(mark.event)}: {esc(mark.detail)}'
                "</title></circle>"
            )
    axis_y = PAD_TOP + lane * len(agents) + 16
    out.append(f'<text x="{left}" y="{axis_y}">{esc(format_ts(data.since)[:16])}</text>')
    out.append(
        f'<text x="{left + plot_w}" y="{axis_y}" text-anchor="end">{esc(format_ts(data.generated_at)[:16])}</text>'
    )
    out.append("</svg>")
    used = sorted({mark.event for mark in (*data.marks, *data.halted)})
    out.append(
        '<p class="legend">'
        + "".join(
            f'<span><i class="swatch" style="background:{MARK_COLOURS.get(name, "#374151")}"></i>{esc(name)}</span>'
            for name in used
        )
        + "</p>"
    )
    return "\n".join(out)


def _bars(kind: str, counts: Sequence[tuple[str, int]], colour: str) -> str:
    esc = html.escape
    if not counts:
        return f'<p class="empty">no {esc(kind)} in this period</p>'
    row_h = 24
    height = PAD_TOP + row_h * len(counts) + 10
    label_w = 260
    plot_w = WIDTH - label_w - PAD_RIGHT - 60
    top = max(count for _, count in counts)
    out = [
        f'<svg class="chart bars {esc(kind)}" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}"'
        f' role="img" aria-label="top {esc(kind)}">'
    ]
    for row, (reason, count) in enumerate(counts):
        y = PAD_TOP + row * row_h
        width = plot_w * count / top
        out.append(f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end">{esc(reason[:40])}</text>')
        out.append(
            f'<rect class="bar" x="{label_w}" y="{y + 2}" width="{width:.1f}" height="{row_h - 8}" fill="{colour}">'
            f"<title>{esc(reason)}: {count}</title></rect>"
        )
        out.append(f'<text x="{label_w + width + 6:.1f}" y="{y + 14}">{count}</text>')
    out.append("</svg>")
    return "\n".join(out)
