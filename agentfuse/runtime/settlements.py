"""Deferred settlements: a plain success is settled inside the next gate's transaction.

A success that cost no more than its estimate (and used no more tokens than it reserved, where
a token cap binds), on a clean breaker, changes nothing a cap check can see except lowering
spent + reserved. Instead of a transaction of its own it is applied at the start of the next
gate's transaction of the same guard family (one transaction per call instead of two), or at
``flush()``/``close()``/exit. Until then the call is counted at its estimate: other processes
may see a little more spend than there is, never less, and a killed process leaves exactly
that (never under-counted). Its ``settled`` event is written when the store applies it.
"""

from __future__ import annotations

import operator
import threading
from collections.abc import Iterable
from typing import Any

from agentfuse.runtime import errors
from agentfuse.runtime.reporting import EventSink
from agentfuse.runtime.stores.base import GateResult, Outcome, Settlement, Store


def may_defer(
    result: GateResult,
    outcome: Outcome,
    cost_micros: int,
    estimate_micros: int,
    tokens: int | None,
    reserved_tokens: int,
) -> bool:
    """Whether a finished call's settlement may wait for the next gate (see the module docstring)."""
    return (
        outcome is Outcome.SUCCESS
        and result.breaker_clean
        and not result.probe
        and cost_micros <= estimate_micros
        and (tokens is None or tokens <= reserved_tokens or not result.tokens_capped)
    )


class DeferredSettlements:
    """The settlements waiting for the next gate, shared by a guard and its children."""

    def __init__(self) -> None:
        self._items: list[Settlement] = []
        self._lock = threading.Lock()

    def add(self, settlement: Settlement) -> None:
        with self._lock:
            self._items.append(settlement)

    def peek(self) -> tuple[Settlement, ...]:
        """What is waiting, oldest first (still waiting until :meth:`discard`)."""
        with self._lock:
            return tuple(self._items)

    def discard(self, applied: Iterable[Settlement]) -> None:
        """Forget settlements the store has applied (by identity)."""
        done = tuple(applied)
        if not done:
            return
        with self._lock:
            count = len(done)
            if all(map(operator.is_, self._items[:count], done)):
                del self._items[:count]  # what was applied is what came first
            else:  # another thread of the family applied some of them meanwhile
                ids = {id(item) for item in done}
                self._items = [item for item in self._items if id(item) not in ids]


def settled_lines(events: EventSink, applied: Iterable[Settlement]) -> list[dict[str, Any]]:
    """The ``settled`` events of deferred settlements the store has now applied."""
    lines = []
    for item in applied:
        figures: dict[str, Any] = {
            "outcome": item.outcome.value, "action": item.action, "cost_micros": item.cost_micros
        }
        if item.tokens is not None:
            figures["tokens"] = item.tokens
        lines.append(events.line("settled", agent=item.agent, run=item.run_id, **figures))
    return lines


def apply_now(store: Store, deferred: DeferredSettlements, events: EventSink | None) -> None:
    """Settle what is waiting, oldest first, each in its own transaction, and log it.

    A failure is raised after what was applied before it is forgotten and logged; the rest
    stays waiting (counted at its estimate).
    """
    applied: list[Settlement] = []
    try:
        for settlement in deferred.peek():
            store.settle(settlement)
            applied.append(settlement)
    finally:
        deferred.discard(applied)
        if events is not None and applied:
            events.write(settled_lines(events, applied))


def apply_at_exit(store: Store, deferred: DeferredSettlements, events: EventSink | None) -> None:
    """:func:`apply_now` when a guard is collected or the interpreter exits; never raises."""
    try:
        apply_now(store, deferred, events)
    except (errors.StoreUnavailable, OSError):
        pass  # still counted at the estimate: over, never under
