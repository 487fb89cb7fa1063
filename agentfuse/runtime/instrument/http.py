"""The gated HTTP request the SDK instrumentations share (httpx / httpx2 responses).

A provider module finds the request's wire format and body, then calls :func:`gate` before
the SDK sends and :func:`after_sync` / :func:`after_async` with what came back: an error
status settles as a failure with nothing billed (the SDK raises or retries it); a body is
metered on its way to the caller and settles from the usage it reports.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

from agentfuse.runtime.instrument.core import (
    REGISTRY,
    Call,
    Meter,
    begin,
    metered,
    open_call,
    rewrite,
    wait_interval,
)
from agentfuse.runtime.instrument.wire import WireFormat, json_body

StatusError = Callable[[Any], BaseException]
"""Builds the exception the SDK raises for an error response (for the breaker and fail_fast)."""


class Gated:
    """What :func:`gate` decided: the call (or the outer one), the body to send, what to drop."""

    __slots__ = ("call", "outer", "fmt", "body", "drop_usage", "wait_s")

    def __init__(
        self,
        call: Call | None,
        outer: Call | None,
        fmt: WireFormat,
        body: dict[str, Any] | None,
        drop_usage: bool,
        wait_s: float,
    ) -> None:
        self.call = call
        self.outer = outer
        self.fmt = fmt
        self.body = body
        self.drop_usage = drop_usage
        self.wait_s = wait_s

    def failed(self, exc: BaseException) -> None:
        """The request raised before an answer (connection, timeout, cancellation)."""
        if self.call is not None:
            self.call.settle(None, exc)
        elif self.outer is not None:
            self.outer.failed(exc, answered=False)  # settled if the SDK retries it, else by the outer layer


def gate(key: Any, fmt: WireFormat, body: Mapping[str, Any] | None) -> Gated | None:
    """Gate a request of the client recognised by ``key``; None when no guard takes it.

    Raises the refusal; ``Gated.body`` is the body to send when it changed.
    """
    outer = open_call()
    if outer is not None:
        outer.attempt()  # a retry by the SDK underneath is a step of the outer layer's call
    guard = REGISTRY.resolve(key) if outer is None else None
    if body is None or (outer is None and guard is None):
        return Gated(None, outer, fmt, None, False, 0.0) if outer is not None else None
    stream_usage = fmt.usage_option and fmt.streams(body) and not fmt.wants_usage(body)
    if outer is not None:  # an outer layer holds the step: ask for usage to hand up, gate nothing
        options = body.get("stream_options")
        extra = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
        return Gated(None, outer, fmt, {**body, "stream_options": extra} if stream_usage else None, stream_usage, 0.0)
    assert guard is not None
    call = begin(guard, fmt, body)
    try:
        new = rewrite(call, body, stream_usage=stream_usage)
        return Gated(call, None, fmt, new, stream_usage, wait_interval(call) if call.step.min_interval_s else 0.0)
    except BaseException as exc:
        call.settle(None, exc)
        raise


def _streams_module(response: Any) -> Any:
    return sys.modules[type(response).__module__.partition(".")[0]]


def _is_read(response: Any) -> bool:
    return hasattr(response, "_content")


def _is_events(response: Any) -> bool:
    return str(response.headers.get("content-type", "")).startswith("text/event-stream")


def _on_error(gated: Gated, response: Any, status_error: StatusError) -> None:
    try:
        exc = status_error(response)
    except Exception as build_error:  # the SDK's own mapping failed: still a failure
        exc = build_error
    if gated.call is not None:
        gated.call.settle(None, exc, free=True)
    elif gated.outer is not None:
        gated.outer.failed(exc, answered=True)


def _meter(gated: Gated, response: Any, *, is_async: bool) -> None:
    meter = Meter(gated.call, gated.outer, gated.fmt, events=_is_events(response), drop_usage=gated.drop_usage)
    base = _streams_module(response)
    stream_type = base.AsyncByteStream if is_async else base.SyncByteStream
    response.stream = metered(stream_type, response.stream, meter, is_async=is_async)


def _settle_read(gated: Gated, response: Any) -> None:
    content = response.content
    if content[:1] != b"{" and _is_events(response):  # a JSON object is no event stream: skip the header look-up
        meter = Meter(gated.call, gated.outer, gated.fmt, events=True, drop_usage=False)
        meter.feed(content)
        meter.tail()
        meter.finish()
        return
    body = json_body(content)
    usage = gated.fmt.read_usage(body) if body is not None else None
    if gated.call is not None:
        gated.call.settle(usage)
    elif gated.outer is not None and usage is not None:
        gated.outer.reported.append(usage)


def after_sync(gated: Gated, response: Any, status_error: StatusError) -> Any:
    """Settle (or meter) a sync response; returns it for the SDK."""
    if response.status_code >= 400:
        if not _is_read(response):
            response.read()
        _on_error(gated, response, status_error)
    elif _is_read(response):
        _settle_read(gated, response)
    else:
        _meter(gated, response, is_async=False)
    return response


async def after_async(gated: Gated, response: Any, status_error: StatusError) -> Any:
    """The async twin of :func:`after_sync`."""
    if response.status_code >= 400:
        if not _is_read(response):
            await response.aread()
        _on_error(gated, response, status_error)
    elif _is_read(response):
        _settle_read(gated, response)
    else:
        _meter(gated, response, is_async=True)
    return response
