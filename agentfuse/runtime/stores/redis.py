"""The shared store: one Redis (standalone or Sentinel-fronted) for many processes and hosts.

Every deciding operation (``open_run``, ``gate``, ``settle``) is ONE Lua script
(:mod:`agentfuse.runtime.stores.redis_scripts`, ``lua/*.lua``), loaded once and run by SHA, so no
two workers can pass a check with the same last cent. The gate script mirrors
:func:`agentfuse.runtime.decisions.decide_gate` and the breaker rules. An allowed call gets a
one-line answer; a refusal returns the state it was decided on, and the Python side replays the
pure decision on that state to build the refusal's message and figures and to check that script
and rules agree (tests/test_store_differential.py compares both stores decision by decision).

Cost per guarded call: one round trip (a deferred settlement rides along with the next gate),
on a connection held by the thread, with every argument in one JSON bulk. Other reads and
writes go through redis-py's pool.

Time: by default the scripts read Redis ``TIME``, so rolling windows, cooldowns, probe leases and
deadlines do not depend on any worker's clock (clock skew between hosts cannot widen a window).
``?clock=client`` in the URL uses the ``now`` the guard passes instead (tests with an injected
clock). The calendar day of the daily cap is the guard's (policy time zone).

Keys: ``{prefix}:{{agent}}:...``; the braces are a hash tag, so one agent's keys share a slot
(the records: :mod:`agentfuse.runtime.stores.redis_records`). Money is integer micro-dollars
(``HINCRBY``), tokens integer counts beside it; the minute buckets of the hourly window expire
after an hour, rate-limit windows after their window and cooldown, day buckets after nine days
(``status`` shows a week). Run rows and their ledgers are kept, like the SQLite store's.

A store that cannot be reached raises :class:`~agentfuse.runtime.errors.StoreUnavailable`, never a
redis-py exception; messages show the URL with its password replaced by ``***``. The ``durability``
argument is accepted for symmetry: durability is the server's (``appendonly yes``,
``appendfsync always`` for power-loss safety).
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from agentfuse.runtime import breaker as breaker_rules
from agentfuse.runtime.decisions import decide_gate
from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.redaction import redact as redact_url
from agentfuse.runtime.stores.books import SEEN_FILE_NAME, identity_changed
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
    DaySpend,
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
)
from agentfuse.runtime.stores.redis_records import (
    BREAKER_FIELDS,
    RUN_FIELDS,
    breaker_from,
    cap_declaration_from,
    cap_value,
    entry_time,
    gate_snapshot,
    halt_from,
    halt_text,
    identity_from,
    ledger_entry,
    reservation_from,
    run_from,
)
from agentfuse.runtime.stores.redis_scripts import (
    CLAIM,
    DAY_TTL_S,
    GATE_ADMITTED,
    GATE_REQUEST,
    NEW_IDENTITY,
    OPEN_RUN,
    SETTLED,
    SETTLEMENT,
    START,
    STORE,
    ScriptRunner,
)

__all__ = ["DAY_TTL_S", "RedisStore", "RedisStoreError", "parse_url", "redact_url"]

DEFAULT_PREFIX = "agentfuse"
CLOCKS = ("redis", "client")
HOUR_MINUTES = 60
CONNECT_RETRIES = 3
DEFAULT_SOCKET_TIMEOUT_S = 5.0
DEFAULT_CONNECT_TIMEOUT_S = 2.0

T = TypeVar("T")


class RedisStoreError(RuntimeError):
    """The Lua scripts and the Python decision rules disagree: a bug, never a normal refusal."""


def parse_url(url: str) -> tuple[str, str, str]:
    """Split our own options off a Redis URL: returns (redis-py URL, key prefix, clock)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("redis", "rediss"):
        raise ValueError(f"not a Redis URL: {redact_url(url)!r}; use redis://host:port/db or rediss://")
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = {key: value for key, value in query if key in ("prefix", "clock")}
    rest = [(key, value) for key, value in query if key not in ("prefix", "clock")]
    prefix = unquote(options.get("prefix", DEFAULT_PREFIX))
    clock = options.get("clock", "redis")
    if clock not in CLOCKS:
        raise ValueError(f"Redis URL option clock={clock!r} must be one of {', '.join(CLOCKS)}")
    if not prefix or any(ch in prefix for ch in "{}*?[]"):
        raise ValueError(f"Redis URL option prefix={prefix!r} must be non-empty without {{}}*?[]")
    return urlunsplit(parts._replace(query=urlencode(rest))), prefix, clock


