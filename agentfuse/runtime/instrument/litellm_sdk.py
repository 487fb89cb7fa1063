"""LiteLLM: ``completion``, ``acompletion``, ``text_completion``, ``atext_completion``,
``embedding``, ``aembedding`` (module functions).

LiteLLM is the outer layer: its call is the step, and it is open (a context variable) while
LiteLLM runs, so when LiteLLM sends through the ``openai`` SDK underneath, that request is not
gated again; its reported usage is handed up to this step instead (one step, charged once).
The price: the usage's, from the policy or the table; a model neither knows is priced with
LiteLLM's own ``response_cost``. Functions are patched on the ``litellm`` module, so code that
did ``from litellm import completion`` before ``guard.instrument()`` keeps the unpatched
function: call ``guard.instrument()`` first, or call ``litellm.completion``. A ``Router`` looks
these functions up on the module at call time, so each of its attempts (retries and fallbacks
included) is a step here. Requests LiteLLM sends through the ``openai`` SDK (OpenAI, Azure and
OpenAI-compatible models) are gated by the ``openai`` instrumentation even without this layer;
under it, the openai SDK's own retries (``max_retries``) are steps of this layer's call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from agentfuse.runtime.instrument.core import _OPEN_CALL, REGISTRY, Call, Patch, Provider, begin, open_call, patch
from agentfuse.runtime.instrument.wire import OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS, WireFormat
from agentfuse.runtime.pricing import CHARS_PER_TOKEN, Usage, extract_usage

_FUNCTIONS = (
    ("completion", OPENAI_CHAT, ("model", "messages")),
    ("acompletion", OPENAI_CHAT, ("model", "messages")),
    ("text_completion", OPENAI_COMPLETIONS, ("prompt",)),
    ("atext_completion", OPENAI_COMPLETIONS, ("prompt",)),
    ("embedding", OPENAI_EMBEDDINGS, ("model", "input")),
    ("aembedding", OPENAI_EMBEDDINGS, ("model", "input")),
)


def _named(args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    body = dict(kwargs)
    for name, value in zip(names, args):
        body.setdefault(name, value)
    return body


def _degrade(call: Call, args: tuple[Any, ...], kwargs: dict[str, Any], names: tuple[str, ...]) -> tuple[Any, ...]:
    if not call.model or call.model == kwargs.get("model", args[0] if args and names[0] == "model" else None):
        return args
    if args and names[0] == "model":
        return (call.model, *args[1:])
    kwargs["model"] = call.model
    return args


class _Stream:
    """LiteLLM's stream wrapper, passed through chunk by chunk; settles when it ends."""

    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._call = call
        self._usage: Usage | None = None
        self._chars = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _see(self, chunk: Any) -> None:
        usage = extract_usage(chunk) if getattr(chunk, "usage", None) is not None else None
        if usage is not None and (usage.input_tokens or usage.output_tokens):
            self._usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            delta = getattr(choice, "delta", None)
            text = getattr(delta, "content", None) if delta is not None else getattr(choice, "text", None)
            self._chars += len(text) if isinstance(text, str) else 0

    def _finish(self, exc: BaseException | None = None) -> None:
        usage = self._usage
        if usage is None and self._chars:
            usage = Usage(self._call.model, self._call.input_estimate, -(-self._chars // CHARS_PER_TOKEN))
        self._call.settle(usage, exc if isinstance(exc, Exception) else None)

    def __iter__(self) -> Any:
        try:
            for chunk in self._inner:
                self._see(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish()

    async def __aiter__(self) -> Any:
        try:
            async for chunk in self._inner:
                self._see(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish()

    def __del__(self) -> None:
        if not self._call.settled:
            self._finish()


def _settle(call: Call, response: Any, streaming: bool) -> Any:
    if streaming:
        return _Stream(response, call)
    call.settle(extract_usage(response))
    return response


def _gate(fmt: WireFormat, names: tuple[str, ...], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Call | None:
    if not REGISTRY.active() or open_call() is not None:
        return None
    guard = REGISTRY.resolve(None)
    if guard is None:
        return None
    return begin(guard, fmt, _named(args, kwargs, names))


def _wrapper(fmt: WireFormat, names: tuple[str, ...]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def make(original: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(original):

            @functools.wraps(original)
            async def gated_async(*args: Any, **kwargs: Any) -> Any:
                call = _gate(fmt, names, args, kwargs)
                if call is None:
                    return await original(*args, **kwargs)
                args = _degrade(call, args, kwargs, names)
                token = _OPEN_CALL.set(call)
                try:
                    response = await original(*args, **kwargs)
                except BaseException as exc:
                    call.settle(None, exc)
                    raise
                finally:
                    _OPEN_CALL.reset(token)
                return _settle(call, response, kwargs.get("stream") is True)

            return gated_async

        @functools.wraps(original)
        def gated(*args: Any, **kwargs: Any) -> Any:
            call = _gate(fmt, names, args, kwargs)
            if call is None:
                return original(*args, **kwargs)
            args = _degrade(call, args, kwargs, names)
            token = _OPEN_CALL.set(call)
            try:
                response = original(*args, **kwargs)
            except BaseException as exc:
                call.settle(None, exc)
                raise
            finally:
                _OPEN_CALL.reset(token)
            return _settle(call, response, kwargs.get("stream") is True)

        return gated

    return make


class LiteLLMProvider(Provider):
    name = "litellm"
    module = "litellm"

    def install(self) -> list[Patch]:
        import litellm

        return [
            patch(litellm, name, _wrapper(fmt, names))
            for name, fmt, names in _FUNCTIONS
            if callable(getattr(litellm, name, None))
        ]
