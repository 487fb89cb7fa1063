"""The SQLite store's reads for the operator tools (status, runs, report, reconcile, store caps).

Each is one read on a connection outside any transaction; none runs on a guarded call's path.
"""

from __future__ import annotations

from agentfuse.runtime.stores.base import (
    AgentTotals,
    BooksLoss,
    BreakerRecord,
    CapDeclaration,
    DaySpend,
    HaltRecord,
    Heartbeat,
    Reconciliation,
    Reservation,
    RunInfo,
    RunSummary,
    StoreIdentity,
)
from agentfuse.runtime.stores.sqlite_rows import (
    DECLARATION_COLUMNS,
    HALT_SQL,
    HOUR_MINUTES,
    IDENTITY_SQL,
    RUN_COLUMNS,
    RUN_WIDTH,
    SQL,
    breaker_from_row,
    day_bucket,
    halt_from_row,
    minute_bucket,
)


def halts(db: SQL, agent: str | None) -> list[HaltRecord]:
    rows = (
        db.execute(HALT_SQL + " WHERE agent = ? ORDER BY created_at, agent, run_id", (agent,))
        if agent is not None
        else db.execute(HALT_SQL + " ORDER BY created_at, agent, run_id")
    )
    return [halt_from_row(row) for row in rows]


def agent_totals(db: SQL, agent: str, day_key: str, minute: int) -> AgentTotals:
    """Money and tokens (spent + reserved) of the agent's day and of its hour up to ``minute``."""
    day = db.execute(
        "SELECT spent_micros + reserved_micros, spent_tokens + reserved_tokens FROM agent_windows"
        " WHERE agent = ? AND bucket = ?",
        (agent, day_bucket(day_key)),
    ).fetchone() or (0, 0)
    hour = db.execute(
        "SELECT COALESCE(SUM(spent_micros + reserved_micros), 0), COALESCE(SUM(spent_tokens + reserved_tokens), 0)"
        " FROM agent_windows WHERE agent = ? AND bucket > ? AND bucket <= ?",
        (agent, minute_bucket(minute - HOUR_MINUTES), minute_bucket(minute)),
    ).fetchone()
    return AgentTotals(int(day[0]), int(hour[0]), int(day[1]), int(hour[1]))


def unsettled(db: SQL, run_id: str | None) -> int:
    if run_id is None:
        row = db.execute("SELECT COUNT(*) FROM ledger WHERE settled_at IS NULL").fetchone()
    else:
        row = db.execute("SELECT COUNT(*) FROM ledger WHERE run_id = ? AND settled_at IS NULL", (run_id,)).fetchone()
    return int(row[0])


def heartbeats(db: SQL, agent: str | None) -> list[Heartbeat]:
    sql = "SELECT agent, run_id, pid, host, at FROM heartbeats"
    rows = (
        db.execute(sql + " WHERE agent = ? ORDER BY at DESC", (agent,))
        if agent is not None
        else db.execute(sql + " ORDER BY at DESC")
    )
    return [Heartbeat(*row) for row in rows]


def list_runs(db: SQL, agent: str | None) -> list[RunSummary]:
    """Every run (of ``agent``), latest activity first."""
    rows = db.execute(  # one pass over the ledger, not one per run
        "WITH activity AS (SELECT run_id, MAX(created_at) AS last_at,"
        " SUM(settled_at IS NULL) AS unsettled FROM ledger WHERE ? IS NULL OR agent = ? GROUP BY run_id)"
        f" SELECT {', '.join('runs.' + c.strip() for c in RUN_COLUMNS.split(','))},"
        " COALESCE(activity.last_at, runs.started_at), COALESCE(activity.unsettled, 0)"
        " FROM runs LEFT JOIN activity USING (run_id) WHERE ? IS NULL OR runs.agent = ?",
        (agent, agent, agent, agent),
    ).fetchall()
    summaries = [RunSummary(RunInfo(*row[:RUN_WIDTH]), row[RUN_WIDTH], row[RUN_WIDTH + 1]) for row in rows]
    return sorted(summaries, key=lambda summary: summary.last_activity_at, reverse=True)


def open_reservations(db: SQL, agent: str | None, run_id: str | None) -> list[Reservation]:
    rows = db.execute(
        "SELECT reservation_id, agent, run_id, action, estimate_micros, created_at, pid, host,"
        " estimate_tokens FROM ledger WHERE settled_at IS NULL AND (? IS NULL OR agent = ?)"
        " AND (? IS NULL OR run_id = ?)"
        " ORDER BY created_at",
        (agent, agent, run_id, run_id),
    ).fetchall()
    return [Reservation(*row) for row in rows]


def reconciliations(db: SQL, agent: str | None) -> list[Reconciliation]:
    rows = db.execute(
        "SELECT reservation_id, agent, run_id, settle_as, cost_micros, reason, at FROM reconciliations"
        " WHERE ? IS NULL OR agent = ? ORDER BY at",
        (agent, agent),
    ).fetchall()
    return [Reconciliation(*row) for row in rows]


def daily_spend(db: SQL, agent: str | None, since_day: str) -> list[DaySpend]:
    rows = db.execute(
        "SELECT agent, substr(bucket, 5), spent_micros, reserved_micros, spent_tokens, reserved_tokens"
        " FROM agent_windows"
        " WHERE (? IS NULL OR agent = ?) AND bucket LIKE 'day:%' AND bucket >= ? ORDER BY bucket, agent",
        (agent, agent, day_bucket(since_day)),
    ).fetchall()
    return [DaySpend(*row) for row in rows]


def breakers(db: SQL, agent: str | None) -> list[tuple[str, str, BreakerRecord]]:
    rows = db.execute(
        "SELECT agent, key, state, consecutive_failures, opened_at, probe_id, probe_expires_at"
        " FROM breakers WHERE ? IS NULL OR agent = ? ORDER BY agent, key",
        (agent, agent),
    ).fetchall()
    return [(row[0], row[1], breaker_from_row(row[2:])) for row in rows]


def agents(db: SQL) -> list[str]:
    rows = db.execute(
        "SELECT agent FROM runs UNION SELECT agent FROM halts UNION SELECT agent FROM heartbeats"
        " UNION SELECT agent FROM agent_windows ORDER BY agent"
    ).fetchall()
    return [row[0] for row in rows]


def identity(db: SQL, agent: str) -> StoreIdentity | None:
    row = db.execute(IDENTITY_SQL, (agent,)).fetchone()
    return StoreIdentity(*row) if row else None


def losses(db: SQL, agent: str | None) -> list[BooksLoss]:
    rows = db.execute(
        "SELECT agent, at, reason, previous, identity FROM books_losses WHERE ? IS NULL OR agent = ?"
        " ORDER BY at, rowid",
        (agent, agent),
    ).fetchall()
    return [BooksLoss(*row) for row in rows]


def cap_declarations(db: SQL, agent: str | None) -> list[CapDeclaration]:
    rows = db.execute(
        f"SELECT {DECLARATION_COLUMNS} FROM cap_declarations WHERE ? IS NULL OR agent = ? ORDER BY agent, policy",
        (agent, agent),
    ).fetchall()
    return [CapDeclaration(*row) for row in rows]
