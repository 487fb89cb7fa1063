"""Retries an SDK makes inside one call, under guard.instrument(): google-genai, mistralai, cohere
and boto3 Bedrock.

Each retry is a step of its own: the attempt before it settles as a failure (nothing billed for
an error answer), which counts against ``max_retries_total`` and feeds the breaker exactly as a
failed ``guard.step()``; a refused retry raises the refusal and no further request leaves the
process. The provider answers errors a given number of times first, then succeeds; it is
reached through each SDK's own test hook (an ``httpx`` transport), Bedrock over loopback HTTP
(botocore's ``Stubber`` answers before the retry loop, so it cannot show retries).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import instrument_helpers
from agentfuse import CircuitOpen, RetryLimitExceeded, RunHalted
from instrument_helpers import Guards, books
from sdk_providers import CALL_MICROS, MODEL, TEXT, Provider, bedrock_answer, cohere_answer, genai_answer
from sdk_providers import mistral_answer, priced

guards = instrument_helpers.guards
httpx = pytest.importorskip("httpx")
MESSAGES = [{"role": "user", "content": "hi"}]
STEADY_BREAKER = {"failure_threshold": 100, "cooldown_s": 60}
Calls = tuple[Callable[[], Any], Callable[[], Awaitable[Any]]]
"""A sync and an async way to make one model request through the SDK (each returns its text)."""


@dataclasses.dataclass(frozen=True)
class SDK:
    name: str
    answer: Callable[[str, dict[str, Any]], Any]
    calls: Callable[[Provider], contextlib.AbstractContextManager[Calls]]
    """Clients of the SDK that retry up to 4 times at once, pointed at the provider."""
    error: dict[str, str] = dataclasses.field(default_factory=dict)
    """Headers of the provider's error answer."""


@contextlib.contextmanager
def genai_calls(provider: Provider, *, stream: bool = False) -> Iterator[Calls]:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    retry = types.HttpRetryOptions(attempts=5, initial_delay=0.0, max_delay=0.0, jitter=0.0)
    client = genai.Client(api_key="none", http_options=types.HttpOptions(
        base_url="http://genai.test", retry_options=retry,
        httpx_client=httpx.Client(transport=provider.transport(httpx)),
        httpx_async_client=httpx.AsyncClient(transport=provider.transport(httpx)),
    ))

    def call() -> str:
        if stream:
            chunks = client.models.generate_content_stream(model=MODEL, contents="hi")
            return "".join(chunk.text or "" for chunk in chunks)
        return str(client.models.generate_content(model=MODEL, contents="hi").text)

    async def acall() -> str:
        if stream:
            chunks = await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
            return "".join([chunk.text or "" async for chunk in chunks])
        return str((await client.aio.models.generate_content(model=MODEL, contents="hi")).text)

    yield call, acall


@contextlib.contextmanager
def mistral_calls(provider: Provider, *, stream: bool = False) -> Iterator[Calls]:
    mistral_sdk = pytest.importorskip("mistralai.client")
    import httpx2
    from mistralai.client.utils import BackoffStrategy, RetryConfig

    retry = RetryConfig("backoff", BackoffStrategy(1, 1, 1.0, 60_000, jitter_ms=0), retry_connection_errors=True)
    client = mistral_sdk.Mistral(
        api_key="none", server_url="http://mistral.test", retry_config=retry,
        client=httpx2.Client(transport=provider.transport(httpx2)),
        async_client=httpx2.AsyncClient(transport=provider.transport(httpx2)),
    )

    def call() -> str:
        if stream:
            with client.chat.stream(model=MODEL, messages=MESSAGES) as events:
                return "".join(event.data.choices[0].delta.content or "" for event in events)
        return str(client.chat.complete(model=MODEL, messages=MESSAGES).choices[0].message.content)

    async def acall() -> str:
        if stream:
            events = await client.chat.stream_async(model=MODEL, messages=MESSAGES)
            return "".join([event.data.choices[0].delta.content or "" async for event in events])
        answer = await client.chat.complete_async(model=MODEL, messages=MESSAGES)
        return str(answer.choices[0].message.content)

    yield call, acall


@contextlib.contextmanager
def cohere_calls(provider: Provider) -> Iterator[Calls]:
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="none", base_url="http://cohere.test", max_retries=4,
                             httpx_client=httpx.Client(transport=provider.transport(httpx)))
    aclient = cohere.AsyncClientV2(api_key="none", base_url="http://cohere.test", max_retries=4,
                                   httpx_client=httpx.AsyncClient(transport=provider.transport(httpx)))

    def call() -> str:
        return str(client.chat(model=MODEL, messages=MESSAGES).message.content[0].text)

    async def acall() -> str:
        return str((await aclient.chat(model=MODEL, messages=MESSAGES)).message.content[0].text)

    yield call, acall


@contextlib.contextmanager
def bedrock_calls(provider: Provider) -> Iterator[Calls]:
    boto3 = pytest.importorskip("boto3")
    from botocore.config import Config

    with provider.serve() as url:
        client = boto3.client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=url, aws_access_key_id="x",
            aws_secret_access_key="x", config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )

        def call() -> str:
            answer = client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}])
            return str(answer["output"]["message"]["content"][0]["text"])

        async def acall() -> str:
            return await asyncio.to_thread(call)

        yield call, acall


