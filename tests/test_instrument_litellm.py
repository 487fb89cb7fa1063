"""guard.instrument() over LiteLLM, against the stand-in provider: one step per call, charged once
even though LiteLLM sends through the instrumented ``openai`` SDK underneath."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

import instrument_helpers  # noqa: E402
from agentfuse import StepLimitExceeded  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from instrument_helpers import GPT4O_CALL_MICROS, Guards, books  # noqa: E402

standin = instrument_helpers.standin
guards = instrument_helpers.guards
MESSAGES = [{"role": "user", "content": "hi"}]


def test_completion_over_the_openai_sdk_is_one_step_charged_once(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    answer = litellm.completion(
        model="openai/gpt-4o", messages=MESSAGES, api_base=standin.openai_url, api_key="none", max_tokens=20
    )
    assert answer.choices[0].message.content == standin.text
    run = books(guard)
    assert standin.requests == 1
    assert (run.steps, run.spent_micros, run.reserved_micros) == (1, GPT4O_CALL_MICROS, 0)


def test_acompletion_and_streams_are_settled(standin: StandIn, guards: Guards) -> None:
    guard = guards()

    async def agent() -> str:
        await litellm.acompletion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=standin.openai_url, api_key="none", max_tokens=20
        )
        stream = await litellm.acompletion(
            model="openai/gpt-4o", messages=MESSAGES, api_base=standin.openai_url, api_key="none", stream=True,
            max_tokens=20,
        )
        return "".join([chunk.choices[0].delta.content or "" async for chunk in stream])

    assert asyncio.run(agent()) == standin.text
    stream = litellm.completion(
        model="openai/gpt-4o", messages=MESSAGES, api_base=standin.openai_url, api_key="none", stream=True,
        max_tokens=20,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == standin.text
    run = books(guard)
    assert standin.requests == 3
    assert (run.steps, run.spent_micros, run.reserved_micros) == (3, 3 * GPT4O_CALL_MICROS, 0)


def test_embedding_and_a_refusal_that_sends_nothing(standin: StandIn, guards: Guards) -> None:
    guards({"run_usd": 10, "max_steps": 1})
    litellm.embedding(model="openai/text-embedding-3-small", input=["hi"], api_base=standin.openai_url, api_key="none")
    with pytest.raises(StepLimitExceeded):
        litellm.completion(model="openai/gpt-4o", messages=MESSAGES, api_base=standin.openai_url, api_key="none")
    assert standin.requests == 1
