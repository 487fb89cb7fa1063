"""google-genai: ``models.generate_content``, ``generate_content_stream``, ``embed_content`` and
their ``aio.models`` twins.

Patched: ``Models._generate_content``, ``Models._generate_content_stream``,
``Models.embed_content`` and the same methods of ``AsyncModels`` (``google.genai.models``): one
model request each, so the automatic-function-calling loop of ``generate_content`` is gated
turn by turn. The request is read from the keyword arguments (``model``, ``contents``,
``config.max_output_tokens``), the usage from the parsed response's ``usage_metadata``
(cumulative in a stream: the last chunk holds the totals). Clients are recognised by their
``_api_client``, which ``client.models`` and ``client.aio.models`` share.

The SDK's retries (``HttpRetryOptions``: a tenacity loop around ``BaseApiClient._request_once``
/ ``_async_request_once``, one HTTP attempt each) are seen there: each retry is a step of its
own, the failed attempt before it settled as a failure (an ``errors.APIError`` answer bills
nothing). Without ``HttpRetryOptions``, the aiohttp path of ``_async_request_once`` retries a
dropped connection once by itself, fetching its session again from inside the handler: a
``_get_aiohttp_session`` call while an error is handled that the attempt did not start under
is that retry.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Callable, Mapping
from typing import Any

from agentfuse.runtime.instrument.core import Patch, Provider, patch
from agentfuse.runtime.instrument.methods import Method, always, attempts, field, own_call, report, wrap
from agentfuse.runtime.instrument.wire import StreamState, WireFormat, no_events
from agentfuse.runtime.pricing import extract_usage

GENERATE = WireFormat(
    "google.models.generate_content", ("contents", "system_instruction", "tools"), ("max_output_tokens",), no_events
)
EMBED = WireFormat("google.models.embed_content", ("contents",), (), no_events)


def _request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    config = kwargs.get("config")
    return {
        "model": kwargs.get("model"),
        "contents": kwargs.get("contents"),
        "system_instruction": field(config, "system_instruction"),
        "tools": field(config, "tools"),
        "max_output_tokens": field(config, "max_output_tokens"),
    }


def _chunk(state: StreamState, item: Any) -> None:
    text = None
    for candidate in field(item, "candidates") or ():
        for part in field(candidate, "content", "parts") or ():
            piece = field(part, "text")
            text = piece if text is None else text + (piece or "")
    finished = any(field(candidate, "finish_reason") for candidate in field(item, "candidates") or ())
    report(state, extract_usage(item), text, complete=finished)


def _key(models: Any) -> Any:
    return getattr(models, "_api_client", models)


_PLAIN = Method(GENERATE, request=_request, key=_key)
_STREAM = Method(GENERATE, request=_request, streams=always, chunk=_chunk, key=_key)
_EMBED = Method(EMBED, request=_request, key=_key)


_FORMATS = (GENERATE, EMBED)
_STARTED_UNDER: contextvars.ContextVar[BaseException | None] = contextvars.ContextVar(
    "agentfuse_genai_started_under", default=None
)
"""The error being handled when the current async attempt started (the caller's own, if any)."""


def _async_attempt(tried: Callable[..., Any]) -> Callable[..., Any]:
    async def _async_request_once(*args: Any, **kwargs: Any) -> Any:
        token = _STARTED_UNDER.set(sys.exc_info()[1])
        try:
            return await tried(*args, **kwargs)
        finally:
            _STARTED_UNDER.reset(token)

    return _async_request_once


def _session(original: Callable[..., Any]) -> Callable[..., Any]:
    async def _get_aiohttp_session(self: Any) -> Any:
        call = own_call(_FORMATS)
        handled = sys.exc_info()[1] if call is not None else None
        if call is not None and handled is not None and handled is not _STARTED_UNDER.get():
            call.failed(handled, answered=False)  # the SDK's own retry of a dropped connection
            call.attempt()
        return await original(self)

    return _get_aiohttp_session


class GoogleGenAIProvider(Provider):
    name = "google-genai"
    module = "google.genai"

    def install(self) -> list[Patch]:
        from google.genai import _api_client, errors, models

        def answered(exc: BaseException) -> bool:
            return isinstance(exc, errors.APIError)

        tried = attempts(_FORMATS, answered)
        patches = [
            patch(_api_client.BaseApiClient, "_request_once", tried),
            patch(_api_client.BaseApiClient, "_async_request_once", lambda original: _async_attempt(tried(original))),
            patch(_api_client.BaseApiClient, "_get_aiohttp_session", _session),
        ]
        for owner in (models.Models, models.AsyncModels):
            patches += [
                patch(owner, "_generate_content", wrap(_PLAIN)),
                patch(owner, "_generate_content_stream", wrap(_STREAM)),
                patch(owner, "embed_content", wrap(_EMBED)),
            ]
        return patches

    def client_key(self, client: Any) -> Any:
        from google.genai import client as genai_client

        if isinstance(client, (genai_client.Client, genai_client.AsyncClient)):
            return client._api_client
        return None
