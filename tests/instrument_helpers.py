"""Shared set-up of the instrumentation tests: a stand-in provider, a guard on a real SQLite file."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agentfuse import enforce
from agentfuse.runtime.guard import Guard
from agentfuse.runtime.stores.base import RunInfo
from agentfuse.testing.standin import StandIn
from runtime_helpers import make_policy, store_url

GPT4O_CALL_MICROS = 100 * 2.5 + 20 * 10
"""The stand-in's usage (100 in, 20 out) at gpt-4o's price: 450 micro-dollars."""
CLAUDE_CALL_MICROS = 100 * 3 + 20 * 15
"""The same usage at claude-sonnet-4-5's price: 600 micro-dollars."""


@pytest.fixture()
def standin() -> Iterator[StandIn]:
    with StandIn() as provider:
        yield provider


class Guards:
    """Builds instrumented guards on one SQLite file; uninstruments and closes them at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.url = store_url(tmp_path / "state.db")
        self.made: list[Guard] = []

    def __call__(self, budget: Mapping[str, Any] | None = None, *, instrument: bool = True, **policy: Any) -> Guard:
        guard = enforce(make_policy(budget=budget or {"run_usd": 10, "max_steps": 1000}, **policy), store=self.url)
        self.made.append(guard)
        if instrument:
            guard.instrument()
        return guard

    def close(self) -> None:
        for guard in self.made:
            guard.uninstrument()
            guard.close()


@pytest.fixture()
def guards(tmp_path: Path) -> Iterator[Guards]:
    made = Guards(tmp_path)
    yield made
    made.close()


def books(guard: Guard) -> RunInfo:
    """The run's durable row after every settlement (deferred ones too) is applied."""
    gc.collect()
    guard.flush()
    run = guard.store.get_run(guard.run_id)
    assert run is not None
    return run
