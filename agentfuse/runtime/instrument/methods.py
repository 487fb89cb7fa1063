"""Gating at an SDK's own methods, for SDKs whose HTTP layer is not shared with ours.

A :class:`Method` says how one SDK method's call reads: the request it implies (a mapping in
its :class:`~agentfuse.runtime.instrument.wire.WireFormat`'s keys, built from the keyword
arguments the SDK was handed, so no body is encoded or parsed again), where the degrade
ladder's model goes, the usage of what it returns (the SDK's parsed object), and how a
stream's items report usage. :func:`wrap` turns the original method into its gated twin,
whatever its kind: a function, a coroutine function, a generator or an async generator
function (those gate when first iterated, which is when the SDK sends).

A call is one step, open (the context variable of :mod:`.core`) while the SDK runs, so an
instrumented layer underneath hands its usage up instead of gating again.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import weakref
from collections.abc import Callable, Container, Mapping
from typing import Any

from agentfuse.runtime.instrument.core import _OPEN_CALL, REGISTRY, Call, begin, open_call, sleep_async, sleep_sync
from agentfuse.runtime.instrument.core import wait_interval
from agentfuse.runtime.instrument.wire import StreamState, WireFormat
from agentfuse.runtime.pricing import Usage, extract_usage

Request = Callable[[tuple[Any, ...], dict[str, Any]], Mapping[str, Any]]
"""(positional args after ``self``, keyword args) -> the request as a mapping of the format's keys."""


