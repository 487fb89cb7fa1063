"""LangChain / LangGraph under AgentfuseCallbackHandler: real graphs, real ChatOpenAI, the stand-in.

The graph loops ``plan -> researcher -> plan ...`` until a refusal stops it; ``researcher`` is a
sub-agent (``children:``) and both nodes call their model through ``.with_retry()``.
"""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

pytest.importorskip("langgraph")

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from langgraph.graph import END, START, StateGraph  # noqa: E402

import agentfuse  # noqa: E402
import halted_helpers  # noqa: E402
from agentfuse.integrations.langchain import AgentfuseCallbackHandler  # noqa: E402
from agentfuse.runtime.guard import Guard  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from framework_helpers import RefusalContract, with_researcher  # noqa: E402
from halted_helpers import Fuses  # noqa: E402
from instrument_helpers import GPT4O_CALL_MICROS, books  # noqa: E402

standin = halted_helpers.standin
fuses = halted_helpers.fuses


class State(TypedDict):
    turns: int


def _graph(provider: StandIn, on_call: Any = None) -> Any:
    model = ChatOpenAI(model="gpt-4o", base_url=provider.openai_url, api_key="none", max_retries=0, max_tokens=20)

    def plan(state: State) -> State:
        if on_call is not None:
            on_call(provider.requests)
        model.with_retry(stop_after_attempt=10, wait_exponential_jitter=False).invoke("plan the next step")
        return {"turns": state["turns"] + 1}

    def researcher(state: State) -> State:
        model.with_retry(stop_after_attempt=10, wait_exponential_jitter=False).invoke("look it up")
        return {"turns": state["turns"] + 1}

    builder = StateGraph(State)
    builder.add_node("plan", plan)
    builder.add_node("researcher", researcher)
    builder.add_edge(START, "plan")
    builder.add_edge("plan", "researcher")
    builder.add_conditional_edges("researcher", lambda state: "plan" if state["turns"] < 1000 else END)
    return builder.compile()


def _run(guard: Guard, provider: StandIn, on_call: Any = None) -> agentfuse.Halted:
    handler = AgentfuseCallbackHandler(guard)
    try:
        with pytest.raises(agentfuse.Halted) as caught:
            _graph(provider, on_call).invoke({"turns": 0}, config={"callbacks": [handler], "recursion_limit": 10_000})
    finally:
        handler.close()
    return caught.value


def test_an_open_breaker_stops_with_retry_at_the_first_refusal(fuses: Fuses, standin: StandIn) -> None:
    guard = with_researcher(fuses, {"run_usd": 10}, breaker={"failure_threshold": 3, "cooldown_s": 300})
    standin.fail(500, times=None)  # every request fails, and with_retry() retries it
    refusal = _run(guard, standin)
    assert isinstance(refusal, agentfuse.CircuitOpen)
    assert standin.requests == 3  # three failures open the breaker; the fourth attempt is refused
    assert fuses.refused() == 1


def test_a_model_whose_sdk_is_not_instrumented_is_gated_and_settled_from_usage_metadata(fuses: Fuses) -> None:
    guard = fuses({"max_steps": 2, "run_usd": 10})
    answer = AIMessage(
        content="ok",
        usage_metadata={"input_tokens": 100, "output_tokens": 20, "total_tokens": 120},
        response_metadata={"model_name": "gpt-4o"},
    )
    model = GenericFakeChatModel(messages=iter([answer, answer, answer]))
    handler = AgentfuseCallbackHandler(guard)
    model.invoke("one", config={"callbacks": [handler]})
    model.invoke("two", config={"callbacks": [handler]})
    with pytest.raises(agentfuse.StepLimitExceeded):
        model.invoke("three", config={"callbacks": [handler]})
    assert books(guard).spent_micros == 2 * GPT4O_CALL_MICROS


class TestLangGraph(RefusalContract):
    """Both nodes call their model through ``.with_retry()``: the refusal is not retried."""

    actions = frozenset({"plan", "researcher"})

    def run(self, guard: Guard, standin: StandIn, on_call: Any = None) -> BaseException:
        return _run(guard, standin, on_call)
