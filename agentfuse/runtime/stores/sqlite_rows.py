"""The SQLite store's rows as values: column lists, window bucket names, one row read or written.

Shared by the gate path (:mod:`.sqlite_gate`), the operator reads (:mod:`.sqlite_reads`) and the
store itself (:mod:`.sqlite`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from agentfuse.runtime.stores.base import BreakerRecord, BreakerState, HaltRecord, RateLimitRecord, RunInfo

SQL = sqlite3.Connection | sqlite3.Cursor
"""What runs a statement: a connection (reads) or the connection's cursor (transactions)."""
HOUR_MINUTES = 60

RUN_COLUMNS = (
    "run_id, agent, parent_id, cap_micros, started_at, spent_micros, reserved_micros, steps, failures,"
    " token_cap, spent_tokens, reserved_tokens"
)
"""The columns of ``runs`` in the order of :class:`RunInfo`'s fields."""
RUN_WIDTH = len(RUN_COLUMNS.split(","))
LATEST_DAY = (
    "(SELECT {column} FROM agent_windows WHERE agent = ? AND bucket > 'day:' AND bucket < 'day;'"
    " ORDER BY bucket DESC LIMIT 1)"
)
"""A column of the agent's latest day bucket (parameter: agent): ``bucket``, or ``at``, the time
of the agent's latest reservation (the agent's clock never runs backwards, so it is there)."""
LATEST_DAY_AT = "SELECT " + LATEST_DAY.format(column="at")
LATEST_DAY_BUCKET = "SELECT " + LATEST_DAY.format(column="bucket")
BREAKER_COLUMNS = ", ".join(
    f"(SELECT {column} FROM breakers WHERE agent = ? AND key = ?)"
    for column in ("state", "consecutive_failures", "opened_at", "probe_id", "probe_expires_at")
)
"""A breaker row as five scalar sub-queries (parameters: agent, key, five times)."""
DECLARATION_COLUMNS = "agent, policy, daily_micros, hourly_micros, declared_at, daily_tokens, hourly_tokens"
"""The columns of ``cap_declarations`` in the order of :class:`CapDeclaration`'s fields."""
IDENTITY_SQL = "SELECT agent, identity, created_at, reset_reason FROM identities WHERE agent = ?"
HALT_SQL = "SELECT agent, run_id, reason, source, created_at, figures FROM halts"
CLOSED_BREAKER = BreakerRecord()


def day_bucket(day_key: str) -> str:
    """An agent's day in ``agent_windows``: ``day:2026-11-23``."""
    return "day:" + day_key


def minute_bucket(minute: int) -> str:
    """An agent's minute in ``agent_windows``, zero-padded so text order is time order."""
    return f"minute:{minute:010d}"


def fetch_run(db: SQL, run_id: str) -> RunInfo | None:
    row = db.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return RunInfo(*row) if row else None


def lineage_rows(db: SQL, run_id: str) -> list[RunInfo]:
    """The run, then its parent, grandparent, ... in one recursive query (KeyError: no such run)."""
    rows = db.execute(
        "WITH RECURSIVE chain(run_id, depth) AS (SELECT ?, 0 UNION ALL"
        " SELECT runs.parent_id, chain.depth + 1 FROM runs JOIN chain USING (run_id)"
        f" WHERE runs.parent_id IS NOT NULL) SELECT {RUN_COLUMNS} FROM chain JOIN runs USING (run_id)"
        " ORDER BY depth",
        (run_id,),
    ).fetchall()
    if not rows:
        raise KeyError(run_id)
    return [RunInfo(*row) for row in rows]


def breaker_from_row(row: Sequence[Any] | None) -> BreakerRecord:
    """A breaker from its five columns (a missing row, or NULLs: closed)."""
    if row is None or row[0] is None:
        return CLOSED_BREAKER
    return BreakerRecord(BreakerState(row[0]), *row[1:])


def fetch_breaker(db: SQL, agent: str, key: str) -> BreakerRecord:
    row = db.execute(
        "SELECT state, consecutive_failures, opened_at, probe_id, probe_expires_at FROM breakers"
        " WHERE agent = ? AND key = ?",
        (agent, key),
    ).fetchone()
    return breaker_from_row(row)


def write_breaker(db: SQL, agent: str, key: str, record: BreakerRecord) -> None:
    db.execute(
        "INSERT OR REPLACE INTO breakers VALUES (?,?,?,?,?,?,?)",
        (
            agent,
            key,
            record.state.value,
            record.consecutive_failures,
            record.opened_at,
            record.probe_id,
            record.probe_expires_at,
        ),
    )


def fetch_rate(db: SQL, agent: str, action: str) -> RateLimitRecord:
    row = db.execute(
        "SELECT admissions, cooldown_until FROM rate_limits WHERE agent = ? AND action = ?",
        (agent, action),
    ).fetchone()
    if row is None:
        return RateLimitRecord()
    return RateLimitRecord(tuple(float(t) for t in json.loads(row[0])), row[1])


def write_rate(db: SQL, agent: str, action: str, record: RateLimitRecord) -> None:
    db.execute(
        "INSERT OR REPLACE INTO rate_limits VALUES (?,?,?,?)",
        (agent, action, json.dumps(record.admissions), record.cooldown_until),
    )


def halt_from_row(row: Sequence[Any]) -> HaltRecord:
    agent, run_id, reason, source, created_at, figures = row
    return HaltRecord(agent, run_id, reason, source, created_at, json.loads(figures))


def halts_for(db: SQL, agent: str, run_ids: Sequence[str]) -> list[HaltRecord]:
    """The agent-wide halt and those of ``run_ids``."""
    marks = ",".join("?" * len(run_ids))
    rows = db.execute(
        f"{HALT_SQL} WHERE (run_id = '' AND agent = ?) OR run_id IN ({marks})", (agent, *run_ids)
    ).fetchall()
    return [halt_from_row(row) for row in rows]


def write_halt(db: SQL, record: HaltRecord) -> None:
    db.execute(
        "INSERT OR REPLACE INTO halts (run_id, agent, reason, source, created_at, figures)"
        " VALUES (?,?,?,?,?,?)",
        (
            record.run_id,
            record.agent,
            record.reason,
            record.source,
            record.created_at,
            json.dumps(dict(record.figures), default=str),
        ),
    )


def latest_at(db: SQL, agent: str) -> float:
    """The time of the agent's latest reservation (0 if none): the agent's clock."""
    (latest,) = db.execute(LATEST_DAY_AT, (agent,)).fetchone()
    return float(latest) if latest is not None else 0.0


def declared(value: str | None) -> tuple[int, str] | None:
    """``"1000000 host:/p/policy.yaml"`` (the strictest declared cap and its policy) as a pair."""
    if value is None:
        return None
    amount, _, policy = value.partition(" ")
    return int(amount), policy
