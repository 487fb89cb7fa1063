"""Operator commands, out of band: ``halt``, ``resume``, ``status``, ``runs``, ``reconcile``,
``watch`` and ``report``.

A halt is durable: every guarded call of the agent (or of one run) is refused, across restarts,
until ``resume``. The store is ``--store URL``, else ``AGENTFUSE_STORE``, else the policy's
``store:`` (``--policy FILE``, else ``AGENTFUSE_POLICY``), resolved as ``enforce()`` resolves it
(:mod:`agentfuse.runtime.config`); with a policy the commands also know the agent's caps, event
log and alert webhook. No command creates a store: a missing one is named and exits 2.
See docs/operations.md for the status JSON schema and running ``watch`` from cron or systemd.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from agentfuse.cli_args import duration
from agentfuse.runtime import config
from agentfuse.runtime.alerts import Alerter
from agentfuse.runtime.errors import PolicyError, StoreUnavailable
from agentfuse.runtime.events import EventLog
from agentfuse.runtime.files import write_private
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.policy_loader import load_policy
from agentfuse.runtime.redaction import redact
from agentfuse.runtime.stores import AGENT_WIDE, Store, StoreURLError, open_store
from agentfuse.runtime.stores.base import HaltRecord, OperatorStore
from agentfuse.operator import status as status_data

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

MAX_STALE_AFTER_S = 366 * 86400.0
MAX_REPORT_SPAN_S = 3660 * 86400.0
"""``report --since`` reaches back ten years at most (one bar per day)."""
_stale_after = duration(maximum_s=MAX_STALE_AFTER_S, what="--stale-after")
_since = duration(maximum_s=MAX_REPORT_SPAN_S, what="--since")


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
    _register_views(subparsers)


def _register_views(subparsers: Any) -> None:
    """``status``, ``runs``, ``reconcile``, ``watch`` and ``report``."""
    status = subparsers.add_parser(
        "status",
        help="spend against caps, active runs, breakers, halts, live workers and last events",
        description="What every agent (or one) is spending and why it stopped. Caps, breaker"
        " cooldowns and last events need --policy.",
    )
    _add_view_options(status)
    status.add_argument("--stale-after", type=_stale_after, default=status_data.DEFAULT_STALE_AFTER_S,
                        metavar="SECONDS", help="a run or worker silent this long is not active (default 600)")
    status.set_defaults(func=run_status)

    runs = subparsers.add_parser(
        "runs",
        help="list runs; --stale lists reservations left by dead processes",
        description="List runs, most recently active first. --stale lists unsettled reservations whose"
        " process is dead (not running on this host, or no heartbeat from another host for"
        " --stale-after seconds); settle them with `agentfuse reconcile`.",
    )
    _add_view_options(runs)
    runs.add_argument("--stale", action="store_true", help="only reservations left by dead processes")
    runs.add_argument("--stale-after", type=_stale_after, default=status_data.DEFAULT_STALE_AFTER_S,
                      metavar="SECONDS", help="heartbeat age that counts a remote process dead (default 600)")
    runs.set_defaults(func=run_runs)

    reconcile = subparsers.add_parser(
        "reconcile",
        help="settle a run's stale reservations explicitly (recorded in the store and the event log)",
        description="Settle the reservations a dead process left in RUN: `reserved` counts each at its"
        " estimate (the call may have been billed), `zero` at nothing (it was not). Recorded with"
        " the reason in the store, and as an event with --policy.",
    )
    reconcile.add_argument("run", metavar="RUN", help="the run id (see `agentfuse runs --stale`)")
    reconcile.add_argument("--settle-as", required=True, choices=("reserved", "zero"))
    reconcile.add_argument("--reason", required=True, help="why (kept with the settlement)")
    reconcile.add_argument("--stale-after", type=_stale_after, default=status_data.DEFAULT_STALE_AFTER_S,
                           metavar="SECONDS", help="heartbeat age that counts a remote process dead")
    add_where(reconcile)
    reconcile.set_defaults(func=run_reconcile, agent=None)

    watch = subparsers.add_parser(
        "watch",
        help="dead-man's switch: exit 1 (and alert) when an agent has no fresh heartbeat",
        description="Check every agent's (or one agent's) freshest heartbeat; exit 1 when one is older"
        " than --stale-after, 0 when all are fresh. Run it from cron or a systemd timer.",
    )
    watch.add_argument("--agent", default=None, help="only this agent (default: every agent in the store)")
    watch.add_argument("--stale-after", type=_stale_after, default=status_data.DEFAULT_STALE_AFTER_S, metavar="SECONDS")
    watch.add_argument("--alert", action="store_true", help="also alert the policy's webhook (needs --policy)")
    add_where(watch)
    watch.set_defaults(func=run_watch)

    report = subparsers.add_parser(
        "report",
        help="write a self-contained HTML report (inline SVG charts, works offline)",
        description="Spend over time per agent against its caps, the breaker and halt timeline, and the"
        " top refusal and failure reasons, in one HTML file with no external resources.",
    )
    report.add_argument("--html", required=True, type=Path, metavar="FILE", help="where to write the report")
    report.add_argument("--since", type=_since, default=7 * 86400.0, metavar="DURATION",
                        help="how far back: 7d (default), 12h, 30m")
    report.add_argument("--agent", default=None, help="only this agent")
    add_where(report)
    report.set_defaults(func=run_report)


def _add_view_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", default=None, help="only this agent (default: every agent in the store)")
    parser.add_argument("--json", action="store_true", help="machine-readable output (see docs/operations.md)")
    add_where(parser)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", required=True, help="the agent's name (policy `agent:`)")
    parser.add_argument("--run", default=None, help="one run id; without it the whole agent")
    add_where(parser)


def add_where(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--store",
        help=f"store URL, e.g. sqlite:///.agentfuse/state.db or redis://host:6379/0 (default: ${config.STORE_ENV},"
        " else the policy's `store:`); a relative path is from the current directory",
    )
    where.add_argument(
        "--policy",
        help=f"the agent's policy.yaml (default: ${config.POLICY_ENV}); its `store:` is used, relative paths"
        " in it are from its folder",
    )


def fail(message: str, status: int = EXIT_USAGE) -> int:
    """Say why on stderr (secrets redacted), return the exit status."""
    print(f"agentfuse: error: {redact(message)}", file=sys.stderr)
    return status


def read_policy(args: argparse.Namespace) -> Policy | None:
    """The policy of ``--policy``, else of ``AGENTFUSE_POLICY``, else None."""
    path = config.policy_path(args.policy)
    if path is None:
        return None
    policy = load_policy(path)
    if args.agent is not None and policy.agent != args.agent:
        print(
            f"agentfuse: note: {path} is the policy of agent {policy.agent!r}, not {args.agent!r}",
            file=sys.stderr,
        )
    return policy


def open_existing(args: argparse.Namespace) -> tuple[Store, Policy | None, str] | int:
    """The store the arguments or the environment name, the policy (if any) and the store's
    absolute URL; or an exit status after saying why. A missing store is never created."""
    try:
        policy = read_policy(args)
        if policy is None and not args.store and not os.environ.get(config.STORE_ENV, "").strip():
            return fail(
                f"which store? pass --policy FILE or --store URL, or set {config.POLICY_ENV} or {config.STORE_ENV}"
            )
        url = config.store_url(args.store, policy)
        return open_store(url, create=False), policy, url
    except PolicyError as exc:
        return fail(f"invalid policy:\n{exc}")
    except (StoreURLError, ValueError) as exc:
        return fail(str(exc))
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    except OSError as exc:
        return fail(f"cannot read {exc.filename}: {exc.strerror}")


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
        return fail("--reason must say why")
    opened = open_existing(args)
    if isinstance(opened, int):
        return opened
    store, policy, url = opened
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
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    print(f"halted {_scope(args)}: {record.reason}")
    print(f"  store: {redact(url)}")
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
        return fail("--all-runs and --run exclude each other")
    opened = open_existing(args)
    if isinstance(opened, int):
        return opened
    store, policy, url = opened
    try:
        if args.all_runs:
            cleared = sum(store.resume(args.agent, halt.run_id) for halt in store.halts(args.agent))
        else:
            cleared = store.resume(args.agent, args.run or AGENT_WIDE)
        still = [h for h in store.halts(args.agent) if not args.run and h.run_id != AGENT_WIDE]
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    scope = f"every halt of agent {args.agent!r}" if args.all_runs else _scope(args)
    print(f"resumed {scope}" if cleared else f"nothing to resume: {scope} was not halted")
    print(f"  store: {redact(url)}")
    if cleared:
        _announce(policy, args, "resume", f"{args.agent}: resumed by an operator", f"{scope} may run again.")
    if policy is not None and policy.kill_switch.stop_file:
        stop_file = policy.resolve_path(policy.kill_switch.stop_file)
        if stop_file.exists():
            print(f"  note: the STOP file {stop_file} still exists; the next call will halt again")
    for halt in still:
        print(f"  run {halt.run_id} is still halted ({halt.reason}); resume it with --run {halt.run_id}")
    return EXIT_OK


def open_operator(args: argparse.Namespace) -> tuple[OperatorStore, Policy | None, str] | int:
    """Like :func:`open_existing`, for the commands that read operator data."""
    opened = open_existing(args)
    if isinstance(opened, int):
        return opened
    store, policy, url = opened
    if not isinstance(store, OperatorStore):
        store.close()
        return fail(f"the store {redact(url)} does not keep heartbeats, runs and claims yet", EXIT_FAILED)
    return store, policy, url


def _print_json(document: Any) -> int:
    """Strict JSON on stdout: a figure that is not finite is an error, never ``NaN``."""
    try:
        text = json.dumps(document, indent=2, sort_keys=False, allow_nan=False)
    except ValueError as exc:
        return fail(f"cannot print JSON: {exc}", EXIT_FAILED)
    print(text)
    return EXIT_OK


def run_status(args: argparse.Namespace) -> int:
    """``agentfuse status``."""
    opened = open_operator(args)
    if isinstance(opened, int):
        return opened
    store, policy, url = opened
    try:
        document = status_data.gather_status(
            store, store_url=url, policy=policy, agent=args.agent, now=time.time(), stale_after_s=args.stale_after
        )
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    if args.json:
        return _print_json(document)
    print(status_data.format_table(document, status_data.palette_for(sys.stdout)))
    return EXIT_OK


def run_runs(args: argparse.Namespace) -> int:
    """``agentfuse runs``."""
    opened = open_operator(args)
    if isinstance(opened, int):
        return opened
    store, policy, _ = opened
    now = time.time()
    try:
        if args.stale:
            live = status_data.liveness(store, now, args.stale_after)
            stale = status_data.stale_reservations(store, live, agent=args.agent)
            rows = [status_data.reservation_json(item, now, reason) for item, reason in stale]
        else:
            rows = [
                status_data.run_json(summary, now, policy if policy and policy.agent == summary.run.agent else None)
                for summary in store.list_runs(args.agent)
            ]
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    if args.json:
        return _print_json({"stale_reservations" if args.stale else "runs": rows})
    if args.stale:
        _print_stale(rows)
    else:
        _print_runs(rows)
    return EXIT_OK


def _print_runs(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no runs")
        return
    for line in status_data.format_rows(
        ("run", "agent", "parent", "spent", "reserved", "steps", "retries", "last activity", "open"),
        [
            (
                row["run_id"],
                row["agent"],
                row["parent_id"] or "-",
                status_data.money(row["spent_usd"]),
                status_data.money(row["reserved_usd"]),
                str(row["steps"]),
                str(row["retries"]),
                row["last_activity_at"],
                str(row["unsettled"]),
            )
            for row in rows
        ],
        indent="",
    ):
        print(line)


def _print_stale(rows: list[dict[str, Any]]) -> None:
    if not rows:
        print("no stale reservations")
        return
    for line in status_data.format_rows(
        ("run", "agent", "reservation", "action", "estimate", "age", "process", "why stale"),
        [
            (
                row["run_id"],
                row["agent"],
                row["reservation_id"],
                row["action"],
                status_data.money(row["estimate_usd"]),
                f"{row['age_s']:.0f}s",
                f"{row['pid']}@{row['host']}" if row["pid"] is not None else "-",
                row["stale_reason"],
            )
            for row in rows
        ],
        indent="",
    ):
        print(line)
    print("settle them with: agentfuse reconcile RUN --settle-as reserved|zero --reason TEXT")


def run_reconcile(args: argparse.Namespace) -> int:
    """``agentfuse reconcile``."""
    if not args.reason.strip():
        return fail("--reason must say why")
    opened = open_operator(args)
    if isinstance(opened, int):
        return opened
    store, policy, _ = opened
    now = time.time()
    done = []
    try:
        run = store.get_run(args.run)
        if run is None:
            return fail(f"no run {args.run!r} in this store (see `agentfuse runs`)", EXIT_FAILED)
        live = status_data.liveness(store, now, args.stale_after)
        open_ones = store.open_reservations(run_id=args.run)
        stale = status_data.stale_reservations(store, live, run_id=args.run)
        negative = [r for r, _ in stale if r.estimate_micros < 0]  # from books that took negative money
        if negative and args.settle_as == "reserved":
            return fail(
                f"reservation {negative[0].reservation_id} of run {args.run} has a negative estimate"
                f" ({negative[0].estimate_micros} micro-dollars): settling it as reserved would take"
                " money off the books; use --settle-as zero"
            )
        for reservation, _why in stale:
            record = store.reconcile(
                reservation.reservation_id, settle_as=args.settle_as, reason=args.reason.strip(), now=now
            )
            if record is not None:
                done.append(record)
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    live_left = len(open_ones) - len(stale)
    if not done:
        print(f"run {args.run}: no stale reservations to reconcile")
    for record in done:
        print(
            f"reconciled {record.reservation_id} of run {record.run_id} as {record.settle_as}:"
            f" {status_data.money(status_data.usd(record.cost_micros))} ({record.reason})"
        )
    if live_left > 0:
        print(f"  note: {live_left} open reservation(s) belong to a live process and were left alone")
    if done and policy is not None:
        events = EventLog.from_policy(policy)
        for record in done:
            events.emit(
                "reconciled",
                agent=record.agent,
                run=record.run_id,
                reason=record.reason,
                reservation_id=record.reservation_id,
                settle_as=record.settle_as,
                cost_micros=record.cost_micros,
                source="operator",
            )
        events.close()
    return EXIT_OK


def run_watch(args: argparse.Namespace) -> int:
    """``agentfuse watch``: the dead-man's switch."""
    if args.alert and config.policy_path(args.policy) is None:
        return fail(f"--alert needs --policy or {config.POLICY_ENV} (the webhook comes from the policy)")
    opened = open_operator(args)
    if isinstance(opened, int):
        return opened
    store, policy, _ = opened
    now = time.time()
    try:
        beats = store.heartbeats(args.agent)
        known = {beat.agent for beat in beats} | ({policy.agent} if policy else set())
        agents = [args.agent] if args.agent else sorted(known)
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    silent = []
    for agent in agents:
        latest = max((beat.at for beat in beats if beat.agent == agent), default=None)
        if latest is None:
            silent.append((agent, "no heartbeat ever"))
            print(f"STALE {agent}: no heartbeat ever")
        elif now - latest > args.stale_after:
            silent.append((agent, f"last heartbeat {now - latest:.0f}s ago"))
            print(f"STALE {agent}: last heartbeat {now - latest:.0f}s ago (limit {args.stale_after:g}s)")
        else:
            print(f"ok    {agent}: last heartbeat {now - latest:.0f}s ago")
    if not agents:
        print("no agents with heartbeats in this store")
    if silent and args.alert and policy is not None:
        events = EventLog.from_policy(policy)
        alerter = Alerter.from_policy(policy, events)
        for agent, detail in silent:
            events.emit("heartbeat_missing", agent=agent, run=None, reason="no_heartbeat", detail=detail)
            alerter.send(
                "heartbeat_missing",
                f"{agent}: no heartbeat",
                f"{detail} (limit {args.stale_after:g}s): the agent's workers may be dead or stuck",
                dedupe_key=f"{agent}:heartbeat_missing",
            )
        alerter.close(timeout=3.0)
        events.close()
    return EXIT_FAILED if silent else EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    """``agentfuse report --html FILE``."""
    from agentfuse.operator.report import gather_report, render_html

    opened = open_operator(args)
    if isinstance(opened, int):
        return opened
    store, policy, url = opened
    now = time.time()
    try:
        data = gather_report(store, store_url=url, policy=policy, agent=args.agent, now=now, since_s=args.since)
    except StoreUnavailable as exc:
        return fail(str(exc), EXIT_FAILED)
    finally:
        store.close()
    try:
        write_private(args.html, render_html(data))
    except OSError as exc:
        return fail(f"cannot write {args.html}: {exc.strerror}", EXIT_FAILED)
    print(f"wrote {args.html}")
    return EXIT_OK
