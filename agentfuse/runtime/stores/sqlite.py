"""The default store: one SQLite file, safe across threads and processes on one host.

Every deciding operation is one ``BEGIN IMMEDIATE`` transaction. Running totals live on the run
rows (subtree totals) and in per-(agent, day) and per-(agent, minute) buckets (one table, where the
current day sits next to the last hour's minutes), so a gate costs the same with ten ledger
entries or ten million. A gate skips its read when ``PRAGMA data_version`` shows that no other
connection has committed since this connection's previous gate: the state is then exactly what
that gate left (one process calling in a loop pays one statement instead of the read).

WAL mode with ``synchronous=NORMAL`` (default) survives a killed process but may lose the last
transactions on power loss; ``durability="full"`` (``synchronous=FULL``) survives power loss at
about four times the commit cost.

Stale reservations (left by a process killed between gate and settle) stay counted as spend at
their estimate: the store never guesses that a call did not happen. ``unsettled(run_id)`` counts
them (a later ``agentfuse runs --stale`` lists them). An operator reconciles one explicitly: look
up the real cost (the provider's usage page, or the event log's ``allowed`` line without a
``settled`` one), then ``store.settle(Settlement(reservation_id, agent, run_id, action,
cost_micros=<real cost>, now=time.time(), outcome=Outcome.NEUTRAL))``; nothing expires them.

What survives what: a committed transaction survives a killed process in both modes. With
``synchronous=NORMAL`` a power loss may roll back the last transactions (the WAL is synced at
checkpoints, not at each commit), which can only forget recent spend; ``durability="full"`` syncs
the WAL at every commit.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shlex
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from agentfuse.runtime import breaker as breaker_rules
from agentfuse.runtime.decisions import GateSnapshot, TokenWindows, decide_gate, effective_time
from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.files import private_dirs
from agentfuse.runtime.stores.books import identity_changed
from agentfuse.runtime.stores.base import (
    AGENT_WIDE,
    AgentTotals,
    BooksLoss,
    CapDeclaration,
    StoreIdentity,
    BreakerRecord,
    BreakerState,
    GateRequest,
    GateResult,
    HaltRecord,
    Outcome,
    RateLimitRecord,
    Heartbeat,
    DaySpend,
    Reconciliation,
    Reservation,
    RestartSpec,
    RunInfo,
    RunSummary,
    Settlement,
    SettleResult,
    StartCheck,
    check_start,
)

_SQL = sqlite3.Connection | sqlite3.Cursor
"""What runs a statement: a connection (reads) or the thread's cursor (transactions)."""
BUSY_TIMEOUT_S = 30.0
HOUR_MINUTES = 60

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

_RUN_COLUMNS = (
    "run_id, agent, parent_id, cap_micros, started_at, spent_micros, reserved_micros, steps, failures,"
    " token_cap, spent_tokens, reserved_tokens"
)
_LATEST_DAY = (
    "(SELECT {column} FROM agent_windows WHERE agent = ? AND bucket > 'day:' AND bucket < 'day;'"
    " ORDER BY bucket DESC LIMIT 1)"
)
"""A column of the agent's latest day bucket (parameter: agent): ``bucket``, or ``at``, the time
of the agent's latest reservation (the agent's clock never runs backwards, so it is there)."""
_BREAKER_COLUMNS = ", ".join(
    f"(SELECT {column} FROM breakers WHERE agent = ? AND key = ?)"
    for column in ("state", "consecutive_failures", "opened_at", "probe_id", "probe_expires_at")
)
"""A breaker row as five scalar sub-queries (parameters: agent, key, five times)."""
_RUN_WIDTH = len(_RUN_COLUMNS.split(","))
_GATE_READS = (
    "(SELECT COUNT(*) FROM halts WHERE (run_id = '' AND agent = ?) OR run_id IN ({marks})),"
    " COALESCE((SELECT spent_micros + reserved_micros FROM agent_windows WHERE agent = ? AND bucket = ?), 0),"
    " (SELECT COALESCE(SUM(spent_micros + reserved_micros), 0) FROM agent_windows"
    "  WHERE agent = ? AND bucket > ? AND bucket <= ?),"
    " COALESCE((SELECT failures FROM action_failures WHERE run_id = ? AND action = ?), 0), "
    + _BREAKER_COLUMNS
    + ", " + _LATEST_DAY.format(column="at") + ","
    + ", ".join(
        f" (SELECT {column} || ' ' || policy FROM cap_declarations WHERE agent = ? AND {column} IS NOT NULL"
        f"  ORDER BY {column}, policy LIMIT 1)"
        for column in ("daily_micros", "hourly_micros", "daily_tokens", "hourly_tokens")
    )
    + ", (SELECT identity FROM identities WHERE agent = ?),"
    " COALESCE((SELECT spent_tokens + reserved_tokens FROM agent_windows WHERE agent = ? AND bucket = ?), 0),"
    " (SELECT COALESCE(SUM(spent_tokens + reserved_tokens), 0) FROM agent_windows"
    "  WHERE agent = ? AND bucket > ? AND bucket <= ?)"
)
"""Every scalar one gate reads besides the run rows: halts, windows, attempts, breaker, the
agent's clock (the time of its latest reservation), the strictest declared caps (read through
their indexes: an ``ORDER BY`` without one costs a sorter, half a gate's read), the identity,
the token windows."""


