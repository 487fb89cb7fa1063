"""guard.instrument() over LiteLLM, against the stand-in provider: one step per call, charged once
even though LiteLLM sends through the instrumented ``openai`` SDK underneath."""

from __future__ import annotations

import asyncio
import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
litellm = pytest.importorskip("litellm")

import instrument_helpers  # noqa: E402
from agentfuse import RetryLimitExceeded, StepLimitExceeded  # noqa: E402
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


def test_router_methods_and_streams_are_gated_and_charged_once(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    target = {"api_base": standin.openai_url, "api_key": "none"}
    router = litellm.Router(model_list=[
        {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o", **target}},
        # Router.text_completion hands the group's name to litellm as the model: name it after the model.
        {"model_name": "gpt-3.5-turbo-instruct",
         "litellm_params": {"model": "text-completion-openai/gpt-3.5-turbo-instruct", **target}},
        {"model_name": "embed", "litellm_params": {"model": "openai/text-embedding-3-small", **target}},
    ])
    chat = {"model": "chat", "messages": MESSAGES, "max_tokens": 20}
    instruct = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi", "max_tokens": 20}
    assert router.completion(**chat).choices[0].message.content == standin.text
    streamed = router.completion(**chat, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in streamed) == standin.text
    assert router.text_completion(**instruct).choices[0].text == standin.text
    router.embedding(model="embed", input=["hi"])

    async def agent() -> None:
        await router.acompletion(**chat)
        stream = await router.acompletion(**chat, stream=True)
        assert "".join([chunk.choices[0].delta.content or "" async for chunk in stream]) == standin.text
        await router.atext_completion(**instruct)
        await router.aembedding(model="embed", input=["hi"])

    asyncio.run(agent())
    run = books(guard)
    assert standin.requests == 8
    instruct_micros = 100 * 1.5 + 20 * 2
    embed_micros = 100 * 0.02
    expected = 4 * GPT4O_CALL_MICROS + 2 * instruct_micros + 2 * embed_micros
    assert (run.steps, run.spent_micros, run.reserved_micros) == (8, expected, 0)


def test_router_retries_are_gated_one_by_one(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "max_retries_total": 1}, breaker={"failure_threshold": 100, "cooldown_s": 60})
    router = litellm.Router(
        model_list=[{"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o", "api_base": standin.openai_url,
                                                              "api_key": "none"}}],
        num_retries=5, retry_after=0,
    )
    standin.fail(500, times=None)
    with pytest.raises(RetryLimitExceeded):
        router.completion(model="chat", messages=MESSAGES, max_tokens=20)
    assert standin.requests == 2
    assert books(guard).failures == 2


def test_retries_of_the_openai_sdk_under_litellm_are_steps_of_their_own(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "max_retries_total": 2}, breaker={"failure_threshold": 100, "cooldown_s": 60})
    call = {"model": "openai/gpt-4o", "messages": MESSAGES, "api_base": standin.openai_url, "api_key": "none",
            "max_tokens": 20, "max_retries": 5}
    standin.fail(500, times=1)
    assert litellm.completion(**call).choices[0].message.content == standin.text
    run = books(guard)
    assert standin.requests == 2
    assert (run.steps, run.failures, run.spent_micros, run.reserved_micros) == (2, 1, GPT4O_CALL_MICROS, 0)
    standin.fail(500, times=None)
    with pytest.raises(RetryLimitExceeded):
        litellm.completion(**call)  # two more failed attempts (3 > 2): the SDK's next retry is refused
    assert standin.requests == 4
    assert books(guard).failures == 3
