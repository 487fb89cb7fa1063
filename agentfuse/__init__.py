"""agentfuse: a fuse for unattended LLM agents.

Public API only; everything else lives in private modules behind it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentfuse.runtime.errors import (
    AgentfuseError,
    AttemptsExhausted,
    BudgetExceeded,
    CircuitOpen,
    DeadlineExceeded,
    Halted,
    KillSwitchEngaged,
    PolicyError,
    RateLimited,
    RestartLoop,
    RetryLimitExceeded,
    RunHalted,
    StepLimitExceeded,
    StoreUnavailable,
)
if TYPE_CHECKING:
    from agentfuse.runtime.guard import Guard, enforce
    from agentfuse.runtime.policy import Policy

__version__ = "0.1.0"

__all__ = [
    "AgentfuseError",
    "AttemptsExhausted",
    "BudgetExceeded",
    "CircuitOpen",
    "DeadlineExceeded",
    "Guard",
    "Halted",
    "KillSwitchEngaged",
    "Policy",
    "PolicyError",
    "RateLimited",
    "RestartLoop",
    "RetryLimitExceeded",
    "RunHalted",
    "StepLimitExceeded",
    "StoreUnavailable",
    "__version__",
    "enforce",
]


def __getattr__(name: str) -> Any:
    """``enforce``, ``Guard`` and ``Policy`` load the runtime on first use, so the linter and
    ``agentfuse --version`` stay light."""
    if name in ("enforce", "Guard"):
        from agentfuse.runtime import guard

        return getattr(guard, name)
    if name == "Policy":
        from agentfuse.runtime.policy import Policy

        return Policy
    raise AttributeError(f"module 'agentfuse' has no attribute {name!r}")
