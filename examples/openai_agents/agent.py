"""An OpenAI Agents SDK agent under agentfuse: ``planner`` and ``researcher`` hand off to each other until it stops.

Run it: ``python examples/openai_agents/agent.py``. It talks to agentfuse's stand-in provider on
loopback (no key, no cost), which answers every request with a call of the first tool offered
(here: the handoff). ``researcher`` is a child run with its own cap (``children:`` in
policy.yaml), so its second call is refused and the refusal ends the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
from agents import Agent, ModelSettings, OpenAIChatCompletionsModel, set_tracing_disabled

import agentfuse
from agentfuse.integrations.openai_agents import AgentsFuse
from agentfuse.testing.standin import StandIn

POLICY = Path(__file__).with_name("policy.yaml")


def build(base_url: str) -> Agent[Any]:
    """Two agents that hand off to each other, each answer one model call."""
    client = openai.AsyncOpenAI(base_url=base_url, api_key="none", max_retries=2)
    model = OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)
    short = ModelSettings(max_tokens=20)
    planner: Agent[Any] = Agent(name="planner", instructions="Plan, then ask the researcher.", model=model,
                                model_settings=short)
    researcher: Agent[Any] = Agent(name="researcher", instructions="Look it up, then hand back.", model=model,
                                   model_settings=short, handoffs=[planner])
    planner.handoffs = [researcher]
    return planner


def main() -> int:
    set_tracing_disabled(True)  # traces would go to OpenAI
    guard = agentfuse.enforce(POLICY)
    fuse = AgentsFuse(guard)  # instruments the guard; each agent but the first a child run
    with StandIn(tool_turns=10**6) as provider:
        try:
            fuse.run_sync(build(provider.openai_url), "Write a report.", max_turns=100)
        except agentfuse.Halted as refusal:
            print(f"stopped by agentfuse: {type(refusal).__name__} in run {refusal.run_id}")
        finally:
            fuse.close()
            guard.close()
        print(f"requests that reached the stand-in provider: {provider.requests}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
