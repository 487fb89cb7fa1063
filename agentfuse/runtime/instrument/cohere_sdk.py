"""cohere: the v1 client (``chat``, ``chat_stream``, ``embed``) and the v2 client (the same on
``ClientV2``), sync and async.

Patched: those methods of ``cohere.base_client.BaseCohere`` / ``AsyncBaseCohere`` (v1) and
``cohere.v2.client.V2Client`` / ``AsyncV2Client`` (v2). Cohere bills ``billed_units``: the usage is
read from ``usage.billed_units`` (v2) or ``meta.billed_units`` (v1), in a stream from the
``message-end`` (v2) or ``stream-end`` (v1) event. ``Client.embed`` sends its batches through
``BaseCohere.embed``, each gated as its own request. Clients are recognised by their
``_client_wrapper``.

The SDK's retries (``max_retries``, 2 by default): ``HttpClient.request`` /
``AsyncHttpClient.request`` of ``cohere.core.http_client`` make one HTTP attempt and call
themselves again to retry, so each call there after the first is a retry: a step of its own,
the attempt before it settled as a failure: the error answer ``_should_retry`` accepted (an
``ApiError``, nothing billed), or the connection error being handled.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from agentfuse.runtime.instrument.core import Call, Patch, Provider, patch
from agentfuse.runtime.instrument.methods import Method, always, count, field, own_call, report, wrap
from agentfuse.runtime.instrument.wire import StreamState, WireFormat, no_events
from agentfuse.runtime.pricing import Usage

CHAT = WireFormat("cohere.chat", ("messages", "message", "chat_history", "preamble", "tools"), ("max_tokens",),
                  no_events)
EMBED = WireFormat("cohere.embed", ("texts", "inputs"), (), no_events)


def _billed(units: Any, model: Any = None) -> Usage | None:
    if units is None:
        return None
    return Usage(model if isinstance(model, str) else None, count(field(units, "input_tokens")),
                 count(field(units, "output_tokens")))


def _usage(response: Any) -> Usage | None:
    units = field(response, "usage", "billed_units") or field(response, "meta", "billed_units")
    return _billed(units)


def _chunk(state: StreamState, event: Any) -> None:
    kind = field(event, "type") or field(event, "event_type")
    if kind == "content-delta":
        report(state, None, field(event, "delta", "message", "content", "text"))
    elif kind == "text-generation":
        report(state, None, field(event, "text"))
    elif kind == "message-end":
        report(state, _billed(field(event, "delta", "usage", "billed_units")), complete=True)
    elif kind == "stream-end":
        report(state, _billed(field(event, "response", "meta", "billed_units")), complete=True)


def _request_body(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    model = kwargs.get("model")
    return {**kwargs, "model": model if isinstance(model, str) else None}


def _key(client: Any) -> Any:
    wrapper = getattr(client, "_client_wrapper", None)
    if wrapper is None:
        wrapper = getattr(getattr(client, "_raw_client", None), "_client_wrapper", None)
    return wrapper if wrapper is not None else client


_CHAT = Method(CHAT, usage=_usage, request=_request_body, key=_key)
_STREAM = Method(CHAT, usage=_usage, request=_request_body, streams=always, chunk=_chunk, key=_key)
_EMBED = Method(EMBED, usage=_usage, request=_request_body, key=_key)
_FORMATS = (CHAT, EMBED)


def _attempt(call: Call, retries: Any) -> None:
    if retries and call.failure is None:
        handled = sys.exc_info()[1]  # a connection error: the SDK retries from inside its handler
        call.failed(handled if handled is not None else ConnectionError("retried by the SDK"), answered=False)
    call.attempt()


def _request(original: Callable[..., Any]) -> Callable[..., Any]:
    def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = own_call(_FORMATS)
        if call is not None:
            _attempt(call, kwargs.get("retries"))
        return original(self, *args, **kwargs)

    return request


def _request_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def request(self: Any, *args: Any, **kwargs: Any) -> Any:
        call = own_call(_FORMATS)
        if call is not None:
            _attempt(call, kwargs.get("retries"))
        return await original(self, *args, **kwargs)

    return request


def _should_retry(original: Callable[..., bool]) -> Callable[..., bool]:
    def should_retry(response: Any) -> bool:
        retry = original(response=response)
        call = own_call(_FORMATS) if retry else None
        if call is not None:
            from cohere.core.api_error import ApiError

            call.failed(ApiError(status_code=response.status_code, headers=dict(response.headers)), answered=True)
        return retry

    return should_retry


class CohereProvider(Provider):
    name = "cohere"
    module = "cohere"

    def install(self) -> list[Patch]:
        from cohere import base_client
        from cohere.core import http_client
        from cohere.v2 import client as v2

        patches = [
            patch(http_client.HttpClient, "request", _request),
            patch(http_client.AsyncHttpClient, "request", _request_async),
            patch(http_client, "_should_retry", _should_retry),
        ]
        for owner in (base_client.BaseCohere, base_client.AsyncBaseCohere, v2.V2Client, v2.AsyncV2Client):
            patches += [
                patch(owner, "chat", wrap(_CHAT)),
                patch(owner, "chat_stream", wrap(_STREAM)),
                patch(owner, "embed", wrap(_EMBED)),
            ]
        return patches

    def client_key(self, client: Any) -> Any:
        from cohere import base_client
        from cohere.v2 import client as v2

        if isinstance(client, (base_client.BaseCohere, base_client.AsyncBaseCohere, v2.V2Client, v2.AsyncV2Client)):
            return _key(client)
        return None
