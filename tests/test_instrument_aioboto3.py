"""guard.instrument() over aioboto3's ``bedrock-runtime`` clients (aiobotocore underneath).

The clients are real aiobotocore clients (what ``aioboto3.Session().client()`` returns) pointed
with ``endpoint_url`` at a provider on loopback HTTP that answers Bedrock's Converse and
InvokeModel JSON, and their streams in AWS event-stream framing (encoded here, checked against
botocore's own decoder), and counts the requests that reach it. No SDK class is replaced.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import struct
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

import instrument_helpers
from agentfuse import RetryLimitExceeded, StepLimitExceeded
from agentfuse.runtime.instrument.bedrock_sdk import CONVERSE
from agentfuse.runtime.pricing import CHARS_PER_TOKEN
from instrument_helpers import Guards, books
from sdk_providers import CALL_MICROS, CHEAP, MODEL, TEXT, Provider, bedrock_answer, priced

aiobotocore_session = pytest.importorskip("aiobotocore.session")
from aiobotocore.config import AioConfig  # type: ignore[import-untyped]  # noqa: E402

guards = instrument_helpers.guards
MESSAGES = [{"role": "user", "content": [{"text": "hi"}]}]
CHEAP_CALL_MICROS = 100 * 0.1 + 20 * 0.2
EVENT_STREAM = "application/vnd.amazon.eventstream"
METRICS = {"inputTokenCount": 100, "outputTokenCount": 20, "invocationLatency": 1, "firstByteLatency": 1}


# -- AWS event-stream framing ---------------------------------------------------------------------


def frame(headers: dict[str, str], payload: bytes) -> bytes:
    """One event-stream message: prelude (lengths, CRC32), string headers, payload, message CRC32."""
    encoded = b"".join(
        struct.pack("!B", len(name)) + name + b"\x07" + struct.pack("!H", len(value)) + value
        for name, value in ((key.encode(), text.encode()) for key, text in headers.items())
    )
    prelude = struct.pack("!II", 16 + len(encoded) + len(payload), len(encoded))
    message = prelude + struct.pack("!I", binascii.crc32(prelude)) + encoded + payload
    return message + struct.pack("!I", binascii.crc32(message))


def event(kind: str, body: dict[str, Any]) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return frame(headers, json.dumps(body).encode())


def converse_events(usage: bool = True) -> list[bytes]:
    events = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": TEXT}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": "end_turn"}),
    ]
    tokens = {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120}
    return events + [event("metadata", {"usage": tokens, "metrics": {"latencyMs": 1}})] if usage else events


def invoke_events() -> list[bytes]:
    """Anthropic's native stream on Bedrock: the last chunk carries ``amazon-bedrock-invocationMetrics``."""
    chunks = [
        {"type": "message_start", "message": {"role": "assistant", "usage": {"input_tokens": 100, "output_tokens": 1}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": TEXT}},
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": METRICS},
    ]
    return [event("chunk", {"bytes": base64.b64encode(json.dumps(chunk).encode()).decode()}) for chunk in chunks]


class Bedrock(Provider):
    """Bedrock Runtime on loopback HTTP: Converse, InvokeModel and their event streams; notes the paths."""

    def __init__(self) -> None:
        super().__init__(self.bedrock)
        self.paths: list[str] = []
        self.metadata = True
        """Whether ``converse-stream`` ends with its ``metadata`` event (the usage)."""

    def bedrock(self, path: str, body: dict[str, Any]) -> Any:
        self.paths.append(path)
        if path.endswith("/converse-stream"):
            return {"content-type": EVENT_STREAM}, b"".join(converse_events(self.metadata))
        if path.endswith("/invoke-with-response-stream"):
            headers = {"content-type": EVENT_STREAM, "x-amzn-bedrock-content-type": "application/json"}
            return headers, b"".join(invoke_events())
        return bedrock_answer(path, body)


Agent = Callable[[Any], Awaitable[None]]


def run(provider: Provider, agent: Agent, *, retries: int = 1) -> None:
    """Run ``agent`` with an aiobotocore ``bedrock-runtime`` client pointed at ``provider``."""

    async def main(url: str) -> None:
        config = AioConfig(retries={"max_attempts": retries, "mode": "standard"})
        async with aiobotocore_session.get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=url, aws_access_key_id="x",
            aws_secret_access_key="x", config=config,
        ) as client:
            await agent(client)

    with provider.serve() as url:
        asyncio.run(main(url))


async def converse(client: Any, model: str = MODEL) -> str:
    answer = await client.converse(modelId=model, messages=MESSAGES, inferenceConfig={"maxTokens": 50})
    return str(answer["output"]["message"]["content"][0]["text"])


async def texts(events: AsyncIterator[Any]) -> str:
    found = []
    async for item in events:
        if "contentBlockDelta" in item:
            found.append(item["contentBlockDelta"]["delta"]["text"])
        elif "chunk" in item:
            found.append(json.loads(item["chunk"]["bytes"]).get("delta", {}).get("text", ""))
    return "".join(found)


# -- tests ------------------------------------------------------------------------------------------


def test_the_event_stream_frames_read_back_through_botocores_decoder() -> None:
    from botocore.eventstream import EventStreamBuffer  # type: ignore[import-untyped]

    buffer = EventStreamBuffer()
    buffer.add_data(b"".join(converse_events()))
    decoded = list(buffer)  # checks both CRC32s of each message
    assert [message.headers[":event-type"] for message in decoded] == [
        "messageStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"]
    assert json.loads(decoded[1].payload) == {"contentBlockIndex": 0, "delta": {"text": TEXT}}


def test_converse_and_invoke_model_are_gated_settled_and_a_refused_call_sends_nothing(guards: Guards) -> None:
    guard = priced(guards, {"run_usd": 10, "max_steps": 2})
    provider = Bedrock()

    async def agent(client: Any) -> None:
        assert await converse(client) == TEXT
        answer = await client.invoke_model(modelId=MODEL, body=json.dumps({"messages": [], "max_tokens": 50}))
        assert json.loads(await answer["body"].read())["content"][0]["text"] == TEXT
        with pytest.raises(StepLimitExceeded):
            await converse(client)

    run(provider, agent)
    run_ = books(guard)
    assert provider.requests == 2
    assert (run_.steps, run_.spent_micros, run_.reserved_micros) == (2, 2 * CALL_MICROS, 0)


def test_converse_stream_and_invoke_model_stream_settle_from_their_usage(guards: Guards) -> None:
    guard = priced(guards)
    provider = Bedrock()

    async def agent(client: Any) -> None:
        answer = await client.converse_stream(modelId=MODEL, messages=MESSAGES)
        assert await texts(answer["stream"]) == TEXT
        answer = await client.invoke_model_with_response_stream(
            modelId=MODEL, body=json.dumps({"messages": [], "max_tokens": 50}))
        assert await texts(answer["body"]) == TEXT

    run(provider, agent)
    run_ = books(guard)
    assert provider.requests == 2
    # 100 in and 20 out from the metadata event and the invocation metrics, not the 6 tokens of text
    assert (run_.steps, run_.spent_micros, run_.reserved_micros) == (2, 2 * CALL_MICROS, 0)


@pytest.mark.parametrize("ending", ["close", "abandon"])
def test_a_stream_closed_or_abandoned_early_settles_at_least_the_tokens_received(ending: str, guards: Guards) -> None:
    guard = priced(guards)
    provider = Bedrock()
    provider.metadata = False  # the usage never comes: the text received is the floor

    async def agent(client: Any) -> None:
        answer = await client.converse_stream(modelId=MODEL, messages=MESSAGES)
        stream = answer["stream"]
        async for item in stream:
            if "contentBlockDelta" in item:
                break
        if ending == "close":
            stream.close()
        del answer, stream

    run(provider, agent)
    run_ = books(guard)
    input_estimate = CONVERSE.input_tokens({"messages": MESSAGES})
    received = math.ceil(len(TEXT) / CHARS_PER_TOKEN)
    assert (run_.steps, run_.spent_micros, run_.reserved_micros) == (1, input_estimate * 1 + received * 2, 0)


def test_the_degrade_ladders_model_replaces_model_id(guards: Guards) -> None:
    # The rung is at 200 of 10,000,000 micro-dollars: the first request's reservation (50 output
    # tokens, about 104) is below it; the first answer's 140 plus the second's reservation are past it.
    guard = priced(guards, {"run_usd": 10, "max_steps": 5}, degrade=[{"at": 0.00002, "model": CHEAP}])
    provider = Bedrock()

    async def agent(client: Any) -> None:
        await converse(client)
        await converse(client)

    run(provider, agent)
    assert provider.paths == [f"/model/{MODEL}/converse", f"/model/{CHEAP}/converse"]
    assert books(guard).spent_micros == CALL_MICROS + CHEAP_CALL_MICROS


def test_an_aiobotocore_retry_is_a_step_and_max_retries_total_refuses_the_next(guards: Guards) -> None:
    guard = priced(guards, {"run_usd": 10, "max_retries_total": 1},
                   breaker={"failure_threshold": 100, "cooldown_s": 60})
    provider = Bedrock()

    async def agent(client: Any) -> None:
        provider.fail(429, times=1, headers={"x-amzn-errortype": "ThrottlingException"})
        assert await converse(client) == TEXT  # throttled once, retried by aiobotocore: two requests, two steps
        provider.fail(503, headers={"x-amzn-errortype": "ServiceUnavailableException"})
        with pytest.raises(RetryLimitExceeded):
            await converse(client)  # its first attempt fails (2 failures > 1): the retry is refused, never sent

    run(provider, agent, retries=2)
    run_ = books(guard)
    assert provider.requests == 3
    assert (run_.steps, run_.failures, run_.spent_micros, run_.reserved_micros) == (3, 2, CALL_MICROS, 0)


def test_instrumenting_one_async_client_gates_that_client_only(guards: Guards) -> None:
    guard = priced(guards, instrument=False)
    provider = Bedrock()

    async def agent(client: Any) -> None:
        async with aiobotocore_session.get_session().create_client(
            "bedrock-runtime", region_name="us-east-1", endpoint_url=client.meta.endpoint_url,
            aws_access_key_id="x", aws_secret_access_key="x",
        ) as other:
            assert guard.instrument(client) is client
            await converse(client)
            await converse(other)
            guard.uninstrument(client)

    run(provider, agent)
    assert provider.requests == 2
    assert (books(guard).steps, books(guard).spent_micros) == (1, CALL_MICROS)


def test_aiobotocore_is_patched_only_once_imported_and_uninstrument_restores_it(tmp_path: Path) -> None:
    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
import botocore.client
from runtime_helpers import make_policy
from agentfuse import enforce
from agentfuse.runtime import instrument
guard = enforce(make_policy(budget={{"run_usd": 1}}), store="sqlite:///{tmp_path}/s.db")
guard.instrument()
assert "aiobotocore" not in sys.modules, "instrument() must not import aiobotocore"
from aiobotocore.client import AioBaseClient
from aiobotocore.endpoint import AioEndpoint
patched = (AioBaseClient.__dict__["_make_api_call"], AioEndpoint.__dict__["_get_response"])
assert "aiobotocore" in instrument.instrumented_providers()
guard.uninstrument()
restored = (AioBaseClient.__dict__["_make_api_call"], AioEndpoint.__dict__["_get_response"])
assert all(after is before.__agentfuse_original__ for before, after in zip(patched, restored))
assert not any(hasattr(item, "__agentfuse_original__") for item in restored)
print(instrument.instrumented_providers())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
