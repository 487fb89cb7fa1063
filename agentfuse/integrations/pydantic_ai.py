"""pydantic-ai: an agent capability (``agentfuse[pydantic-ai]``).

::

    fuse = AgentfuseCapability(guard)
    agent = Agent(model, capabilities=[fuse])  # or agent.run(..., capabilities=[fuse])
    agent.run_sync("question")                 # run / run_sync / iter alike

What it adds to ``guard.instrument()``: an agent run started inside another agent's run (the usual
delegation: a tool that awaits ``other.run(..., usage=ctx.usage)``) is a child run
``<run id>/<agent name>`` of the run it is in, capped by ``children.<name>.run_usd``; so is an
agent named in ``children:`` (or ``sub_agents=``) wherever it runs; the outermost agent's requests
are the guard's run. Requests are named after the agent that makes them. pydantic-ai's own
``UsageLimits`` still apply: they count tokens and requests per run; the fuse adds money,
durable halts, the breaker and the kill switch across runs and processes.

How: ``wrap_run`` binds the run's guard and action name to the context the run body, its model
requests and its tool tasks inherit, and restores the previous binding when the run ends. A refusal
is a ``BaseException``: pydantic-ai neither retries it (``ModelRetry``, its HTTP retries) nor returns
it to the model as a tool error, and ``run`` / ``run_sync`` / ``iter`` raise it.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.capabilities.abstract import WrapRunHandler
from pydantic_ai.tools import RunContext

from agentfuse.integrations._family import Family
from agentfuse.runtime.guard import Guard

if TYPE_CHECKING:
    from pydantic_ai.run import AgentRunResult

__all__ = ["AgentfuseCapability"]

_RUN: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("agentfuse_pydantic_ai_run", default=None)
"""The guard of the agent run this context is in (None: outside any agent run of this fuse)."""


@dataclass(init=False)
class AgentfuseCapability(AbstractCapability[Any]):
    """Child runs per delegated agent, and action names, for pydantic-ai agent runs of ``guard``."""

    guard: Guard
    family: Family = field(repr=False)

    def __init__(self, guard: Guard, *, sub_agents: Iterable[str] = ()) -> None:
        self.guard = guard
        self.family = Family(guard, sub_agents=sub_agents)
        self.id = None
        guard.instrument()

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None  # holds a live guard: not something a spec file can build

    async def wrap_run(self, ctx: RunContext[Any], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        name = getattr(ctx.agent, "name", None) or "agent"
        outer = _RUN.get()
        if outer is None and not self.family.is_sub_agent(name):
            target = self.guard
        else:
            target = self.family.child(name, outer or self.guard)
        token = _RUN.set(target)
        restore = self.family.enter(target, name)
        try:
            return await handler()
        finally:
            self.family.leave(target, restore)
            _RUN.reset(token)

    def close(self) -> None:
        """Close the delegated agents' child runs (the guard itself stays the caller's to close)."""
        self.family.close()
