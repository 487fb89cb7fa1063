"""The SQLite store's tables and the migrations that build them, one script per schema version.

A store file records its version in ``schema_version``; opening it runs the scripts it lacks in
one transaction, and a file newer than this agentfuse is refused.
"""

from __future__ import annotations

from pathlib import Path

from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.stores.sqlite_rows import SQL

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        agent TEXT NOT NULL,
        parent_id TEXT REFERENCES runs(run_id),
        cap_micros INTEGER,
        started_at REAL NOT NULL,
        spent_micros INTEGER NOT NULL DEFAULT 0,
        reserved_micros INTEGER NOT NULL DEFAULT 0,
        steps INTEGER NOT NULL DEFAULT 0,
        failures INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE ledger (
        reservation_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        agent TEXT NOT NULL,
        action TEXT NOT NULL,
        estimate_micros INTEGER NOT NULL,
        cost_micros INTEGER,
        day_key TEXT NOT NULL,
        minute INTEGER NOT NULL,
        created_at REAL NOT NULL,
        settled_at REAL,
        outcome TEXT
    ) WITHOUT ROWID;
    CREATE INDEX ledger_unsettled ON ledger(run_id) WHERE settled_at IS NULL;
    CREATE TABLE agent_days (
        agent TEXT NOT NULL, day_key TEXT NOT NULL,
        spent_micros INTEGER NOT NULL DEFAULT 0, reserved_micros INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, day_key)
    ) WITHOUT ROWID;
    CREATE TABLE agent_minutes (
        agent TEXT NOT NULL, minute INTEGER NOT NULL,
        spent_micros INTEGER NOT NULL DEFAULT 0, reserved_micros INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, minute)
    ) WITHOUT ROWID;
    CREATE TABLE action_failures (
        run_id TEXT NOT NULL, action TEXT NOT NULL, failures INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (run_id, action)
    ) WITHOUT ROWID;
    CREATE TABLE breakers (
        agent TEXT NOT NULL, key TEXT NOT NULL,
        state TEXT NOT NULL, consecutive_failures INTEGER NOT NULL,
        opened_at REAL, probe_id TEXT, probe_expires_at REAL,
        PRIMARY KEY (agent, key)
    ) WITHOUT ROWID;
    CREATE TABLE rate_limits (
        agent TEXT NOT NULL, action TEXT NOT NULL,
        admissions TEXT NOT NULL, cooldown_until REAL,
        PRIMARY KEY (agent, action)
    ) WITHOUT ROWID;
    CREATE TABLE halts (
        run_id TEXT NOT NULL, agent TEXT NOT NULL,
        reason TEXT NOT NULL, source TEXT NOT NULL, created_at REAL NOT NULL, figures TEXT NOT NULL,
        PRIMARY KEY (run_id, agent)
    ) WITHOUT ROWID;
    """,
    """
    ALTER TABLE ledger ADD COLUMN pid INTEGER;
    ALTER TABLE ledger ADD COLUMN host TEXT;
    CREATE TABLE heartbeats (
        agent TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL,
        run_id TEXT NOT NULL, at REAL NOT NULL,
        PRIMARY KEY (agent, host, pid)
    ) WITHOUT ROWID;
    CREATE TABLE process_starts (
        agent TEXT NOT NULL, host TEXT NOT NULL, pid INTEGER NOT NULL, started_at REAL NOT NULL,
        PRIMARY KEY (agent, host, pid)
    ) WITHOUT ROWID;
    CREATE TABLE restart_cooldowns (agent TEXT PRIMARY KEY, until REAL NOT NULL) WITHOUT ROWID;
    CREATE TABLE claims (
        agent TEXT NOT NULL, message_id TEXT NOT NULL, run_id TEXT NOT NULL,
        pid INTEGER NOT NULL, host TEXT NOT NULL, claimed_at REAL NOT NULL, expires_at REAL NOT NULL,
        PRIMARY KEY (agent, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE reconciliations (
        reservation_id TEXT PRIMARY KEY, agent TEXT NOT NULL, run_id TEXT NOT NULL,
        settle_as TEXT NOT NULL, cost_micros INTEGER NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL
    ) WITHOUT ROWID;
    """,
    # 3: fewer pages written per call. An agent's day and minute buckets share one table, where
    # the current day's row sits next to the last hour's minute rows (one page, one upsert), and
    # minute rows older than the hour are pruned. The partial index of unsettled reservations
    # goes: operator listings scan the ledger once instead of every call paying for the index.
    """
    CREATE TABLE agent_windows (
        agent TEXT NOT NULL,
        bucket TEXT NOT NULL,
        spent_micros INTEGER NOT NULL DEFAULT 0,
        reserved_micros INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, bucket)
    ) WITHOUT ROWID;
    INSERT INTO agent_windows SELECT agent, 'day:' || day_key, spent_micros, reserved_micros FROM agent_days;
    INSERT INTO agent_windows SELECT agent, printf('minute:%010d', minute), spent_micros, reserved_micros
        FROM agent_minutes;
    DROP TABLE agent_days;
    DROP TABLE agent_minutes;
    DROP INDEX ledger_unsettled;
    """,
    # 4: books that cannot be fooled. ``at``: the latest reservation's time in a bucket (the latest
    # day bucket's is the agent's clock, which never runs backwards). Identities of the agents'
    # books, acknowledged losses, and the caps every policy declares for its agent.
    """
    ALTER TABLE agent_windows ADD COLUMN at REAL NOT NULL DEFAULT 0;
    CREATE TABLE identities (
        agent TEXT PRIMARY KEY, identity TEXT NOT NULL, created_at REAL NOT NULL, reset_reason TEXT
    ) WITHOUT ROWID;
    CREATE TABLE books_losses (
        agent TEXT NOT NULL, at REAL NOT NULL, reason TEXT NOT NULL, previous TEXT NOT NULL,
        identity TEXT NOT NULL
    );
    CREATE TABLE cap_declarations (
        agent TEXT NOT NULL, policy TEXT NOT NULL, daily_micros INTEGER, hourly_micros INTEGER,
        declared_at REAL NOT NULL,
        PRIMARY KEY (agent, policy)
    ) WITHOUT ROWID;
    CREATE INDEX cap_declarations_daily ON cap_declarations(agent, daily_micros, policy);
    CREATE INDEX cap_declarations_hourly ON cap_declarations(agent, hourly_micros, policy);
    """,
    # 5: token caps. Runs, reservations and the agent's windows count tokens (input + output)
    # next to money, in the same rows; policies declare their daily and hourly token caps too.
    """
    ALTER TABLE runs ADD COLUMN token_cap INTEGER;
    ALTER TABLE runs ADD COLUMN spent_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN reserved_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN estimate_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE ledger ADD COLUMN tokens INTEGER;
    ALTER TABLE agent_windows ADD COLUMN spent_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE agent_windows ADD COLUMN reserved_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE cap_declarations ADD COLUMN daily_tokens INTEGER;
    ALTER TABLE cap_declarations ADD COLUMN hourly_tokens INTEGER;
    CREATE INDEX cap_declarations_daily_tokens ON cap_declarations(agent, daily_tokens, policy);
    CREATE INDEX cap_declarations_hourly_tokens ON cap_declarations(agent, hourly_tokens, policy);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def migrate(db: SQL, path: Path) -> None:
    """Bring the store at ``path`` to :data:`SCHEMA_VERSION` (inside the caller's transaction)."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = db.execute("SELECT version FROM schema_version").fetchone()
    current = row[0] if row else 0
    if current > SCHEMA_VERSION:
        raise StoreUnavailable(
            f"store {path} has schema version {current}, newer than this agentfuse"
            f" ({SCHEMA_VERSION}); upgrade agentfuse"
        )
    for script in MIGRATIONS[current:]:
        for statement in script.split(";"):
            if statement.strip():
                db.execute(statement)
    if row is None:
        db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
    elif current != SCHEMA_VERSION:
        db.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
