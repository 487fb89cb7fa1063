"""The structured event log: one JSON line per decision, written through stdlib ``logging``.

Each line is ``{"ts", "agent", "run", "event", "reason", ...figures}`` with ``ts`` in ISO-8601
UTC with milliseconds (``2026-01-31T23:59:59.123Z``). Values are made JSON-safe the same way
everywhere: ``Decimal`` -> string (exact; ``"0.012"``, never a float that drifts), paths,
dates and exceptions -> strings, sets/tuples -> lists, NaN/inf -> strings. Every string is
passed through :func:`~agentfuse.runtime.redaction.redact`, so a webhook URL or a Redis password never lands in the log.

``path: "-"`` (or ``stdout``) writes the lines to standard output and ``path: stderr`` to standard
error, for containers whose runtime collects them (``docker logs``, journald); each line is one
``write``, after flushing what the program printed before it, and nothing rotates.

Rotation (policy ``events:``): the file is rotated when the next line would pass ``max_bytes``
and, with ``rotate_when: midnight`` (or ``D``), also at the first write of a new UTC day
(``H``: hour, ``W0``: week from Monday, ... see :data:`ROTATION_PERIODS`). Size and time
rotation share one stdlib handler subclass and one naming scheme, RotatingFileHandler's:
``events.jsonl.1`` is the newest backup and ``.N`` (N = ``backup_count``) the oldest; older
ones are deleted, and ``backup_count: 0`` never rotates, as in the stdlib. The day of each line
is in its ``ts``. Files are created with mode 0600 and every line is flushed, so a killed
process loses no event. Several processes may append to one file: a writer notices within a
second that another one rotated the file and follows it, so no line is lost (a race may leave
one extra small backup).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import io
import json
import logging
import logging.handlers
import math
import os
import stat
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Any

from agentfuse.runtime.files import private_dirs
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.redaction import redact

try:
    import fcntl
except ImportError:  # Windows: rotations by several processes are not serialised
    fcntl = None  # type: ignore[assignment]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
RESERVED_KEYS = frozenset({"ts", "agent", "run", "event", "reason"})
_DAY_S = 86_400
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday (Monday is 0)


@dataclasses.dataclass(frozen=True)
class RotationPeriod:
    """Calendar periods in UTC: index = floor((t + offset_s) / length_s)."""

    length_s: int
    offset_s: int = 0

    def index(self, epoch_s: float) -> int:
        return int((epoch_s + self.offset_s) // self.length_s)


ROTATION_PERIODS: Mapping[str, RotationPeriod] = MappingProxyType({
    "s": RotationPeriod(1),
    "m": RotationPeriod(60),
    "h": RotationPeriod(3_600),
    "d": RotationPeriod(_DAY_S),
    "midnight": RotationPeriod(_DAY_S),
    **{
        f"w{day}": RotationPeriod(7 * _DAY_S, (_EPOCH_WEEKDAY - day) * _DAY_S)
        for day in range(7)
    },
})
"""``rotate_when`` values, as ``TimedRotatingFileHandler`` names them; all aligned to UTC
boundaries (``D`` is a calendar day like ``midnight``; ``W0``..``W6``: weeks from Monday..Sunday
00:00)."""
STREAMS: Mapping[str, str] = MappingProxyType({"-": "stdout", "stdout": "stdout", "stderr": "stderr"})
"""``events.path`` values that name a standard stream instead of a file (write ``./stderr`` for a
file of that name)."""
FOLLOW_ROTATION_EVERY_S = 1.0
_REMEMBER_MAX_CHARS = 200
_REMEMBER_MAX_STRINGS = 1024
"""Per log: redacted forms of short strings kept (then forgotten all at once when full)."""


def _json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-native copy of ``value`` with every string redacted (see module docstring)."""
    kind = type(value)
    if kind is str:
        return redact(value)
    if kind is int or kind is bool or value is None:
        return value  # the figures of nearly every event: answered before the isinstance chain
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, enum.Enum):
        return _json_safe(value.value, depth + 1)
    if depth > 10:
        return redact(str(value))
    if isinstance(value, Mapping):
        return {str(key): _json_safe(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item, depth + 1) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_json_safe(item, depth + 1) for item in value), key=str)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    if isinstance(value, (bytes, bytearray)):
        return redact(bytes(value).decode("utf-8", "replace"))
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _json_safe(dataclasses.asdict(value), depth + 1)
    return redact(str(value))


