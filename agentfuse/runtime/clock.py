"""Clocks for the guard: wall-clock seconds since the epoch, injectable for tests.

The guard needs wall-clock time (not a monotonic one) because a run's start time, breaker
cooldowns and rate-limit windows are durable and shared between processes.
"""

from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], float]
"""Anything that returns the current time in seconds since the epoch."""


def system_clock() -> float:
    """The real wall clock."""
    return time.time()


class ManualClock:
    """A clock that moves only when told to: ``clock.advance(61)`` instead of sleeping."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` and return the new time."""
        self.now += seconds
        return self.now

    def __repr__(self) -> str:
        return f"ManualClock({self.now!r})"
