"""The Redis store's Lua scripts, the records they take and give by name, and how they are run.

Each deciding operation is one script: ``gate``, ``settle``, ``open_run``, and the operator's
``record_start``, ``claim`` and ``create_identity``, kept in ``lua/*.lua`` (package data). A
script is ``common.lua``, then (gate and settle) ``settle_one.lua``, then its own file, after a
few generated lines; :func:`script_text` returns it as Redis runs it, with the line numbers Redis
quotes in an error (``python -m agentfuse.runtime.stores.redis_scripts gate`` prints it).

Arguments go by name. A :class:`Record` lists the fields of one table once, in wire order; Python
sends it as a JSON array in that order, and the Lua files read it by name: a local declared with
its record (``local req = wire[2]  --: GateRequest``) has its fields (``req.estimate_micros``,
``req.breaker.key``) turned into array indices when the script is loaded, and an optional field
reads as ``false`` when Python sent ``None``. A field the record lacks fails the load. Nothing is
built per call: Redis runs the whole text on every ``EVALSHA``, so tables keyed by name (or
functions making them) would cost every gate their construction (bench/RESULTS.md).

The records of the store's requests are the fields of its values
(:mod:`agentfuse.runtime.stores.base`): a field added there is read in Lua once it is listed
here. Every script gets ``[store, request]``: the handle's :data:`STORE` record and the
operation's record. The replies Python reads on the hot path (:data:`GATE_ADMITTED`,
:data:`SETTLED`) are records too, packed from a Lua table by a generated function.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import redis
from redis.backoff import ExponentialBackoff

from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.stores.redis_records import halt_text

DAY_TTL_S = 9 * 86400
"""Day buckets outlive ``status``'s week by a day."""


class Record:
    """One table passed between Python and Lua: its name and its fields, in wire order.

    ``optional`` names the fields that may be ``None``, ``nested`` those that hold another record,
    ``lists`` those that hold a list of records; ``encoders`` turn a field's Python value into its
    wire form where plain JSON does not do (default: a nested record's own fields).
    """

    def __init__(
        self,
        name: str,
        fields: Sequence[str],
        *,
        optional: Sequence[str] = (),
        nested: Mapping[str, Record] | None = None,
        lists: Mapping[str, Record] | None = None,
        encoders: Mapping[str, Callable[[Any], Any]] | None = None,
    ) -> None:
        self.name = name
        self.fields = tuple(fields)
        self.optional = frozenset(optional)
        self.nested = dict(nested or {})
        self.lists = dict(lists or {})
        unknown = (self.optional | set(self.nested) | set(self.lists) | set(encoders or {})) - set(self.fields)
        if unknown or len(set(self.fields)) != len(self.fields):
            raise ValueError(f"record {name}: fields {sorted(unknown)} not listed, or listed twice")
        convert: dict[str, Callable[[Any], Any]] = {}
        for field, record in self.nested.items():
            convert[field] = record.optional_values
        for field, record in self.lists.items():
            convert[field] = record.list_values
        convert.update(encoders or {})
        self._converters = tuple((self.fields.index(field), encode) for field, encode in convert.items())
        self._getter = operator.attrgetter(*self.fields)
        self._names = frozenset(self.fields)

    def __repr__(self) -> str:
        return f"Record({self.name!r}, {self.fields!r})"

    def _sent(self, values: list[Any]) -> list[Any]:
        for index, encode in self._converters:
            values[index] = encode(values[index])
        return values

    def values(self, source: object) -> list[Any]:
        """The record of ``source``'s attributes of the same names, as sent."""
        got = self._getter(source)
        return self._sent(list(got) if len(self.fields) > 1 else [got])

    def optional_values(self, source: object | None) -> list[Any] | None:
        return None if source is None else self.values(source)

    def list_values(self, sources: Sequence[object]) -> list[list[Any]]:
        return [self.values(source) for source in sources]

    def pack(self, **values: Any) -> list[Any]:
        """The record of these field values (every field, nothing else), as sent."""
        if values.keys() != self._names:
            raise TypeError(f"record {self.name} takes {self.fields}, got {tuple(values)}")
        return self._sent([values[field] for field in self.fields])

    def unpack(self, values: Sequence[Any]) -> dict[str, Any]:
        """A record a script returned, by field name."""
        if len(values) != len(self.fields):
            raise ValueError(f"record {self.name} has {len(self.fields)} fields, got {len(values)}: {values!r}")
        return dict(zip(self.fields, values))

    def index(self, field: str) -> int:
        """The field's place in the Lua array (from 1)."""
        try:
            return self.fields.index(field) + 1
        except ValueError:
            raise ValueError(f"record {self.name} has no field {field!r} (fields: {', '.join(self.fields)})") from None

    def lua_packer(self) -> str:
        """``local function Name(t)``: a table keyed by the field names, as the array to return."""
        fields = ", ".join(f"t.{field}" for field in self.fields)
        return f"local function {self.name}(t) return {{{fields}}} end"


