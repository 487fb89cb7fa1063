"""mistralai: ``chat.complete``, ``chat.stream``, ``embeddings.create`` and their ``_async`` twins.

Patched: those methods of ``mistralai.client.chat.Chat`` and ``mistralai.client.embeddings.Embeddings``.
The request is read from the keyword arguments, the usage from the parsed response's ``usage``
(in a stream: the last event's ``data.usage``). Clients are recognised by their
``sdk_configuration``, which every resource of one ``Mistral`` client shares.

The SDK's retries (a ``RetryConfig``): ``mistralai.client.utils.retry`` / ``retry_async`` get the
function that makes one HTTP attempt; it is handed on wrapped, so each retry is a step of its
own and the attempt before it settles as a failure (an error status bills nothing; the SDK's
``SDKError`` stands for it).
"""

from __future__ import annotations

from typing import Any

from collections.abc import Callable

from agentfuse.runtime.instrument.core import Call, Patch, Provider, patch
from agentfuse.runtime.instrument.methods import Method, always, field, own_call, report, wrap
from agentfuse.runtime.instrument.wire import StreamState, WireFormat, no_events
from agentfuse.runtime.pricing import extract_usage

CHAT = WireFormat("mistral.chat", ("messages", "tools"), ("max_tokens",), no_events)
EMBEDDINGS = WireFormat("mistral.embeddings", ("inputs",), (), no_events)


def _chunk(state: StreamState, event: Any) -> None:
    data = field(event, "data")
    choices = field(data, "choices") or ()
    text = field(choices[0], "delta", "content") if choices else None
    report(state, extract_usage(data), text, complete=True)


def _key(resource: Any) -> Any:
    return getattr(resource, "sdk_configuration", resource)


_CHAT = Method(CHAT, key=_key)
_STREAM = Method(CHAT, streams=always, chunk=_chunk, key=_key)
_EMBED = Method(EMBEDDINGS, key=_key)
_FORMATS = (CHAT, EMBEDDINGS)


def _answered(call: Call, response: Any) -> Any:
    """Note an error answer as the attempt's failure (the SDK decides whether to retry it)."""
    if response.status_code >= 400:
        from mistralai.client import errors

        body = response.text if hasattr(response, "_content") else "(a stream, not read)"
        call.failed(errors.SDKError("API error occurred", response, body), answered=True)
    return response


def _retry(original: Callable[..., Any]) -> Callable[..., Any]:
    def retry(func: Callable[[], Any], retries: Any) -> Any:
        call = own_call(_FORMATS)
        if call is None:
            return original(func, retries)

        def attempt() -> Any:
            call.attempt()
            try:
                response = func()
            except BaseException as exc:
                call.failed(exc, answered=False)
                raise
            return _answered(call, response)

        return original(attempt, retries)

    return retry


def _retry_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def retry_async(func: Callable[[], Any], retries: Any) -> Any:
        call = own_call(_FORMATS)
        if call is None:
            return await original(func, retries)

        async def attempt() -> Any:
            call.attempt()
            try:
                response = await func()
            except BaseException as exc:
                call.failed(exc, answered=False)
                raise
            return _answered(call, response)

        return await original(attempt, retries)

    return retry_async


class MistralProvider(Provider):
    name = "mistralai"
    module = "mistralai.client"

    def install(self) -> list[Patch]:
        from mistralai.client import chat, embeddings, utils

        return [
            patch(utils, "retry", _retry),
            patch(utils, "retry_async", _retry_async),
            patch(chat.Chat, "complete", wrap(_CHAT)),
            patch(chat.Chat, "complete_async", wrap(_CHAT)),
            patch(chat.Chat, "stream", wrap(_STREAM)),
            patch(chat.Chat, "stream_async", wrap(_STREAM)),
            patch(embeddings.Embeddings, "create", wrap(_EMBED)),
            patch(embeddings.Embeddings, "create_async", wrap(_EMBED)),
        ]

    def client_key(self, client: Any) -> Any:
        from mistralai.client.sdk import Mistral

        return client.sdk_configuration if isinstance(client, Mistral) else None
