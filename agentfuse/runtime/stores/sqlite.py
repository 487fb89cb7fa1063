"""The default store: one SQLite file, safe across threads and processes on one host.

Every deciding operation is one ``BEGIN IMMEDIATE`` transaction. Running totals live on the run
rows (subtree totals) and in per-(agent, day) and per-(agent, minute) buckets (one table, where the
current day sits next to the last hour's minutes), so a gate costs the same with ten ledger
entries or ten million.

The parts: :mod:`.sqlite_schema` (tables and migrations), :mod:`.sqlite_connection` (the file,
a connection per thread and everything remembered with it, transactions), :mod:`.sqlite_gate`
(the gate and settle transactions), :mod:`.sqlite_reads` (the operator tools' reads) and
:mod:`.sqlite_rows` (rows as values); this module ties them into :class:`SQLiteStore`.

What survives what: a committed transaction survives a killed process in both modes. WAL mode with
``synchronous=NORMAL`` (default) may roll back the last transactions on power loss (the WAL is
synced at checkpoints, not at each commit), which can only forget recent spend;
``durability="full"`` (``synchronous=FULL``) syncs the WAL at every commit, at a higher cost per
commit.

Stale reservations (left by a process killed between gate and settle) stay counted as spend at
their estimate: the store never guesses that a call did not happen. ``unsettled(run_id)`` counts
them (a later ``agentfuse runs --stale`` lists them). An operator reconciles one explicitly: look
up the real cost (the provider's usage page, or the event log's ``allowed`` line without a
``settled`` one), then ``store.settle(Settlement(reservation_id, agent, run_id, action,
cost_micros=<real cost>, now=time.time(), outcome=Outcome.NEUTRAL))``; nothing expires them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.stores import sqlite_gate, sqlite_reads
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    AgentTotals,
    BooksLoss,
    BreakerRecord,
    CapDeclaration,
    DaySpend,
    GateRequest,
    GateResult,
    HaltRecord,
    Heartbeat,
    Outcome,
    Reconciliation,
    Reservation,
    RestartSpec,
    RunInfo,
    RunSummary,
    Settlement,
    SettleResult,
    StartCheck,
    StoreIdentity,
    check_start,
)
from agentfuse.runtime.stores.sqlite_connection import (
    BUSY_TIMEOUT_S,
    Connection,
    Transaction,
    connect,
    create_file,
    move_aside,
)
from agentfuse.runtime.stores.sqlite_rows import (
    DECLARATION_COLUMNS,
    IDENTITY_SQL,
    fetch_breaker,
    fetch_run,
    latest_at,
    write_halt,
)
from agentfuse.runtime.stores.sqlite_schema import MIGRATIONS, SCHEMA_VERSION, migrate

__all__ = ["BUSY_TIMEOUT_S", "MIGRATIONS", "SCHEMA_VERSION", "SQLiteStore", "move_aside", "path_from_url"]


def path_from_url(url: str) -> Path:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db`` (SQLAlchemy)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc:
        raise ValueError(f"not a SQLite URL: {url!r}; use sqlite:///relative.db or sqlite:////abs.db")
    path = unquote(parts.path)
    if not path.startswith("/") or len(path) < 2:
        raise ValueError(f"SQLite URL {url!r} names no file; use sqlite:///relative.db")
    return Path(path[1:])


class SQLiteStore:
    """:class:`~agentfuse.runtime.stores.base.Store` on one SQLite file (one connection per thread)."""

    def __init__(
        self,
        path: Path | str,
        *,
        durability: str = "normal",
        busy_timeout_s: float = BUSY_TIMEOUT_S,
        connection_factory: type[sqlite3.Connection] = sqlite3.Connection,
    ) -> None:
        """``connection_factory``: a ``sqlite3.Connection`` subclass (the benchmark times statements)."""
        self.path = Path(path)
        self.durability = durability
        self.busy_timeout_s = busy_timeout_s
        self._connection_factory = connection_factory
        self._local = threading.local()
        self._inherited: list[Connection] = []
        self.host = socket.gethostname()
        """Recorded with each reservation, heartbeat and claim of this process."""
        self._pins: dict[str, str] = {}
        """agent -> the books' identity this handle checked (:meth:`pin_identity`)."""
        create_file(self.path)
        with self._transaction() as db:
            migrate(db, self.path)

    @classmethod
    def from_url(cls, url: str, *, durability: str = "normal") -> SQLiteStore:
        return cls(path_from_url(url), durability=durability)

    def _connection(self) -> Connection:
        """This thread's connection, opened on first use, after ``close()`` and in a forked child.

        The one place a connection, and so everything cached with it, is replaced.
        """
        conn: Connection | None = getattr(self._local, "connection", None)
        if conn is not None and conn.pid != os.getpid():
            # A connection must not cross a fork: the child opens its own and never touches
            # (or closes) the parent's, which stays referenced so it is never collected here.
            self._inherited.append(conn)
            conn = None
        if conn is None:
            conn = self._local.connection = connect(
                self.path,
                durability=self.durability,
                busy_timeout_s=self.busy_timeout_s,
                factory=self._connection_factory,
            )
        return conn

    def _transaction(self) -> Transaction:
        """``with self._transaction() as db``: one ``BEGIN IMMEDIATE`` ... ``COMMIT``."""
        return self._connection().transaction()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connection().db
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"store {self.path} could not be read: {exc}") from None

    # -- runs ---------------------------------------------------------------------------------

    def open_run(
        self,
        run_id: str,
        *,
        agent: str,
        parent_id: str | None,
        cap_micros: int | None,
        now: float,
        token_cap: int | None = None,
    ) -> RunInfo:
        with self._transaction() as db:
            existing = fetch_run(db, run_id)
            if existing is not None:
                return existing
            if parent_id is not None and fetch_run(db, parent_id) is None:
                raise KeyError(parent_id)
            now = max(now, latest_at(db, agent))
            db.execute(
                "INSERT INTO runs (run_id, agent, parent_id, cap_micros, started_at, token_cap) VALUES (?,?,?,?,?,?)",
                (run_id, agent, parent_id, cap_micros, now, token_cap),
            )
            return RunInfo(run_id, agent, parent_id, cap_micros, now, token_cap=token_cap)

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._reading() as db:
            return fetch_run(db, run_id)

    # -- gate and settle ----------------------------------------------------------------------

    def gate(self, request: GateRequest) -> GateResult:
        """Settle the deferred calls, read, decide and reserve: one transaction (:mod:`.sqlite_gate`)."""
        return sqlite_gate.gate(
            self._connection(), request, host=self.host, pinned=self._pins.get(request.agent), store=self
        )

    def settle(self, settlement: Settlement) -> SettleResult:
        conn = self._connection()
        with conn.transaction() as db:
            return sqlite_gate.settle(conn, db, settlement)

    # -- halts --------------------------------------------------------------------------------

    def halt(self, record: HaltRecord) -> None:
        with self._transaction() as db:
            write_halt(db, record)

    def resume(self, agent: str, run_id: str = AGENT_WIDE) -> int:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM halts WHERE agent = ? AND run_id = ?", (agent, run_id))
            return cursor.rowcount

    def halts(self, agent: str | None = None) -> list[HaltRecord]:
        with self._reading() as db:
            return sqlite_reads.halts(db, agent)

    # -- reads --------------------------------------------------------------------------------

    def get_breaker(self, agent: str, key: str = "") -> BreakerRecord:
        with self._reading() as db:
            return fetch_breaker(db, agent, key)

    def agent_totals(self, agent: str, *, day_key: str, minute: int) -> AgentTotals:
        with self._reading() as db:
            return sqlite_reads.agent_totals(db, agent, day_key, minute)

    def unsettled(self, run_id: str | None = None) -> int:
        with self._reading() as db:
            return sqlite_reads.unsettled(db, run_id)

    # -- operator tools -----------------------------------------------------------------------

    def record_heartbeat(self, beat: Heartbeat) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO heartbeats (agent, host, pid, run_id, at) VALUES (?,?,?,?,?)",
                (beat.agent, beat.host, beat.pid, beat.run_id, beat.at),
            )

    def heartbeats(self, agent: str | None = None) -> list[Heartbeat]:
        with self._reading() as db:
            return sqlite_reads.heartbeats(db, agent)

    def record_start(self, agent: str, *, pid: int, host: str, now: float, spec: RestartSpec) -> StartCheck:
        with self._transaction() as db:
            db.execute(
                "DELETE FROM process_starts WHERE agent = ? AND started_at <= ?", (agent, now - spec.window_s)
            )
            db.execute("INSERT OR IGNORE INTO process_starts VALUES (?,?,?,?)", (agent, host, pid, now))
            count, until = db.execute(
                "SELECT (SELECT COUNT(*) FROM process_starts WHERE agent = ?),"
                " (SELECT until FROM restart_cooldowns WHERE agent = ?)",
                (agent, agent),
            ).fetchone()
            check = check_start(count, until, now, spec)
            if check.tripped:
                db.execute("INSERT OR REPLACE INTO restart_cooldowns VALUES (?,?)", (agent, check.cooldown_until))
            return check

    def claim(
        self, agent: str, message_id: str, *, run_id: str, pid: int, host: str, now: float, ttl_s: float
    ) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO claims VALUES (?,?,?,?,?,?,?) ON CONFLICT (agent, message_id) DO UPDATE SET"
                " run_id = excluded.run_id, pid = excluded.pid, host = excluded.host,"
                " claimed_at = excluded.claimed_at, expires_at = excluded.expires_at"
                " WHERE claims.expires_at <= excluded.claimed_at",
                (agent, message_id, run_id, pid, host, now, now + ttl_s),
            )
            return cursor.rowcount == 1

    def list_runs(self, agent: str | None = None) -> list[RunSummary]:
        with self._reading() as db:
            return sqlite_reads.list_runs(db, agent)

    def open_reservations(self, agent: str | None = None, run_id: str | None = None) -> list[Reservation]:
        with self._reading() as db:
            return sqlite_reads.open_reservations(db, agent, run_id)

    def reconcile(
        self, reservation_id: str, *, settle_as: str, reason: str, now: float
    ) -> Reconciliation | None:
        if settle_as not in ("reserved", "zero"):
            raise ValueError(f"settle_as must be 'reserved' or 'zero', got {settle_as!r}")
        conn = self._connection()
        with conn.transaction() as db:
            row = db.execute(
                "SELECT agent, run_id, action, estimate_micros FROM ledger"
                " WHERE reservation_id = ? AND settled_at IS NULL",
                (reservation_id,),
            ).fetchone()
            if row is None:
                return None
            agent, run_id, action, estimate = row
            cost = estimate if settle_as == "reserved" else 0
            sqlite_gate.settle(
                conn,
                db,
                Settlement(
                    reservation_id, agent, run_id, action, cost, now, Outcome.NEUTRAL, breaker_counts=False,
                    tokens=None if settle_as == "reserved" else 0,
                ),
            )
            record = Reconciliation(reservation_id, agent, run_id, settle_as, cost, reason, now)
            db.execute("INSERT OR REPLACE INTO reconciliations VALUES (?,?,?,?,?,?,?)", dataclasses.astuple(record))
            return record

    def reconciliations(self, agent: str | None = None) -> list[Reconciliation]:
        with self._reading() as db:
            return sqlite_reads.reconciliations(db, agent)

    def daily_spend(self, agent: str | None = None, *, since_day: str = "") -> list[DaySpend]:
        with self._reading() as db:
            return sqlite_reads.daily_spend(db, agent, since_day)

    def breakers(self, agent: str | None = None) -> list[tuple[str, str, BreakerRecord]]:
        with self._reading() as db:
            return sqlite_reads.breakers(db, agent)

    def agents(self) -> list[str]:
        with self._reading() as db:
            return sqlite_reads.agents(db)

    # -- the books' identity and the declared caps ------------------------------------------------

    def identity(self, agent: str) -> StoreIdentity | None:
        with self._reading() as db:
            return sqlite_reads.identity(db, agent)

    def create_identity(self, agent: str, *, now: float) -> StoreIdentity:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO identities VALUES (?,?,?,NULL)", (agent, uuid.uuid4().hex, now))
            return StoreIdentity(*db.execute(IDENTITY_SQL, (agent,)).fetchone())

    def reset_identity(self, agent: str, *, now: float, reason: str, previous: str) -> StoreIdentity:
        identity = StoreIdentity(agent, uuid.uuid4().hex, now, reason)
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO identities VALUES (?,?,?,?)", dataclasses.astuple(identity))
            db.execute("INSERT INTO books_losses VALUES (?,?,?,?,?)", (agent, now, reason, previous, identity.identity))
        return identity

    def losses(self, agent: str | None = None) -> list[BooksLoss]:
        with self._reading() as db:
            return sqlite_reads.losses(db, agent)

    def pin_identity(self, agent: str, identity: str) -> None:
        self._pins[agent] = identity

    def declare_caps(self, declaration: CapDeclaration) -> None:
        with self._transaction() as db:
            if declaration.empty:
                db.execute(
                    "DELETE FROM cap_declarations WHERE agent = ? AND policy = ?",
                    (declaration.agent, declaration.policy),
                )
            else:
                db.execute(
                    f"INSERT OR REPLACE INTO cap_declarations ({DECLARATION_COLUMNS}) VALUES (?,?,?,?,?,?,?)",
                    dataclasses.astuple(declaration),
                )

    def cap_declarations(self, agent: str | None = None) -> list[CapDeclaration]:
        with self._reading() as db:
            return sqlite_reads.cap_declarations(db, agent)

    def drop_caps(self, agent: str, policy: str) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM cap_declarations WHERE agent = ? AND policy = ?", (agent, policy)).rowcount

    def durability_warnings(self) -> list[str]:
        return []

    def seen_record(self, folder: Path | None) -> tuple[Path, str] | None:
        """Beside the store file, whatever the policy's folder: the record follows the file."""
        return self.path.with_name(self.path.name + ".seen.json"), self.path.name

    def close(self) -> None:
        """Close this thread's connection (a later call opens a new one, with nothing remembered)."""
        conn: Connection | None = getattr(self._local, "connection", None)
        if conn is not None and conn.pid == os.getpid():
            conn.close()
            self._local.connection = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, durability={self.durability!r})"
