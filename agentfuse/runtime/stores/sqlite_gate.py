"""The SQLite store's gate and settle: each one ``BEGIN IMMEDIATE`` transaction on a connection.

A gate settles the deferred calls handed to it, reads, decides (:func:`decide_gate`) and
reserves. Plain deferred successes change only money, so their changes to the run rows and the
windows are added to what the gate reads and written together with the reservation's (one
``UPDATE runs`` and one upsert of the windows for both, in the usual case).

The read is skipped when ``PRAGMA data_version`` shows that no other connection has committed
since this connection's last gate, which left a :class:`GateView` of what it wrote: the stored
state is then exactly that view (one process calling in a loop pays one statement instead of the
read).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from agentfuse.runtime import breaker as breaker_rules
from agentfuse.runtime.decisions import GateSnapshot, TokenWindows, decide_gate, effective_time
from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.stores.base import (
    BreakerRecord,
    GateRequest,
    GateResult,
    Outcome,
    RunInfo,
    Settlement,
    SettleResult,
)
from agentfuse.runtime.stores.books import identity_changed
from agentfuse.runtime.stores.sqlite_connection import Connection
from agentfuse.runtime.stores.sqlite_rows import (
    BREAKER_COLUMNS,
    HOUR_MINUTES,
    LATEST_DAY,
    LATEST_DAY_BUCKET,
    RUN_COLUMNS,
    RUN_WIDTH,
    SQL,
    breaker_from_row,
    day_bucket,
    declared,
    fetch_rate,
    halts_for,
    latest_at,
    lineage_rows,
    minute_bucket,
    write_breaker,
    write_halt,
    write_rate,
)

_GATE_READS = (
    "(SELECT COUNT(*) FROM halts WHERE (run_id = '' AND agent = ?) OR run_id IN ({marks})),"
    " COALESCE((SELECT spent_micros + reserved_micros FROM agent_windows WHERE agent = ? AND bucket = ?), 0),"
    " (SELECT COALESCE(SUM(spent_micros + reserved_micros), 0) FROM agent_windows"
    "  WHERE agent = ? AND bucket > ? AND bucket <= ?),"
    " COALESCE((SELECT failures FROM action_failures WHERE run_id = ? AND action = ?), 0), "
    + BREAKER_COLUMNS
    + ", " + LATEST_DAY.format(column="at") + ","
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
their indexes: an ``ORDER BY`` without one costs a sorter), the identity, the token windows."""
_GATE_READ = f"SELECT {RUN_COLUMNS}, {_GATE_READS} FROM runs WHERE run_id IN ({{marks}})".split("{marks}")
"""The gate's one read, in pieces to be joined by the marks of the run ids (``str.format`` would
copy its long text character by character on every read)."""
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
_SUCCESS = Outcome.SUCCESS.value


