"""The ``openai`` SDK (sync and async clients, Azure included).

Patched: ``SyncAPIClient._send_request`` and ``AsyncAPIClient._send_request`` of
``openai._base_client``, the one method every HTTP attempt goes through. Every resource method
(``chat.completions.create/parse``, ``responses.create/parse``, ``completions.create``,
``embeddings.create``), ``stream=True``, the ``.stream()`` helpers, ``with_raw_response`` and
``with_streaming_response`` build their request in ``request()`` and send it there; so does each
retry of the SDK's own retry loop (each is gated as its own request). A refusal raised there is
not caught by the SDK (it retries only httpx errors), so it reaches the caller as is. Clients
are recognised by their httpx client, which ``with_options()`` copies share.

The request's fields are read from the dict the SDK encoded (``FinalRequestOptions.json_data``,
seen by the patched ``BaseClient._build_request`` just before the send), so the body is not
parsed again; a request built any other way (or with ``extra_body``) is read from its bytes.
"""

from __future__ import annotations

import contextvars
from typing import Any

from agentfuse.runtime.instrument import http
from agentfuse.runtime.instrument.core import REGISTRY, Patch, Provider, patch, sleep_async, sleep_sync
from agentfuse.runtime.instrument.wire import WireFormat, json_body, openai_format

_BUILT: contextvars.ContextVar[tuple[Any, WireFormat, dict[str, Any]] | None] = contextvars.ContextVar(
    "agentfuse_openai_built", default=None
)
"""The model request this context built last: (the request, its format, the dict it was encoded from)."""


def _build(original: Any) -> Any:
    def _build_request(self: Any, options: Any, **kwargs: Any) -> Any:
        request = original(self, options, **kwargs)
        data = options.json_data
        if type(data) is dict and options.extra_json is None and options.files is None and REGISTRY.active():
            fmt = openai_format(options.url) if options.method == "post" else None
            if fmt is not None:
                _BUILT.set((request, fmt, data))
        return request

    return _build_request


def _request(request: Any) -> tuple[WireFormat | None, dict[str, Any] | None]:
    """The format and JSON body of ``request``: as it was built, else read from the request itself."""
    built = _BUILT.get()
    if built is not None:
        _BUILT.set(None)
        if built[0] is request:
            return built[1], built[2]
    if request.method != "POST":
        return None, None
    fmt = openai_format(request.url.path)
    if fmt is None:
        return None, None
    try:
        return fmt, json_body(request.content)
    except Exception:  # a streamed upload: not a model request body
        return fmt, None


def _with_body(request: Any, body: dict[str, Any]) -> Any:
    """The same request with a new JSON body (a degraded model, ``stream_options`` added)."""
    from openai._utils._json import openapi_dumps  # the SDK's own encoder (datetimes, models)

    content = openapi_dumps(body)
    headers = [(k, v) for k, v in request.headers.multi_items() if k.lower() != "content-length"]
    return type(request)(request.method, request.url, headers=headers, content=content, extensions=request.extensions)


def _transport_error(exc: BaseException, request: Any) -> BaseException:
    """The SDK's exception for a failed send (``APITimeoutError``/``APIConnectionError``)."""
    import openai

    if not isinstance(exc, Exception) or isinstance(exc, openai.OpenAIError):
        return exc
    if "Timeout" in type(exc).__name__:
        return openai.APITimeoutError(request=request)
    return openai.APIConnectionError(request=request)


def _gate(client: Any, request: Any) -> tuple[http.Gated | None, Any]:
    fmt, body = _request(request)
    if fmt is None:
        return None, request
    gated = http.gate(client._client, fmt, body)
    if gated is not None and gated.body is not None:
        request = _with_body(request, gated.body)
    return gated, request


def _sync_send(original: Any) -> Any:
    def _send_request(self: Any, request: Any, *, stream: bool, **kwargs: Any) -> Any:
        if not REGISTRY.active():
            return original(self, request, stream=stream, **kwargs)
        gated, request = _gate(self, request)
        if gated is None:
            return original(self, request, stream=stream, **kwargs)
        try:
            sleep_sync(gated.wait_s)
            response = original(self, request, stream=stream, **kwargs)
        except BaseException as exc:
            gated.failed(_transport_error(exc, request))
            raise
        return http.after_sync(gated, response, self._make_status_error_from_response)

    return _send_request


def _async_send(original: Any) -> Any:
    async def _send_request(self: Any, request: Any, *, stream: bool, **kwargs: Any) -> Any:
        if not REGISTRY.active():
            return await original(self, request, stream=stream, **kwargs)
        gated, request = _gate(self, request)
        if gated is None:
            return await original(self, request, stream=stream, **kwargs)
        try:
            await sleep_async(gated.wait_s)
            response = await original(self, request, stream=stream, **kwargs)
        except BaseException as exc:
            gated.failed(_transport_error(exc, request))
            raise
        return await http.after_async(gated, response, self._make_status_error_from_response)

    return _send_request


class OpenAIProvider(Provider):
    name = "openai"
    module = "openai"

    def install(self) -> list[Patch]:
        from openai import _base_client

        return [
            patch(_base_client.BaseClient, "_build_request", _build),
            patch(_base_client.SyncAPIClient, "_send_request", _sync_send),
            patch(_base_client.AsyncAPIClient, "_send_request", _async_send),
        ]

    def client_key(self, client: Any) -> Any:
        from openai import _base_client

        if isinstance(client, (_base_client.SyncAPIClient, _base_client.AsyncAPIClient)):
            return client._client
        return None
