"""OpenAI Agents SDK under AgentsFuse: real agents, a real OpenAIChatCompletionsModel, the stand-in.

The stand-in always answers with a call of the first tool offered, so ``planner`` hands off to
``researcher``, which hands back to ``planner``, and so on until a refusal stops the run;
``researcher`` is a child run (``children:``). Tracing is off (it would export to OpenAI).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("agents")

import openai  # noqa: E402
from agents import (  # noqa: E402
    Agent, ModelSettings, OpenAIChatCompletionsModel, RunHooks, function_tool, handoff, set_tracing_disabled,
)

import agentfuse  # noqa: E402
import halted_helpers  # noqa: E402
from agentfuse.integrations.openai_agents import AgentsFuse  # noqa: E402
from agentfuse.runtime.guard import Guard  # noqa: E402
from agentfuse.runtime.policy import ChildCaps  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from framework_helpers import RefusalContract, status_runs, with_researcher  # noqa: E402
from instrument_helpers import GPT4O_CALL_MICROS, books  # noqa: E402
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


def _model(provider: StandIn) -> OpenAIChatCompletionsModel:
    client = openai.AsyncOpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
    return OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client)


def _run(guard: Guard, starting: Agent[Any], **kwargs: Any) -> agentfuse.Halted:
    fuse = AgentsFuse(guard)
    try:
        with pytest.raises(agentfuse.Halted) as caught:
            fuse.run_sync(starting, "go", max_turns=10_000, **kwargs)
    finally:
        fuse.close()
    return caught.value


class _Handovers(RunHooks[Any]):
    """Tells ``on_call`` the requests so far when the outer agent calls a tool and when it returns."""

    def __init__(self, provider: StandIn, on_call: Callable[[int], None] | None) -> None:
        self.provider = provider
        self.on_call = on_call

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        if self.on_call is not None:
            self.on_call(self.provider.requests)

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: str) -> None:
        if self.on_call is not None:
            self.on_call(self.provider.requests)


@dataclasses.dataclass
class Ask:
    """An agent tool's arguments (the stand-in calls tools with ``{}``; the default input needs one)."""

    question: str = "go"


def _as_tool(agent: Agent[Any]) -> Any:
    return agent.as_tool(agent.name, f"Ask the {agent.name}.", parameters=Ask)


def _nested(provider: StandIn) -> Agent[Any]:
    """planner -> researcher (a tool) -> fact_checker (a tool of the researcher) -> editor (its handoff)."""
    editor: Agent[Any] = Agent(name="editor", instructions="edit", model=_model(provider), model_settings=SHORT)
    fact_checker: Agent[Any] = Agent(name="fact_checker", instructions="check", model=_model(provider),
                                     model_settings=SHORT, handoffs=[editor])
    researcher: Agent[Any] = Agent(name="researcher", instructions="look it up", model=_model(provider),
                                   model_settings=SHORT,
                                   tools=[_as_tool(fact_checker)])
    return Agent(name="planner", instructions="plan", model=_model(provider), model_settings=SHORT,
                 tools=[_as_tool(researcher)])


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


class TestAgentsAsTools(RefusalContract):
    """``planner`` calls ``researcher.as_tool()`` in every answer; a refusal in the tool stops ``Runner.run``."""

    def run(self, guard: Guard, standin: StandIn, on_call: Any = None) -> BaseException:
        researcher: Agent[Any] = Agent(name="researcher", instructions="look it up", model=_model(standin),
                                       model_settings=SHORT)
        planner: Agent[Any] = Agent(name="planner", instructions="plan", model=_model(standin), model_settings=SHORT,
                                    tools=[_as_tool(researcher)])
        return _run(guard, planner, hooks=_Handovers(standin, on_call))


def test_an_agent_tool_of_an_agent_tool_is_a_child_of_its_caller(fuses: Fuses) -> None:
    guard = with_researcher(fuses, {"run_usd": 10})
    with StandIn(tool_turns=1) as provider:  # each agent calls its tool once, then answers
        fuse = AgentsFuse(guard)
        try:
            fuse.run_sync(_nested(provider), "go")
        finally:
            fuse.close()
        assert provider.requests == 6  # planner, researcher, fact_checker, editor, researcher, planner
    assert books(guard).spent_micros == 6 * GPT4O_CALL_MICROS
    runs = status_runs(fuses)
    top = guard.run_id
    researcher, checker, editor = (runs[f"{top}/researcher{tail}"] for tail in ("", "/fact_checker", "/editor"))
    # the fact checker runs inside the researcher's tool call; the editor it hands off to, beside it
    parents = [run["parent_id"] for run in (researcher, checker, editor)]
    assert parents == [top, f"{top}/researcher", f"{top}/researcher"]
    assert checker["spent_usd"] == pytest.approx(GPT4O_CALL_MICROS / 1e6)
    assert researcher["spent_usd"] == pytest.approx(4 * GPT4O_CALL_MICROS / 1e6)  # its own two and its children's
    assert [line["action"] for line in fuses.lines("allowed")] == [
        "planner", "researcher", "fact_checker", "editor", "researcher", "planner",
    ]


def test_a_refusal_deep_in_nested_agent_tools_stops_the_outer_run(fuses: Fuses) -> None:
    guard = fuses({"run_usd": 10}, children=(("fact_checker", ChildCaps(Decimal("0.0004"))),))  # not one call
    with StandIn(tool_turns=1) as provider:
        refusal = _run(guard, _nested(provider))
        assert provider.requests == 2  # planner, researcher; the fact checker's call is refused
    assert isinstance(refusal, agentfuse.BudgetExceeded)
    assert refusal.run_id == f"{guard.run_id}/researcher/fact_checker"
    assert fuses.refused() == 1  # not handed back to the researcher or the planner as a tool error