def gate(conn: Connection, request: GateRequest, *, host: str, pinned: str | None, store: object) -> GateResult:
    """Settle the deferred calls, read, decide and reserve: one transaction on ``conn``.

    ``pinned``: the books' identity this store handle checked for the agent (a gate that finds
    another refuses, naming ``store``); ``host`` is recorded with the reservation.
    """
    view = conn.view
    with conn.transaction() as db:
        changes = _GateChanges()
        clean = True
        for deferred in request.settle_first:
            if not _settle_plain(conn, db, deferred, changes):
                settle(conn, db, deferred)
                clean = False
        ids = lineage_ids(conn, db, request.run_id)
        key = (request.agent, request.run_id, request.action, request.breaker.key, request.day_key, request.minute)
        version = db.execute("PRAGMA data_version").fetchone()[0]
        if view is None or not clean or view.version != version or view.key != key:
            view = _read_view(db, request, ids, key, version)
        if pinned is not None and view.identity != pinned:
            raise StoreUnavailable(identity_changed(store, request.agent, pinned, view.identity), reason="store_lost")
        if request.now < view.latest_at:  # the clock went back: book at the agent's latest time and day
            (latest_day,) = db.execute(LATEST_DAY_BUCKET, (request.agent,)).fetchone()
            request = effective_time(request, view.latest_at, latest_day[4:])
            key = (*key[:4], request.day_key, request.minute)
            view = _read_view(db, request, ids, key, version)  # the windows of the books' time
            clean = False
        view.add(changes)
        decision = decide_gate(view.snapshot(db, request, ids), request)
        if decision.result.halt is not None:
            write_halt(db, decision.result.halt)
        if not decision.reserve:
            changes.write(db, stepped_run=None)
            return decision.result
        if decision.breaker is not None:
            write_breaker(db, request.agent, request.breaker.key, decision.breaker)
            clean = False
        if decision.rate is not None and request.rate_limit is not None:
            write_rate(db, request.agent, request.rate_limit.action, decision.rate)
        if conn.pruned.get(request.agent) != request.minute:
            # Only a reservation moves the books' time (a refused gate may be ahead of it, and a
            # later gate at the books' time still needs the hour before it).
            _prune_minutes(db, request.agent, request.minute)
            conn.pruned[request.agent] = request.minute
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
            conn.pid,
            host,
        )
        if tokens:
            db.execute(_RESERVE_TOKENS, (*reservation, tokens))
        else:
            db.execute(_RESERVE, reservation)
        conn.own_reservations[request.reservation_id] = (estimate, request.day_key, request.minute, tokens)
        changes.add(request.agent, ids, request.day_key, request.minute, (estimate, 0, tokens, 0))
        changes.write(db, stepped_run=request.run_id, at=request.now)
    if clean and not view.halted:
        view.add_reservation(estimate, tokens, request.now)
        conn.view = view  # kept only once the transaction has committed
    return decision.result


def settle(conn: Connection, db: SQL, settlement: Settlement) -> SettleResult:
    """Settle one reservation of any kind inside the caller's transaction."""
    conn.own_reservations.pop(settlement.reservation_id, None)
    failed = settlement.outcome is Outcome.FAILURE
    row = db.execute(
        f"SELECT estimate_micros, day_key, minute, estimate_tokens, {BREAKER_COLUMNS} FROM ledger"
        " WHERE reservation_id = ? AND settled_at IS NULL",
        (*(settlement.agent, settlement.breaker.key) * 5, settlement.reservation_id),
    ).fetchone()
    if row is None:
        return SettleResult(settled=False)
    estimate, day_key, minute, estimate_tokens, *breaker_row = row
    tokens = estimate_tokens if settlement.tokens is None else settlement.tokens
    if failed:  # a failure may open the breaker at `now`: never before the agent's latest time
        now = max(settlement.now, latest_at(db, settlement.agent))
        settlement = settlement if now == settlement.now else dataclasses.replace(settlement, now=now)
    cost = settlement.cost_micros
    db.execute(
        "UPDATE ledger SET cost_micros = ?, settled_at = ?, outcome = ?, tokens = ? WHERE reservation_id = ?",
        (cost, settlement.now, settlement.outcome.value, tokens, settlement.reservation_id),
    )
    ids = lineage_ids(conn, db, settlement.run_id)
    db.execute(
        "UPDATE runs SET reserved_micros = reserved_micros - ?, spent_micros = spent_micros + ?,"
        " reserved_tokens = reserved_tokens - ?, spent_tokens = spent_tokens + ?,"
        f" failures = failures + (run_id = ? AND ?) WHERE run_id IN ({','.join('?' * len(ids))})",
        (estimate, cost, estimate_tokens, tokens, settlement.run_id, failed, *ids),
    )
    extra = (tokens, -estimate_tokens) if estimate_tokens or tokens else ()
    _add_to_buckets(
        db,
        [
            (settlement.agent, day_bucket(day_key), cost, -estimate, 0.0, *extra),
            (settlement.agent, minute_bucket(minute), cost, -estimate, 0.0, *extra),
        ],
    )
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
    current = breaker_from_row(breaker_row)
    record, transition = breaker_rules.after_call(
        current,
        settlement.breaker,
        settlement.now,
        settlement.reservation_id,
        settlement.outcome,
        settlement.breaker_counts,
    )
    if record != current:
        write_breaker(db, settlement.agent, settlement.breaker.key, record)
    if settlement.halt is not None:
        write_halt(db, settlement.halt)
    return SettleResult(
        settled=True,
        breaker_state=record.state,
        breaker_transition=transition,
        consecutive_failures=record.consecutive_failures,
        action_failures=action_failures,
        run_failures=run_failures,
    )


