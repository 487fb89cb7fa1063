"""boto3 and aioboto3 ``bedrock-runtime``: ``converse``, ``converse_stream``, ``invoke_model`` and
``invoke_model_with_response_stream``.

Patched: ``botocore.client.BaseClient._make_api_call``, which every operation of every boto3
client goes through; a call of another service or operation passes untouched. The request is
read from the API parameters (``modelId``; ``messages``, ``system`` and
``inferenceConfig.maxTokens`` for Converse; the JSON ``body`` of InvokeModel). The usage:
Converse's ``usage``; InvokeModel's ``x-amzn-bedrock-input-token-count`` and ``-output-token-count``
response headers; in a stream, the ``metadata`` event (Converse) or the last chunk's
``amazon-bedrock-invocationMetrics`` (InvokeModel). The degrade ladder's model replaces
``modelId``. Clients are recognised by themselves.

botocore's retries (``Config(retries=...)``, standard or legacy mode) run inside
``Endpoint._send_request``, which calls ``Endpoint._get_response`` once per HTTP attempt: patched
too, so each retry of a gated operation is a step of its own, the attempt before it settled as
a failure (an error answer, as the ``ClientError`` subclass the client would raise, bills
nothing; a connection error settles the reservation).

aioboto3's clients are aiobotocore's: ``AioBaseClient._make_api_call`` and
``AioEndpoint._get_response`` are their coroutine twins, patched the same way by a provider of
their own (module ``aiobotocore``, so botocore alone never imports it); the requests, usages and
streams (``AioEventStream``, read with ``async for``) are read by the same functions.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from agentfuse.runtime.instrument.core import Call, Patch, Provider, patch
from agentfuse.runtime.instrument.methods import Method, always, count, field, own_call, report, wrap
from agentfuse.runtime.instrument.wire import StreamState, WireFormat, no_events
from agentfuse.runtime.pricing import Usage

CONVERSE = WireFormat("bedrock.converse", ("messages", "system", "tools"), ("max_tokens",), no_events)
INVOKE = WireFormat("bedrock.invoke_model", ("messages", "system", "prompt", "inputText"), ("max_tokens",), no_events)


def _params(args: tuple[Any, ...]) -> Mapping[str, Any]:
    params = args[1] if len(args) > 1 else None
    return params if isinstance(params, Mapping) else {}


def _converse_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    params = _params(args)
    return {
        "model": params.get("modelId"),
        "messages": params.get("messages"),
        "system": params.get("system"),
        "tools": field(params, "toolConfig", "tools"),
        "max_tokens": field(params, "inferenceConfig", "maxTokens"),
    }


def _invoke_request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    params = _params(args)
    body = params.get("body")
    try:
        native = json.loads(body) if isinstance(body, (str, bytes, bytearray)) else {}
    except ValueError:
        native = {}
    native = native if isinstance(native, dict) else {}
    limit = native.get("max_tokens", native.get("max_gen_len", field(native, "textGenerationConfig", "maxTokenCount")))
    return {**native, "model": params.get("modelId"), "max_tokens": limit}


def _degrade(args: tuple[Any, ...], kwargs: dict[str, Any], model: str) -> tuple[Any, ...]:
    return (args[0], {**_params(args), "modelId": model}, *args[2:])


def _converse_usage(response: Any) -> Usage | None:
    usage = field(response, "usage")
    if usage is None:
        return None
    read, written = count(field(usage, "cacheReadInputTokens")), count(field(usage, "cacheWriteInputTokens"))
    return Usage(None, count(field(usage, "inputTokens")) + read + written, count(field(usage, "outputTokens")),
                 cached_input_tokens=read, cache_write_input_tokens=written)


def _invoke_usage(response: Any) -> Usage | None:
    headers = field(response, "ResponseMetadata", "HTTPHeaders") or {}
    tokens_in = headers.get("x-amzn-bedrock-input-token-count")
    tokens_out = headers.get("x-amzn-bedrock-output-token-count")
    if tokens_in is None or tokens_out is None:
        return None
    try:
        return Usage(None, int(tokens_in), int(tokens_out))
    except ValueError:
        return None


def _converse_chunk(state: StreamState, event: Any) -> None:
    report(state, None, field(event, "contentBlockDelta", "delta", "text"))
    if "metadata" in event:
        report(state, _converse_usage(event["metadata"]), complete=True)


def _invoke_chunk(state: StreamState, event: Any) -> None:
    data = field(event, "chunk", "bytes")
    try:
        native = json.loads(data) if data else None
    except ValueError:
        native = None
    if not isinstance(native, dict):
        return
    report(state, None, field(native, "delta", "text") or native.get("outputText") or native.get("generation"))
    metrics = native.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, Mapping):
        usage = Usage(None, count(metrics.get("inputTokenCount")), count(metrics.get("outputTokenCount")))
        report(state, usage, complete=True)


_OPERATIONS = {
    "Converse": Method(CONVERSE, usage=_converse_usage, request=_converse_request, degrade=_degrade),
    "ConverseStream": Method(CONVERSE, usage=_converse_usage, request=_converse_request, degrade=_degrade,
                             streams=always, chunk=_converse_chunk, stream_key="stream"),
    "InvokeModel": Method(INVOKE, usage=_invoke_usage, request=_invoke_request, degrade=_degrade),
    "InvokeModelWithResponseStream": Method(INVOKE, usage=_invoke_usage, request=_invoke_request, degrade=_degrade,
                                            streams=always, chunk=_invoke_chunk, stream_key="body"),
}


_FORMATS = (CONVERSE, INVOKE)
_EXCEPTIONS: dict[str, Any] = {}
"""The ``ClientError`` classes of a service by its name, made as a client makes them."""


def _client_error(parsed: Mapping[str, Any], operation: Any) -> BaseException:
    from botocore.errorfactory import ClientExceptionsFactory  # type: ignore[import-untyped]

    service = operation.service_model
    exceptions = _EXCEPTIONS.get(service.service_name)
    if exceptions is None:
        exceptions = _EXCEPTIONS[service.service_name] = ClientExceptionsFactory().create_client_exceptions(service)
    error = parsed.get("Error", {}) if isinstance(parsed, Mapping) else {}
    cls = exceptions.from_code(error.get("QueryErrorCode") or error.get("Code"))
    return cls(parsed, operation.name)


def _attempt(operation_model: Any) -> Call | None:
    """The gated request an HTTP attempt of this operation belongs to (its attempt begun: may refuse)."""
    call = own_call(_FORMATS)
    if call is None or operation_model.name not in _OPERATIONS:
        return None
    call.attempt()
    return call


def _attempted(call: Call, answer: Any, exception: BaseException | None, operation_model: Any) -> None:
    """Note how the attempt ended: a connection error or an error answer fails it."""
    if exception is not None:
        call.failed(exception, answered=False)
    elif answer[0].status_code >= 300:
        call.failed(_client_error(answer[1], operation_model), answered=True)


def _get_response(original: Callable[..., Any]) -> Callable[..., Any]:
    def get_response(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
        call = _attempt(operation_model)
        if call is None:
            return original(self, request, operation_model, context)
        answer, exception = original(self, request, operation_model, context)
        _attempted(call, answer, exception, operation_model)
        return answer, exception

    return get_response


def _get_response_async(original: Callable[..., Any]) -> Callable[..., Any]:
    async def get_response(self: Any, request: Any, operation_model: Any, context: Any) -> Any:
        call = _attempt(operation_model)
        if call is None:
            return await original(self, request, operation_model, context)
        answer, exception = await original(self, request, operation_model, context)
        _attempted(call, answer, exception, operation_model)
        return answer, exception

    return get_response


def _choose(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Method | None:
    method = _OPERATIONS.get(args[0]) if args else None
    if method is None or client.meta.service_model.service_name != "bedrock-runtime":
        return None
    return method


def _runtime_client(client: Any, cls: Any) -> Any:
    """``client`` when it is a ``bedrock-runtime`` client of ``cls``, else None."""
    if isinstance(client, cls) and client.meta.service_model.service_name == "bedrock-runtime":
        return client
    return None


class BedrockProvider(Provider):
    name = "bedrock"
    module = "botocore"

    def install(self) -> list[Patch]:
        from botocore import client, endpoint  # type: ignore[import-untyped]

        return [
            patch(client.BaseClient, "_make_api_call", wrap(_choose)),
            patch(endpoint.Endpoint, "_get_response", _get_response),
        ]

    def client_key(self, client: Any) -> Any:
        from botocore.client import BaseClient  # type: ignore[import-untyped]

        aio = sys.modules.get("aiobotocore.client")
        if aio is not None and isinstance(client, aio.AioBaseClient):
            return None  # a subclass, patched by AioBedrockProvider
        return _runtime_client(client, BaseClient)


class AioBedrockProvider(Provider):
    name = "aiobotocore"
    module = "aiobotocore"

    def install(self) -> list[Patch]:
        from aiobotocore import client, endpoint  # type: ignore[import-untyped]

        return [
            patch(client.AioBaseClient, "_make_api_call", wrap(_choose)),
            patch(endpoint.AioEndpoint, "_get_response", _get_response_async),
        ]

    def client_key(self, client: Any) -> Any:
        from aiobotocore.client import AioBaseClient  # type: ignore[import-untyped]

        return _runtime_client(client, AioBaseClient)
