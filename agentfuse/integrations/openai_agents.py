"""OpenAI Agents SDK: each agent a run of its own, the refusal out of ``Runner.run`` (``agentfuse[openai-agents]``).

::

    fuse = AgentsFuse(guard)
    result = await fuse.run(triage, "question")  # Runner.run(triage, ..., run_config=...)
    result = fuse.run_sync(triage, "question")

What it adds to ``guard.instrument()``: the starting agent's requests are the guard's run; every
other agent (the target of a handoff, or any agent it hands on to) is a child run
``<run id>/<agent name>`` capped by ``children.<name>.run_usd`` (its spend counts against the
parent's caps too), and requests are named after the agent that makes them.

How: ``RunConfig.call_model_input_filter`` runs in the task that then calls the model (the SDK's
run hooks run in tasks of their own under ``gather``, so a context set there never reaches the
call), so it binds the agent's run to that context; the tools the agent's answer calls inherit it.
:meth:`AgentsFuse.run` calls ``Runner.run`` in a task of its own, so the binding never outlives
the run in the caller's context. A refusal is a ``BaseException``: the SDK neither retries it
nor hands it to the model as a tool error, and ``Runner.run`` raises it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
from collections.abc import Iterable
from typing import Any

from agents import Agent, RunConfig, Runner, RunResult
from agents.run_config import CallModelData, ModelInputData

from agentfuse.integrations._family import Family
from agentfuse.runtime import instrument
from agentfuse.runtime.guard import Guard

__all__ = ["AgentsFuse"]

_STARTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentfuse_agents_start", default=None)
"""The name of the agent a run started with (its requests are the guard's run, not a child's)."""


class AgentsFuse:
    """Child runs per agent and refusals out of ``Runner.run`` for the OpenAI Agents SDK."""

    def __init__(self, guard: Guard, *, sub_agents: Iterable[str] = ()) -> None:
        self.guard = guard
        self.family = Family(guard, sub_agents=sub_agents)
        guard.instrument()

    def run_config(self, base: RunConfig | None = None) -> RunConfig:
        """``base`` (or a default ``RunConfig``) with the fuse's model-input filter in front of its own."""
        config = base or RunConfig()
        inner = config.call_model_input_filter

        async def bind(data: CallModelData[Any]) -> ModelInputData:
            self._bind(data.agent)
            if inner is None:
                return data.model_data
            found = inner(data)
            return await found if asyncio.iscoroutine(found) else found  # type: ignore[return-value]

        return dataclasses.replace(config, call_model_input_filter=bind)

    async def run(self, starting_agent: Agent[Any], input: Any, *, run_config: RunConfig | None = None,
                  **kwargs: Any) -> RunResult:
        """``Runner.run`` under the fuse, in a task of its own; raises the refusal that stopped it."""

        async def body() -> RunResult:
            _STARTING.set(starting_agent.name)
            config = self.run_config(run_config)
            # gated by the instrumented SDK underneath; the policy is the caller's guard's
            return await Runner.run(starting_agent, input, run_config=config, **kwargs)  # noqa: AF101,AF102

        return await asyncio.create_task(body())

    def run_sync(self, starting_agent: Agent[Any], input: Any, **kwargs: Any) -> RunResult:
        """:meth:`run` from synchronous code (a new event loop, like ``Runner.run_sync``)."""
        return asyncio.run(self.run(starting_agent, input, **kwargs))

    def _bind(self, agent: Agent[Any]) -> None:
        name = agent.name
        own = name == _STARTING.get() and not self.family.is_sub_agent(name)
        target = self.guard if own else self.family.child(name)
        if instrument.charged_guard() is not target:
            target.instrument()
        instrument.name_action(name)

    def close(self) -> None:
        """Close the agents' child runs (the guard itself stays the caller's to close)."""
        self.family.close()