def lineage_ids(conn: Connection, db: SQL, run_id: str) -> tuple[str, ...]:
    """The run's id and its ancestors' (raises KeyError for an unknown run)."""
    ids = conn.lineage.get(run_id)
    if ids is None:
        ids = conn.lineage[run_id] = tuple(run.run_id for run in lineage_rows(db, run_id))
    return ids


def _settle_plain(conn: Connection, db: SQL, settlement: Settlement, changes: _GateChanges) -> bool:
    """Settle a success that touches only money, gathering its changes into ``changes``.

    False when the settlement is anything else (a failure, a counted outcome, a halt, the
    breaker's probe, an unknown or settled reservation): :func:`settle` handles those.
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
    known = conn.own_reservations.pop(settlement.reservation_id, None)
    if known is not None:
        if db.execute(sql, parameters).rowcount != 1:
            return False
        estimate, day_key, minute, estimate_tokens = known
    else:
        rows = db.execute(sql + " RETURNING estimate_micros, day_key, minute, estimate_tokens", parameters).fetchall()
        if not rows:
            return False
        estimate, day_key, minute, estimate_tokens = rows[0]
    ids = lineage_ids(conn, db, settlement.run_id)
    used = estimate_tokens if tokens is None else tokens  # no usage: charged at the reservation
    changes.add(settlement.agent, ids, day_key, minute, (-estimate, settlement.cost_micros, -estimate_tokens, used))
    return True


def _read_view(db: SQL, request: GateRequest, ids: tuple[str, ...], key: tuple[Any, ...], version: int) -> GateView:
    """The gate's one read: the run rows, halts, windows, the action's failures, the breaker,
    the agent's clock, the strictest declared caps and the books' identity."""
    agent = request.agent
    day = day_bucket(request.day_key)
    hour = (minute_bucket(request.minute - HOUR_MINUTES), minute_bucket(request.minute))
    rows = db.execute(
        ",".join("?" * len(ids)).join(_GATE_READ),
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
    halt_count, day_used, hour_used, action_failures, *breaker_row = rows[0][RUN_WIDTH:RUN_WIDTH + 9]
    clock, daily, hourly, daily_tokens, hourly_tokens, identity, day_tokens, hour_tokens = rows[0][RUN_WIDTH + 9:]
    runs = [list(by_id[run_id][:RUN_WIDTH]) for run_id in ids]
    daily_tokens_declared, hourly_tokens_declared = declared(daily_tokens), declared(hourly_tokens)
    return GateView(
        version=version,
        key=key,
        runs=runs,
        halted=bool(halt_count),
        day_micros=day_used,
        hour_micros=hour_used,
        action_failures=action_failures,
        breaker=breaker_from_row(breaker_row),
        latest_at=clock or 0.0,
        daily_declared=declared(daily),
        hourly_declared=declared(hourly),
        identity=identity,
        day_tokens=day_tokens,
        hour_tokens=hour_tokens,
        daily_tokens_declared=daily_tokens_declared,
        hourly_tokens_declared=hourly_tokens_declared,
        token_capped=(
            daily_tokens_declared is not None
            or hourly_tokens_declared is not None
            or any(run[_TOKEN_CAP] is not None for run in runs)
        ),
    )


_RUN_FIELDS = [column.strip() for column in RUN_COLUMNS.split(",")]
_SPENT, _RESERVED, _STEPS, _TOKEN_CAP, _SPENT_TOKENS, _RESERVED_TOKENS = (
    _RUN_FIELDS.index(name)
    for name in ("spent_micros", "reserved_micros", "steps", "token_cap", "spent_tokens", "reserved_tokens")
)
"""Where a run row's columns sit in :attr:`GateView.runs`."""