class RedisStore:
    """:class:`~agentfuse.runtime.stores.base.Store` on one Redis server, shared by every host."""

    def __init__(
        self,
        url: str = "redis://localhost:6379/0",
        *,
        prefix: str | None = None,
        clock: str | None = None,
        retries: int = CONNECT_RETRIES,
    ) -> None:
        redis_url, url_prefix, url_clock = parse_url(url)
        self.url = redact_url(url)
        self.prefix = prefix or url_prefix
        self.clock = clock or url_clock
        if self.clock not in CLOCKS:
            raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, got {self.clock!r}")
        self._backoff = ExponentialBackoff(cap=0.5, base=0.05)
        options: dict[str, Any] = {
            "decode_responses": True,
            "retry": Retry(self._backoff, retries),
        }
        query = dict(parse_qsl(urlsplit(redis_url).query))
        if "protocol" not in query:
            options["protocol"] = 2  # the lighter parser: a guarded call makes one round trip
        if "socket_timeout" not in query:
            options["socket_timeout"] = DEFAULT_SOCKET_TIMEOUT_S
        if "socket_connect_timeout" not in query:
            options["socket_connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
        self._client: Any  # redis-py types replies as bytes | str; decode_responses=True makes them str
        try:
            self._client = redis.Redis.from_url(redis_url, **options)
        except (ValueError, redis.RedisError) as exc:
            raise ValueError(f"bad Redis URL {self.url!r}: {exc}") from None
        self.host = socket.gethostname().replace("|", "_")
        """Recorded with each reservation of this process (``|`` separates ledger fields)."""
        self._scripts = ScriptRunner(self._client, self.url, retries=retries, backoff=self._backoff)
        self._pins: dict[str, str] = {}
        """agent -> the books' identity this handle checked (:meth:`pin_identity`)."""
        self._durability: list[str] | None = None
        """What the server's configuration risks, once asked (:meth:`durability_warnings`)."""
        address = urlsplit(redis_url)
        self._books_key = (
            f"{address.scheme}://{address.hostname or 'localhost'}:{address.port or 6379}"
            f"/{address.path.strip('/') or '0'}?prefix={self.prefix}"
        )
        """This store in a seen record: server, database and prefix, never a password."""

    @classmethod
    def from_url(cls, url: str, *, durability: str = "normal") -> RedisStore:
        """``durability`` is the server's own (AOF settings); accepted for symmetry."""
        return cls(url)

    def __repr__(self) -> str:
        return f"RedisStore({self.url!r}, prefix={self.prefix!r}, clock={self.clock!r})"

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, action: Callable[[], T]) -> T:
        """Run ``action``; every redis-py error becomes :class:`StoreUnavailable`."""
        try:
            return action()
        except redis.RedisError as exc:
            raise StoreUnavailable(
                f"Redis store {self.url} is unavailable: {type(exc).__name__}: {exc}"
            ) from None

    def _run(self, script: str, agent: str, request: list[Any]) -> Any:
        """Run one script for ``agent`` on ``request`` (a record of redis_scripts)."""
        store = STORE.pack(
            prefix=self.prefix, client_clock=self.clock == "client", pid=os.getpid(), host=self.host,
            pinned=self._pins.get(agent),
        )
        return self._scripts.run(script, self._base(agent), store, request)

    def _base(self, agent: str) -> str:
        return f"{self.prefix}:{{{agent}}}"

    def key(self, agent: str, *parts: str) -> str:
        """The Redis key of one of an agent's records, e.g. ``key("a", "run", run_id)``."""
        return ":".join((self._base(agent), *parts))

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
        request = OPEN_RUN.pack(
            run_id=run_id, agent=agent, parent_id=parent_id or None, cap_micros=cap_micros, now=float(now),
            token_cap=token_cap,
        )
        reply = self._run("open_run", agent, request)
        if reply[0] == "noparent":
            raise KeyError(parent_id)
        return run_from(run_id, reply[1], reply[2:])

    def get_run(self, run_id: str) -> RunInfo | None:
        agent = self._call(lambda: self._client.hget(f"{self.prefix}:runs", run_id))
        if agent is None:
            return None
        fields = self._call(lambda: self._client.hmget(self.key(agent, "run", run_id), list(RUN_FIELDS)))
        return run_from(run_id, agent, fields) if fields[3] is not None else None

    # -- gate and settle ----------------------------------------------------------------------

    def gate(self, request: GateRequest) -> GateResult:
        reply = self._run("gate", request.agent, GATE_REQUEST.values(request))
        if isinstance(reply, str):
            admitted = GATE_ADMITTED.unpack(reply.split("|"))
            transition, remaining = admitted["breaker_transition"], admitted["remaining_s"]
            return GateResult(
                probe=admitted["probe"] == "1",
                breaker_transition=BreakerState(transition) if transition else None,
                rate_limit_tripped=admitted["rate_limit_tripped"] == "1",
                remaining_s=float(remaining) if remaining else None,
                usage_fraction=float(admitted["usage_fraction"]),
                breaker_clean=admitted["breaker_clean"] == "1",
                tokens_capped=admitted["tokens_capped"] == "1",
            )
        status = reply[0]
        if status == "identity":
            message = identity_changed(self, request.agent, self._pins[request.agent], reply[1] or None)
            raise StoreUnavailable(message, reason="store_lost")
        if status == "norun":
            raise StoreUnavailable(
                f"run {request.run_id} is not in the Redis store {self.url} (its data was lost:"
                " run Redis with appendonly yes); refusing rather than spending untracked"
            )
        if status == "duplicate":
            raise StoreUnavailable(
                f"reservation {request.reservation_id} was already made (a lost reply was retried);"
                " it stays counted until reconciled"
            )
        snapshot, now, minute, day_key, lua_kind = gate_snapshot(reply[1])
        if now != request.now or minute != request.minute or day_key != request.day_key:
            request = dataclasses.replace(request, now=now, minute=minute, day_key=day_key)
        decision = decide_gate(snapshot, request)
        python_kind = decision.result.refusal.kind if decision.result.refusal else "ok"
        if python_kind != lua_kind:
            raise RedisStoreError(
                f"gate script decided {lua_kind!r} but the rules decide {python_kind!r}"
                f" for reservation {request.reservation_id}"
            )
        return decision.result

    def settle(self, settlement: Settlement) -> SettleResult:
        reply = self._run("settle", settlement.agent, SETTLEMENT.values(settlement))
        if reply[0] != "ok":
            return SettleResult(settled=False)
        settled = SETTLED.unpack(reply[1:])
        now = float(settled["now"])
        before = breaker_from([settled[name] for name in BREAKER_FIELDS])
        record, transition = breaker_rules.after_call(
            before,
            settlement.breaker,
            now,
            settlement.reservation_id,
            settlement.outcome,
            settlement.breaker_counts,
        )
        if record.state.value != settled["after"]:
            raise RedisStoreError(
                f"settle script left the breaker {settled['after']!r} but the rules say {record.state.value!r}"
            )
        return SettleResult(
            settled=True,
            breaker_state=record.state,
            breaker_transition=transition,
            consecutive_failures=record.consecutive_failures,
            action_failures=int(settled["action_failures"]),
            run_failures=int(settled["run_failures"]),
        )

    # -- halts --------------------------------------------------------------------------------

    def halt(self, record: HaltRecord) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            pipe.hset(self.key(record.agent, "halts"), record.run_id, halt_text(record))
            pipe.sadd(f"{self.prefix}:agents", record.agent)
            pipe.execute()

        self._call(write)

    def resume(self, agent: str, run_id: str = AGENT_WIDE) -> int:
        return int(self._call(lambda: self._client.hdel(self.key(agent, "halts"), run_id)))

    def halts(self, agent: str | None = None) -> list[HaltRecord]:
        def read() -> list[HaltRecord]:
            agents = [agent] if agent is not None else sorted(self._client.smembers(f"{self.prefix}:agents"))
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.hgetall(self.key(name, "halts"))
            records = [
                halt_from(name, run_id, text)
                for name, rows in zip(agents, pipe.execute())
                for run_id, text in rows.items()
            ]
            return sorted(records, key=lambda halt: (halt.created_at, halt.agent, halt.run_id))

        return self._call(read)

    # -- reads --------------------------------------------------------------------------------

    def get_breaker(self, agent: str, key: str = "") -> BreakerRecord:
        fields = self._call(
            lambda: self._client.hmget(
                self.key(agent, "breaker", key), list(BREAKER_FIELDS)
            )
        )
        return breaker_from(fields)

    def agent_totals(self, agent: str, *, day_key: str, minute: int) -> AgentTotals:
        def read() -> AgentTotals:
            hour = [str(m) for m in range(minute - HOUR_MINUTES + 1, minute + 1)]
            pipe = self._client.pipeline(transaction=True)
            pipe.hmget(self.key(agent, "day", day_key), ["spent", "reserved", "tspent", "treserved"])
            pipe.hmget(self.key(agent, "minutes"), hour)
            pipe.hmget(self.key(agent, "tminutes"), hour)
            day, minutes, token_minutes = pipe.execute()
            return AgentTotals(
                sum(int(v) for v in day[:2] if v is not None),
                sum(int(v) for v in minutes if v is not None),
                sum(int(v) for v in day[2:] if v is not None),
                sum(int(v) for v in token_minutes if v is not None),
            )

        return self._call(read)

    def unsettled(self, run_id: str | None = None) -> int:
        def read() -> int:
            if run_id is not None:
                agent = self._client.hget(f"{self.prefix}:runs", run_id)
                if agent is None:
                    return 0
                entries = self._client.hvals(self.key(agent, "ledger", run_id))
                return sum(1 for entry in entries if entry.startswith("u|"))
            agents = sorted(self._client.smembers(f"{self.prefix}:agents"))
            values = self._client.mget([self.key(name, "open") for name in agents]) if agents else []
            return sum(int(v) for v in values if v is not None)

        return self._call(read)

    def ledger(self, agent: str, run_id: str) -> dict[str, tuple[int, int | None]]:
        """The run's own ledger: reservation id -> (estimate, cost or None while unsettled)."""
        entries = self._call(lambda: self._client.hgetall(self.key(agent, "ledger", run_id)))
        return {reservation_id: ledger_entry(entry) for reservation_id, entry in entries.items()}

    # -- operator tools -----------------------------------------------------------------------

    def _agents(self) -> list[str]:
        return sorted(self._client.smembers(f"{self.prefix}:agents"))

    def _scan(self, agent: str, *parts: str) -> list[str]:
        """Keys of the agent's records under ``parts`` (one SCAN; agent names are escaped)."""
        escaped = "".join("\\" + char if char in "*?[]\\" else char for char in self._base(agent))
        pattern = ":".join((escaped, *parts)) + ":*"
        return sorted(self._client.scan_iter(match=pattern, count=1000))

    def record_heartbeat(self, beat: Heartbeat) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            value = json.dumps({"run_id": beat.run_id, "at": beat.at})
            pipe.hset(self.key(beat.agent, "heartbeats"), f"{beat.host}|{beat.pid}", value)
            pipe.sadd(f"{self.prefix}:agents", beat.agent)
            pipe.execute()

        self._call(write)

    def heartbeats(self, agent: str | None = None) -> list[Heartbeat]:
        def read() -> list[Heartbeat]:
            agents = [agent] if agent is not None else self._agents()
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.hgetall(self.key(name, "heartbeats"))
            beats = []
            for name, rows in zip(agents, pipe.execute()):
                for process, text in rows.items():
                    host, _, pid = process.rpartition("|")
                    value = json.loads(text)
                    beats.append(Heartbeat(name, value["run_id"], int(pid), host, float(value["at"])))
            return sorted(beats, key=lambda beat: beat.at, reverse=True)

        return self._call(read)

    def record_start(self, agent: str, *, pid: int, host: str, now: float, spec: RestartSpec) -> StartCheck:
        request = START.pack(
            agent=agent, process=f"{host}|{pid}", now=float(now), window_s=float(spec.window_s),
            max_starts=spec.max_starts, cooldown_s=float(spec.cooldown_s),
        )
        count, until, tripped = self._run("record_start", agent, request)
        return StartCheck(int(count), float(until) if until else None, tripped == 1)

    def claim(
        self, agent: str, message_id: str, *, run_id: str, pid: int, host: str, now: float, ttl_s: float
    ) -> bool:
        value = json.dumps({"run_id": run_id, "pid": pid, "host": host, "claimed_at": now})
        request = CLAIM.pack(agent=agent, message_id=message_id, now=float(now), ttl_s=float(ttl_s), value=value)
        return bool(self._run("claim", agent, request))

    def _runs_of(self, agent: str | None) -> list[tuple[str, str]]:
        """(run id, agent) of every run, or of one agent's."""
        index = self._client.hgetall(f"{self.prefix}:runs")
        return sorted((run_id, owner) for run_id, owner in index.items() if agent is None or owner == agent)

    def list_runs(self, agent: str | None = None) -> list[RunSummary]:
        """Last activity: the run's latest reservation, settled or open (even one booked before its
        start by a clock stepped back), else its start."""

        def read() -> list[RunSummary]:
            runs = self._runs_of(agent)
            pipe = self._client.pipeline(transaction=False)
            for run_id, owner in runs:
                pipe.hmget(self.key(owner, "run", run_id), list(RUN_FIELDS))
                pipe.hvals(self.key(owner, "ledger", run_id))
            replies = pipe.execute()
            summaries = []
            for index, (run_id, owner) in enumerate(runs):
                fields, entries = replies[2 * index], replies[2 * index + 1]
                if fields[3] is None:
                    continue
                run = run_from(run_id, owner, fields)
                times = [at for at in map(entry_time, entries) if at is not None]
                open_count = sum(1 for entry in entries if entry.startswith("u|"))
                summaries.append(RunSummary(run, max(times) if times else run.started_at, open_count))
            return sorted(summaries, key=lambda summary: summary.last_activity_at, reverse=True)

        return self._call(read)

    def open_reservations(self, agent: str | None = None, run_id: str | None = None) -> list[Reservation]:
        def read() -> list[Reservation]:
            runs = [(r, a) for r, a in self._runs_of(agent) if run_id is None or r == run_id]
            pipe = self._client.pipeline(transaction=False)
            for run, owner in runs:
                pipe.hgetall(self.key(owner, "ledger", run))
            found = []
            for (run, owner), entries in zip(runs, pipe.execute()):
                opened = {rid: entry for rid, entry in entries.items() if entry.startswith("u|")}
                found += [reservation_from(rid, owner, run, entry) for rid, entry in opened.items()]
            return sorted(found, key=lambda item: item.created_at)

        return self._call(read)

    def reconcile(
        self, reservation_id: str, *, settle_as: str, reason: str, now: float
    ) -> Reconciliation | None:
        if settle_as not in ("reserved", "zero"):
            raise ValueError(f"settle_as must be 'reserved' or 'zero', got {settle_as!r}")
        found = [item for item in self.open_reservations() if item.reservation_id == reservation_id]
        if not found:
            return None
        (item,) = found
        cost = item.estimate_micros if settle_as == "reserved" else 0
        settled = self.settle(
            Settlement(
                reservation_id, item.agent, item.run_id, item.action, cost, now, Outcome.NEUTRAL,
                breaker_counts=False, tokens=None if settle_as == "reserved" else 0,
            )
        )
        if not settled.settled:
            return None  # settled in between by its process, or by another operator
        record = Reconciliation(reservation_id, item.agent, item.run_id, settle_as, cost, reason, now)
        row = json.dumps(dataclasses.asdict(record))
        self._call(lambda: self._client.rpush(f"{self.prefix}:reconciliations", row))
        return record

    def reconciliations(self, agent: str | None = None) -> list[Reconciliation]:
        rows = self._call(lambda: self._client.lrange(f"{self.prefix}:reconciliations", 0, -1))
        records = [Reconciliation(**json.loads(row)) for row in rows]
        return [record for record in records if agent is None or record.agent == agent]

    def daily_spend(self, agent: str | None = None, *, since_day: str = "") -> list[DaySpend]:
        def read() -> list[DaySpend]:
            rows = []
            for name in [agent] if agent is not None else self._agents():
                prefix = self.key(name, "day") + ":"
                for key in self._scan(name, "day"):
                    day = key[len(prefix):]
                    if day >= since_day:
                        fields = self._client.hmget(key, ["spent", "reserved", "tspent", "treserved"])
                        rows.append(DaySpend(name, day, *(int(value or 0) for value in fields)))
            return sorted(rows, key=lambda row: (row.day_key, row.agent))

        return self._call(read)

    def breakers(self, agent: str | None = None) -> list[tuple[str, str, BreakerRecord]]:
        def read() -> list[tuple[str, str, BreakerRecord]]:
            found = []
            for name in [agent] if agent is not None else self._agents():
                prefix = self.key(name, "breaker") + ":"
                for key in self._scan(name, "breaker"):
                    fields = self._client.hmget(key, list(BREAKER_FIELDS))
                    if fields[0] is not None:
                        found.append((name, key[len(prefix):], breaker_from(fields)))
            return found

        return self._call(read)

    def agents(self) -> list[str]:
        return self._call(self._agents)

    # -- the books' identity and the declared caps ------------------------------------------------

    def identity(self, agent: str) -> StoreIdentity | None:
        fields = self._call(
            lambda: self._client.hmget(self.key(agent, "identity"), ["id", "created_at", "reset_reason"])
        )
        return identity_from(agent, fields)

    def create_identity(self, agent: str, *, now: float) -> StoreIdentity:
        request = NEW_IDENTITY.pack(agent=agent, identity=uuid.uuid4().hex, created_at=repr(float(now)))
        identity = identity_from(agent, self._run("create_identity", agent, request))
        assert identity is not None
        return identity

    def reset_identity(self, agent: str, *, now: float, reason: str, previous: str) -> StoreIdentity:
        identity = StoreIdentity(agent, uuid.uuid4().hex, now, reason)
        loss = BooksLoss(agent, now, reason, previous, identity.identity)

        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            key = self.key(agent, "identity")
            pipe.delete(key)
            pipe.hset(key, mapping={"id": identity.identity, "created_at": repr(float(now)), "reset_reason": reason})
            pipe.rpush(self.key(agent, "losses"), json.dumps(dataclasses.asdict(loss)))
            pipe.sadd(f"{self.prefix}:agents", agent)
            pipe.execute()

        self._call(write)
        return identity

    def losses(self, agent: str | None = None) -> list[BooksLoss]:
        def read() -> list[BooksLoss]:
            agents = [agent] if agent is not None else self._agents()
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.lrange(self.key(name, "losses"), 0, -1)
            rows = [BooksLoss(**json.loads(row)) for found in pipe.execute() for row in found]
            return sorted(rows, key=lambda loss: loss.at)

        return self._call(read)

    def pin_identity(self, agent: str, identity: str) -> None:
        self._pins[agent] = identity

    def declare_caps(self, declaration: CapDeclaration) -> None:
        def write() -> None:
            pipe = self._client.pipeline(transaction=True)
            key = self.key(declaration.agent, "caps")
            if declaration.empty:
                pipe.hdel(key, declaration.policy)
            else:
                pipe.hset(key, declaration.policy, cap_value(declaration))
            pipe.sadd(f"{self.prefix}:agents", declaration.agent)
            pipe.execute()

        self._call(write)

    def cap_declarations(self, agent: str | None = None) -> list[CapDeclaration]:
        def read() -> list[CapDeclaration]:
            agents = [agent] if agent is not None else self._agents()
            pipe = self._client.pipeline(transaction=False)
            for name in agents:
                pipe.hgetall(self.key(name, "caps"))
            return [
                cap_declaration_from(name, policy, value)
                for name, rows in zip(agents, pipe.execute())
                for policy, value in sorted(rows.items())
            ]

        return self._call(read)

    def drop_caps(self, agent: str, policy: str) -> int:
        return int(self._call(lambda: self._client.hdel(self.key(agent, "caps"), policy)))

    def durability_warnings(self) -> list[str]:
        """Asked once per handle: persistence off, or keys that may be evicted."""
        if self._durability is None:
            self._durability = self._call(self._check_durability)
        return list(self._durability)

    def _check_durability(self) -> list[str]:
        config: dict[str, str] = {}
        try:
            for name in ("appendonly", "save", "maxmemory", "maxmemory-policy"):
                config.update(self._client.config_get(name))
        except redis.ResponseError as exc:  # CONFIG disabled or not permitted (managed Redis)
            return [
                f"cannot tell whether the Redis store {self.url} keeps its data on disk (CONFIG GET"
                f" refused: {exc}); make sure it runs with appendonly yes (docs/redis.md)"
            ]
        warnings = []
        if config.get("appendonly") != "yes" and not config.get("save"):
            warnings.append(
                f"the Redis store {self.url} keeps nothing on disk (appendonly no, save \"\"): a restart"
                " forgets every budget and halt, and agentfuse then refuses calls until an operator"
                " acknowledges the loss; run Redis with appendonly yes (docs/redis.md)"
            )
        policy = config.get("maxmemory-policy", "noeviction")
        if config.get("maxmemory", "0") != "0" and policy != "noeviction":
            warnings.append(
                f"the Redis store {self.url} may evict keys (maxmemory-policy {policy}): an evicted"
                " window forgets its spend; use maxmemory-policy noeviction (docs/redis.md)"
            )
        return warnings

    def seen_record(self, folder: Path | None) -> tuple[Path, str] | None:
        """In the policy's ``.agentfuse/`` folder; a policy built in code has none."""
        if folder is None:
            return None
        return folder / ".agentfuse" / SEEN_FILE_NAME, self._books_key

    def close(self) -> None:
        self._scripts.close()
        self._client.close()
