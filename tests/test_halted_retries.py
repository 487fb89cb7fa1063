"""A refusal passes through retry decorators and ``except Exception`` loops at the first try.

Each case wraps an instrumented openai call (against the stand-in) in a retry helper that
retries every ``Exception``. After the budget's last allowed call: the refusal reaches the
caller, one ``refused`` event is written, and no further request reaches the stand-in.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import backoff
import openai
import pytest
import stamina
import tenacity

import agentfuse
from agentfuse.testing.standin import StandIn
import halted_helpers
from halted_helpers import Fuses

standin = halted_helpers.standin
fuses = halted_helpers.fuses

ALLOWED = 3


def _client(provider: StandIn) -> openai.OpenAI:
    return openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)


def _ask(client: openai.OpenAI) -> Any:
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


def _agent(call: Callable[[], Any], turns: int = 10) -> int:
    """An agent loop: ``turns`` model calls; returns how many answered (raises the refusal)."""
    answered = 0
    for _ in range(turns):
        call()
        answered += 1
    return answered


def _assert_stopped_at_first_refusal(fuses: Fuses, provider: StandIn, raised: BaseException) -> None:
    assert isinstance(raised, agentfuse.StepLimitExceeded)
    assert provider.requests == ALLOWED
    assert fuses.refused() == 1


def _decorated_cases(client: openai.OpenAI) -> dict[str, Callable[[], Any]]:
    @tenacity.retry(wait=tenacity.wait_none())  # retries every Exception, forever
    def with_tenacity() -> Any:
        return _ask(client)

    @backoff.on_exception(backoff.constant, Exception, interval=0, max_tries=50)
    def with_backoff() -> Any:
        return _ask(client)

    @stamina.retry(on=Exception, attempts=50, wait_initial=0, wait_max=0, wait_jitter=0)
    def with_stamina() -> Any:
        return _ask(client)

    def with_loop() -> Any:
        while True:  # the hand-written loop of the 60-hour incident
            try:
                return _ask(client)
            except Exception:  # noqa: BLE001 - the point of the test
                continue

    return {"tenacity": with_tenacity, "backoff": with_backoff, "stamina": with_stamina, "loop": with_loop}


@pytest.mark.parametrize("helper", ["tenacity", "backoff", "stamina", "loop"])
def test_a_retry_helper_does_not_retry_a_refusal(fuses: Fuses, standin: StandIn, helper: str) -> None:
    fuses({"max_steps": ALLOWED, "run_usd": 10})
    call = _decorated_cases(_client(standin))[helper]
    with pytest.raises(agentfuse.Halted) as caught:
        _agent(call)
    _assert_stopped_at_first_refusal(fuses, standin, caught.value)


@pytest.mark.parametrize("helper", ["tenacity", "backoff", "stamina", "loop"])
def test_a_retry_helper_still_retries_a_provider_error_then_stops_at_the_refusal(
    fuses: Fuses, standin: StandIn, helper: str
) -> None:
    fuses({"max_steps": ALLOWED, "run_usd": 10})
    standin.fail(500, times=1)  # the first call fails once: the helper retries it (a real retry)
    call = _decorated_cases(_client(standin))[helper]
    with pytest.raises(agentfuse.StepLimitExceeded):
        _agent(call)
    assert standin.requests == ALLOWED  # the failed attempt was one of the allowed steps
    assert standin.served == ALLOWED - 1
    assert fuses.refused() == 1


def test_an_async_retry_helper_does_not_retry_a_refusal(fuses: Fuses, standin: StandIn) -> None:
    fuses({"max_steps": ALLOWED, "run_usd": 10})
    client = openai.AsyncOpenAI(base_url=standin.openai_url, api_key="none", max_retries=0)

    @tenacity.retry(wait=tenacity.wait_none())
    async def ask() -> Any:
        return await client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

    @backoff.on_exception(backoff.constant, Exception, interval=0, max_tries=50)
    async def agent() -> None:
        while True:
            try:
                await ask()
            except Exception:  # noqa: BLE001 - the point of the test
                continue

    with pytest.raises(agentfuse.Halted) as caught:
        asyncio.run(agent())
    _assert_stopped_at_first_refusal(fuses, standin, caught.value)