SDKS = [
    SDK("google-genai", genai_answer, genai_calls),
    SDK("google-genai-stream", genai_answer, lambda provider: genai_calls(provider, stream=True)),
    SDK("mistralai", mistral_answer, mistral_calls),
    SDK("mistralai-stream", mistral_answer, lambda provider: mistral_calls(provider, stream=True)),
    SDK("cohere", cohere_answer, cohere_calls),
    SDK("bedrock", bedrock_answer, bedrock_calls, {"x-amzn-errortype": "ServiceUnavailableException"}),
]


@pytest.mark.parametrize("sdk", SDKS, ids=[sdk.name for sdk in SDKS])
def test_each_sdk_retry_is_a_step_and_max_retries_total_stops_the_next(sdk: SDK, guards: Guards) -> None:
    guard = priced(guards, {"run_usd": 10, "max_retries_total": 2}, breaker=STEADY_BREAKER)
    provider = Provider(sdk.answer)
    with sdk.calls(provider) as (call, _):
        provider.fail(503, times=2, headers=sdk.error)
        assert call() == TEXT  # two failed attempts, then the answer: three requests, three steps
        run = books(guard)
        assert provider.requests == 3
        assert (run.steps, run.failures, run.spent_micros, run.reserved_micros) == (3, 2, CALL_MICROS, 0)
        provider.fail(503, headers=sdk.error)
        with pytest.raises(RetryLimitExceeded):
            call()  # its first attempt fails (3 failures > 2): the SDK's retry is refused, never sent
        assert provider.requests == 4
    run = books(guard)
    assert (run.steps, run.failures, run.spent_micros, run.reserved_micros) == (4, 3, CALL_MICROS, 0)


@pytest.mark.parametrize("sdk", SDKS, ids=[sdk.name for sdk in SDKS])
def test_async_sdk_retries_count_and_are_refused_the_same(sdk: SDK, guards: Guards) -> None:
    guard = priced(guards, {"run_usd": 10, "max_retries_total": 1}, breaker=STEADY_BREAKER)
    provider = Provider(sdk.answer)

    async def agent(acall: Callable[[], Awaitable[Any]]) -> None:
        provider.fail(503, times=1, headers=sdk.error)
        assert await acall() == TEXT
        provider.fail(503, headers=sdk.error)
        with pytest.raises(RetryLimitExceeded):
            await acall()

    with sdk.calls(provider) as (_, acall):
        asyncio.run(agent(acall))
    run = books(guard)
    assert provider.requests == 3
    assert (run.steps, run.failures, run.spent_micros, run.reserved_micros) == (3, 2, CALL_MICROS, 0)


@pytest.mark.parametrize("sdk", SDKS, ids=[sdk.name for sdk in SDKS])
def test_sdk_retries_open_the_breaker_and_the_next_retry_is_not_sent(sdk: SDK, guards: Guards) -> None:
    guard = priced(guards, breaker={"failure_threshold": 2, "cooldown_s": 600})
    provider = Provider(sdk.answer)
    provider.fail(503, headers=sdk.error)
    with sdk.calls(provider) as (call, _), pytest.raises(CircuitOpen):
        call()
    assert provider.requests == 2
    assert books(guard).failures == 2


@pytest.mark.parametrize(
    ("sdk", "error"),
    [(SDKS[0], "google.genai.errors.ServerError"), (SDKS[2], "mistralai.client.errors.SDKError"),
     (SDKS[4], "cohere.core.api_error.ApiError"), (SDKS[5], "ServiceUnavailableException")],
    ids=["google-genai", "mistralai", "cohere", "bedrock"],
)
def test_a_retried_error_is_the_sdk_exception_fail_fast_names(sdk: SDK, error: str, guards: Guards) -> None:
    priced(guards, fail_fast={"halt_on": [error]})
    provider = Provider(sdk.answer)
    provider.fail(503, headers=sdk.error)
    with sdk.calls(provider) as (call, _), pytest.raises(RunHalted):
        call()
    assert provider.requests == 1


@pytest.mark.slow
def test_genai_own_retry_of_a_dropped_aiohttp_connection_is_a_step(guards: Guards) -> None:
    genai = pytest.importorskip("google.genai")
    pytest.importorskip("aiohttp")  # the SDK's default async transport when no httpx client is given
    from google.genai import types

    guard = priced(guards, {"run_usd": 10, "max_retries_total": 1, "estimate_usd": 0.001}, breaker=STEADY_BREAKER)
    provider = Provider(genai_answer)

    async def agent(client: Any) -> None:
        try:
            provider.drops = 1  # the SDK waits 1-10 s, then sends again on a new session
            assert (await client.aio.models.generate_content(model=MODEL, contents="hi")).text == TEXT
            provider.drops = 2  # dropped again (2 failures > 1): the SDK's retry is refused
            with pytest.raises(RetryLimitExceeded):
                await client.aio.models.generate_content(model=MODEL, contents="hi")
        finally:
            await client.aio.aclose()

    with provider.serve() as url:
        asyncio.run(agent(genai.Client(api_key="none", http_options=types.HttpOptions(base_url=url))))
    run = books(guard)
    assert provider.requests == 3
    # A dropped connection had no answer: each failed attempt is charged its reservation.
    assert (run.steps, run.failures, run.spent_micros, run.reserved_micros) == (3, 2, 2 * 1000 + CALL_MICROS, 0)
