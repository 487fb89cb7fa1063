"""The SQLite store's file and connections: creating the file, opening a connection, transactions.

A :class:`Connection` belongs to one thread of one process and holds everything the store
remembers between calls for speed; a driver error becomes :class:`StoreUnavailable`, and a
damaged file says how to go on.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.files import private_dirs
from agentfuse.runtime.stores.sqlite_schema import migrate

if TYPE_CHECKING:
    from agentfuse.runtime.stores.sqlite_gate import GateView

BUSY_TIMEOUT_S = 30.0

OwnReservation = tuple[int, str, int, int]
"""(estimate, day key, minute, estimate tokens) of a reservation: facts of its ledger row."""


class Connection:
    """One thread's connection to the store file, and all the store remembers with it.

    Every cache of the store lives here and nowhere else, so it lives exactly as long as the
    connection: a thread's first call, a forked child and a call after ``close()`` open a new
    :class:`Connection` and start with nothing remembered (``SQLiteStore._connection`` is the one
    place that happens). Each entry stays true for its connection's life, or says how it is checked.
    """

    __slots__ = ("db", "cursor", "pid", "path", "view", "lineage", "pruned", "own_reservations")

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db = db
        self.cursor = db.cursor()
        """Every statement of a transaction runs on this one cursor (``db.execute`` would make one
        per statement), so a transaction fetches each statement's rows before the next one."""
        self.pid = os.getpid()
        self.path = path
        self.view: GateView | None = None
        """What the last gate left stored; valid only while ``PRAGMA data_version`` is unchanged,
        and dropped by any other transaction (:meth:`transaction`)."""
        self.lineage: dict[str, tuple[str, ...]] = {}
        """run id -> it and its ancestors' ids; parents never change."""
        self.pruned: dict[str, int] = {}
        """agent -> the minute its minute buckets were last pruned at (once a minute)."""
        self.own_reservations: dict[str, OwnReservation] = {}
        """reservation id -> its facts, for reservations made here and not yet settled here: a
        plain settlement of one needs no ``RETURNING``. An entry left by a reservation settled
        elsewhere is harmless (the settlement's ``UPDATE`` then changes no row)."""

    def transaction(self) -> Transaction:
        """``with connection.transaction() as db``: one ``BEGIN IMMEDIATE`` ... ``COMMIT`` on
        :attr:`cursor`. It drops the kept view: only a gate that commits cleanly keeps one."""
        self.view = None
        return Transaction(self.cursor, self.path)

    def close(self) -> None:
        self.view = None
        self.db.close()


def connect(
    path: Path, *, durability: str, busy_timeout_s: float, factory: type[sqlite3.Connection]
) -> Connection:
    """A new connection to the store at ``path`` (WAL; ``durability`` ``full``: fsync per commit)."""
    try:
        db = sqlite3.connect(
            path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=True, factory=factory
        )
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={'FULL' if durability == 'full' else 'NORMAL'}")
    except sqlite3.Error as exc:
        raise failure(path, "cannot be opened", exc) from None
    return Connection(db, path)


class Transaction:
    """One ``BEGIN IMMEDIATE`` transaction: commits on success, rolls back on any exception.

    A class rather than a ``contextlib`` generator: it runs on every guarded call, and a class is
    the cheaper of the two. Driver errors become :class:`StoreUnavailable`.
    """

    __slots__ = ("db", "path")

    def __init__(self, db: sqlite3.Cursor, path: Path) -> None:
        self.db = db
        self.path = path

    def __enter__(self) -> sqlite3.Cursor:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise failure(self.path, "is unavailable", exc) from None
        return self.db

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc is not None:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise failure(self.path, "failed", exc) from None
            return  # the exception propagates
        try:
            self.db.execute("COMMIT")
        except sqlite3.Error as commit_error:
            with contextlib.suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")
            raise failure(self.path, "could not commit", commit_error) from None


def create_file(path: Path) -> None:
    """Create the store if it is missing; refuse an existing empty file (lost data).

    A new store is built in a private temporary file beside the path and linked into place
    (``os.link`` fails if the name exists), so nobody ever sees a half-made store, and an
    empty file at the path can only be a store that lost its data: it is refused, never
    taken for a new one. An existing file is never opened here: closing any descriptor of a
    SQLite file drops every POSIX lock this process holds on it, including those of other
    connections (another store on the same file), which lets a second process checkpoint
    under them and corrupt their reads.
    """
    wal = Path(f"{path}-wal")
    try:
        orphan_log = wal.exists()  # looked at first: a new store is linked before its log exists
        size: int | None = path.stat().st_size
    except (FileNotFoundError, NotADirectoryError):
        size = None
    except OSError as exc:
        raise StoreUnavailable(f"cannot read the store file {path}: {exc.strerror}") from None
    if size == 0:
        raise StoreUnavailable(damaged(path, "the file is empty (0 bytes)"), reason="store_damaged")
    if size is not None:
        return
    if orphan_log:  # SQLite would replay the lost store's log into a new one
        raise StoreUnavailable(
            damaged(path, f"the file is missing but its write-ahead log {wal.name} is there"),
            reason="store_damaged",
        )
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.new")
    try:
        private_dirs(path.parent)
        os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
        db = sqlite3.connect(temporary, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            with Transaction(db.cursor(), temporary) as cursor:
                migrate(cursor, path)
        finally:
            db.close()
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it in between
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temporary, path)
    except OSError as exc:
        raise StoreUnavailable(f"cannot create the store file {path}: {exc.strerror}") from None
    except sqlite3.Error as exc:
        raise StoreUnavailable(f"cannot create the store file {path}: {exc}") from None
    finally:
        for leftover in (temporary, Path(f"{temporary}-wal"), Path(f"{temporary}-shm")):
            with contextlib.suppress(OSError):
                leftover.unlink()


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


_DAMAGE_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def failure(path: Path, what: str, exc: sqlite3.Error) -> StoreUnavailable:
    """A driver error as :class:`StoreUnavailable`; a damaged file says so and how to go on."""
    if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _DAMAGE_CODES:
        return StoreUnavailable(damaged(path, str(exc)), reason="store_damaged")
    return StoreUnavailable(f"store {path} {what}: {exc}")


def damaged(path: Path, what: str) -> str:
    """Why a damaged store is refused, and the command that acknowledges the loss."""
    url = shlex.quote(f"sqlite:///{path.resolve()}")
    return (
        f"store {path} is damaged ({what}): the books it kept are lost, so they cannot be trusted;"
        " calls are refused rather than started from a fresh budget. Once you know what was spent"
        " (the event log, the provider's usage page), acknowledge the loss: agentfuse store reset"
        f" --agent AGENT --accept-loss --store {url} (it moves the damaged file aside)"
    )
