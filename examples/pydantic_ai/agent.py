"""A pydantic-ai agent under agentfuse: ``planner`` delegates to ``researcher`` from a tool until the fuse stops them.

Run it: ``python examples/pydantic_ai/agent.py``. It talks to agentfuse's stand-in provider on
loopback (no key, no cost), which answers every request that offers tools with a call of the
first one. ``researcher``'s runs are a child run with its own cap (``children:`` in
policy.yaml), so its second call is refused and the refusal ends ``planner.run_sync``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
from pydantic_ai import Agent, RunContext
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.openai import OpenAIProvider
from pydantic_ai.settings import ModelSettings
from pydantic_ai.usage import UsageLimits

import agentfuse
from agentfuse.integrations.pydantic_ai import AgentfuseCapability
from agentfuse.testing.standin import StandIn

POLICY = Path(__file__).with_name("policy.yaml")
LIMITS = UsageLimits(request_limit=100)  # pydantic-ai's own request count, next to the fuse's money


def build(base_url: str, fuse: AgentfuseCapability) -> Agent[Any, str]:
    """``planner``, whose tool ``ask_researcher`` runs the ``researcher`` agent."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=2)
    model = OpenAIChatModel("gpt-4o", provider=OpenAIProvider(openai_client=client))
    short = ModelSettings(max_tokens=20)
    researcher: Agent[Any, str] = Agent(model, name="researcher", model_settings=short, capabilities=[fuse])
    planner: Agent[Any, str] = Agent(model, name="planner", model_settings=short, capabilities=[fuse])

    @planner.tool
    async def ask_researcher(ctx: RunContext[Any]) -> str:
        """Ask the researcher to look something up."""
        found = await researcher.run("Look it up.", usage=ctx.usage, usage_limits=LIMITS)
        return found.output

    return planner


def main() -> int:
    guard = agentfuse.enforce(POLICY)
    fuse = AgentfuseCapability(guard)  # instruments the guard; delegated agents as child runs
    with StandIn(tool_turns=10**6) as provider:
        try:
            build(provider.openai_url, fuse).run_sync("Write a report.", usage_limits=LIMITS)
        except agentfuse.Halted as refusal:
            print(f"stopped by agentfuse: {type(refusal).__name__} in run {refusal.run_id}")
        finally:
            fuse.close()
            guard.close()
        print(f"requests that reached the stand-in provider: {provider.requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