@dataclasses.dataclass(slots=True)
class GateView:
    """What one gate sees of the stored state, and (once it commits) what it left stored.

    Read from the database, or kept from the previous gate of the same connection: valid for
    the next gate with the same ``key`` while ``PRAGMA data_version`` still reads ``version``
    (no other connection has committed since). A gate adds what it settles and reserves to the
    view's own counters, and keeps the view only once its transaction has committed; what it
    hands :func:`decide_gate` (:meth:`snapshot`) is built fresh each time and never changed.
    """

    version: int
    key: tuple[Any, ...]
    """(agent, run id, action, breaker key, day key, minute) the view was read for."""
    runs: list[list[Any]]
    """The rows of the run and its ancestors (run first), in :data:`RUN_COLUMNS` order: the
    view's own copies, which it changes."""
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
    day_tokens: int
    hour_tokens: int
    daily_tokens_declared: tuple[int, str] | None
    hourly_tokens_declared: tuple[int, str] | None
    token_capped: bool
    """A run of the chain has a token cap, or a policy declared one (this view's gates check tokens)."""

    def snapshot(self, db: SQL, request: GateRequest, ids: tuple[str, ...]) -> GateSnapshot:
        """What :func:`decide_gate` reads: the view as values, plus the halts (of the runs ``ids``)
        and the rate limit when they matter."""
        agent = request.agent
        tokens = None
        if self.token_capped or request.daily_token_cap is not None or request.hourly_token_cap is not None:
            tokens = TokenWindows(
                self.day_tokens, self.hour_tokens, self.daily_tokens_declared, self.hourly_tokens_declared
            )
        return GateSnapshot(
            chain=[RunInfo(*row) for row in self.runs],
            halts=halts_for(db, agent, ids) if self.halted else (),
            breaker=self.breaker,
            rate=fetch_rate(db, agent, request.rate_limit.action) if request.rate_limit else None,
            day_micros=self.day_micros,
            hour_micros=self.hour_micros,
            action_failures=self.action_failures,
            daily_declared=self.daily_declared,
            hourly_declared=self.hourly_declared,
            tokens=tokens,
        )

    def add(self, changes: _GateChanges) -> None:
        """Add what ``changes`` will write to the runs of the chain and to the day and the hour."""
        for run in self.runs:
            change = changes.runs.get(run[0])
            if change is not None:
                reserved, spent, reserved_tokens, spent_tokens = change
                run[_RESERVED] += reserved
                run[_SPENT] += spent
                run[_RESERVED_TOKENS] += reserved_tokens
                run[_SPENT_TOKENS] += spent_tokens
        agent, _, _, _, day_key, minute = self.key
        day = changes.days.get((agent, day_key))
        if day is not None:
            self.day_micros += day[0] + day[1]
            self.day_tokens += day[2] + day[3]
        oldest = minute - HOUR_MINUTES
        for (owner, at), (reserved, spent, reserved_tokens, spent_tokens) in changes.minutes.items():
            if owner == agent and oldest < at <= minute:
                self.hour_micros += reserved + spent
                self.hour_tokens += reserved_tokens + spent_tokens

    def add_reservation(self, estimate: int, tokens: int, now: float) -> None:
        """Add one reservation of ``estimate`` and ``tokens`` at ``now`` (and its step) to the chain,
        the day and the hour (the view's own: the books' clock did not go back)."""
        for run in self.runs:
            run[_RESERVED] += estimate
        self.runs[0][_STEPS] += 1
        self.day_micros += estimate
        self.hour_micros += estimate
        self.latest_at = now
        if tokens:
            for run in self.runs:
                run[_RESERVED_TOKENS] += tokens
            self.day_tokens += tokens
            self.hour_tokens += tokens


_Change = tuple[int, int, int, int]
"""What one gate adds to a run row or a window bucket: (reserved, spent) money, (reserved, spent) tokens."""


