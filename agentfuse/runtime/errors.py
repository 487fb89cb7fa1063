"""The exception tree of agentfuse.

::

    BaseException
    └── AgentfuseError
        ├── PolicyError           (also ValueError, so an Exception) bad configuration;
        │                         .issues lists every problem found
        └── Halted                (a BaseException only) a guard refused a call; the call was not made
            ├── KillSwitchEngaged     STOP file present
            ├── RunHalted             durable halt flag (operator, fail-fast, budget) for the run/agent
            │   └── RestartLoop       restart_guard: too many process starts, cooling down
            ├── CircuitOpen           breaker open, or half-open with the probe taken
            ├── RateLimited           too many calls of one action in its window, or its cooldown
            ├── BudgetExceeded        a money cap (run, ancestor, daily, hourly) would be exceeded
            │   ├── StepLimitExceeded     budget.max_steps reached
            │   ├── RetryLimitExceeded    budget.max_retries_total reached
            │   └── DeadlineExceeded      budget.timeout_s of the run has passed
            ├── AttemptsExhausted     fail_fast.max_attempts failures of one action
            └── StoreUnavailable      the store cannot be reached (fail closed)

Every ``Halted`` carries ``reason`` (a stable snake_case word), ``agent``, ``run_id`` and
``figures`` (the numbers behind the refusal, for events and operators).

Refusals are not ``Exception`` subclasses, for the reason ``asyncio.CancelledError`` and ``SystemExit``
are not: agent code and frameworks are full of ``except Exception`` (retry decorators, tool
error handlers, ``while True`` retry loops) that would swallow a blown fuse or retry it forever.
``except agentfuse.Halted`` (or a subclass) still catches one; configuration errors
(``PolicyError``) stay ``Exception`` subclasses. What this means for threads and asyncio tasks:
``docs/refusals.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any


class AgentfuseError(BaseException):
    """Base of every agentfuse exception (``PolicyError`` is also an ``Exception``, ``Halted`` is not)."""


@dataclasses.dataclass(frozen=True)
class PolicyIssue:
    """One problem in a policy file, with where it is and how to fix it."""

    path: str
    line: int
    col: int
    message: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.col}: {self.message}"
        return f"{text}. Fix: {self.fix}" if self.fix else text


class PolicyError(AgentfuseError, ValueError):
    """A policy file is missing, unreadable or invalid; ``issues`` lists every problem."""

    def __init__(self, issues: Sequence[PolicyIssue]) -> None:
        self.issues = tuple(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


class Halted(AgentfuseError):
    """A guard refused a call before it was made (a ``BaseException``: ``except Exception`` misses it)."""

    default_reason = "halted"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        agent: str | None = None,
        run_id: str | None = None,
        figures: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason or self.default_reason
        self.agent = agent
        self.run_id = run_id
        self.figures = dict(figures or {})


class KillSwitchEngaged(Halted):
    default_reason = "kill_switch"


class RunHalted(Halted):
    default_reason = "halted"


class RestartLoop(RunHalted):
    default_reason = "restart_loop"


class CircuitOpen(Halted):
    default_reason = "circuit_open"


class RateLimited(Halted):
    default_reason = "rate_limited"


class BudgetExceeded(Halted):
    default_reason = "budget_exceeded"


class StepLimitExceeded(BudgetExceeded):
    default_reason = "max_steps"


class RetryLimitExceeded(BudgetExceeded):
    default_reason = "max_retries_total"


class DeadlineExceeded(BudgetExceeded):
    default_reason = "timeout"


class AttemptsExhausted(Halted):
    default_reason = "max_attempts"


class StoreUnavailable(Halted):
    default_reason = "store_unavailable"