STORE = Record("Store", ("prefix", "client_clock", "pid", "host", "pinned"), optional=("pinned",))
"""The handle's part of every call: key prefix, whose clock, the reserving process, the pinned
identity of the agent's books (``None``: not pinned)."""
BREAKER_SPEC = Record("BreakerSpec", ("key", "failure_threshold", "cooldown_s", "probe_lease_s"))
RATE_LIMIT_SPEC = Record("RateLimitSpec", ("action", "max", "window_s", "cooldown_s"))
HALT = Record("Halt", ("run_id", "text"))
SETTLEMENT = Record(
    "Settlement",
    ("reservation_id", "agent", "run_id", "action", "cost_micros", "now", "outcome", "breaker_counts",
     "breaker", "halt", "tokens"),
    optional=("halt", "tokens"),
    nested={"breaker": BREAKER_SPEC, "halt": HALT},
    encoders={"halt": lambda halt: None if halt is None else [halt.run_id, halt_text(halt)]},
)
GATE_REQUEST = Record(
    "GateRequest",
    ("reservation_id", "agent", "run_id", "action", "estimate_micros", "now", "day_key", "minute", "breaker",
     "rate_limit", "daily_cap_micros", "hourly_cap_micros", "max_steps", "max_retries_total", "timeout_s",
     "max_attempts", "settle_first", "estimate_tokens", "daily_token_cap", "hourly_token_cap"),
    optional=("rate_limit", "daily_cap_micros", "hourly_cap_micros", "max_steps", "max_retries_total", "timeout_s",
              "max_attempts", "daily_token_cap", "hourly_token_cap"),
    nested={"breaker": BREAKER_SPEC, "rate_limit": RATE_LIMIT_SPEC},
    lists={"settle_first": SETTLEMENT},
)
OPEN_RUN = Record(
    "OpenRun", ("run_id", "agent", "parent_id", "cap_micros", "now", "token_cap"),
    optional=("parent_id", "cap_micros", "token_cap"),
)
START = Record("Start", ("agent", "process", "now", "window_s", "max_starts", "cooldown_s"))
CLAIM = Record("Claim", ("agent", "message_id", "now", "ttl_s", "value"))
NEW_IDENTITY = Record("NewIdentity", ("agent", "identity", "created_at"))
GATE_ADMITTED = Record(
    "GateAdmitted",
    ("probe", "breaker_transition", "rate_limit_tripped", "remaining_s", "usage_fraction", "breaker_clean",
     "tokens_capped"),
)
"""An allowed gate's answer (the fields of ``GateResult``), joined with ``|`` into one bulk string."""
SETTLED = Record(
    "Settled",
    ("now", "action_failures", "run_failures", "state", "failures", "opened", "probe", "probe_exp", "after"),
)
"""A settlement's answer: its time, the failure counts, the breaker's hash before, its state after."""
RECORDS = {
    record.name: record
    for record in (STORE, BREAKER_SPEC, RATE_LIMIT_SPEC, HALT, SETTLEMENT, GATE_REQUEST, OPEN_RUN, START, CLAIM,
                   NEW_IDENTITY, GATE_ADMITTED, SETTLED)
}
REPLIES = (GATE_ADMITTED, SETTLED)
"""The records Lua returns: a script that names one gets its packer."""

PARTS = {
    "open_run": ("common", "open_run"),
    "gate": ("common", "settle_one", "gate"),
    "settle": ("common", "settle_one", "settle"),
    "record_start": ("common", "record_start"),
    "claim": ("common", "claim"),
    "create_identity": ("common", "create_identity"),
}
"""Each script's Lua files, in order."""

_DECLARATION = re.compile(
    r"^[ \t]*local[ \t]+(?:function[ \t]+\w+[ \t]*\((?P<params>[^)]*)\)|(?P<names>[\w \t,]+?)[ \t]*=.*?)"
    r"[ \t]*--:[ \t]*(?P<records>[\w \t,]+?)[ \t]*$",
    re.MULTILINE,
)
"""``local a, b = ...  --: RecordA, RecordB`` or ``local function f(a)  --: RecordA``."""


def lua_file(name: str) -> str:
    """One file of ``lua/`` (package data)."""
    return resources.files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def declarations(text: str) -> dict[str, Record]:
    """The locals a Lua file declares with their records (``--: Record``)."""
    declared: dict[str, Record] = {}
    for match in _DECLARATION.finditer(text):
        names = [name.strip() for name in (match["params"] or match["names"]).split(",")]
        records = [record.strip() for record in match["records"].split(",")]
        if len(names) != len(records) or any(record not in RECORDS for record in records):
            raise ValueError(f"bad record declaration in Lua: {match[0].strip()!r}")
        for name, record in zip(names, records):
            if declared.setdefault(name, RECORDS[record]) is not RECORDS[record]:
                raise ValueError(f"Lua local {name!r} is declared as two records")
    return declared


