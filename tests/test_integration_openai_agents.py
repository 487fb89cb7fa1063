"""OpenAI Agents SDK under AgentsFuse: real agents, a real OpenAIChatCompletionsModel, the stand-in.

The stand-in always answers with a call of the first tool offered, so ``planner`` hands off to
``researcher``, which hands back to ``planner``, and so on until a refusal stops the run;
``researcher`` is a child run (``children:``). Tracing is off (it would export to OpenAI).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

pytest.importorskip("agents")

import openai  # noqa: E402
from agents import (  # noqa: E402
    Agent, ModelSettings, OpenAIChatCompletionsModel, function_tool, handoff, set_tracing_disabled,
)

import agentfuse  # noqa: E402
import halted_helpers  # noqa: E402
from agentfuse.integrations.openai_agents import AgentsFuse  # noqa: E402
from agentfuse.runtime.guard import Guard  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from framework_helpers import RefusalContract, with_researcher  # noqa: E402
from halted_helpers import Fuses  # noqa: E402

fuses = halted_helpers.fuses
set_tracing_disabled(True)
SHORT = ModelSettings(max_tokens=20)
"""The stand-in answers 20 tokens; without a ceiling the estimate is the model's whole output limit."""


@pytest.fixture()
def standin() -> Iterator[StandIn]:
    with StandIn(tool_turns=10**6) as provider:  # a tool call in every answer: the agents never finish
        yield provider


def _agents(provider: StandIn, on_call: Callable[[int], None] | None = None) -> Agent[Any]:
    client = openai.AsyncOpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)

    async def hand_back(ctx: Any) -> None:
        if on_call is not None:
            on_call(provider.requests)

    planner: Agent[Any] = Agent(name="planner", instructions="plan", model=model, model_settings=SHORT)
    researcher: Agent[Any] = Agent(name="researcher", instructions="look it up", model=model, model_settings=SHORT,
                                   handoffs=[handoff(planner, on_handoff=hand_back)])
    planner.handoffs = [handoff(researcher, on_handoff=hand_back)]
    return planner


def _run(guard: Guard, starting: Agent[Any]) -> agentfuse.Halted:
    fuse = AgentsFuse(guard)
    try:
        with pytest.raises(agentfuse.Halted) as caught:
            fuse.run_sync(starting, "go", max_turns=10_000)
    finally:
        fuse.close()
    return caught.value


def test_an_open_breaker_stops_the_sdk_retries(fuses: Fuses, standin: StandIn) -> None:
    guard = with_researcher(fuses, {"run_usd": 10}, breaker={"failure_threshold": 3, "cooldown_s": 300})
    standin.fail(500, times=None)
    # the SDK retries every 500 (bounded only by the breaker)
    client = openai.AsyncOpenAI(base_url=standin.openai_url, api_key="none", max_retries=50)  # noqa: AF203
    agent: Agent[Any] = Agent(name="planner", model_settings=SHORT,
                              model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client))
    refusal = _run(guard, agent)
    assert isinstance(refusal, agentfuse.CircuitOpen)
    assert standin.requests == 3  # three failures open the breaker; the fourth attempt is refused
    assert fuses.refused() == 1


def test_a_tool_that_calls_a_model_stops_at_the_first_refusal(fuses: Fuses, standin: StandIn) -> None:
    guard = fuses({"max_steps": 3, "run_usd": 10})
    inner = openai.AsyncOpenAI(base_url=standin.openai_url, api_key="none", max_retries=0)

    @function_tool
    async def summarise() -> str:
        """Summarise the notes with a model of its own."""
        answer = await inner.chat.completions.create(
            model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "sum"}]
        )
        return answer.choices[0].message.content or ""

    client = openai.AsyncOpenAI(base_url=standin.openai_url, api_key="none", max_retries=0)
    agent: Agent[Any] = Agent(name="planner", tools=[summarise], model_settings=SHORT,
                              model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client))
    refusal = _run(guard, agent)
    assert isinstance(refusal, agentfuse.StepLimitExceeded)
    assert standin.requests == 3  # agent, tool, agent; the tool's second call is refused
    assert fuses.refused() == 1  # not handed back to the model as a tool error, nor retried
    assert [line["action"] for line in fuses.lines("allowed")] == ["planner"] * 3


def test_the_binding_does_not_outlive_the_run(fuses: Fuses, standin: StandIn) -> None:
    from agentfuse.runtime import instrument

    guard = with_researcher(fuses, {"run_usd": 10}, researcher_usd="0.0006")
    _run(guard, _agents(standin))
    assert instrument.charged_guard() is guard
    assert instrument.name_action(None) is None


class TestHandoffs(RefusalContract):
    """``planner`` and ``researcher`` hand off to each other; ``Runner.run`` raises the refusal."""

    def run(self, guard: Guard, standin: StandIn, on_call: Any = None) -> BaseException:
        return _run(guard, _agents(standin, on_call))