def format_ts(epoch_s: float) -> str:
    """Epoch seconds -> ISO-8601 UTC with milliseconds and a ``Z``."""
    moment = dt.datetime.fromtimestamp(epoch_s, dt.timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


_MILLIS_Z = tuple(f"{millis:03d}Z" for millis in range(1000))
"""The end of a timestamp for each millisecond."""


class _TimestampFormatter:
    """:func:`format_ts` with the date and time of the current second formatted once per second
    (a measured saving per line, see bench/RESULTS.md).

    Splits ``epoch_s`` exactly as ``datetime.fromtimestamp`` does (whole seconds, then the
    fraction rounded half-even to microseconds, carried into the seconds), so the text is the
    same.
    """

    def __init__(self) -> None:
        self._second: int | None = None
        self._prefix = ""

    def __call__(self, epoch_s: float) -> str:
        if not 0 <= epoch_s < 253_402_300_800:  # outside years 1970..9999: the general path
            return format_ts(epoch_s)
        second = int(epoch_s)
        micros = round((epoch_s - second) * 1e6)
        if micros >= 1_000_000:
            second += 1
            micros -= 1_000_000
        if second != self._second:
            moment = dt.datetime.fromtimestamp(second, dt.timezone.utc)
            self._prefix = moment.strftime("%Y-%m-%dT%H:%M:%S.")
            self._second = second
        return self._prefix + _MILLIS_Z[micros // 1000]


class _JsonlFileHandler(logging.handlers.RotatingFileHandler):
    """``RotatingFileHandler`` that also rotates when a new period (UTC day or hour) starts.

    The period of a line is its record's ``created`` time, which :class:`EventLog` sets from
    its injectable clock, so tests cross midnight without sleeping.
    """

    def __init__(
        self, path: Path, *, max_bytes: int, backup_count: int, period: RotationPeriod | None
    ) -> None:
        super().__init__(
            path, maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8", delay=True
        )
        self._period = period
        self._identity: tuple[int, int] | None = None
        self._regular = True
        self._checked_at = -math.inf
        self._file_period = self._period_of_existing_file()
        self._failing: tuple[float, str] | None = None
        """(time, error) of the first failed write while writes fail: reported once."""
        self._lines_lost = 0
        self.recovered: tuple[float, str, int] | None = None
        """(first failure time, its error, lines lost) once a write works again, until taken."""

    def _period_of_existing_file(self) -> int | None:
        """The period of the last write to the file at our path (its mtime), if it has lines."""
        if self._period is None:
            return None
        try:
            existing = os.stat(self.baseFilename)
        except OSError:
            return None
        return self._period.index(existing.st_mtime) if existing.st_size > 0 else None

    def _open(self) -> io.TextIOWrapper:
        """The file opened for appending; lines bypass its buffer (see :meth:`emit`)."""
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        opened = os.fstat(fd)
        self._identity = (opened.st_dev, opened.st_ino)
        self._regular = stat.S_ISREG(opened.st_mode)
        return os.fdopen(fd, "a", encoding="utf-8")

    def _follow_rotation(self, record: logging.LogRecord) -> bool:
        """If another process rotated our file away, continue in the file now at our path.

        That file was created since our last check (a second at most), so it holds lines of
        the record's period.
        """
        try:
            current = os.stat(self.baseFilename)
        except FileNotFoundError:
            current = None
        if current is None or (current.st_dev, current.st_ino) != self._identity:
            if self.stream is not None:
                self.stream.close()
            self.stream = self._open()
            self._file_period = self._period_of(record)
            return True
        return False

    def _period_of(self, record: logging.LogRecord) -> int | None:
        return None if self._period is None else self._period.index(record.created)

    def _rotation_due(self, record: logging.LogRecord) -> bool:
        """A non-empty regular file whose period is over, or where the line does not fit."""
        if self.backupCount <= 0 or not self._regular or self.stream is None:
            return False
        size = os.lseek(self.stream.fileno(), 0, os.SEEK_END)  # includes other writers' lines
        if size == 0:
            return False
        period = self._period_of(record)
        if period is not None and self._file_period is not None and period != self._file_period:
            return True
        line_bytes = len(record.getMessage()) + 1  # ASCII JSON: characters are bytes
        return 0 < self.maxBytes < size + line_bytes

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        """Whether to rotate before writing ``record``.

        Another process may have rotated the file: that is checked (one ``stat``) when a
        rotation looks due and at least once per second of the record clock, so a writer
        follows a rotation within a second without paying a ``stat`` for every line.
        """
        if self.stream is None:
            self.stream = self._open()
            self._checked_at = record.created
        due = self._rotation_due(record)
        if due or abs(record.created - self._checked_at) >= FOLLOW_ROTATION_EVERY_S:
            self._checked_at = record.created
            if self._follow_rotation(record):
                due = self._rotation_due(record)
        return due

    @contextlib.contextmanager
    def _rotation_lock(self) -> Iterator[None]:
        """Serialise rotations across processes (``flock`` on a hidden sidecar file)."""
        if fcntl is None:
            yield
            return
        folder, name = os.path.split(self.baseFilename)
        fd = os.open(os.path.join(folder, f".{name}.lock"), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _append(self, data: bytes) -> None:
        """One ``write`` on the O_APPEND descriptor: the line reaches the kernel at once (a
        killed process loses none) and lands whole after other writers' lines, without the
        text layer's buffer, encoder and flush on every line."""
        if self.stream is None:  # a rotation just closed the old file
            self.stream = self._open()
        fd = self.stream.fileno()
        while data:
            data = data[os.write(fd, data):]

    def emit(self, record: logging.LogRecord) -> None:
        """Rotate if due (under the lock, after re-checking), then append one line."""
        try:
            if self.shouldRollover(record):
                with self._rotation_lock():
                    # Whoever held the lock before us may have rotated already.
                    if not self._follow_rotation(record) or self._rotation_due(record):
                        self.doRollover()
            data = (record.getMessage() + "\n").encode("utf-8")
            if self._failing is not None and not self._ends_a_line():
                data = b"\n" + data  # a failed write may have left part of a line
            self._append(data)
            self._file_period = self._period_of(record)
        except Exception:  # noqa: BLE001 - reported on stderr, never raised into the agent
            self.handleError(record)
            return
        if self._failing is not None:
            self.recovered = (*self._failing, self._lines_lost)
            self._failing, self._lines_lost = None, 0

    def _ends_a_line(self) -> bool:
        """Whether the file is empty or ends with a newline (read once, after failed writes)."""
        try:
            with open(self.baseFilename, "rb") as existing:
                size = existing.seek(0, os.SEEK_END)
                if size == 0:
                    return True
                existing.seek(size - 1)
                return existing.read(1) == b"\n"
        except FileNotFoundError:  # rotated away: the next write starts a new file
            return True

    def handleError(self, record: logging.LogRecord) -> None:
        """One line on stderr for the first failure, never a traceback: a full disk must not
        break the agent, nor fill its stderr with a line per call. Later failures are counted;
        the first line written again is followed by an ``event_log_recovered`` event."""
        self._lines_lost += record.getMessage().count("\n") + 1
        if self._failing is not None:
            return
        error = sys.exc_info()[1]
        self._failing = (record.created, f"{type(error).__name__}: {error}")
        sys.stderr.write(
            f"agentfuse: cannot write event log {self.baseFilename}: {error}"
            " (further failures are counted, not printed, until a line is written again)\n"
        )


def stream_name(path: str | PurePath | None) -> str | None:
    """``stdout``/``stderr`` when a path string names a standard stream, else None (a ``Path`` is a file)."""
    return None if path is None or isinstance(path, PurePath) else STREAMS.get(path.strip().lower())


class _JsonlStreamHandler(logging.Handler):
    """Lines to standard output or error, looked up at each write (so redirections apply).

    The stream's own buffer is flushed first, then the line goes out in one ``os.write`` on its
    descriptor: it follows what the program printed, and lines of several processes sharing the
    stream are not interleaved mid-line. A stream without a descriptor (a ``StringIO``) is
    written to and flushed.
    """

    def __init__(self, name: str) -> None:
        super().__init__()
        self.stream_name = name
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        stream = getattr(sys, self.stream_name)
        if stream is None:  # no console (pythonw)
            return
        data = record.getMessage() + "\n"
        try:
            stream.flush()
            try:
                fd = stream.fileno()
            except (AttributeError, OSError, ValueError):
                stream.write(data)
                stream.flush()
                return
            encoded = data.encode("utf-8")
            while encoded:
                encoded = encoded[os.write(fd, encoded):]
        except Exception:  # noqa: BLE001 - reported on stderr once, never raised into the agent
            self.handleError(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """One line on stderr for the first failure (a closed pipe fails every line after it)."""
        if self._failed:
            return
        self._failed = True
        error = sys.exc_info()[1]
        if sys.__stderr__ is not None:
            with contextlib.suppress(Exception):
                sys.__stderr__.write(f"agentfuse: cannot write events to {self.stream_name}: {error}\n")


class _LineRecord(logging.LogRecord):
    """A log record carrying one finished JSON line; made only by :func:`_line_record`.

    The attributes a handler or formatter may read are fixed class attributes; only the name,
    the line and its time are per record.
    """

    args = None
    levelname = "INFO"
    levelno = logging.INFO
    pathname = filename = module = funcName = ""
    lineno = 0
    exc_info = exc_text = stack_info = None
    msecs = 0.0
    relativeCreated = 0.0
    thread = threadName = processName = process = None

    def getMessage(self) -> str:
        return self.msg


def _line_record(name: str, line: str, created: float) -> logging.LogRecord:
    """The record of one write, made without ``LogRecord.__init__``.

    ``__init__`` looks up the thread, the process and the source file of every record; a line
    needs none of them (it has its own ``ts``), and skipping them is a measured saving per call
    (bench/RESULTS.md).
    """
    record = _LineRecord.__new__(_LineRecord)
    record.name = name
    record.msg = line
    record.created = created
    return record


class EventLog:
    """Structured JSONL events with rotation; ``path=None`` keeps events in memory only, and a
    path in :data:`STREAMS` (``-``, ``stdout``, ``stderr``) writes them to that stream.

    Each instance hands its records straight to its own ``logging`` handler: no logger is
    registered, so two logs never share handlers, the application's logging configuration is
    left alone, and a line skips the logger hierarchy walk it would not use.
    """

    def __init__(
        self,
        path: Path | str | None,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        backup_count: int = 5,
        rotate_when: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        period = None
        if rotate_when is not None:
            period = ROTATION_PERIODS.get(rotate_when.lower())
            if period is None:
                raise ValueError(
                    "rotate_when must be one of S, M, H, D, midnight, W0..W6 or None,"
                    f" got {rotate_when!r}"
                )
        self.stream = stream_name(path)
        """``stdout`` or ``stderr`` when the lines go to a standard stream."""
        self.path = None if path is None else Path(path)
        self._clock = clock
        self._encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
        """Compact JSON of one line, already JSON-native (:func:`_json_safe`), so never circular."""
        self._format_ts = _TimestampFormatter()
        self._redacted: dict[str, str] = {}
        self._name = f"agentfuse.events:{self.path}"
        self._handler: logging.Handler | None = None
        self._file: _JsonlFileHandler | None = None
        if self.stream is not None:
            self._handler = _JsonlStreamHandler(self.stream)
        elif self.path is not None:
            private_dirs(self.path.parent)
            self._handler = self._file = _JsonlFileHandler(
                self.path, max_bytes=max(max_bytes, 0), backup_count=max(backup_count, 0),
                period=period,
            )

    @classmethod
    def from_policy(cls, policy: Policy) -> EventLog:
        """The event log a policy's ``events:`` section describes (path relative to the policy)."""
        events = policy.events
        path = events.path
        return cls(
            None if path is None else path if stream_name(path) else policy.resolve_path(path),
            max_bytes=events.max_bytes,
            backup_count=events.backup_count,
            rotate_when=events.rotate_when,
        )

    def emit(
        self, event: str, *, agent: str, run: str | None, reason: str | None = None, **figures: Any
    ) -> dict[str, Any]:
        """Write one event line and return it as written (JSON-safe, redacted)."""
        now = self._clock()
        record = self._line(now, event, agent, run, reason, figures)
        self.write([record], now=now)
        return record

    def line(
        self, event: str, *, agent: str, run: str | None, reason: str | None = None, **figures: Any
    ) -> dict[str, Any]:
        """One event as :meth:`emit` writes it (timestamped now), without writing it."""
        return self._line(self._clock(), event, agent, run, reason, figures)

    def _line(
        self, now: float, event: str, agent: str, run: str | None, reason: str | None, figures: dict[str, Any]
    ) -> dict[str, Any]:
        if not RESERVED_KEYS.isdisjoint(figures):
            clashes = sorted(RESERVED_KEYS.intersection(figures))
            raise TypeError(f"emit() figures may not be named {', '.join(clashes)}")
        record: dict[str, Any] = {
            "ts": self._format_ts(now),
            "agent": agent,
            "run": run,
            "event": event,
            "reason": None if reason is None else self._redact(reason),
        }
        for key, value in figures.items():
            kind = type(value)
            if kind is int or value is None:
                record[key] = value
            elif kind is str:
                record[key] = self._redact(value)
            else:
                record[key] = _json_safe(value, 1)
        return record

    def _redact(self, text: str) -> str:
        """:func:`redact`, remembered for short strings (actions and outcomes repeat every call)."""
        known = self._redacted.get(text)
        if known is not None:
            return known
        safe = redact(text)
        if len(text) <= _REMEMBER_MAX_CHARS:
            if len(self._redacted) >= _REMEMBER_MAX_STRINGS:
                self._redacted.clear()
            self._redacted[text] = safe
        return safe

    def write(self, records: list[dict[str, Any]], *, now: float | None = None) -> None:
        """Append events made by :meth:`line`, in order, with one ``write`` (whole lines only).

        ``now`` (default: the clock) decides the rotation period the lines are written in.
        """
        if self._handler is None or not records:
            return
        encode = self._encode
        text = "\n".join([encode(record) for record in records])
        created = self._clock() if now is None else now
        self._handler.handle(_line_record(self._name, text, created))
        if self._file is not None and self._file.recovered is not None:
            self._log_recovery(str(records[0].get("agent")), created)

    def _log_recovery(self, agent: str, now: float) -> None:
        """The ``event_log_recovered`` line: since when writes failed, why, and lines lost."""
        assert self._file is not None and self._file.recovered is not None
        since, error, lost = self._file.recovered
        self._file.recovered = None
        line = self._line(
            now, "event_log_recovered", agent, None, None,
            {"failed_since": format_ts(since), "error": error, "lines_lost": lost},
        )
        self._file.handle(_line_record(self._name, self._encode(line), now))

    def close(self) -> None:
        """Flush and close the file; later emits still return their events, unwritten."""
        if self._handler is not None:
            self._handler.close()
        self._handler = self._file = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