def compile_records(text: str, declared: Mapping[str, Record]) -> str:
    """Turn the fields read from declared record locals into array indices (``req.breaker.key``
    into ``req[9][1]``) in the code, not the comments; an optional field reads ``null`` (JSON's
    ``None``) as ``false``. A field the record lacks is a ``ValueError``."""
    if not declared:
        return text

    def resolve(match: re.Match[str]) -> str:
        record: Record | None = declared[match["name"]]
        out, optional = match["name"], False
        for field in match["fields"].split(".")[1:]:
            if record is None:  # past the records: a plain Lua table
                out, optional = out + "." + field, False
                continue
            out, optional = out + f"[{record.index(field)}]", field in record.optional
            record = record.nested.get(field)
        return f"({out} ~= null and {out})" if optional else out

    names = "|".join(sorted(map(re.escape, declared), key=len, reverse=True))
    field_reads = re.compile(rf"(?<![\w.:])(?P<name>{names})(?P<fields>(?:\.[A-Za-z_]\w*)+)")
    lines = []
    for line in text.split("\n"):
        code, dashes, comment = line.partition("--")
        lines.append(field_reads.sub(resolve, code) + dashes + comment)
    return "\n".join(lines)


def script_text(name: str) -> str:
    """The whole text of one script, as Redis runs it: each file's record fields as indices (the
    locals ``common.lua`` declares hold in every file), after the reply packers the script uses."""
    files = [lua_file(part) for part in PARTS[name]]
    shared = declarations(files[0])
    body = "".join(compile_records(text, {**shared, **declarations(text)}) for text in files)
    packers = [record.lua_packer() for record in REPLIES if re.search(rf"\b{record.name}\(", body)]
    head = [
        "-- generated by agentfuse/runtime/stores/redis_scripts.py: reply packers, record fields as indices",
        "local null = cjson.null",
        f"local DAY_TTL_S = {DAY_TTL_S}",
        *packers,
    ]
    return "\n".join(head) + "\n" + body


class Script:
    """One script's text and SHA-1 (what ``EVALSHA`` names it by)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.text = script_text(name)
        self.sha = hashlib.sha1(self.text.encode("utf-8")).hexdigest()


@functools.cache
def scripts() -> dict[str, Script]:
    """Every script, read and compiled once per process (the texts never change while it runs)."""
    return {name: Script(name) for name in PARTS}


class ScriptRunner:
    """Runs scripts with ``EVALSHA`` on a connection each thread holds (a pool checkout costs more
    than the call), loading a script the server does not know, with bounded retries."""

    def __init__(self, client: Any, url: str, *, retries: int, backoff: ExponentialBackoff) -> None:
        self._client = client
        self._url = url
        self._retries = retries
        self._backoff = backoff
        self._scripts = scripts()
        self._local = threading.local()
        self._connections: list[Any] = []  # redis-py connections (untyped there)
        self._lock = threading.Lock()

    def _unavailable(self, exc: Exception) -> StoreUnavailable:
        return StoreUnavailable(f"Redis store {self._url} is unavailable: {type(exc).__name__}: {exc}")

    def _connection(self) -> Any:
        """This thread's own connection; a forked child gets a new one (the parent's is the parent's)."""
        held = getattr(self._local, "connection", None)
        if held is not None and held[0] == os.getpid():
            return held[1]
        pool = self._client.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        self._local.connection = (os.getpid(), connection)
        with self._lock:
            self._connections.append(connection)
        return connection

    def run(self, name: str, key: str, store: list[Any], request: list[Any]) -> Any:
        """Run script ``name`` on ``[store, request]`` (``key``: the agent's hash-tagged key base).

        A retried gate whose first attempt did run finds its reservation and says ``duplicate``,
        so a retry never reserves twice.
        """
        script = self._scripts[name]
        blob = json.dumps([store, request])
        failures = 0
        while True:
            connection = self._connection()
            try:
                connection.send_command("EVALSHA", script.sha, 1, key, blob)
                return connection.read_response()
            except redis.exceptions.NoScriptError:
                try:
                    self._client.script_load(script.text)
                except redis.RedisError as exc:
                    raise self._unavailable(exc) from None
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                connection.disconnect()
                failures += 1
                if failures > self._retries:
                    raise self._unavailable(exc) from None
                time.sleep(self._backoff.compute(failures))
            except redis.RedisError as exc:
                raise self._unavailable(exc) from None

    def close(self) -> None:
        """Disconnect every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.disconnect()
        self._local = threading.local()


if __name__ == "__main__":  # print one script as Redis runs it, with line numbers
    import sys

    for number, line in enumerate(script_text(sys.argv[1] if len(sys.argv) > 1 else "gate").splitlines(), 1):
        print(f"{number:4} {line}")