def move_aside(path: Path, stamp: str) -> list[Path]:
    """Rename a damaged store file and its write-ahead log and shared memory to ``*.damaged-STAMP``
    (kept for inspection); returns the new names. A new store can then be created at ``path``."""
    moved = []
    for name in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        if name.exists():
            target = name.with_name(f"{name.name}.damaged-{stamp}")
            os.replace(name, target)
            moved.append(target)
    return moved


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
        self._inherited: list[sqlite3.Connection] = []
        self.host = socket.gethostname()
        """Recorded with each reservation, heartbeat and claim of this process."""
        self._own_reservations: dict[str, tuple[int, str, int, int]] = {}
        """reservation id -> (estimate, day_key, minute, estimate tokens) of reservations made here and not yet
        settled here: a plain settlement of one needs no ``RETURNING`` (about 10 us less). Only
        facts of the ledger row, so an entry left by a reservation settled elsewhere is harmless."""
        self._gate_reads: dict[int, str] = {}
        """lineage length -> the gate's read statement (the same text, so one prepared statement)."""
        self._pruned: dict[str, int] = {}
        """agent -> the minute this store last pruned its minute buckets at (once a minute)."""
        self._lineage: dict[str, tuple[str, ...]] = {}
        """run id -> it and its ancestors' ids; parents never change, so this cannot go stale."""
        self._pins: dict[str, str] = {}
        """agent -> the books' identity this handle checked (:meth:`pin_identity`)."""
        self._create_file()
        with self._transaction() as db:
            self._migrate(db)

    @classmethod
    def from_url(cls, url: str, *, durability: str = "normal") -> SQLiteStore:
        return cls(path_from_url(url), durability=durability)

    def _create_file(self) -> None:
        """Create the store if it is missing; refuse an existing empty file (lost data).

        A new store is built in a private temporary file beside the path and linked into place
        (``os.link`` fails if the name exists), so nobody ever sees a half-made store, and an
        empty file at the path can only be a store that lost its data: it is refused, never
        taken for a new one. An existing file is never opened here: closing any descriptor of a
        SQLite file drops every POSIX lock this process holds on it, including those of other
        connections (another store on the same file), which lets a second process checkpoint
        under them and corrupt their reads.
        """
        wal = Path(f"{self.path}-wal")
        try:
            orphan_log = wal.exists()  # looked at first: a new store is linked before its log exists
            size: int | None = self.path.stat().st_size
        except (FileNotFoundError, NotADirectoryError):
            size = None
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the store file {self.path}: {exc.strerror}") from None
        if size == 0:
            raise StoreUnavailable(_damaged(self.path, "the file is empty (0 bytes)"), reason="store_damaged")
        if size is not None:
            return
        if orphan_log:  # SQLite would replay the lost store's log into a new one
            raise StoreUnavailable(
                _damaged(self.path, f"the file is missing but its write-ahead log {wal.name} is there"),
                reason="store_damaged",
            )
        temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
        try:
            private_dirs(self.path.parent)
            os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
            db = sqlite3.connect(temporary, isolation_level=None)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                with _Transaction(db.cursor(), temporary) as cursor:
                    self._migrate(cursor)
            finally:
                db.close()
            try:
                os.link(temporary, self.path)
            except FileExistsError:
                pass  # another process created it in between
            except OSError:  # a file system without hard links
                if not self.path.exists():
                    os.replace(temporary, self.path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot create the store file {self.path}: {exc.strerror}") from None
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot create the store file {self.path}: {exc}") from None
        finally:
            for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def _connection(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and self._local.pid != os.getpid():
            # A connection must not cross a fork: the child opens its own and never touches
            # (or closes) the parent's, which stays referenced so it is never collected here.
            self._inherited.append(db)
            db = None
        if db is None:
            try:
                db = sqlite3.connect(
                    self.path,
                    timeout=self.busy_timeout_s,
                    isolation_level=None,
                    check_same_thread=True,
                    factory=self._connection_factory,
                )
                db.execute(f"PRAGMA busy_timeout={int(self.busy_timeout_s * 1000)}")
                db.execute("PRAGMA journal_mode=WAL")
                sync = "FULL" if self.durability == "full" else "NORMAL"
                db.execute(f"PRAGMA synchronous={sync}")
            except sqlite3.Error as exc:
                raise _failure(self.path, "cannot be opened", exc) from None
            self._local.db = db
            self._local.cursor = db.cursor()
            self._local.pid = os.getpid()
            self._local.view = None
        return db

    def _transaction(self) -> _Transaction:
        """``with self._transaction() as db``: one ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        ``db`` is the thread's one cursor, not the connection: ``Connection.execute`` makes a
        cursor per statement, about 1 us each on a path of seven statements. So a transaction
        fetches each statement's rows before it runs the next one.
        """
        self._connection()
        self._local.view = None  # only a gate that commits cleanly leaves a view behind
        return _Transaction(self._local.cursor, self.path)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        try:
            yield self._connection()
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"store {self.path} could not be read: {exc}") from None

    def _migrate(self, db: _SQL) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if current > SCHEMA_VERSION:
            raise StoreUnavailable(
                f"store {self.path} has schema version {current}, newer than this agentfuse"
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
            existing = _fetch_run(db, run_id)
            if existing is not None:
                return existing
            if parent_id is not None and _fetch_run(db, parent_id) is None:
                raise KeyError(parent_id)
            now = max(now, _latest_at(db, agent))
            db.execute(
                "INSERT INTO runs (run_id, agent, parent_id, cap_micros, started_at, token_cap) VALUES (?,?,?,?,?,?)",
                (run_id, agent, parent_id, cap_micros, now, token_cap),
            )
            return RunInfo(run_id, agent, parent_id, cap_micros, now, token_cap=token_cap)

    def get_run(self, run_id: str) -> RunInfo | None:
        with self._reading() as db:
            return _fetch_run(db, run_id)

    # -- gate and settle ----------------------------------------------------------------------

    def gate(self, request: GateRequest) -> GateResult:
        """Settle the deferred calls, read, decide and reserve: one transaction.

        Plain deferred successes change only money, so their changes to the run rows and the
        windows are added to what the gate reads and written together with the reservation's
        (one ``UPDATE runs`` and one upsert per window for both, in the usual case).

        The read is skipped when ``PRAGMA data_version`` shows that no other connection has
        committed since this connection's last gate, which left a :class:`_GateView` of what
        it wrote: then the stored state is exactly that view (one process calling in a loop).
        """
        view: _GateView | None = getattr(self._local, "view", None)
        with self._transaction() as db:
            money = _MoneyChanges()
            clean = True
            for deferred in request.settle_first:
                if not self._settle_plain(db, deferred, money):
                    self._settle_in(db, deferred)
                    clean = False
            ids = self._lineage_ids(db, request.run_id)
            key = (request.agent, request.run_id, request.action, request.breaker.key, request.day_key, request.minute)
            version = db.execute("PRAGMA data_version").fetchone()[0]
            if view is None or not clean or view.version != version or view.key != key:
                if self._pruned.get(request.agent) != request.minute:
                    _prune_minutes(db, request.agent, request.minute)
                    self._pruned[request.agent] = request.minute
                view = self._read_view(db, request, ids, key, version)
            pinned = self._pins.get(request.agent)
            if pinned is not None and view.identity != pinned:
                message = identity_changed(self, request.agent, pinned, view.identity)
                raise StoreUnavailable(message, reason="store_lost")
            if request.now < view.latest_at:  # the clock went back: book at the agent's latest time and day
                (latest_day,) = db.execute("SELECT " + _LATEST_DAY.format(column="bucket"), (request.agent,)).fetchone()
                request = effective_time(request, view.latest_at, latest_day[4:])
                key = (*key[:4], request.day_key, request.minute)
                view = self._read_view(db, request, ids, key, version)  # the windows of the books' time
                clean = False
            view.add_money(money)
            snapshot = GateSnapshot(
                chain=view.chain,
                halts=_halts_for(db, request.agent, ids) if view.halted else (),
                breaker=view.breaker,
                rate=_fetch_rate(db, request.agent, request.rate_limit.action)
                if request.rate_limit
                else None,
                day_micros=view.day_micros,
                hour_micros=view.hour_micros,
                action_failures=view.action_failures,
                daily_declared=view.daily_declared,
                hourly_declared=view.hourly_declared,
            )
            if view.token_capped or request.daily_token_cap is not None or request.hourly_token_cap is not None:
                snapshot.tokens = view.tokens
            decision = decide_gate(snapshot, request)
            if decision.result.halt is not None:
                _write_halt(db, decision.result.halt)
            if not decision.reserve:
                money.write(db, stepped_run=None)
                return decision.result
            if decision.breaker is not None:
                _write_breaker(db, request.agent, request.breaker.key, decision.breaker)
                clean = False
            if decision.rate is not None and request.rate_limit is not None:
                db.execute(
                    "INSERT OR REPLACE INTO rate_limits VALUES (?,?,?,?)",
                    (
                        request.agent,
                        request.rate_limit.action,
                        json.dumps(decision.rate.admissions),
                        decision.rate.cooldown_until,
                    ),
                )
            estimate = request.estimate_micros
            tokens = request.estimate_tokens
            reservation = (
                request.reservation_id,
                request.run_id,
                request.agent,
                request.action,
                estimate,
                request.day_key,
                request.minute,
                request.now,
                self._local.pid,
                self.host,
            )
            if tokens:
                db.execute(_RESERVE_TOKENS, (*reservation, tokens))
            else:
                db.execute(_RESERVE, reservation)
            self._own_reservations[request.reservation_id] = (estimate, request.day_key, request.minute, tokens)
            money.add(request.agent, ids, request.day_key, request.minute, estimate, 0, tokens, 0)
            money.write(db, stepped_run=request.run_id, at=request.now)
        if clean and not view.halted:
            view.add_reservation(estimate, tokens, request.now)
            self._local.view = view  # kept only once the transaction has committed
        return decision.result

    def _read_view(
        self, db: _SQL, request: GateRequest, ids: tuple[str, ...], key: tuple[Any, ...], version: int
    ) -> _GateView:
        """The gate's one read: the run rows, halts, windows, the action's failures, the breaker,
        the agent's clock, the strictest declared caps and the books' identity."""
        agent = request.agent
        day = _day_bucket(request.day_key)
        hour = (_minute_bucket(request.minute - HOUR_MINUTES), _minute_bucket(request.minute))
        rows = db.execute(
            self._gate_sql(len(ids)),
            (
                agent,
                *ids,
                agent,
                day,
                agent,
                *hour,
                request.run_id,
                request.action,
                *(agent, request.breaker.key) * 5,
                agent,
                agent,
                agent,
                agent,
                agent,
                agent,
                agent,
                day,
                agent,
                *hour,
                *ids,
            ),
        ).fetchall()
        by_id = {row[0]: row for row in rows}
        halt_count, day_used, hour_used, action_failures, *breaker_row = rows[0][_RUN_WIDTH:_RUN_WIDTH + 9]
        latest_at, daily, hourly, daily_tokens, hourly_tokens, identity, day_tokens, hour_tokens = rows[0][
            _RUN_WIDTH + 9:
        ]
        return _GateView(
            version=version,
            key=key,
            chain=[RunInfo(*by_id[run_id][:_RUN_WIDTH]) for run_id in ids],  # fresh: the gate changes them
            halted=bool(halt_count),
            day_micros=day_used,
            hour_micros=hour_used,
            action_failures=action_failures,
            breaker=_breaker_from_row(breaker_row),
            latest_at=latest_at or 0.0,
            daily_declared=_declared(daily),
            hourly_declared=_declared(hourly),
            identity=identity,
            tokens=TokenWindows(day_tokens, hour_tokens, _declared(daily_tokens), _declared(hourly_tokens)),
        )

    def _gate_sql(self, lineage_length: int) -> str:
        """The gate's one read for a run with ``lineage_length - 1`` ancestors (built once)."""
        sql = self._gate_reads.get(lineage_length)
        if sql is None:
            marks = ",".join("?" * lineage_length)
            sql = f"SELECT {_RUN_COLUMNS}, {_GATE_READS.format(marks=marks)} FROM runs WHERE run_id IN ({marks})"
            self._gate_reads[lineage_length] = sql
        return sql

    def _settle_plain(self, db: _SQL, settlement: Settlement, money: _MoneyChanges) -> bool:
        """Settle a success that touches only money, gathering its changes into ``money``.

        False when the settlement is anything else (a failure, a counted outcome, a halt, the
        breaker's probe, an unknown or settled reservation): :meth:`_settle_in` handles those.
        """
        if settlement.outcome is not Outcome.SUCCESS or settlement.breaker_counts or settlement.halt is not None:
            return False
        tokens = settlement.tokens
        parameters: tuple[Any, ...] = (
            settlement.cost_micros,
            settlement.now,
            _SUCCESS,
            settlement.reservation_id,
            settlement.agent,
            settlement.breaker.key,
            settlement.reservation_id,
        )
        sql = _SETTLE_PLAIN
        if tokens is not None:
            sql = _SETTLE_PLAIN_TOKENS
            parameters = (*parameters[:3], tokens, *parameters[3:])
        known = self._own_reservations.pop(settlement.reservation_id, None)
        if known is not None:
            if db.execute(sql, parameters).rowcount != 1:
                return False
            estimate, day_key, minute, estimate_tokens = known
        else:
            rows = db.execute(
                sql + " RETURNING estimate_micros, day_key, minute, estimate_tokens", parameters
            ).fetchall()
            if not rows:
                return False
            estimate, day_key, minute, estimate_tokens = rows[0]
        ids = self._lineage_ids(db, settlement.run_id)
        used = estimate_tokens if tokens is None else tokens  # no usage: charged at the reservation
        money.add(settlement.agent, ids, day_key, minute, -estimate, settlement.cost_micros, -estimate_tokens, used)
        return True

    def settle(self, settlement: Settlement) -> SettleResult:
        with self._transaction() as db:
            return self._settle_in(db, settlement)

    def _settle_in(self, db: _SQL, settlement: Settlement) -> SettleResult:
        self._own_reservations.pop(settlement.reservation_id, None)
        failed = settlement.outcome is Outcome.FAILURE
        row = db.execute(
            f"SELECT estimate_micros, day_key, minute, estimate_tokens, {_BREAKER_COLUMNS} FROM ledger"
            " WHERE reservation_id = ? AND settled_at IS NULL",
            (*(settlement.agent, settlement.breaker.key) * 5, settlement.reservation_id),
        ).fetchone()
        if row is None:
            return SettleResult(settled=False)
        estimate, day_key, minute, estimate_tokens, *breaker_row = row
        tokens = estimate_tokens if settlement.tokens is None else settlement.tokens
        if failed:  # a failure may open the breaker at `now`: never before the agent's latest time
            now = max(settlement.now, _latest_at(db, settlement.agent))
            settlement = settlement if now == settlement.now else dataclasses.replace(settlement, now=now)
        cost = settlement.cost_micros
        db.execute(
            "UPDATE ledger SET cost_micros = ?, settled_at = ?, outcome = ?, tokens = ? WHERE reservation_id = ?",
            (cost, settlement.now, settlement.outcome.value, tokens, settlement.reservation_id),
        )
        ids = self._lineage_ids(db, settlement.run_id)
        db.execute(
            "UPDATE runs SET reserved_micros = reserved_micros - ?, spent_micros = spent_micros + ?,"
            " reserved_tokens = reserved_tokens - ?, spent_tokens = spent_tokens + ?,"
            f" failures = failures + (run_id = ? AND ?) WHERE run_id IN ({','.join('?' * len(ids))})",
            (estimate, cost, estimate_tokens, tokens, settlement.run_id, failed, *ids),
        )
        _add_to_windows(db, settlement.agent, day_key, minute, (-estimate, cost), (-estimate_tokens, tokens))
        action_failures = run_failures = 0
        if failed:
            db.execute(
                "INSERT INTO action_failures VALUES (?,?,1) ON CONFLICT (run_id, action)"
                " DO UPDATE SET failures = failures + 1",
                (settlement.run_id, settlement.action),
            )
            action_failures, run_failures = db.execute(
                "SELECT (SELECT failures FROM action_failures WHERE run_id = ? AND action = ?),"
                " (SELECT failures FROM runs WHERE run_id = ?)",
                (settlement.run_id, settlement.action, settlement.run_id),
            ).fetchone()
        current = _breaker_from_row(breaker_row)
        record, transition = breaker_rules.after_call(
            current,
            settlement.breaker,
            settlement.now,
            settlement.reservation_id,
            settlement.outcome,
            settlement.breaker_counts,
        )
        if record != current:
            _write_breaker(db, settlement.agent, settlement.breaker.key, record)
        if settlement.halt is not None:
            _write_halt(db, settlement.halt)
        return SettleResult(
            settled=True,
            breaker_state=record.state,
            breaker_transition=transition,
            consecutive_failures=record.consecutive_failures,
            action_failures=action_failures,
            run_failures=run_failures,
        )

    # -- halts --------------------------------------------------------------------------------

    def halt(self, record: HaltRecord) -> None:
        with self._transaction() as db:
            _write_halt(db, record)

    def resume(self, agent: str, run_id: str = AGENT_WIDE) -> int:
        with self._transaction() as db:
            cursor = db.execute("DELETE FROM halts WHERE agent = ? AND run_id = ?", (agent, run_id))
            return cursor.rowcount

    def halts(self, agent: str | None = None) -> list[HaltRecord]:
        with self._reading() as db:
            sql = "SELECT agent, run_id, reason, source, created_at, figures FROM halts"
            rows = (
                db.execute(sql + " WHERE agent = ? ORDER BY created_at, agent, run_id", (agent,))
                if agent is not None
                else db.execute(sql + " ORDER BY created_at, agent, run_id")
            )
            return [_halt_from_row(row) for row in rows]

    # -- reads --------------------------------------------------------------------------------

    def get_breaker(self, agent: str, key: str = "") -> BreakerRecord:
        with self._reading() as db:
            return _fetch_breaker(db, agent, key)

    def agent_totals(self, agent: str, *, day_key: str, minute: int) -> AgentTotals:
        with self._reading() as db:
            day_micros, day_tokens = _day_used(db, agent, day_key)
            hour_micros, hour_tokens = _hour_used(db, agent, minute)
            return AgentTotals(day_micros, hour_micros, day_tokens, hour_tokens)

    def unsettled(self, run_id: str | None = None) -> int:
        with self._reading() as db:
            if run_id is None:
                row = db.execute("SELECT COUNT(*) FROM ledger WHERE settled_at IS NULL").fetchone()
            else:
                row = db.execute(
                    "SELECT COUNT(*) FROM ledger WHERE run_id = ? AND settled_at IS NULL", (run_id,)
                ).fetchone()
            return int(row[0])

    # -- operator tools -----------------------------------------------------------------------

    def record_heartbeat(self, beat: Heartbeat) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO heartbeats (agent, host, pid, run_id, at) VALUES (?,?,?,?,?)",
                (beat.agent, beat.host, beat.pid, beat.run_id, beat.at),
            )

    def heartbeats(self, agent: str | None = None) -> list[Heartbeat]:
        with self._reading() as db:
            sql = "SELECT agent, run_id, pid, host, at FROM heartbeats"
            rows = (
                db.execute(sql + " WHERE agent = ? ORDER BY at DESC", (agent,))
                if agent is not None
                else db.execute(sql + " ORDER BY at DESC")
            )
            return [Heartbeat(*row) for row in rows]

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
            rows = db.execute(  # one pass over the ledger, not one per run
                f"WITH activity AS (SELECT run_id, MAX(created_at) AS last_at,"
                " SUM(settled_at IS NULL) AS unsettled FROM ledger WHERE ? IS NULL OR agent = ? GROUP BY run_id)"
                f" SELECT {', '.join('runs.' + c.strip() for c in _RUN_COLUMNS.split(','))},"
                " COALESCE(activity.last_at, runs.started_at), COALESCE(activity.unsettled, 0)"
                " FROM runs LEFT JOIN activity USING (run_id) WHERE ? IS NULL OR runs.agent = ?",
                (agent, agent, agent, agent),
            ).fetchall()
        summaries = [RunSummary(RunInfo(*row[:_RUN_WIDTH]), row[_RUN_WIDTH], row[_RUN_WIDTH + 1]) for row in rows]
        return sorted(summaries, key=lambda summary: summary.last_activity_at, reverse=True)

    def open_reservations(self, agent: str | None = None, run_id: str | None = None) -> list[Reservation]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT reservation_id, agent, run_id, action, estimate_micros, created_at, pid, host,"
                " estimate_tokens FROM ledger WHERE settled_at IS NULL AND (? IS NULL OR agent = ?)"
                " AND (? IS NULL OR run_id = ?)"
                " ORDER BY created_at",
                (agent, agent, run_id, run_id),
            ).fetchall()
            return [Reservation(*row) for row in rows]

    def reconcile(
        self, reservation_id: str, *, settle_as: str, reason: str, now: float
    ) -> Reconciliation | None:
        if settle_as not in ("reserved", "zero"):
            raise ValueError(f"settle_as must be 'reserved' or 'zero', got {settle_as!r}")
        with self._transaction() as db:
            row = db.execute(
                "SELECT agent, run_id, action, estimate_micros FROM ledger"
                " WHERE reservation_id = ? AND settled_at IS NULL",
                (reservation_id,),
            ).fetchone()
            if row is None:
                return None
            agent, run_id, action, estimate = row
            cost = estimate if settle_as == "reserved" else 0
            self._settle_in(
                db,
                Settlement(
                    reservation_id, agent, run_id, action, cost, now, Outcome.NEUTRAL, breaker_counts=False,
                    tokens=None if settle_as == "reserved" else 0,
                ),
            )
            record = Reconciliation(reservation_id, agent, run_id, settle_as, cost, reason, now)
            db.execute(
                "INSERT OR REPLACE INTO reconciliations VALUES (?,?,?,?,?,?,?)",
                dataclasses.astuple(record),
            )
            return record

    def reconciliations(self, agent: str | None = None) -> list[Reconciliation]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT reservation_id, agent, run_id, settle_as, cost_micros, reason, at FROM reconciliations"
                " WHERE ? IS NULL OR agent = ? ORDER BY at",
                (agent, agent),
            ).fetchall()
            return [Reconciliation(*row) for row in rows]

    def daily_spend(self, agent: str | None = None, *, since_day: str = "") -> list[DaySpend]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT agent, substr(bucket, 5), spent_micros, reserved_micros, spent_tokens, reserved_tokens"
                " FROM agent_windows"
                " WHERE (? IS NULL OR agent = ?) AND bucket LIKE 'day:%' AND bucket >= ? ORDER BY bucket, agent",
                (agent, agent, _day_bucket(since_day)),
            ).fetchall()
            return [DaySpend(*row) for row in rows]

    def breakers(self, agent: str | None = None) -> list[tuple[str, str, BreakerRecord]]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT agent, key, state, consecutive_failures, opened_at, probe_id, probe_expires_at"
                " FROM breakers WHERE ? IS NULL OR agent = ? ORDER BY agent, key",
                (agent, agent),
            ).fetchall()
            return [(row[0], row[1], _breaker_from_row(row[2:])) for row in rows]

    def agents(self) -> list[str]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT agent FROM runs UNION SELECT agent FROM halts UNION SELECT agent FROM heartbeats"
                " UNION SELECT agent FROM agent_windows ORDER BY agent"
            ).fetchall()
            return [row[0] for row in rows]

    # -- the books' identity and the declared caps ------------------------------------------------

    def identity(self, agent: str) -> StoreIdentity | None:
        with self._reading() as db:
            row = db.execute(_IDENTITY_SQL, (agent,)).fetchone()
            return StoreIdentity(*row) if row else None

    def create_identity(self, agent: str, *, now: float) -> StoreIdentity:
        with self._transaction() as db:
            db.execute("INSERT OR IGNORE INTO identities VALUES (?,?,?,NULL)", (agent, uuid.uuid4().hex, now))
            return StoreIdentity(*db.execute(_IDENTITY_SQL, (agent,)).fetchone())

    def reset_identity(self, agent: str, *, now: float, reason: str, previous: str) -> StoreIdentity:
        identity = StoreIdentity(agent, uuid.uuid4().hex, now, reason)
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO identities VALUES (?,?,?,?)", dataclasses.astuple(identity))
            db.execute("INSERT INTO books_losses VALUES (?,?,?,?,?)", (agent, now, reason, previous, identity.identity))
        return identity

    def losses(self, agent: str | None = None) -> list[BooksLoss]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT agent, at, reason, previous, identity FROM books_losses WHERE ? IS NULL OR agent = ?"
                " ORDER BY at, rowid",
                (agent, agent),
            ).fetchall()
            return [BooksLoss(*row) for row in rows]

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
                row = dataclasses.astuple(declaration)
                columns = _DECLARATION_COLUMNS
                db.execute(f"INSERT OR REPLACE INTO cap_declarations ({columns}) VALUES (?,?,?,?,?,?,?)", row)

    def cap_declarations(self, agent: str | None = None) -> list[CapDeclaration]:
        with self._reading() as db:
            rows = db.execute(
                f"SELECT {_DECLARATION_COLUMNS} FROM cap_declarations"
                " WHERE ? IS NULL OR agent = ? ORDER BY agent, policy",
                (agent, agent),
            ).fetchall()
            return [CapDeclaration(*row) for row in rows]

    def drop_caps(self, agent: str, policy: str) -> int:
        with self._transaction() as db:
            return db.execute(
                "DELETE FROM cap_declarations WHERE agent = ? AND policy = ?", (agent, policy)
            ).rowcount

    def durability_warnings(self) -> list[str]:
        return []

    def seen_record(self, folder: Path | None) -> tuple[Path, str] | None:
        """Beside the store file, whatever the policy's folder: the record follows the file."""
        return self.path.with_name(self.path.name + ".seen.json"), self.path.name

    def _lineage_ids(self, db: _SQL, run_id: str) -> tuple[str, ...]:
        """The run's id and its ancestors' (raises KeyError for an unknown run)."""
        ids = self._lineage.get(run_id)
        if ids is None:
            ids = tuple(run.run_id for run in self._chain(db, run_id))
        return ids

    def _chain(self, db: _SQL, run_id: str) -> list[RunInfo]:
        """The run and its ancestors' rows, run first (raises KeyError for an unknown run)."""
        ids = self._lineage.get(run_id)
        if ids is None:
            chain = _lineage_rows(db, run_id)
            self._lineage[run_id] = tuple(run.run_id for run in chain)
            return chain
        if len(ids) == 1:
            row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", ids).fetchone()
            return [RunInfo(*row)]
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id IN ({','.join('?' * len(ids))})", ids
        ).fetchall()
        by_id = {row[0]: RunInfo(*row) for row in rows}
        return [by_id[run_id] for run_id in ids]

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None and self._local.pid == os.getpid():
            db.close()
            self._local.db = self._local.cursor = None

    def __repr__(self) -> str:
        return f"SQLiteStore({str(self.path)!r}, durability={self.durability!r})"


