"""What every provider instrumentation shares: which guard a request goes to, the gated request
itself (gate, send, settle), metered streams, and patches that come off exactly.

**Which guard.** A request made through an instrumented client is charged to, in order:

1. the guard that instrumented that client object (``guard.instrument(client)``);
2. the guard that called ``guard.instrument()`` in the current thread or asyncio task context
   (a ``contextvars`` variable: an asyncio task sees the value of the context it was created
   in; a new thread starts with none, unless started through ``contextvars.copy_context()``
   or ``asyncio.to_thread``);
3. otherwise the first guard that instrumented the process and has not uninstrumented.

So two agents in one process, each in its own thread or task, keep separate books.

**One step per request, charged once.** Each request to a model endpoint is one step, and
so is each retry of it the SDK makes (:meth:`Call.attempt`: the failed attempt before settles
as a failure, so retries meet the gate, the breaker and ``max_retries_total``). A request
made while an outer instrumented layer has a step open (LiteLLM over the ``openai`` SDK) is
not gated again: its reported usage is handed to the outer step instead, and its retries are
the outer step's.

Patching is process-wide because the SDK classes are; the registry below is the one place
that holds it.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from agentfuse.runtime.instrument.wire import SSEParser, StreamState, WireFormat, json_body
from agentfuse.runtime.money import MAX_CALL_TOKENS, from_micros
from agentfuse.runtime.pricing import Usage

if TYPE_CHECKING:
    from agentfuse.runtime.guard import Guard, Step

_CONTEXT_GUARD: contextvars.ContextVar[Guard | None] = contextvars.ContextVar("agentfuse_instrumenting_guard")
_OPEN_CALL: contextvars.ContextVar[Call | None] = contextvars.ContextVar("agentfuse_gated_call")
_ACTION: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentfuse_action", default=None)
"""The action a framework adapter names this context's requests after (a node, a tool)."""


# -- patches ------------------------------------------------------------------------------------

_MISSING = object()


@dataclasses.dataclass
class Patch:
    """One attribute of one class replaced; ``undo`` puts back exactly what was there."""

    owner: Any
    name: str
    original: Any

    def undo(self) -> None:
        if self.original is _MISSING:
            delattr(self.owner, self.name)
        else:
            setattr(self.owner, self.name, self.original)


def patch(owner: Any, name: str, make: Callable[[Callable[..., Any]], Callable[..., Any]]) -> Patch:
    """Replace ``owner.name`` by ``make(original)``; the original is what the class itself held."""
    own = owner.__dict__.get(name, _MISSING)
    current = getattr(owner, name)
    wrapper = make(current)
    wrapper.__agentfuse_original__ = current  # type: ignore[attr-defined]
    setattr(owner, name, wrapper)
    return Patch(owner, name, own)


# -- the registry -------------------------------------------------------------------------------


class Provider:
    """A provider's instrumentation: its import name and how to patch it."""

    name: str = ""
    module: str = ""
    """The import name checked with ``sys.modules``/``importlib.util.find_spec`` (never imported otherwise)."""

    def install(self) -> list[Patch]:
        """Patch the SDK's classes; return the patches (applied once per process)."""
        raise NotImplementedError

    def client_key(self, client: Any) -> Any:
        """The object a client's requests are recognised by (shared by its ``with_options`` copies)."""
        return None


