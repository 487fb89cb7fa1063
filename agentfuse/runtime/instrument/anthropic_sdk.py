"""The ``anthropic`` SDK (sync and async clients: ``messages.create``, ``messages.stream``,
``beta.messages.*``, raw and streaming responses).

Patched: ``SyncAPIClient._attempt_request`` and ``AsyncAPIClient._attempt_request`` of
``anthropic._base_client``: one HTTP attempt (prepare, build, send), called by the SDK's retry
loop and by its middleware chain alike, so retries are gated one by one. The body is still a
dict there (``options.json_data``), so a degraded model is set without re-encoding. A refusal
raised there is not an ``APIConnectionError`` or ``APIStatusError``, so the retry loop re-raises
it at once. Clients are recognised by their httpx client, which ``with_options()`` copies share.
"""

from __future__ import annotations

from typing import Any

from agentfuse.runtime.instrument import http
from agentfuse.runtime.instrument.core import REGISTRY, Patch, Provider, patch, sleep_async, sleep_sync
from agentfuse.runtime.instrument.wire import anthropic_format


def _gate(client: Any, options: Any) -> tuple[http.Gated | None, Any]:
    if str(options.method).lower() != "post":
        return None, options
    fmt = anthropic_format(str(options.url).split("?", 1)[0])
    if fmt is None:
        return None, options
    body = options.json_data if isinstance(options.json_data, dict) else None
    gated = http.gate(client._client, fmt, body)
    if gated is not None and gated.body is not None:
        from anthropic._compat import model_copy

        options = model_copy(options)
        options.json_data = gated.body
    return gated, options


def _sync_attempt(original: Any) -> Any:
    def _attempt_request(self: Any, options: Any, **kwargs: Any) -> Any:
        if not REGISTRY.active():
            return original(self, options, **kwargs)
        gated, options = _gate(self, options)
        if gated is None:
            return original(self, options, **kwargs)
        try:
            sleep_sync(gated.wait_s)
            response, prepared = original(self, options, **kwargs)
        except BaseException as exc:
            gated.failed(exc)
            raise
        return http.after_sync(gated, response, self._make_status_error_from_response), prepared

    return _attempt_request


def _async_attempt(original: Any) -> Any:
    async def _attempt_request(self: Any, options: Any, **kwargs: Any) -> Any:
        if not REGISTRY.active():
            return await original(self, options, **kwargs)
        gated, options = _gate(self, options)
        if gated is None:
            return await original(self, options, **kwargs)
        try:
            await sleep_async(gated.wait_s)
            response, prepared = await original(self, options, **kwargs)
        except BaseException as exc:
            gated.failed(exc)
            raise
        return await http.after_async(gated, response, self._make_status_error_from_response), prepared

    return _attempt_request


class AnthropicProvider(Provider):
    name = "anthropic"
    module = "anthropic"

    def install(self) -> list[Patch]:
        from anthropic import _base_client

        return [
            patch(_base_client.SyncAPIClient, "_attempt_request", _sync_attempt),
            patch(_base_client.AsyncAPIClient, "_attempt_request", _async_attempt),
        ]

    def client_key(self, client: Any) -> Any:
        from anthropic import _base_client

        if isinstance(client, (_base_client.SyncAPIClient, _base_client.AsyncAPIClient)):
            return client._client
        return None
