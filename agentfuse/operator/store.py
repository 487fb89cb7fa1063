"""``agentfuse store``: acknowledge lost books (``reset``) and see or drop declared caps (``caps``).

``store reset --agent A --accept-loss`` is the only way past a refusal for lost books (reason
``store_lost`` or ``store_damaged``): it moves a damaged SQLite file aside, writes a new identity
for the agent's books marked as an acknowledged loss, and records the loss in the store and, with
``--policy``, in the event log and the alert webhook. Nothing that is still in the store is
removed: spend that survived stays counted. See docs/operations.md, "Lost books".

``store caps --agent A`` lists the daily and hourly caps every policy declared for the agent (the
strictest binds every process of it); ``--drop POLICY`` removes the declaration of a policy that
no longer runs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agentfuse.runtime import config
from agentfuse.runtime.errors import PolicyError, StoreUnavailable
from agentfuse.operator.commands import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_where, fail, open_existing, read_policy
from agentfuse.runtime.money import from_micros
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.stores import StoreURLError, open_store
from agentfuse.runtime.stores import books
from agentfuse.runtime.stores.base import BooksStore, CapDeclaration


def register(subparsers: Any) -> None:
    """Add ``store reset`` and ``store caps`` to the ``agentfuse`` command."""
    store = subparsers.add_parser(
        "store",
        help="acknowledge lost books (store reset), list or drop declared caps (store caps)",
        description="Operator actions on the store's books. See docs/operations.md.",
    )
    store.set_defaults(func=lambda args: _usage(store))
    actions = store.add_subparsers(dest="store_action", metavar="ACTION", parser_class=type(store))

    reset = actions.add_parser(
        "reset",
        help="acknowledge that the store lost an agent's books, so its calls may run again",
        description="After the store lost its data (a Redis without persistence restarted, a SQLite"
        " file emptied, deleted or damaged), every call of the agent is refused. This acknowledges the"
        " loss: a damaged SQLite file is moved aside, the agent's books get a new identity marked as"
        " reset, and the loss is recorded (store, event log, alert). What is still in the store stays.",
    )
    reset.add_argument("--agent", required=True, help="the agent whose lost books are acknowledged")
    reset.add_argument("--accept-loss", action="store_true", help="required: its spend before the loss is forgotten")
    reset.add_argument("--reason", default="", help="why (kept with the acknowledgement)")
    add_where(reset)
    reset.set_defaults(func=run_reset)

    caps = actions.add_parser(
        "caps",
        help="list the caps every policy declared for an agent; --drop one that no longer runs",
        description="Every policy that enforce() runs with declares its daily and hourly caps for its"
        " agent; the strictest declared cap binds every process of the agent. A policy that moved or"
        " no longer runs keeps its declaration until it is dropped here.",
    )
    caps.add_argument("--agent", default=None, help="only this agent (needed with --drop)")
    caps.add_argument("--drop", action="append", default=[], metavar="POLICY",
                      help="remove this policy's declaration (as listed; repeatable)")
    caps.add_argument("--json", action="store_true", help="machine-readable output")
    add_where(caps)
    caps.set_defaults(func=run_caps)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _where(args: argparse.Namespace) -> tuple[str, Policy | None] | int:
    """The store URL and the policy, as every operator command finds them, or an exit status."""
    try:
        policy = read_policy(args)
    except PolicyError as exc:
        return fail(f"invalid policy:\n{exc}")
    except OSError as exc:
        return fail(f"cannot read {exc.filename}: {exc.strerror}")
    if policy is None and not args.store and not os.environ.get(config.STORE_ENV, "").strip():
        return fail(
            f"which store? pass --policy FILE or --store URL, or set {config.POLICY_ENV} or {config.STORE_ENV}"
        )
    if policy is not None and policy.agent != args.agent:
        return fail(f"{policy.source} is the policy of agent {policy.agent!r}, not {args.agent!r}")
    return config.store_url(args.store, policy), policy


def _books(store: Any) -> BooksStore | int:
    if not isinstance(store, BooksStore):
        store.close()
        return fail(f"the store {store!r} keeps no identities or declared caps", EXIT_FAILED)
    return store


def run_reset(args: argparse.Namespace) -> int:
    """``agentfuse store reset``."""
    if not args.accept_loss:
        return fail(
            f"store reset acknowledges that the books of agent {args.agent!r} are lost: its spend, halts"
            " and breaker state from before the loss are forgotten and its caps count from zero."
            " Nothing was changed; once you know what was spent, run it again with --accept-loss"
        )
    where = _where(args)
    if isinstance(where, int):
        return where
    url, policy = where
    now = time.time()
    reason = args.reason.strip() or "an operator accepted the loss"
    moved: list[Path] = []
    opened = _open_for_reset(url, now, moved)
    if isinstance(opened, int):
        return opened
    store = opened
    try:
        record = books.seen_record(store, books.policy_folder(policy) if policy is not None else None)
        before = store.identity(args.agent)
        seen = record.get(args.agent) if record is not None else None
        previous = seen or (before.identity if before is not None else "")
        identity = store.reset_identity(args.agent, now=now, reason=reason, previous=previous)
        if record is not None:
            record.put(args.agent, identity.identity, now=now)
        others = _still_refused(store, record, args.agent)
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    for path in moved:
        print(f"moved the damaged {path.name.split('.damaged-')[0]} aside to {path}")
    print(
        f"agent {args.agent!r}: loss acknowledged in {store!r} (books {previous or 'unknown'} ->"
        f" {identity.identity}); its spend, halts and breaker state from before the loss are gone"
        " and its caps count from zero. Running processes of the agent refuse calls until restarted."
    )
    if others:
        print(f"  note: the store also lost the books of {', '.join(map(repr, others))};"
              " each needs its own `agentfuse store reset --agent NAME --accept-loss`")
    if policy is not None:
        _announce(policy, args.agent, reason, previous, identity.identity, moved)
    return EXIT_OK


def _open_for_reset(url: str, now: float, moved: list[Path]) -> BooksStore | int:
    """Open the store; a damaged SQLite file is first moved aside (into ``moved``)."""
    try:
        open_store(url, create=False).close()
    except StoreUnavailable as exc:
        if exc.reason != "store_damaged":
            return fail(str(exc), EXIT_FAILED)
        from agentfuse.runtime.stores.sqlite import move_aside, path_from_url

        try:
            moved += move_aside(path_from_url(url), time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)))
        except OSError as error:
            return fail(f"cannot move the damaged store aside: {error}", EXIT_FAILED)
    except (StoreURLError, ValueError):
        pass  # a missing file is created below (the loss of a deleted store); a bad URL is reported there
    try:
        return _books(open_store(url))
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    except (StoreURLError, ValueError) as exc:
        return fail(str(exc))


def _still_refused(store: BooksStore, record: books.SeenRecord | None, agent: str) -> list[str]:
    """Other agents the seen record knows whose books this store no longer holds."""
    if record is None:
        return []
    refused = []
    for other, seen in sorted(record.agents().items()):
        stored = store.identity(other)
        if other != agent and (stored is None or (stored.identity != seen and stored.reset_reason is None)):
            refused.append(other)
    return refused


def _announce(policy: Policy, agent: str, reason: str, previous: str, identity: str, moved: list[Path]) -> None:
    """One ``store_reset`` event and an alert: the loss is on the record where halts are."""
    from agentfuse.runtime.alerts import Alerter
    from agentfuse.runtime.events import EventLog

    events = EventLog.from_policy(policy)
    events.emit(
        "store_reset", agent=agent, run=None, reason=reason, source="operator",
        previous=previous, identity=identity, moved=[str(path) for path in moved],
    )
    alerter = Alerter.from_policy(policy, events)
    alerter.send(
        "store_reset",
        f"{agent}: lost books acknowledged",
        f"An operator acknowledged that the store lost the books of {agent} ({reason});"
        " its caps count from zero again.",
    )
    alerter.close(timeout=3.0)
    events.close()


def run_caps(args: argparse.Namespace) -> int:
    """``agentfuse store caps``."""
    if args.drop and args.agent is None:
        return fail("--drop needs --agent")
    opened = open_existing(args)
    if isinstance(opened, int):
        return opened
    store = _books(opened[0])
    if isinstance(store, int):
        return store
    missing = []
    try:
        for policy in args.drop:
            if not store.drop_caps(args.agent, policy):
                missing.append(policy)
        declarations = store.cap_declarations(args.agent)
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    dropped = [policy for policy in args.drop if policy not in missing]
    if args.json:
        print(json.dumps({"declarations": [_json(item) for item in declarations], "dropped": dropped,
                          "not_found": missing}, indent=2))
    else:
        for policy in dropped:
            print(f"dropped the declaration of {policy}")
        _print_table(declarations)
    if missing:
        return fail(f"no declaration of {', '.join(map(repr, missing))} for agent {args.agent!r}", EXIT_FAILED)
    return EXIT_OK


def _usd(micros: int | None) -> str | None:
    return None if micros is None else str(from_micros(micros))


def _json(item: CapDeclaration) -> dict[str, Any]:
    return {
        "agent": item.agent, "policy": item.policy, "daily_usd": _usd(item.daily_micros),
        "hourly_usd": _usd(item.hourly_micros), "declared_at": item.declared_at,
        "daily_tokens": item.daily_tokens, "hourly_tokens": item.hourly_tokens,
    }


def _print_table(declarations: list[CapDeclaration]) -> None:
    if not declarations:
        print("no declared caps")
        return
    for agent in sorted({item.agent for item in declarations}):
        mine = [item for item in declarations if item.agent == agent]
        print(f"agent {agent!r} (the strictest cap of each kind binds every process):")
        for item in mine:
            declared = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(item.declared_at))
            tokens = ""
            if item.daily_tokens is not None or item.hourly_tokens is not None:
                tokens = f" tokens daily {item.daily_tokens or '-'} hourly {item.hourly_tokens or '-'}"
            print(
                f"  daily ${_usd(item.daily_micros) or '-':<12} hourly ${_usd(item.hourly_micros) or '-':<12}"
                f"{tokens} declared {declared}  {item.policy}"
            )