class Registry:
    """The guards that instrumented, the clients bound to one guard, the patches applied."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.global_guards: list[Guard] = []
        self.clients: weakref.WeakKeyDictionary[Any, Guard] = weakref.WeakKeyDictionary()
        self.patches: dict[str, list[Patch]] = {}
        self.open_streams: weakref.WeakKeyDictionary[Guard, set[Meter]] = weakref.WeakKeyDictionary()

    def resolve(self, key: Any) -> Guard | None:
        """The guard a request of the client recognised by ``key`` is charged to (or None)."""
        if self.clients and key is not None:
            try:
                bound = self.clients.get(key)
            except TypeError:
                bound = None
            if bound is not None:
                return bound
        guards = self.global_guards
        if not guards:
            return None
        current = _CONTEXT_GUARD.get(None)
        if current is not None and current in guards:
            return current
        return guards[0]

    def active(self) -> bool:
        return bool(self.global_guards) or len(self.clients) > 0


REGISTRY = Registry()


def open_call() -> Call | None:
    """The gated request an outer instrumented layer has open in this context, if any."""
    return _OPEN_CALL.get(None)


# -- one gated request --------------------------------------------------------------------------


class Call:
    """One request behind the gate: estimate, reserve, (degrade), then settle exactly once."""

    __slots__ = ("guard", "fmt", "step", "input_estimate", "reported", "settled", "failure", "__weakref__")

    def __init__(self, guard: Guard, fmt: WireFormat, step: Step, input_estimate: int) -> None:
        self.guard = guard
        self.fmt = fmt
        self.step = step
        self.input_estimate = input_estimate
        self.reported: list[Usage] = []
        """Usage handed up by inner layers (a LiteLLM call over the openai SDK)."""
        self.settled = False
        self.failure: tuple[BaseException, bool] | None = None
        """How the last HTTP attempt failed, if it did: (the error, whether the provider answered it)."""

    @property
    def model(self) -> str | None:
        """The model to send: the request's, or the degrade ladder's rung."""
        return self.step.model

    def settle(self, usage: Usage | None = None, exc: BaseException | None = None, *, free: bool = False) -> None:
        """Settle the step once: priced usage, or nothing billed (``free``), or the estimate."""
        if self.settled:
            return
        self.settled = True
        step = self.step
        if free:
            step.record(cost_usd=0, tokens=0)
        elif self.reported:
            total = tokens = 0
            for item in self.reported:  # an item whose cost or tokens are unknown counts at the reservation
                step.tokens = None
                total += self.guard.cost_of(item, step) or step.estimate_micros
                tokens += step.reserved_tokens if step.tokens is None else step.tokens
            step.tokens = None
            own = self.guard.cost_of(usage, step) if usage is not None else None
            tokens = min(max(tokens, step.tokens or 0), MAX_CALL_TOKENS)
            step.record(cost_usd=from_micros(max(total, own or 0)), tokens=tokens)
        elif usage is not None:
            step.record(usage)
        else:
            self.guard.emit("cost_unknown", reason="no_usage", action=step.action)
        step.__exit__(None if exc is None else type(exc), exc, None)  # the step's observers see it end

    def attempt(self) -> None:
        """An HTTP attempt of this request starts: one after a failed attempt (a retry) is a step of its own.

        The failed attempt is settled as the failure it was (nothing billed for an error answer,
        the reservation for one without an answer), which feeds the breaker and
        ``max_retries_total`` exactly as a failed ``guard.step()``; then the retry meets the gate
        with the same estimate, and a refusal raised here leaves it unsent. An attempt after a
        successful one (a further request of the same call) stays in this step.
        """
        if self.failure is None:
            return
        exc, answered = self.failure
        self.failure = None
        sent = self.step
        self.settle(None, exc, free=answered)
        step = self.guard.step(**sent.settings())
        step.__enter__()
        step.model = sent.model  # the SDK resends the same request, whatever the ladder says now
        self.step = step
        self.reported.clear()
        self.settled = False

    def failed(self, exc: BaseException, *, answered: bool) -> None:
        """The current attempt failed with ``exc`` (``answered``: the provider sent an error answer)."""
        self.failure = (exc, answered)


def begin(guard: Guard, fmt: WireFormat, body: Mapping[str, Any], *, estimate_floor: int = 0) -> Call:
    """Gate one request (raises the refusal); the estimate is the larger of the policy's and the request's.

    ``estimate_floor`` raises the estimate further (micro-dollars).
    """
    model = fmt.model(body)
    input_tokens = fmt.input_tokens(body)
    table = guard.price_table()
    max_tokens = fmt.max_tokens(body)
    if max_tokens is None and fmt.max_tokens_keys:
        max_tokens = table.output_limit(model)
    elif not fmt.max_tokens_keys:
        max_tokens = 0  # embeddings: input only
    implied = table.estimate_micros(model, input_tokens, max_tokens) or 0
    estimate = max(guard.default_estimate_micros, implied, estimate_floor)
    tokens = max(guard.default_tokens, input_tokens + (max_tokens or 0))  # the same numbers, in tokens
    step = guard.step(
        estimate_usd=from_micros(estimate), action=_ACTION.get() or fmt.name, model=model, estimate_tokens=tokens
    )
    step.__enter__()
    return Call(guard, fmt, step, input_tokens)


def wait_interval(call: Call) -> float:
    """Seconds to wait before sending: the degrade ladder's ``min_interval_s`` since the last request."""
    interval = call.step.min_interval_s
    if not interval:
        return 0.0
    guard = call.guard
    last = getattr(guard, "_instrument_last_send", None)
    now = time.monotonic()
    wait = 0.0 if last is None else max(0.0, last + interval - now)
    guard._instrument_last_send = now + wait  # type: ignore[attr-defined]
    return wait


