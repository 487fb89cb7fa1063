"""OpenAI Agents SDK: each agent a run of its own, the refusal out of ``Runner.run`` (``agentfuse[openai-agents]``).

::

    fuse = AgentsFuse(guard)
    result = await fuse.run(triage, "question")  # Runner.run(triage, ..., run_config=...)
    result = fuse.run_sync(triage, "question")

What it adds to ``guard.instrument()``: the starting agent's requests are the guard's run; every
other agent (the target of a handoff, or any agent it hands on to) is a child run
``<run id>/<agent name>`` capped by ``children.<name>.run_usd`` (its spend counts against the
parent's caps too), and requests are named after the agent that makes them. An agent called as a
tool (``agent.as_tool()``) is a child run of the run of the agent that called it
(``<run id>/researcher/fact_checker`` when the researcher calls it), and so are the agents it
hands off to inside that tool call.

How: ``RunConfig.call_model_input_filter`` runs in the task that then calls the model (the SDK's
run hooks run in tasks of their own under ``gather``, so a context set there never reaches the
call), so it binds the agent's run to that context; the tools the agent's answer calls inherit it.
A run the SDK starts for an agent tool inherits the run config (unless ``as_tool(run_config=...)``
gives it another: pass ``fuse.run_config(...)`` there), and its model requests are made in contexts
that descend from the tool call's, where the calling agent is still bound: an agent bound after
another that is neither that agent nor one of its handoffs was started inside its turn (a tool),
so its run is a child of the caller's; a handoff stays at the level of the agent that hands off.
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
from agents.handoffs import Handoff
from agents.run_config import CallModelData, ModelInputData

from agentfuse.integrations._family import Family
from agentfuse.runtime import instrument
from agentfuse.runtime.guard import Guard

__all__ = ["AgentsFuse"]

_STARTING: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentfuse_agents_start", default=None)
"""The name of the agent a run started with (its requests are the guard's run, not a child's)."""
_BOUND: contextvars.ContextVar[tuple[Guard | None, Agent[Any], Guard] | None] = contextvars.ContextVar(
    "agentfuse_agents_bound", default=None
)
"""The agent bound in this context: the run its level hangs under (None: the top), the agent, its run."""


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
        level = _level(_BOUND.get(), agent)
        if level is not None:
            target = self.family.child(name, level)
        elif name == _STARTING.get() and not self.family.is_sub_agent(name):
            target = self.guard
        else:
            target = self.family.child(name)
        _BOUND.set((level, agent, target))
        if instrument.charged_guard() is not target:
            target.instrument()
        instrument.name_action(name)

    def close(self) -> None:
        """Close the agents' child runs (the guard itself stays the caller's to close)."""
        self.family.close()


def _level(bound: tuple[Guard | None, Agent[Any], Guard] | None, agent: Agent[Any]) -> Guard | None:
    """The run ``agent`` hangs under, given the agent bound in this context (None: the top level)."""
    if bound is None:
        return None
    level, previous, run = bound
    if agent.name == previous.name:
        return level
    targets = {item.agent_name if isinstance(item, Handoff) else item.name for item in previous.handoffs}
    return level if agent.name in targets else run  # a handoff stays at its level; else it runs inside a tool