class _GateChanges:
    """Additions to run rows and agent windows gathered in one gate, written at its end.

    Every key touched is written (even with a zero sum), as separate settle and reserve
    statements would, so the rows that exist are the same either way. The token columns are
    written only when a change moved tokens.
    """

    __slots__ = ("runs", "days", "minutes", "tokens")

    def __init__(self) -> None:
        self.runs: dict[str, _Change] = {}
        """run id -> what to add."""
        self.days: dict[tuple[str, str], _Change] = {}
        """(agent, day_key) -> what to add."""
        self.minutes: dict[tuple[str, int], _Change] = {}
        """(agent, minute) -> what to add."""
        self.tokens = False
        """A change moved tokens."""

    def add(self, agent: str, run_ids: Sequence[str], day_key: str, minute: int, change: _Change) -> None:
        """Add ``change`` to the runs, the agent's day and its minute."""
        if change[2] or change[3]:
            self.tokens = True
        runs, days, minutes = self.runs, self.days, self.minutes
        for run_id in run_ids:
            old = runs.get(run_id)
            runs[run_id] = change if old is None else _plus(old, change)
        old = days.get((agent, day_key))
        days[agent, day_key] = change if old is None else _plus(old, change)
        old = minutes.get((agent, minute))
        minutes[agent, minute] = change if old is None else _plus(old, change)

    def write(self, db: SQL, *, stepped_run: str | None, at: float = 0.0) -> None:
        """Apply the additions: one ``UPDATE runs`` per distinct change, one upsert for the buckets.

        ``stepped_run`` (the run that reserved, if any) also gets one more step; ``at`` (the
        time of its reservation) becomes the buckets' latest time if it is later.
        """
        width = 4 if self.tokens else 2
        groups: dict[tuple[int, ...], list[str]] = {}
        for run_id, change in self.runs.items():
            groups.setdefault(change[:width], []).append(run_id)
        for amounts, run_ids in groups.items():
            sql = _UPDATE_RUNS_TOKENS if self.tokens else _UPDATE_RUNS
            if len(run_ids) > 1:
                sql = sql.replace("IN (?)", f"IN ({','.join('?' * len(run_ids))})")
            db.execute(sql, (*amounts, stepped_run, *run_ids))
        width += 3  # agent, bucket, at
        buckets = [
            (agent, day_bucket(day_key), spent, reserved, at, spent_tokens, reserved_tokens)[:width]
            for (agent, day_key), (reserved, spent, reserved_tokens, spent_tokens) in self.days.items()
        ]
        buckets += [
            (agent, minute_bucket(minute), spent, reserved, at, spent_tokens, reserved_tokens)[:width]
            for (agent, minute), (reserved, spent, reserved_tokens, spent_tokens) in self.minutes.items()
        ]
        _add_to_buckets(db, buckets)


def _plus(old: _Change, change: _Change) -> _Change:
    return old[0] + change[0], old[1] + change[1], old[2] + change[2], old[3] + change[3]


def _add_to_buckets(db: SQL, buckets: Sequence[tuple[Any, ...]]) -> None:
    """Add to each (agent, bucket, spent, reserved, at[, spent tokens, reserved tokens]), creating the
    rows that are missing, and keep the later of each bucket's latest reservation time and ``at``.
    Buckets without the token fields leave the token columns alone."""
    if not buckets:
        return
    head, marks, tail = _UPSERT_TOKENS if len(buckets[0]) > 5 else _UPSERT
    sql = head + ",".join([marks] * len(buckets)) + tail
    db.execute(sql, [value for bucket in buckets for value in bucket])


_UPSERT = (
    "INSERT INTO agent_windows (agent, bucket, spent_micros, reserved_micros, at) VALUES ",
    "(?,?,?,?,?)",
    " ON CONFLICT (agent, bucket) DO UPDATE SET spent_micros = spent_micros + excluded.spent_micros,"
    " reserved_micros = reserved_micros + excluded.reserved_micros, at = max(at, excluded.at)",
)
"""An upsert adding to buckets: its head, one row's marks, its tail."""
_UPSERT_TOKENS = (
    _UPSERT[0].replace("at)", "at, spent_tokens, reserved_tokens)"),
    "(?,?,?,?,?,?,?)",
    _UPSERT[2] + ", spent_tokens = spent_tokens + excluded.spent_tokens,"
    " reserved_tokens = reserved_tokens + excluded.reserved_tokens",
)
"""The same, adding tokens too."""


def _prune_minutes(db: SQL, agent: str, minute: int) -> None:
    """Drop the agent's minute buckets that have left the rolling hour (days stay)."""
    db.execute(
        "DELETE FROM agent_windows WHERE agent = ? AND bucket > 'minute:' AND bucket <= ?",
        (agent, minute_bucket(minute - HOUR_MINUTES)),
    )
