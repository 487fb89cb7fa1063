"""How the Redis store's records read back as the store's values (:mod:`agentfuse.runtime.stores.base`).

Keys are ``{prefix}:{{agent}}:...``. A run is a hash of :data:`RUN_FIELDS` (money in integer
micro-dollars, tokens as counts; the token fields are missing on a run written before token
caps); a breaker a hash of :data:`BREAKER_FIELDS`; a rate limit a hash of ``adm`` (admission
times, comma-separated) and ``cool``; a halt a JSON text (:func:`halt_text`) in the agent's
``halts`` hash under its run id; a ledger entry ``u|estimate|day|minute|created|pid|host|action``
while open and ``s|estimate|cost|outcome|created`` once settled, each estimate or cost
``micros:tokens`` (entries written before token caps lack ``:tokens``, settled ones written
before they kept it lack ``|created``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from agentfuse.runtime.decisions import GateSnapshot, TokenWindows
from agentfuse.runtime.stores.base import (
    BreakerRecord,
    BreakerState,
    CapDeclaration,
    HaltRecord,
    RateLimitRecord,
    Reservation,
    RunInfo,
    StoreIdentity,
)

RUN_FIELDS = (
    "parent", "pagent", "cap", "started", "spent", "reserved", "steps", "failures", "tcap", "tspent", "treserved"
)
"""A run's hash fields, in the order ``common.lua`` reads them."""
BREAKER_FIELDS = ("state", "failures", "opened", "probe", "probe_exp")


def opt_text(value: float | int | None) -> str:
    """A number as stored in a hash field, ``""`` for none."""
    return "" if value is None else repr(value)


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def _given(values: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
    """Fields a script returned by name; Lua's ``false`` (a missing hash field) as ``None``."""
    return [None if values[name] is False else values[name] for name in names]


def breaker_from(fields: Sequence[Any]) -> BreakerRecord:
    """A breaker from its hash fields (:data:`BREAKER_FIELDS`)."""
    state, failures, opened, probe, probe_exp = fields
    if state is None:
        return BreakerRecord()
    return BreakerRecord(
        BreakerState(state), int(failures or 0), _float(opened), probe or None, _float(probe_exp)
    )


def rate_from(admissions: str | None, cooldown: str | None) -> RateLimitRecord:
    times = tuple(float(t) for t in admissions.split(",")) if admissions else ()
    return RateLimitRecord(times, _float(cooldown))


def halt_text(record: HaltRecord) -> str:
    """A halt as stored: JSON with the time as exact text (the gate script writes the same)."""
    return json.dumps(
        {
            "reason": record.reason,
            "source": record.source,
            "created_at": repr(float(record.created_at)),
            "figures": dict(record.figures),
        },
        default=str,
    )


def halt_from(agent: str, run_id: str, text: str) -> HaltRecord:
    data = json.loads(text)
    figures = data.get("figures") or {}
    return HaltRecord(
        agent, run_id, data["reason"], data["source"], float(data["created_at"]),
        figures if isinstance(figures, dict) else {},
    )


def run_from(run_id: str, agent: str, fields: Sequence[Any]) -> RunInfo:
    """A run from its hash fields (:data:`RUN_FIELDS`; the token fields may be missing)."""
    parent, _parent_agent, cap, started, spent, reserved, steps, failures, *tokens = fields
    token_cap, spent_tokens, reserved_tokens = (*tokens, None, None, None)[:3]
    return RunInfo(
        run_id, agent, parent or None, int(cap) if cap is not None else None, float(started),
        int(spent), int(reserved), int(steps), int(failures),
        int(token_cap) if token_cap else None, int(spent_tokens or 0), int(reserved_tokens or 0),
    )


def reservation_from(reservation_id: str, agent: str, run_id: str, entry: str) -> Reservation:
    """An open ledger entry ``u|estimate[:tokens]|day|minute|created[|pid|host|action]`` (older ones
    lack the tokens, the process and action; the action is last, as it may hold a ``|``)."""
    fields = entry.split("|", 7)
    pid = int(fields[5]) if len(fields) > 6 and fields[5] else None
    host = fields[6] if len(fields) > 6 and fields[6] else None
    action = fields[7] if len(fields) > 7 else ""
    micros, _, tokens = fields[1].partition(":")
    return Reservation(
        reservation_id, agent, run_id, action, int(micros), float(fields[4]), pid, host, int(tokens or 0)
    )


def entry_time(entry: str) -> float | None:
    """When a ledger entry's reservation was made (``None``: settled before entries kept it)."""
    fields = entry.split("|", 5)
    return float(fields[4]) if len(fields) > 4 else None


def ledger_entry(entry: str) -> tuple[int, int | None]:
    """A ledger entry's estimate and cost (``None`` while open), in micro-dollars."""
    fields = entry.split("|")
    cost = int(fields[2].partition(":")[0]) if fields[0] == "s" else None
    return int(fields[1].partition(":")[0]), cost


def identity_from(agent: str, fields: Sequence[Any]) -> StoreIdentity | None:
    identity, created_at, reset_reason = fields
    return None if identity is None else StoreIdentity(agent, identity, float(created_at), reset_reason or None)


def cap_value(declaration: CapDeclaration) -> str:
    """One policy's declaration as stored: ``daily|hourly|declared_at|daily tokens|hourly tokens``."""
    caps = (opt_text(declaration.daily_micros), opt_text(declaration.hourly_micros))
    tokens = (opt_text(declaration.daily_tokens), opt_text(declaration.hourly_tokens))
    return "|".join((*caps, repr(float(declaration.declared_at)), *tokens))


def cap_declaration_from(agent: str, policy: str, value: str) -> CapDeclaration:
    """A stored declaration (one written before token caps has no token fields)."""
    daily, hourly, at, daily_tokens, hourly_tokens = (*value.split("|"), "", "")[:5]

    def number(text: str) -> int | None:
        return int(text) if text else None

    return CapDeclaration(
        agent, policy, number(daily), number(hourly), float(at), number(daily_tokens), number(hourly_tokens)
    )


def gate_snapshot(text: str) -> tuple[GateSnapshot, float, int, str, str]:
    """A refusing gate's JSON: (the state it decided on, its now, minute and day, its verdict)."""
    data = json.loads(text)
    halts = sorted(
        (halt_from(halt["agent"], halt["run_id"], halt["text"]) for halt in data["halts"] or ()),
        key=lambda halt: (halt.run_id, halt.agent),
    )
    chain = [run_from(run["run_id"], run["agent"], _given(run, RUN_FIELDS)) for run in data["chain"]]
    declared = {
        name: (int(cap["cap"]), cap["policy"]) for name, cap in (data["declared"] or {}).items()
    }
    rate = data["rate"]
    snapshot = GateSnapshot(
        chain=chain,
        halts=halts,
        breaker=breaker_from(_given(data["breaker"], BREAKER_FIELDS)),
        rate=rate_from(rate["adm"] or None, rate["cool"] or None),
        day_micros=int(data["day_micros"]),
        hour_micros=int(data["hour_micros"]),
        action_failures=int(data["action_failures"]),
        daily_declared=declared.get("daily"),
        hourly_declared=declared.get("hourly"),
        tokens=TokenWindows(
            int(data["day_tokens"]),
            int(data["hour_tokens"]),
            declared.get("daily_tokens"),
            declared.get("hourly_tokens"),
        ),
    )
    return snapshot, float(data["now"]), int(data["minute"]), data["day_key"], data["verdict"]
