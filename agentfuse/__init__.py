"""agentfuse: a fuse for unattended LLM agents.

Public API only; everything else lives in private modules behind it.
"""

from __future__ import annotations

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
    RetryLimitExceeded,
    RunHalted,
    StepLimitExceeded,
    StoreUnavailable,
)
from agentfuse.runtime.policy import Policy

__version__ = "0.1.0"

__all__ = [
    "AgentfuseError",
    "AttemptsExhausted",
    "BudgetExceeded",
    "CircuitOpen",
    "DeadlineExceeded",
    "Halted",
    "KillSwitchEngaged",
    "Policy",
    "PolicyError",
    "RateLimited",
    "RetryLimitExceeded",
    "RunHalted",
    "StepLimitExceeded",
    "StoreUnavailable",
    "__version__",
]