def keywords(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
    """The request of an SDK method that takes keyword arguments only."""
    return kwargs


def never(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return False


def always(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return True


def stream_flag(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    return kwargs.get("stream") is True


@dataclasses.dataclass(frozen=True)
class Method:
    """How one SDK method's call is gated and settled."""

    fmt: WireFormat
    usage: Callable[[Any], Usage | None] = extract_usage
    """The usage of what the method returned (not a stream)."""
    request: Request = keywords
    streams: Callable[[tuple[Any, ...], dict[str, Any]], bool] = never
    """Whether this call returns a stream (its items go through ``chunk``)."""
    chunk: Callable[[StreamState, Any], None] | None = None
    stream_key: str | None = None
    """The key of the returned dict that holds the stream (Bedrock); None: the return is the stream."""
    model_arg: str = "model"
    """The keyword argument the degrade ladder's model replaces."""
    degrade: Callable[[tuple[Any, ...], dict[str, Any], str], tuple[Any, ...]] | None = None
    """Puts the degrade ladder's model into the call (returns the new args); default ``model_arg``."""
    key: Callable[[Any], Any] = lambda owner: owner
    """The object ``guard.instrument(client)`` binds, found from the method's ``self``."""


Maker = Callable[[Callable[..., Any]], Callable[..., Any]]
"""Turns an SDK's original function into its instrumented twin (what :func:`~.core.patch` takes)."""

Choose = Callable[[Any, tuple[Any, ...], dict[str, Any]], "Method | None"]
"""Which :class:`Method` a call of one patched function is (None: not a model request)."""


def _priced(usage: Usage | None, call: Call) -> Usage | None:
    if usage is not None and usage.model is None and call.model:
        return dataclasses.replace(usage, model=call.model)
    return usage


class _Started:
    __slots__ = ("method", "call", "args")

    def __init__(self, method: Method, call: Call, args: tuple[Any, ...]) -> None:
        self.method = method
        self.call = call
        self.args = args


def _start(choose: Choose, owner: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Started | None:
    """Gate the call (raises the refusal), or None when no guard takes it; applies the degrade swap."""
    if not REGISTRY.active() or open_call() is not None:
        return None
    method = choose(owner, args, kwargs)
    if method is None:
        return None
    guard = REGISTRY.resolve(method.key(owner))
    if guard is None:
        return None
    request = method.request(args, kwargs)
    call = begin(guard, method.fmt, request)
    if call.model and call.model != request.get("model"):
        if method.degrade is not None:
            args = method.degrade(args, kwargs, call.model)
        else:
            kwargs[method.model_arg] = call.model
    return _Started(method, call, args)


def _settled(started: _Started, result: Any, kwargs: dict[str, Any]) -> Any:
    """Settle a returned answer, or hand back its stream metered."""
    method, call = started.method, started.call
    if not method.streams(started.args, kwargs):
        call.settle(_priced(method.usage(result), call))
        return result
    if method.stream_key is None:
        return Stream(result, ChunkMeter(call, method))
    inner = result.get(method.stream_key) if isinstance(result, dict) else None
    if inner is None:
        call.settle(_priced(method.usage(result), call))
        return result
    return {**result, method.stream_key: Stream(inner, ChunkMeter(call, method))}


class ChunkMeter:
    """The usage a stream of SDK objects has reported; settles the call once, when it ends."""

    __slots__ = ("call", "method", "state", "read_any", "__weakref__")

    def __init__(self, call: Call, method: Method) -> None:
        self.call = call
        self.method = method
        self.state = StreamState(model=call.model)
        self.read_any = False
        with REGISTRY.lock:
            REGISTRY.open_streams.setdefault(call.guard, set()).add(self)  # type: ignore[arg-type]

    def feed(self, item: Any) -> None:
        self.read_any = True
        if self.method.chunk is not None:
            self.method.chunk(self.state, item)

    def finish(self, exc: BaseException | None = None) -> None:
        call = self.call
        if call.settled:
            return
        with REGISTRY.lock:
            streams = REGISTRY.open_streams.get(call.guard)
            if streams is not None:
                streams.discard(self)  # type: ignore[arg-type]
        usage = self.state.usage(call.input_estimate) if self.read_any else None
        call.settle(usage, exc if isinstance(exc, Exception) else None)


def _finish_quietly(meter: ChunkMeter) -> None:
    try:
        meter.finish()
    except Exception as exc:  # a finalizer must not raise; the reservation stays counted
        meter.call.guard.emit("settle_failed", reason=type(exc).__name__, error=str(exc))


class Stream:
    """An SDK's stream object passed through item by item; everything else is delegated."""

    def __init__(self, inner: Any, meter: ChunkMeter) -> None:
        self._inner = inner
        self._meter = meter
        self._iter: Any = None
        weakref.finalize(self, _finish_quietly, meter)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> Any:
        if self._iter is None:
            self._iter = iter(self._inner)
        token = _OPEN_CALL.set(self._meter.call)  # a generator SDK method sends (and retries) in here
        try:
            item = next(self._iter)
        except StopIteration:
            self._meter.finish()
            raise
        except BaseException as exc:
            self._meter.finish(exc)
            raise
        finally:
            _OPEN_CALL.reset(token)
        self._meter.feed(item)
        return item

    def __aiter__(self) -> Stream:
        return self

    async def __anext__(self) -> Any:
        if self._iter is None:
            self._iter = self._inner.__aiter__()
        token = _OPEN_CALL.set(self._meter.call)
        try:
            item = await self._iter.__anext__()
        except StopAsyncIteration:
            self._meter.finish()
            raise
        except BaseException as exc:
            self._meter.finish(exc)
            raise
        finally:
            _OPEN_CALL.reset(token)
        self._meter.feed(item)
        return item

    def __enter__(self) -> Stream:
        enter = getattr(self._inner, "__enter__", None)
        if enter is not None:
            enter()
        return self

    def __exit__(self, *exc_info: Any) -> Any:
        try:
            leave = getattr(self._inner, "__exit__", None)
            return leave(*exc_info) if leave is not None else None
        finally:
            self._meter.finish()

    async def __aenter__(self) -> Stream:
        enter = getattr(self._inner, "__aenter__", None)
        if enter is not None:
            await enter()
        return self

    async def __aexit__(self, *exc_info: Any) -> Any:
        try:
            leave = getattr(self._inner, "__aexit__", None)
            return await leave(*exc_info) if leave is not None else None
        finally:
            self._meter.finish()

    def close(self) -> None:
        try:
            close = getattr(self._inner, "close", None)
            if close is not None:
                close()
        finally:
            self._meter.finish()

    async def aclose(self) -> None:
        try:
            close = getattr(self._inner, "aclose", None)
            if close is not None:
                await close()
        finally:
            self._meter.finish()


def wrap(method: Method | Choose) -> Maker:
    """The maker :func:`~agentfuse.runtime.instrument.core.patch` takes for one SDK method."""
    choose: Choose = (lambda owner, args, kwargs: method) if isinstance(method, Method) else method

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(original):

            @functools.wraps(original)
            async def gated_agen(self: Any, *args: Any, **kwargs: Any) -> Any:
                started = _start(choose, self, args, kwargs)
                if started is None:
                    async for item in original(self, *args, **kwargs):
                        yield item
                    return
                await sleep_async(wait_interval(started.call))
                stream = Stream(original(self, *started.args, **kwargs), ChunkMeter(started.call, started.method))
                try:
                    async for item in stream:
                        yield item
                finally:
                    await stream.aclose()

            return gated_agen

        if inspect.isgeneratorfunction(original):

            @functools.wraps(original)
            def gated_gen(self: Any, *args: Any, **kwargs: Any) -> Any:
                started = _start(choose, self, args, kwargs)
                if started is None:
                    yield from original(self, *args, **kwargs)
                    return
                sleep_sync(wait_interval(started.call))
                stream = Stream(original(self, *started.args, **kwargs), ChunkMeter(started.call, started.method))
                try:
                    yield from stream
                finally:
                    stream.close()

            return gated_gen

        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def gated_async(self: Any, *args: Any, **kwargs: Any) -> Any:
                started = _start(choose, self, args, kwargs)
                if started is None:
                    return await original(self, *args, **kwargs)
                call = started.call
                token = _OPEN_CALL.set(call)
                try:
                    await sleep_async(wait_interval(call))
                    result = await original(self, *started.args, **kwargs)
                except BaseException as exc:
                    call.settle(None, exc)
                    raise
                finally:
                    _OPEN_CALL.reset(token)
                return _settled(started, result, kwargs)

            return gated_async

        @functools.wraps(original)
        def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
            started = _start(choose, self, args, kwargs)
            if started is None:
                return original(self, *args, **kwargs)
            call = started.call
            token = _OPEN_CALL.set(call)
            try:
                sleep_sync(wait_interval(call))
                result = original(self, *started.args, **kwargs)
            except BaseException as exc:
                call.settle(None, exc)
                raise
            finally:
                _OPEN_CALL.reset(token)
            return _settled(started, result, kwargs)

        return gated

    return make


def own_call(formats: Container[WireFormat]) -> Call | None:
    """The request this context has open, if it is one of ``formats`` (the SDK's own)."""
    call = _OPEN_CALL.get(None)
    return call if call is not None and call.fmt in formats else None


def attempts(formats: Container[WireFormat], answered: Callable[[BaseException], bool]) -> Maker:
    """The maker for an SDK function that makes one HTTP attempt per call (its retry loop calls it again).

    Each call is an attempt of the SDK's open request (:meth:`Call.attempt`: one after a failed
    attempt is a step of its own); an exception it raises is the attempt's failure, ``answered``
    when it carries the provider's error answer.
    """

    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def attempt_async(*args: Any, **kwargs: Any) -> Any:
                call = own_call(formats)
                if call is None:
                    return await original(*args, **kwargs)
                call.attempt()
                try:
                    return await original(*args, **kwargs)
                except BaseException as exc:
                    call.failed(exc, answered=answered(exc))
                    raise

            return attempt_async

        @functools.wraps(original)
        def attempt(*args: Any, **kwargs: Any) -> Any:
            call = own_call(formats)
            if call is None:
                return original(*args, **kwargs)
            call.attempt()
            try:
                return original(*args, **kwargs)
            except BaseException as exc:
                call.failed(exc, answered=answered(exc))
                raise

        return attempt

    return make


def report(state: StreamState, usage: Usage | None, text: Any = None, *, complete: bool = False) -> None:
    """Feed one stream item into ``state``: the usage it reports (cumulative), the text it carries."""
    if isinstance(text, str):
        state.received_chars += len(text)
    if usage is not None and (usage.input_tokens or usage.output_tokens):
        state.input_tokens = usage.input_tokens
        state.output_tokens = usage.output_tokens
        state.cached_input_tokens = usage.cached_input_tokens
        state.cache_write_input_tokens = usage.cache_write_input_tokens
        state.complete = state.complete or complete


def field(value: Any, *names: str) -> Any:
    """``value.a.b`` or ``value["a"]["b"]`` (SDK objects and dicts alike), None when absent."""
    for name in names:
        if value is None:
            return None
        value = value.get(name) if isinstance(value, Mapping) else getattr(value, name, None)
    return value


def count(value: Any) -> int:
    """A token count as an int (0 when absent; floats such as Cohere's billed units rounded up).

    Anything else (NaN, infinity, text, a boolean) is -1: the guard never prices a negative
    count, so the call settles at its reservation with a ``usage_invalid`` event.
    """
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return -1
    return int(-(-value // 1))
