"""guard.instrument() over the real google-genai, mistralai, cohere, ollama and boto3 SDKs.

Each SDK is pointed at a provider through its own supported test hook: an ``httpx`` transport
handed to the client (``MockTransport`` answering each provider's wire format, counting the
requests that reach it), or botocore's ``Stubber`` for Bedrock. No SDK class is replaced.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

import instrument_helpers
from agentfuse import CircuitOpen, StepLimitExceeded
from instrument_helpers import Guards, books
from sdk_providers import (
    CALL_MICROS,
    CHEAP,
    MODEL,
    TEXT,
    Provider,
    cohere_answer,
    genai_answer,
    mistral_answer,
    priced,
)

guards = instrument_helpers.guards

# -- ollama --------------------------------------------------------------------------------------

ollama = pytest.importorskip("ollama")
import httpx  # noqa: E402


def ollama_answer(path: str, body: dict[str, Any]) -> Any:
    done = {"model": body["model"], "created_at": "2025-01-01T00:00:00Z", "done": True, "done_reason": "stop",
            "prompt_eval_count": 100, "eval_count": 20}
    if path == "/api/embed":
        return {"model": body["model"], "embeddings": [[0.1, 0.2]], "prompt_eval_count": 100}
    key = "message" if path == "/api/chat" else "response"
    if not body.get("stream", True):
        return {**done, key: {"role": "assistant", "content": TEXT} if key == "message" else TEXT}
    pieces = [TEXT[:10], TEXT[10:]]
    lines = [
        {"model": body["model"], "created_at": "2025-01-01T00:00:00Z", "done": False,
         key: {"role": "assistant", "content": piece} if key == "message" else piece}
        for piece in pieces
    ]
    last = {**done, key: {"role": "assistant", "content": ""} if key == "message" else ""}
    return [json.dumps(line).encode() + b"\n" for line in [*lines, last]]


def test_ollama_sync_async_and_streamed_calls_are_gated_and_settled(guards: Guards) -> None:
    guard = priced(guards)
    provider = Provider(ollama_answer)
    client = ollama.Client(host="http://ollama.test", transport=provider.transport(httpx))
    messages = [{"role": "user", "content": "hi"}]
    assert client.chat(MODEL, messages=messages).message.content == TEXT
    assert client.generate(model=MODEL, prompt="hi").response == TEXT
    assert "".join(part.message.content for part in client.chat(model=MODEL, messages=messages, stream=True)) == TEXT
    client.embed(model=MODEL, input="hi")

    async def agent() -> None:
        aclient = ollama.AsyncClient(host="http://ollama.test", transport=provider.transport(httpx))
        await aclient.chat(model=MODEL, messages=messages)
        parts = [part.response async for part in await aclient.generate(model=MODEL, prompt="hi", stream=True)]
        assert "".join(parts) == TEXT

    asyncio.run(agent())
    run = books(guard)
    assert provider.requests == 6
    embed_micros = 100 * 1
    assert (run.steps, run.spent_micros, run.reserved_micros) == (6, 5 * CALL_MICROS + embed_micros, 0)


def test_ollama_refused_request_sends_nothing_and_degrade_swaps_the_positional_model(guards: Guards) -> None:
    # The first call spends 140 of 10,000,000 micro-dollars, past the rung's fraction.
    guard = priced(guards, {"run_usd": 10, "max_steps": 2}, degrade=[{"at": 0.00001, "model": CHEAP}])
    provider = Provider(ollama_answer)
    client = ollama.Client(host="http://ollama.test", transport=provider.transport(httpx))
    client.chat(MODEL, messages=[])
    client.generate(MODEL, "hi")
    with pytest.raises(StepLimitExceeded):
        client.chat(MODEL, messages=[])
    assert provider.requests == 2
    assert [body["model"] for body in provider.bodies] == [MODEL, CHEAP]
    assert books(guard).spent_micros == CALL_MICROS + (100 * 0.1 + 20 * 0.2)


def test_ollama_errors_open_the_breaker(guards: Guards) -> None:
    priced(guards, breaker={"failure_threshold": 2, "cooldown_s": 600})
    provider = Provider(ollama_answer)
    provider.fail_status = 500
    client = ollama.Client(host="http://ollama.test", transport=provider.transport(httpx))
    for _ in range(2):
        with pytest.raises(ollama.ResponseError):
            client.chat(MODEL, messages=[])
    with pytest.raises(CircuitOpen):
        client.chat(MODEL, messages=[])
    assert provider.requests == 2


def test_ollama_stream_closed_early_settles_what_was_received(guards: Guards) -> None:
    guard = priced(guards, {"run_usd": 10, "estimate_usd": 0.5})
    provider = Provider(ollama_answer)
    client = ollama.Client(host="http://ollama.test", transport=provider.transport(httpx))
    stream = client.chat(MODEL, messages=[], stream=True)
    next(iter(stream))
    stream.close()
    run = books(guard)
    assert run.reserved_micros == 0 and 0 < run.spent_micros < 500_000


def test_ollama_stream_never_iterated_settles_when_collected(guards: Guards) -> None:
    guard = priced(guards, {"run_usd": 10, "estimate_usd": 0.001})
    client = ollama.Client(host="http://ollama.test", transport=Provider(ollama_answer).transport(httpx))
    stream = client.chat(MODEL, messages=[], stream=True)
    del stream
    run = books(guard)
    assert run.reserved_micros == 0 and run.spent_micros >= 1000


# -- mistralai -----------------------------------------------------------------------------------


def test_mistral_sync_async_streamed_and_embedding_calls_are_gated_and_settled(guards: Guards) -> None:
    mistral_sdk = pytest.importorskip("mistralai.client")
    import httpx2

    guard = priced(guards)
    provider = Provider(mistral_answer)
    client = mistral_sdk.Mistral(
        api_key="none", server_url="http://mistral.test",
        client=httpx2.Client(transport=provider.transport(httpx2)),
        async_client=httpx2.AsyncClient(transport=provider.transport(httpx2)),
    )
    messages = [{"role": "user", "content": "hi"}]
    assert client.chat.complete(model=MODEL, messages=messages).choices[0].message.content == TEXT
    with client.chat.stream(model=MODEL, messages=messages) as events:
        assert "".join(event.data.choices[0].delta.content for event in events) == TEXT
    client.embeddings.create(model=MODEL, inputs=["hi"])

    async def agent() -> None:
        await client.chat.complete_async(model=MODEL, messages=messages)
        events = await client.chat.stream_async(model=MODEL, messages=messages)
        assert [event async for event in events][-1].data.usage.completion_tokens == 20

    asyncio.run(agent())
    run = books(guard)
    assert provider.requests == 5
    assert (run.steps, run.spent_micros, run.reserved_micros) == (5, 4 * CALL_MICROS + 100, 0)


def test_mistral_refused_request_sends_nothing(guards: Guards) -> None:
    mistral_sdk = pytest.importorskip("mistralai.client")
    import httpx2

    priced(guards, {"run_usd": 10, "max_steps": 1})
    provider = Provider(mistral_answer)
    client = mistral_sdk.Mistral(api_key="none", server_url="http://mistral.test",
                                 client=httpx2.Client(transport=provider.transport(httpx2)))
    client.chat.complete(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(StepLimitExceeded):
        client.chat.stream(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    assert provider.requests == 1


# -- cohere --------------------------------------------------------------------------------------


def test_cohere_v1_and_v2_calls_streams_and_embeddings_are_gated_and_settled(guards: Guards) -> None:
    cohere = pytest.importorskip("cohere")
    guard = priced(guards)
    provider = Provider(cohere_answer)
    v2 = cohere.ClientV2(api_key="none", base_url="http://cohere.test",
                         httpx_client=httpx.Client(transport=provider.transport(httpx)))
    v1 = cohere.Client(api_key="none", base_url="http://cohere.test",
                       httpx_client=httpx.Client(transport=provider.transport(httpx)))
    messages = [{"role": "user", "content": "hi"}]
    assert v2.chat(model=MODEL, messages=messages).message.content[0].text == TEXT
    assert [e.type for e in v2.chat_stream(model=MODEL, messages=messages)][-1] == "message-end"
    v2.embed(model=MODEL, texts=["hi"], input_type="search_query", embedding_types=["float"])
    assert v1.chat(model=MODEL, message="hi").text == TEXT
    assert [e.event_type for e in v1.chat_stream(model=MODEL, message="hi")][-1] == "stream-end"

    async def agent() -> None:
        av2 = cohere.AsyncClientV2(api_key="none", base_url="http://cohere.test",
                                   httpx_client=httpx.AsyncClient(transport=provider.transport(httpx)))
        await av2.chat(model=MODEL, messages=messages)
        assert [e.type async for e in av2.chat_stream(model=MODEL, messages=messages)][-1] == "message-end"

    asyncio.run(agent())
    run = books(guard)
    assert provider.requests == 7
    assert (run.steps, run.spent_micros, run.reserved_micros) == (7, 6 * CALL_MICROS + 100, 0)


def test_cohere_refusal_inside_a_stream_sends_nothing(guards: Guards) -> None:
    cohere = pytest.importorskip("cohere")
    priced(guards, {"run_usd": 10, "max_steps": 1})
    provider = Provider(cohere_answer)
    v2 = cohere.ClientV2(api_key="none", base_url="http://cohere.test",
                         httpx_client=httpx.Client(transport=provider.transport(httpx)))
    v2.chat(model=MODEL, messages=[])
    with pytest.raises(StepLimitExceeded):
        list(v2.chat_stream(model=MODEL, messages=[]))
    assert provider.requests == 1


# -- google-genai --------------------------------------------------------------------------------


def test_genai_sync_async_and_streamed_calls_are_gated_and_settled(guards: Guards) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    guard = priced(guards, {"run_usd": 10, "estimate_usd": 0.5})
    provider = Provider(genai_answer)
    client = genai.Client(api_key="none", http_options=types.HttpOptions(
        base_url="http://genai.test",
        httpx_client=httpx.Client(transport=provider.transport(httpx)),
        httpx_async_client=httpx.AsyncClient(transport=provider.transport(httpx)),
    ))
    config = types.GenerateContentConfig(max_output_tokens=50)
    assert client.models.generate_content(model=MODEL, contents="hi", config=config).text == TEXT
    assert "".join(c.text or "" for c in client.models.generate_content_stream(model=MODEL, contents="hi")) == TEXT

    async def agent() -> None:
        await client.aio.models.generate_content(model=MODEL, contents="hi")
        stream = await client.aio.models.generate_content_stream(model=MODEL, contents="hi")
        assert "".join([c.text or "" async for c in stream]) == TEXT

    asyncio.run(agent())
    run = books(guard)
    assert provider.requests == 4
    assert (run.steps, run.spent_micros, run.reserved_micros) == (4, 4 * CALL_MICROS, 0)


def test_genai_refused_request_sends_nothing(guards: Guards) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    priced(guards, {"run_usd": 10, "max_steps": 1})
    provider = Provider(genai_answer)
    client = genai.Client(api_key="none", http_options=types.HttpOptions(
        base_url="http://genai.test", httpx_client=httpx.Client(transport=provider.transport(httpx))))
    client.models.generate_content(model=MODEL, contents="hi")
    with pytest.raises(StepLimitExceeded):
        list(client.models.generate_content_stream(model=MODEL, contents="hi"))
    assert provider.requests == 1


# -- boto3 bedrock-runtime -----------------------------------------------------------------------


def _bedrock() -> Any:
    boto3 = pytest.importorskip("boto3")
    return boto3.client("bedrock-runtime", region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x")


def test_bedrock_converse_and_invoke_model_are_gated_and_settled_through_stubber(guards: Guards) -> None:
    from botocore.response import StreamingBody
    from botocore.stub import Stubber
    import io

    guard = priced(guards, {"run_usd": 10, "max_steps": 2})
    client = _bedrock()
    with Stubber(client) as stub:
        stub.add_response("converse", {
            "output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}}, "stopReason": "end_turn",
            "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120}, "metrics": {"latencyMs": 1},
        })
        body = json.dumps({"content": [{"type": "text", "text": TEXT}]}).encode()
        stub.add_response("invoke_model", {
            "body": StreamingBody(io.BytesIO(body), len(body)), "contentType": "application/json",
            "ResponseMetadata": {"HTTPHeaders": {"x-amzn-bedrock-input-token-count": "100",
                                                 "x-amzn-bedrock-output-token-count": "20"}},
        })
        answer = client.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "hi"}]}],
                                 inferenceConfig={"maxTokens": 50})
        assert answer["output"]["message"]["content"][0]["text"] == TEXT
        client.invoke_model(modelId=MODEL, body=json.dumps({"messages": [], "max_tokens": 50}))
        with pytest.raises(StepLimitExceeded):
            client.converse(modelId=MODEL, messages=[])
        stub.assert_no_pending_responses()
    run = books(guard)
    assert (run.steps, run.spent_micros, run.reserved_micros) == (2, 2 * CALL_MICROS, 0)


def test_bedrock_errors_feed_the_breaker(guards: Guards) -> None:
    from botocore.stub import Stubber

    guard = priced(guards, breaker={"failure_threshold": 1, "cooldown_s": 600})
    client = _bedrock()
    with Stubber(client) as stub:
        stub.add_client_error("converse", "ThrottlingException", http_status_code=429)
        with pytest.raises(client.exceptions.ThrottlingException):
            client.converse(modelId=MODEL, messages=[])
        with pytest.raises(CircuitOpen):
            client.converse(modelId=MODEL, messages=[])
    assert books(guard).failures == 1
