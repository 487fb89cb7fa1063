"""guard.instrument() over the real ``anthropic`` SDK, against the stand-in provider on loopback."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

anthropic = pytest.importorskip("anthropic")

import instrument_helpers  # noqa: E402
from agentfuse import CircuitOpen, StepLimitExceeded  # noqa: E402
from agentfuse.testing.standin import StandIn  # noqa: E402
from instrument_helpers import CLAUDE_CALL_MICROS, Guards, books  # noqa: E402

standin = instrument_helpers.standin
guards = instrument_helpers.guards
MODEL = "claude-sonnet-4-5"
MESSAGES = [{"role": "user", "content": "hi"}]


def client(provider: StandIn, max_retries: int = 0) -> Any:
    return anthropic.Anthropic(base_url=provider.url, api_key="none", max_retries=max_retries)


def test_sync_stream_and_beta_calls_are_gated_and_settled(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    llm = client(standin)
    assert llm.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES).content[0].text == standin.text
    with llm.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
        assert stream.get_final_text() == standin.text
    events = list(llm.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES, stream=True))
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
    llm.beta.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    raw = llm.messages.with_raw_response.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert raw.parse().usage.output_tokens == 20
    run = books(guard)
    assert standin.requests == 5
    assert (run.steps, run.spent_micros, run.reserved_micros) == (5, 5 * CLAUDE_CALL_MICROS, 0)


def test_async_calls_and_streams_are_gated_and_settled(standin: StandIn, guards: Guards) -> None:
    guard = guards()

    async def agent() -> None:
        llm = anthropic.AsyncAnthropic(base_url=standin.url, api_key="none", max_retries=0)
        await llm.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
        async with llm.messages.stream(model=MODEL, max_tokens=20, messages=MESSAGES) as stream:
            assert await stream.get_final_text() == standin.text

    asyncio.run(agent())
    run = books(guard)
    assert (standin.requests, run.steps, run.spent_micros) == (2, 2, 2 * CLAUDE_CALL_MICROS)


def test_a_refused_request_sends_no_byte(standin: StandIn, guards: Guards) -> None:
    guards({"run_usd": 10, "max_steps": 1})
    llm = client(standin)
    llm.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    with pytest.raises(StepLimitExceeded):
        llm.messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert standin.requests == 1


def test_sdk_retries_are_gated_one_by_one_and_open_the_breaker(standin: StandIn, guards: Guards) -> None:
    guard = guards(breaker={"failure_threshold": 2, "cooldown_s": 600})
    standin.fail(529, times=None)
    with pytest.raises(CircuitOpen):
        client(standin, max_retries=5).messages.create(model=MODEL, max_tokens=20, messages=MESSAGES)
    assert standin.requests == 2
    assert books(guard).failures == 2


def test_a_stream_abandoned_after_message_start_settles_the_reported_input(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "estimate_usd": 0.5})
    stream = client(standin).messages.create(model=MODEL, max_tokens=20, messages=MESSAGES, stream=True)
    assert next(iter(stream)).type == "message_start"
    stream.close()
    run = books(guard)
    assert run.reserved_micros == 0
    assert 100 * 3 <= run.spent_micros < 500_000  # 100 input tokens reported at message_start