def rewrite(call: Call, body: Mapping[str, Any], *, stream_usage: bool) -> dict[str, Any] | None:
    """The body to send when it must change (degraded model, usage asked for), else None."""
    changed: dict[str, Any] | None = None
    model = call.step.model
    if model and model != body.get("model"):
        changed = {**body, "model": model}
    if stream_usage:
        changed = dict(changed or body)
        options = body.get("stream_options")
        changed["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
    return changed


def usage_of(fmt: WireFormat, body: Mapping[str, Any] | None) -> Usage | None:
    return fmt.read_usage(body) if body is not None else None


# -- metered streams ----------------------------------------------------------------------------


class Meter:
    """Reads a response body on its way to the caller and settles the call when it ends.

    Server-sent events are parsed as they pass (the usage chunk we asked for may be dropped);
    any other body is kept and read as JSON at the end. The end is: the body exhausted, closed
    (early or not), broken by an exception, garbage-collected unread, or the guard flushed. A
    request inside an outer layer (``call`` None, ``outer`` set) hands its usage up instead.
    """

    __slots__ = ("call", "outer", "fmt", "state", "parser", "body", "read_any", "done", "__weakref__")

    def __init__(
        self, call: Call | None, outer: Call | None, fmt: WireFormat, *, events: bool, drop_usage: bool
    ) -> None:
        self.call = call
        self.outer = outer
        self.fmt = fmt
        self.state = StreamState()
        self.parser = SSEParser(fmt, self.state, filtering=drop_usage) if events else None
        self.body: bytearray | None = None if events else bytearray()
        self.read_any = False
        self.done = False
        if call is not None:
            with REGISTRY.lock:
                REGISTRY.open_streams.setdefault(call.guard, set()).add(self)

    def feed(self, chunk: bytes) -> bytes:
        self.read_any = True
        if self.parser is not None:
            return self.parser.feed(chunk)
        assert self.body is not None
        self.body += chunk
        return chunk

    def tail(self) -> bytes:
        return self.parser.tail() if self.parser is not None else b""

    def usage(self) -> Usage | None:
        if not self.read_any:
            return None
        if self.body is not None:
            return usage_of(self.fmt, json_body(bytes(self.body)))
        return self.state.usage(self.call.input_estimate if self.call is not None else 0)

    def finish(self, exc: BaseException | None = None) -> None:
        if self.done:
            return
        self.done = True
        usage = self.usage()
        call = self.call
        if call is None:
            if self.outer is not None and usage is not None:
                self.outer.reported.append(usage)
            return
        with REGISTRY.lock:
            streams = REGISTRY.open_streams.get(call.guard)
            if streams is not None:
                streams.discard(self)
        if exc is not None and not isinstance(exc, Exception):
            exc = None  # a cancellation or interrupt while reading: settle what was received
        call.settle(usage, exc)


def _finish_quietly(meter: Meter) -> None:
    try:
        meter.finish()
    except Exception as exc:  # a finalizer must not raise; the reservation stays counted
        guard = meter.call.guard if meter.call is not None else None
        if guard is not None:
            guard.emit("settle_failed", reason=type(exc).__name__, error=str(exc))


def settle_open_streams(guard: Guard) -> None:
    """Settle the streams of ``guard`` still open (``guard.flush()``): what was read so far."""
    with REGISTRY.lock:
        streams = list(REGISTRY.open_streams.pop(guard, ()))
    for meter in streams:
        _finish_quietly(meter)


class _SyncMetered:
    """Iterates the original byte stream through a meter (mixed into the HTTP library's base)."""

    def __init__(self, original: Any, meter: Meter) -> None:
        self._original = original
        self._meter = meter

    def __iter__(self) -> Iterator[bytes]:
        meter = self._meter
        try:
            for chunk in self._original:
                out = meter.feed(chunk)
                if out:
                    yield out
            rest = meter.tail()
            if rest:
                yield rest
        except BaseException as exc:
            meter.finish(exc)
            raise
        meter.finish()

    def close(self) -> None:
        try:
            self._original.close()
        finally:
            self._meter.finish()


class _AsyncMetered:
    """The async twin of :class:`_SyncMetered`."""

    def __init__(self, original: Any, meter: Meter) -> None:
        self._original = original
        self._meter = meter

    async def __aiter__(self) -> Any:
        meter = self._meter
        try:
            async for chunk in self._original:
                out = meter.feed(chunk)
                if out:
                    yield out
            rest = meter.tail()
            if rest:
                yield rest
        except BaseException as exc:
            meter.finish(exc)
            raise
        meter.finish()

    async def aclose(self) -> None:
        try:
            await self._original.aclose()
        finally:
            self._meter.finish()


_METERED: dict[type, type] = {}


def metered(base: type, original: Any, meter: Meter, *, is_async: bool) -> Any:
    """A byte stream of the HTTP library's ``base`` type that feeds ``meter`` as it is read."""
    cls = _METERED.get(base)
    if cls is None:
        mixin = _AsyncMetered if is_async else _SyncMetered
        cls = _METERED[base] = type(f"Metered{base.__name__}", (mixin, base), {})
    stream = cls(original, meter)
    weakref.finalize(stream, _finish_quietly, meter)
    return stream


async def sleep_async(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


def sleep_sync(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


def loaded(module: str) -> bool:
    """Whether ``module`` is importable without importing it (installed)."""
    if module in sys.modules:
        return True
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
