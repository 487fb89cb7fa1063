"""pydantic-ai under AgentfuseCapability: real agents, a real OpenAIChatModel, the stand-in.

The stand-in always answers a request that offers tools with a call of the first one, so
``planner`` calls its ``delegate`` tool, which runs ``researcher`` (no tools: one answer) and
returns, and the planner calls it again, until a refusal stops the run; ``researcher`` is a child
run (``children:``, and a delegated agent run in any case).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

import openai  # noqa: E402
from pydantic_ai import Agent, RunContext  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402
from pydantic_ai.settings import ModelSettings  # noqa: E402
from pydantic_ai.usage import UsageLimits  # noqa: E402

import agentfuse  # noqa: E402
import halted_helpers  # noqa: E402
from agentfuse.integrations.pydantic_ai import AgentfuseCapability  # noqa: E402
from agentfuse.runtime.guard import Guard  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from framework_helpers import RefusalContract, with_researcher  # noqa: E402
from halted_helpers import Fuses  # noqa: E402

fuses = halted_helpers.fuses
SHORT = ModelSettings(max_tokens=20)
"""The stand-in answers 20 tokens; without a ceiling the estimate is the model's whole output limit."""
UNLIMITED = UsageLimits(request_limit=None)
"""pydantic-ai's own limit (50 requests by default) is not what stops these runs."""


@pytest.fixture()
def standin() -> Iterator[StandIn]:
    with StandIn(tool_turns=10**6) as provider:  # a tool call in every answer that can have one
        yield provider


def _model(provider: StandIn, retries: int = 0) -> OpenAIChatModel:
    client = openai.AsyncOpenAI(base_url=provider.openai_url, api_key="none", max_retries=retries)
    return OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client))


def _agents(
    provider: StandIn, fuse: AgentfuseCapability, on_call: Callable[[int], None] | None = None
) -> Agent[Any, str]:
    model = _model(provider)
    researcher: Agent[Any, str] = Agent(model, name="researcher", model_settings=SHORT, capabilities=[fuse])
    planner: Agent[Any, str] = Agent(model, name="planner", model_settings=SHORT, capabilities=[fuse])

    @planner.tool
    async def delegate(ctx: RunContext[Any]) -> str:
        """Ask the researcher."""
        if on_call is not None:
            on_call(provider.requests)
        found = await researcher.run("look it up", usage=ctx.usage, usage_limits=UNLIMITED)
        if on_call is not None:
            on_call(provider.requests)
        return found.output

    return planner


def _run(guard: Guard, provider: StandIn, on_call: Callable[[int], None] | None = None) -> agentfuse.Halted:
    fuse = AgentfuseCapability(guard)
    try:
        with pytest.raises(agentfuse.Halted) as caught:
            _agents(provider, fuse, on_call).run_sync("go", usage_limits=UNLIMITED)
    finally:
        fuse.close()
    return caught.value


def test_an_open_breaker_stops_the_sdk_retries(fuses: Fuses, standin: StandIn) -> None:
    guard = with_researcher(fuses, {"run_usd": 10}, breaker={"failure_threshold": 3, "cooldown_s": 300})
    standin.fail(500, times=None)
    fuse = AgentfuseCapability(guard)
    # the openai SDK under pydantic-ai retries every 500 (bounded only by the breaker)
    model = _model(standin, retries=50)
    agent: Agent[Any, str] = Agent(model, model_settings=SHORT, capabilities=[fuse])
    with pytest.raises(agentfuse.CircuitOpen):
        agent.run_sync("go")
    fuse.close()
    assert standin.requests == 3  # three failures open the breaker; the fourth attempt is refused
    assert fuses.refused() == 1


def test_iter_stops_with_the_refusal_and_restores_the_binding(fuses: Fuses, standin: StandIn) -> None:
    from agentfuse.runtime import instrument

    guard = with_researcher(fuses, {"max_steps": 2, "run_usd": 10})
    fuse = AgentfuseCapability(guard)
    planner = _agents(standin, fuse)

    async def walk() -> None:
        async with planner.iter("go", usage_limits=UNLIMITED) as run:
            async for _node in run:
                pass

    with pytest.raises(agentfuse.StepLimitExceeded):
        asyncio.run(walk())
    fuse.close()
    assert standin.requests == 4  # two planner calls, two researcher calls (each run's own steps)
    assert fuses.refused() == 1
    assert instrument.charged_guard() is guard
    assert instrument.name_action(None) is None


class TestDelegation(RefusalContract):
    """``planner``'s tool runs ``researcher``; ``run_sync`` raises the refusal."""

    def run(self, guard: Guard, standin: StandIn, on_call: Any = None) -> BaseException:
        return _run(guard, standin, on_call)
