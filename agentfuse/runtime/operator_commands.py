"""Operator commands, out of band: ``agentfuse halt`` and ``agentfuse resume``.

A halt is durable: every guarded call of the agent (or of one run) is refused, across restarts,
until ``resume``. The store comes from ``--store URL`` or from the policy's ``store:`` key.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from agentfuse.runtime.alerts import Alerter
from agentfuse.runtime.errors import PolicyError, StoreUnavailable
from agentfuse.runtime.events import EventLog
from agentfuse.runtime.policy import Policy, load_policy
from agentfuse.runtime.stores import DEFAULT_STORE_URL, AGENT_WIDE, Store, StoreURLError, open_store
from agentfuse.runtime.stores.base import HaltRecord

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    """Add ``halt`` and ``resume`` to the ``agentfuse`` command."""
    halt = subparsers.add_parser(
        "halt",
        help="halt an agent (or one run) durably until `agentfuse resume`",
        description="Halt an agent or one of its runs: its next guarded call is refused, across restarts.",
    )
    _add_common(halt)
    halt.add_argument("--reason", required=True, help="why (recorded with the halt and shown to the agent)")
    halt.set_defaults(func=run_halt)

    resume = subparsers.add_parser(
        "resume",
        help="clear a halt set by `agentfuse halt`, the kill switch, fail-fast or a budget",
        description="Clear the durable halt of an agent (agent-wide) or of one run.",
    )
    _add_common(resume)
    resume.add_argument(
        "--all-runs", action="store_true", help="also clear the halts of every run of the agent"
    )
    resume.set_defaults(func=run_resume)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True, help="the agent's name (policy `agent:`)")
    parser.add_argument("--run", default=None, help="one run id; without it the whole agent")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="store URL, e.g. sqlite:///.agentfuse/state.db or redis://host:6379/0")
    where.add_argument("--policy", type=Path, help="the agent's policy.yaml (its `store:` is used)")


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"agentfuse: error: {message}", file=sys.stderr)
    return status


def _policy(args: argparse.Namespace) -> Policy | None:
    if not args.policy:
        return None
    policy = load_policy(args.policy)
    if policy.agent != args.agent:
        print(
            f"agentfuse: note: {args.policy} is the policy of agent {policy.agent!r}, not {args.agent!r}",
            file=sys.stderr,
        )
    return policy


def _open(args: argparse.Namespace) -> tuple[Store, Policy | None] | int:
    """The store the arguments name (and the policy, if given), or an exit status after saying why."""
    try:
        policy = _policy(args)
        url = args.store or (policy.store if policy else None) or DEFAULT_STORE_URL
        return open_store(str(url)), policy
    except PolicyError as exc:
        return _fail(f"invalid policy:\n{exc}")
    except (StoreURLError, ValueError) as exc:
        return _fail(str(exc))
    except StoreUnavailable as exc:
        return _fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        return _fail(f"cannot read {exc.filename}: {exc.strerror}")


def _announce(policy: Policy | None, args: argparse.Namespace, event: str, title: str, body: str) -> None:
    """With a policy: one event line, and an alert to its webhook (waits briefly for delivery)."""
    if policy is None:
        return
    events = EventLog.from_policy(policy)
    events.emit(event, agent=args.agent, run=args.run, reason=getattr(args, "reason", None), source="operator")
    alerter = Alerter.from_policy(policy, events)
    alerter.send(event, title, body, run=args.run)
    alerter.close(timeout=3.0)
    events.close()


def _scope(args: argparse.Namespace) -> str:
    return f"run {args.run} of agent {args.agent!r}" if args.run else f"agent {args.agent!r} (every run)"


def run_halt(args: argparse.Namespace) -> int:
    """``agentfuse halt``."""
    if not args.reason.strip():
        return _fail("--reason must say why")
    opened = _open(args)
    if isinstance(opened, int):
        return opened
    store, policy = opened
    record = HaltRecord(
        agent=args.agent,
        run_id=args.run or AGENT_WIDE,
        reason=args.reason.strip(),
        source="operator",
        created_at=time.time(),
    )
    try:
        store.halt(record)
    except StoreUnavailable as exc:
        return _fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    print(f"halted {_scope(args)}: {record.reason}")
    _announce(
        policy,
        args,
        "halt",
        f"{args.agent}: halted by an operator",
        f"{_scope(args)} is halted: {record.reason}. Clear it with `agentfuse resume`.",
    )
    return EXIT_OK


def run_resume(args: argparse.Namespace) -> int:
    """``agentfuse resume``."""
    if args.all_runs and args.run:
        return _fail("--all-runs and --run exclude each other")
    opened = _open(args)
    if isinstance(opened, int):
        return opened
    store, policy = opened
    try:
        if args.all_runs:
            cleared = sum(store.resume(args.agent, halt.run_id) for halt in store.halts(args.agent))
        else:
            cleared = store.resume(args.agent, args.run or AGENT_WIDE)
        still = [h for h in store.halts(args.agent) if not args.run and h.run_id != AGENT_WIDE]
    except StoreUnavailable as exc:
        return _fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    scope = f"every halt of agent {args.agent!r}" if args.all_runs else _scope(args)
    print(f"resumed {scope}" if cleared else f"nothing to resume: {scope} was not halted")
    if cleared:
        _announce(policy, args, "resume", f"{args.agent}: resumed by an operator", f"{scope} may run again.")
    if policy is not None and policy.kill_switch.stop_file:
        stop_file = policy.resolve_path(policy.kill_switch.stop_file)
        if stop_file.exists():
            print(f"  note: the STOP file {stop_file} still exists; the next call will halt again")
    for halt in still:
        print(f"  run {halt.run_id} is still halted ({halt.reason}); resume it with --run {halt.run_id}")
    return EXIT_OK