class _Transaction:
    """One ``BEGIN IMMEDIATE`` transaction: commits on success, rolls back on any exception.

    A class rather than a ``contextlib`` generator: it runs on every guarded call, and this
    costs about a third as much. Driver errors become :class:`StoreUnavailable`.
    """

    __slots__ = ("db", "path")

    def __init__(self, db: sqlite3.Cursor, path: Path) -> None:
        self.db = db
        self.path = path

    def __enter__(self) -> sqlite3.Cursor:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _failure(self.path, "is unavailable", exc) from None
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise _failure(self.path, "failed", exc) from None
            return  # the exception propagates
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as commit_error:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise _failure(self.path, "could not commit", commit_error) from None


_DAMAGE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _failure(path: Path, what: str, exc: sqlite3.Error) -> StoreUnavailable:
    """A driver error as :class:`StoreUnavailable`; a damaged file says so and how to go on."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGE_CODES:
        return StoreUnavailable(_damaged(path, str(exc)), reason="store_damaged")
    return StoreUnavailable(f"store {path} {what}: {exc}")


def _damaged(path: Path, what: str) -> str:
    url = shlex.quote(f"sqlite:///{path.resolve()}")
    return (
        f"store {path} is damaged ({what}): the books it kept are lost, so they cannot be trusted;"
        " calls are refused rather than started from a fresh budget. Once you know what was spent"
        " (the event log, the provider's usage page), acknowledge the loss: agentfuse store reset"
        f" --agent AGENT --accept-loss --store {url} (it moves the damaged file aside)"
    )


@dataclasses.dataclass(slots=True)
class _GateView:
    """What one gate sees of the stored state, and (once it commits) what it left stored.

    Read from the database, or kept from the previous gate of the same connection: valid for
    the next gate with the same ``key`` while ``PRAGMA data_version`` still reads ``version``
    (no other connection has committed since). A gate updates it in place as it settles and
    reserves, and keeps it only once its transaction has committed.
    """

    version: int
    key: tuple[Any, ...]
    """(agent, run id, action, breaker key, day key, minute) the view was read for."""
    chain: list[RunInfo]
    """The run and its ancestors, run first (this view's own objects, changed in place)."""
    halted: bool
    day_micros: int
    hour_micros: int
    action_failures: int
    breaker: BreakerRecord
    latest_at: float
    """The time of the agent's latest reservation (0: none)."""
    daily_declared: tuple[int, str] | None
    hourly_declared: tuple[int, str] | None
    identity: str | None
    tokens: TokenWindows
    token_capped: bool = False
    """A run of the chain has a token cap, or a policy declared one (this view's gates check tokens)."""

    def __post_init__(self) -> None:
        chain, tokens = self.chain, self.tokens
        self.token_capped = tokens.declared or any(run.token_cap is not None for run in chain)

    def add_money(self, money: _MoneyChanges) -> None:
        """Add what ``money`` will write to the runs of the chain and to the day and the hour."""
        for run in self.chain:
            change = money.runs.get(run.run_id)
            if change is not None:
                run.reserved_micros += change[0]
                run.spent_micros += change[1]
        agent, _, _, _, day_key, minute = self.key
        self.day_micros += _day_seen(money.days, agent, day_key)
        self.hour_micros += _hour_seen(money.minutes, agent, minute)
        tokens = money.tokens
        if tokens is not None:
            for run in self.chain:
                change = tokens.runs.get(run.run_id)
                if change is not None:
                    run.reserved_tokens += change[0]
                    run.spent_tokens += change[1]
            windows = self.tokens
            change = tokens.days.get((agent, day_key))
            if change is not None:
                windows.day_tokens += change[0] + change[1]
            oldest = minute - HOUR_MINUTES
            for (owner, at), (reserved, spent) in tokens.minutes.items():
                if owner == agent and oldest < at <= minute:
                    windows.hour_tokens += reserved + spent

    def add_reservation(self, estimate: int, tokens: int, now: float) -> None:
        """Add one reservation of ``estimate`` and ``tokens`` at ``now`` (and its step) to the chain,
        the day and the hour (the view's own: the books' clock did not go back)."""
        for run in self.chain:
            run.reserved_micros += estimate
        self.chain[0].steps += 1
        self.day_micros += estimate
        self.hour_micros += estimate
        self.latest_at = now
        if tokens:
            for run in self.chain:
                run.reserved_tokens += tokens
            self.tokens.day_tokens += tokens
            self.tokens.hour_tokens += tokens


_Change = tuple[int, int]
"""What one gate adds to a run row or a window bucket: (reserved, spent), of money or of tokens."""


def _day_seen(days: dict[tuple[str, str], _Change], agent: str, day_key: str) -> int:
    """What the day's bucket gains."""
    change = days.get((agent, day_key))
    return 0 if change is None else change[0] + change[1]


def _hour_seen(minutes: dict[tuple[str, int], _Change], agent: str, minute: int) -> int:
    """What the hour up to ``minute`` gains."""
    oldest = minute - HOUR_MINUTES
    return sum(
        reserved + spent
        for (owner, at), (reserved, spent) in minutes.items()
        if owner == agent and oldest < at <= minute
    )


class _TokenChanges:
    """Token additions of one gate, keyed as :class:`_MoneyChanges`' (tokens move with money)."""

    __slots__ = ("runs", "days", "minutes")

    def __init__(self) -> None:
        self.runs: dict[str, _Change] = {}
        self.days: dict[tuple[str, str], _Change] = {}
        self.minutes: dict[tuple[str, int], _Change] = {}


class _MoneyChanges:
    """Additions to run rows and agent windows gathered in one gate, written at its end.

    Every key touched is written (even with a zero sum), as separate settle and reserve
    statements would, so the rows that exist are the same either way. Tokens are gathered apart
    (only a gate that moves tokens has any), and written by the same statements when present.
    """

    tokens: _TokenChanges | None = None
    """The same for tokens, once a change moves any (most gates of a policy without tokens have none)."""

    def __init__(self) -> None:
        self.runs: dict[str, _Change] = {}
        """run id -> (reserved, spent) to add."""
        self.days: dict[tuple[str, str], _Change] = {}
        """(agent, day_key) -> (reserved, spent) to add."""
        self.minutes: dict[tuple[str, int], _Change] = {}

    def add(
        self,
        agent: str,
        run_ids: Sequence[str],
        day_key: str,
        minute: int,
        reserved: int,
        spent: int,
        reserved_tokens: int = 0,
        spent_tokens: int = 0,
    ) -> None:
        """Add (reserved, spent) money, and tokens when given, to the runs, the day and the minute."""
        runs = self.runs
        for run_id in run_ids:
            old = runs.get(run_id)
            runs[run_id] = (reserved, spent) if old is None else (old[0] + reserved, old[1] + spent)
        old = self.days.get((agent, day_key))
        self.days[agent, day_key] = (reserved, spent) if old is None else (old[0] + reserved, old[1] + spent)
        old = self.minutes.get((agent, minute))
        self.minutes[agent, minute] = (reserved, spent) if old is None else (old[0] + reserved, old[1] + spent)
        if not (reserved_tokens or spent_tokens):
            return
        tokens = self.tokens
        if tokens is None:
            tokens = self.tokens = _TokenChanges()
        runs = tokens.runs
        for run_id in run_ids:
            old = runs.get(run_id)
            runs[run_id] = (
                (reserved_tokens, spent_tokens) if old is None else (old[0] + reserved_tokens, old[1] + spent_tokens)
            )
        days, minutes = tokens.days, tokens.minutes
        old = days.get((agent, day_key))
        days[agent, day_key] = (
            (reserved_tokens, spent_tokens) if old is None else (old[0] + reserved_tokens, old[1] + spent_tokens)
        )
        old = minutes.get((agent, minute))
        minutes[agent, minute] = (
            (reserved_tokens, spent_tokens) if old is None else (old[0] + reserved_tokens, old[1] + spent_tokens)
        )

    def write(self, db: _SQL, *, stepped_run: str | None, at: float = 0.0) -> None:
        """Apply the additions: one ``UPDATE runs`` per distinct change, one upsert per bucket.

        ``stepped_run`` (the run that reserved, if any) also gets one more step; ``at`` (the
        time of its reservation) becomes the buckets' latest time if it is later.
        """
        groups: dict[tuple[int, ...], list[str]] = {}
        tokens = self.tokens
        if tokens is not None:
            for run_id, change in self.runs.items():
                groups.setdefault((*change, *tokens.runs.get(run_id, (0, 0))), []).append(run_id)
        else:
            for run_id, change in self.runs.items():
                groups.setdefault(change, []).append(run_id)
        for amounts, run_ids in groups.items():
            one_run = _UPDATE_RUNS if len(amounts) == 2 else _UPDATE_RUNS_TOKENS
            db.execute(_update_runs_sql(len(run_ids), one_run), (*amounts, stepped_run, *run_ids))
        buckets: list[tuple[Any, ...]]
        if tokens is None:
            buckets = [
                (agent, _day_bucket(day_key), spent, reserved, at)
                for (agent, day_key), (reserved, spent) in self.days.items()
            ]
            buckets += [
                (agent, _minute_bucket(minute), spent, reserved, at)
                for (agent, minute), (reserved, spent) in self.minutes.items()
            ]
            _add_to_buckets(db, buckets)
            return
        none = (0, 0)
        buckets = []
        for (agent, day_key), (reserved, spent) in self.days.items():
            reserved_tokens, spent_tokens = tokens.days.get((agent, day_key), none)
            buckets.append((agent, _day_bucket(day_key), spent, reserved, at, spent_tokens, reserved_tokens))
        for (agent, minute), (reserved, spent) in self.minutes.items():
            reserved_tokens, spent_tokens = tokens.minutes.get((agent, minute), none)
            buckets.append((agent, _minute_bucket(minute), spent, reserved, at, spent_tokens, reserved_tokens))
        _add_to_buckets(db, buckets)


def _update_runs_sql(count: int, one_run: str) -> str:
    """``one_run`` (:data:`_UPDATE_RUNS` or :data:`_UPDATE_RUNS_TOKENS`) for ``count`` runs."""
    if count == 1:
        return one_run
    return one_run.replace("IN (?)", f"IN ({','.join('?' * count)})")


_UPDATE_RUNS = (
    "UPDATE runs SET reserved_micros = reserved_micros + ?, spent_micros = spent_micros + ?,"
    " steps = steps + (run_id IS ?) WHERE run_id IN (?)"
)
"""Add (reserved, spent) money to runs, and a step to the one named first (if any)."""
_UPDATE_RUNS_TOKENS = (
    "UPDATE runs SET reserved_micros = reserved_micros + ?, spent_micros = spent_micros + ?,"
    " reserved_tokens = reserved_tokens + ?, spent_tokens = spent_tokens + ?,"
    " steps = steps + (run_id IS ?) WHERE run_id IN (?)"
)
"""The same with (reserved, spent) tokens."""


_IDENTITY_SQL = "SELECT agent, identity, created_at, reset_reason FROM identities WHERE agent = ?"
_DECLARATION_COLUMNS = "agent, policy, daily_micros, hourly_micros, declared_at, daily_tokens, hourly_tokens"
"""The columns of ``cap_declarations`` in the order of :class:`CapDeclaration`'s fields."""


def _fetch_run(db: _SQL, run_id: str) -> RunInfo | None:
    row = db.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return RunInfo(*row) if row else None


def _lineage_rows(db: _SQL, run_id: str) -> list[RunInfo]:
    """The run, then its parent, grandparent, ... in one recursive query."""
    rows = db.execute(
        "WITH RECURSIVE chain(run_id, depth) AS (SELECT ?, 0 UNION ALL"
        " SELECT runs.parent_id, chain.depth + 1 FROM runs JOIN chain USING (run_id)"
        f" WHERE runs.parent_id IS NOT NULL) SELECT {_RUN_COLUMNS} FROM chain JOIN runs USING (run_id)"
        " ORDER BY depth",
        (run_id,),
    ).fetchall()
    if not rows:
        raise KeyError(run_id)
    return [RunInfo(*row) for row in rows]


_SETTLE_PLAIN = (
    "UPDATE ledger SET cost_micros = ?, settled_at = ?, outcome = ?"
    " WHERE reservation_id = ? AND settled_at IS NULL AND NOT EXISTS (SELECT 1 FROM breakers"
    "  WHERE agent = ? AND key = ? AND state = 'half_open' AND probe_id = ?)"
)
"""Settle a plain success unless it is settled already or holds the half-open probe (its
``tokens`` stay NULL: charged at ``estimate_tokens``)."""
_SETTLE_PLAIN_TOKENS = _SETTLE_PLAIN.replace("outcome = ?", "outcome = ?, tokens = ?")
"""The same, charging the tokens the call used."""
_RESERVE = (
    "INSERT INTO ledger (reservation_id, run_id, agent, action, estimate_micros,"
    " day_key, minute, created_at, pid, host) VALUES (?,?,?,?,?,?,?,?,?,?)"
)
"""One reservation with no tokens (``estimate_tokens`` defaults to 0)."""
_RESERVE_TOKENS = _RESERVE.replace("host)", "host, estimate_tokens)").replace("?)", "?,?)")


def _day_bucket(day_key: str) -> str:
    """An agent's day in ``agent_windows``: ``day:2026-11-23``."""
    return "day:" + day_key


@functools.lru_cache(maxsize=256)
def _minute_bucket(minute: int) -> str:
    """An agent's minute in ``agent_windows``, zero-padded so text order is time order.

    Remembered: every call of the same minute needs the same text."""
    return f"minute:{minute:010d}"


_ADD_TO_BUCKETS: dict[tuple[int, int], str] = {}
"""(number of buckets, fields per bucket) -> the upsert adding to them (one statement for the day
and the minute; buckets without tokens leave the token columns alone)."""


def _add_to_buckets(db: _SQL, buckets: Sequence[tuple[Any, ...]]) -> None:
    """Add to each (agent, bucket, spent, reserved, at[, spent tokens, reserved tokens]), creating the
    rows that are missing, and keep the later of each bucket's latest reservation time and ``at``.
    Buckets without the token fields leave the token columns alone."""
    if not buckets:
        return
    key = (len(buckets), len(buckets[0]))
    sql = _ADD_TO_BUCKETS.get(key)
    if sql is None:
        tokens = len(buckets[0]) > 5
        columns = "spent_micros, reserved_micros, at" + (", spent_tokens, reserved_tokens" if tokens else "")
        marks = "(?,?,?,?,?,?,?)" if tokens else "(?,?,?,?,?)"
        sql = (
            f"INSERT INTO agent_windows (agent, bucket, {columns}) VALUES {','.join([marks] * len(buckets))}"
            " ON CONFLICT (agent, bucket) DO UPDATE SET spent_micros = spent_micros + excluded.spent_micros,"
            " reserved_micros = reserved_micros + excluded.reserved_micros, at = max(at, excluded.at)"
        )
        if tokens:
            sql += (
                ", spent_tokens = spent_tokens + excluded.spent_tokens,"
                " reserved_tokens = reserved_tokens + excluded.reserved_tokens"
            )
        _ADD_TO_BUCKETS[key] = sql
    db.execute(sql, [value for bucket in buckets for value in bucket])


def _add_to_windows(
    db: _SQL, agent: str, day_key: str, minute: int, money: _Change, tokens: _Change = (0, 0)
) -> None:
    """Add (reserved, spent) ``money`` and ``tokens`` to the agent's day and minute buckets."""
    (reserved, spent), (reserved_tokens, spent_tokens) = money, tokens
    extra = (spent_tokens, reserved_tokens) if reserved_tokens or spent_tokens else ()
    _add_to_buckets(
        db,
        [
            (agent, _day_bucket(day_key), spent, reserved, 0.0, *extra),
            (agent, _minute_bucket(minute), spent, reserved, 0.0, *extra),
        ],
    )


def _prune_minutes(db: _SQL, agent: str, minute: int) -> None:
    """Drop the agent's minute buckets that have left the rolling hour (days stay)."""
    db.execute(
        "DELETE FROM agent_windows WHERE agent = ? AND bucket > 'minute:' AND bucket <= ?",
        (agent, _minute_bucket(minute - HOUR_MINUTES)),
    )


def _day_used(db: _SQL, agent: str, day_key: str) -> tuple[int, int]:
    """(money, tokens) spent and reserved on the agent's day."""
    row = db.execute(
        "SELECT spent_micros + reserved_micros, spent_tokens + reserved_tokens FROM agent_windows"
        " WHERE agent = ? AND bucket = ?",
        (agent, _day_bucket(day_key)),
    ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def _hour_used(db: _SQL, agent: str, minute: int) -> tuple[int, int]:
    """(money, tokens) spent and reserved in the agent's hour up to ``minute``."""
    row = db.execute(
        "SELECT COALESCE(SUM(spent_micros + reserved_micros), 0), COALESCE(SUM(spent_tokens + reserved_tokens), 0)"
        " FROM agent_windows WHERE agent = ? AND bucket > ? AND bucket <= ?",
        (agent, _minute_bucket(minute - HOUR_MINUTES), _minute_bucket(minute)),
    ).fetchone()
    return int(row[0]), int(row[1])


def _fetch_breaker(db: _SQL, agent: str, key: str) -> BreakerRecord:
    row = db.execute(
        "SELECT state, consecutive_failures, opened_at, probe_id, probe_expires_at FROM breakers"
        " WHERE agent = ? AND key = ?",
        (agent, key),
    ).fetchone()
    return _breaker_from_row(row)


_CLOSED_BREAKER = BreakerRecord()
_SUCCESS = Outcome.SUCCESS.value


def _breaker_from_row(row: Sequence[Any] | None) -> BreakerRecord:
    if row is None or row[0] is None:
        return _CLOSED_BREAKER
    return BreakerRecord(BreakerState(row[0]), *row[1:])


def _write_breaker(db: _SQL, agent: str, key: str, record: BreakerRecord) -> None:
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


def _fetch_rate(db: _SQL, agent: str, action: str) -> RateLimitRecord:
    row = db.execute(
        "SELECT admissions, cooldown_until FROM rate_limits WHERE agent = ? AND action = ?",
        (agent, action),
    ).fetchone()
    if row is None:
        return RateLimitRecord()
    return RateLimitRecord(tuple(float(t) for t in json.loads(row[0])), row[1])


def _halts_for(db: _SQL, agent: str, run_ids: Sequence[str]) -> list[HaltRecord]:
    marks = ",".join("?" * len(run_ids))
    rows = db.execute(
        "SELECT agent, run_id, reason, source, created_at, figures FROM halts"
        f" WHERE (run_id = '' AND agent = ?) OR run_id IN ({marks})",
        (agent, *run_ids),
    ).fetchall()
    return [_halt_from_row(row) for row in rows]


def _write_halt(db: _SQL, record: HaltRecord) -> None:
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


def _halt_from_row(row: Sequence[Any]) -> HaltRecord:
    agent, run_id, reason, source, created_at, figures = row
    return HaltRecord(agent, run_id, reason, source, created_at, json.loads(figures))


def _latest_at(db: _SQL, agent: str) -> float:
    """The time of the agent's latest reservation (0 if none): the agent's clock."""
    (latest,) = db.execute("SELECT " + _LATEST_DAY.format(column="at"), (agent,)).fetchone()
    return float(latest) if latest is not None else 0.0


def _declared(value: str | None) -> tuple[int, str] | None:
    """``"1000000 host:/p/policy.yaml"`` (the strictest declared cap and its policy) as a pair."""
    if value is None:
        return None
    micros, _, policy = value.partition(" ")
    return int(micros), policy
