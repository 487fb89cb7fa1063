"""The wire formats the instrumentation reads: what a request implies, what a response reports.

A :class:`WireFormat` knows, for one API (OpenAI chat completions, the Responses API, Anthropic
messages, ...), where a request body keeps its model, prompt and output cap, whether it
streams, and where the usage is in a JSON answer or in its server-sent events. Nothing here
talks to a provider or a store: these are plain functions of dicts, so each is tested alone.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from agentfuse.runtime.money import MAX_COUNT
from agentfuse.runtime.pricing import CHARS_PER_TOKEN, Usage, estimate_input_tokens, extract_usage


@dataclasses.dataclass(slots=True)
class StreamState:
    """What a stream has told so far: reported usage parts, the model, text characters received."""

    model: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    received_chars: int = 0
    complete: bool = False
    """The provider's final usage arrived (nothing more will be reported)."""
    problem: str | None = None
    """Why the reported usage cannot be trusted (a negative or non-numeric count): settle at the estimate."""

    def usage(self, input_estimate: int) -> Usage:
        """The usage to settle: what was reported, and at least the tokens already received."""
        received = math.ceil(self.received_chars / CHARS_PER_TOKEN)
        output = self.output_tokens if self.output_tokens is not None else 0
        if not self.complete:
            output = max(output, received)
        return Usage(
            model=self.model,
            input_tokens=self.input_tokens if self.input_tokens is not None else input_estimate,
            output_tokens=output,
            cached_input_tokens=self.cached_input_tokens,
            cache_write_input_tokens=self.cache_write_input_tokens,
            problem=self.problem,
        )


def _text_chars(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _openai_chunk(state: StreamState, data: Mapping[str, Any]) -> bool:
    """A chat or text completion chunk; True when it is only the usage chunk (no choices)."""
    if isinstance(data.get("model"), str):
        state.model = data["model"]
    choices = data.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, Mapping):
            continue
        state.received_chars += _text_chars(choice.get("text"))
        delta = choice.get("delta")
        if isinstance(delta, Mapping):
            state.received_chars += _text_chars(delta.get("content")) + _text_chars(delta.get("refusal"))
            for call in delta.get("tool_calls") or ():
                if isinstance(call, Mapping) and isinstance(call.get("function"), Mapping):
                    state.received_chars += _text_chars(call["function"].get("arguments"))
    usage = extract_usage({"usage": data.get("usage")}) if isinstance(data.get("usage"), Mapping) else None
    if usage is not None:
        state.input_tokens = usage.input_tokens
        state.output_tokens = usage.output_tokens
        state.cached_input_tokens = usage.cached_input_tokens
        state.problem = state.problem or usage.problem
        state.complete = True
        return not choices
    return False


def _responses_event(state: StreamState, data: Mapping[str, Any]) -> bool:
    kind = data.get("type")
    if kind in ("response.output_text.delta", "response.function_call_arguments.delta", "response.refusal.delta"):
        state.received_chars += _text_chars(data.get("delta"))
    elif kind in ("response.completed", "response.incomplete", "response.failed", "response.created"):
        response = data.get("response")
        if isinstance(response, Mapping):
            if isinstance(response.get("model"), str):
                state.model = response["model"]
            usage = extract_usage(response) if isinstance(response.get("usage"), Mapping) else None
            if usage is not None:
                state.input_tokens = usage.input_tokens
                state.output_tokens = usage.output_tokens
                state.cached_input_tokens = usage.cached_input_tokens
                state.problem = state.problem or usage.problem
                state.complete = kind != "response.created"
    return False


def _anthropic_event(state: StreamState, data: Mapping[str, Any]) -> bool:
    kind = data.get("type")
    if kind == "content_block_delta":
        delta = data.get("delta")
        if isinstance(delta, Mapping):
            state.received_chars += _text_chars(delta.get("text")) + _text_chars(delta.get("partial_json"))
            state.received_chars += _text_chars(delta.get("thinking"))
    elif kind == "message_start":
        message = data.get("message")
        if isinstance(message, Mapping):
            if isinstance(message.get("model"), str):
                state.model = message["model"]
            _anthropic_usage(state, message.get("usage"))
    elif kind == "message_delta":
        _anthropic_usage(state, data.get("usage"))
    elif kind == "message_stop":
        state.complete = state.output_tokens is not None
    return False


def _anthropic_usage(state: StreamState, usage: Any) -> None:
    """``message_start`` reports input and cache counts; ``message_delta`` the output so far."""
    if not isinstance(usage, Mapping):
        return
    numbers = {k: v for k, v in usage.items() if isinstance(v, int) and not isinstance(v, bool)}
    if "output_tokens" in numbers:
        state.output_tokens = max(numbers["output_tokens"], state.output_tokens or 0)
    if {"input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"} & numbers.keys():
        read = numbers.get("cache_read_input_tokens", 0)
        written = numbers.get("cache_creation_input_tokens", 0)
        state.input_tokens = numbers.get("input_tokens", 0) + read + written
        state.cached_input_tokens = read
        state.cache_write_input_tokens = written


def no_events(state: StreamState, data: Mapping[str, Any]) -> bool:
    return False


def _whole(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _openai_usage(body: Mapping[str, Any]) -> Usage | None:
    """:func:`extract_usage` of an OpenAI JSON answer, read straight from its known keys.

    Only the plain shape is read here (whole counts, a model name, no cache writes, no client
    cost); anything else goes to :func:`extract_usage`, which gives the same result for the
    plain shape at several times the cost (a test compares the two over generated answers).
    """
    usage = body.get("usage")
    model = body.get("model")
    if type(usage) is dict and type(model) is str and model and "_hidden_params" not in body:
        prompt = usage.get("prompt_tokens")
        completion = usage.get("completion_tokens", 0)
        details = usage.get("prompt_tokens_details")
        cached = details.get("cached_tokens", 0) if type(details) is dict else 0 if details is None else -1
        if (
            type(prompt) is int
            and _whole(prompt)
            and (completion is None or _whole(completion))
            and (cached is None or _whole(cached))
            and usage.get("cache_creation_input_tokens") is None
        ):
            return Usage(model, prompt, completion or 0, cached or 0)
    return extract_usage(body)


@dataclasses.dataclass(frozen=True)
class WireFormat:
    """One API's request and response shapes."""

    name: str
    """Also the step's action (``openai.chat.completions``): rate limits and events use it."""
    prompt_keys: tuple[str, ...]
    max_tokens_keys: tuple[str, ...]
    on_event: Callable[[StreamState, Mapping[str, Any]], bool]
    """Feeds one SSE event's JSON into the state; True drops the event (the usage chunk we asked for)."""
    usage_option: bool = False
    """Streams report usage only when asked (``stream_options.include_usage``)."""
    read_usage: Callable[[Mapping[str, Any]], Usage | None] = extract_usage
    """The usage of a JSON answer (a dict)."""

    def model(self, body: Mapping[str, Any]) -> str | None:
        model = body.get("model")
        return model if isinstance(model, str) else None

    def input_tokens(self, body: Mapping[str, Any]) -> int:
        parts = []
        for key in self.prompt_keys:
            value = body.get(key)
            if value is not None:
                parts.append(value)
        return estimate_input_tokens(parts)

    def max_tokens(self, body: Mapping[str, Any]) -> int | None:
        for key in self.max_tokens_keys:
            value = body.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                return value
        return None

    def streams(self, body: Mapping[str, Any]) -> bool:
        return body.get("stream") is True

    def wants_usage(self, body: Mapping[str, Any]) -> bool:
        options = body.get("stream_options")
        return isinstance(options, Mapping) and options.get("include_usage") is True


OPENAI_CHAT = WireFormat(
    "openai.chat.completions",
    ("messages", "tools"),
    ("max_completion_tokens", "max_tokens"),
    _openai_chunk,
    usage_option=True,
    read_usage=_openai_usage,
)
OPENAI_COMPLETIONS = WireFormat(
    "openai.completions", ("prompt", "suffix"), ("max_tokens",), _openai_chunk, usage_option=True,
    read_usage=_openai_usage,
)
OPENAI_RESPONSES = WireFormat(
    "openai.responses", ("input", "instructions", "tools"), ("max_output_tokens",), _responses_event
)
OPENAI_EMBEDDINGS = WireFormat("openai.embeddings", ("input",), (), no_events, read_usage=_openai_usage)
ANTHROPIC_MESSAGES = WireFormat(
    "anthropic.messages", ("messages", "system", "tools"), ("max_tokens",), _anthropic_event
)

_OPENAI_ROUTES = (
    ("/chat/completions", OPENAI_CHAT),
    ("/responses", OPENAI_RESPONSES),
    ("/completions", OPENAI_COMPLETIONS),
    ("/embeddings", OPENAI_EMBEDDINGS),
)


def openai_format(path: str) -> WireFormat | None:
    """The format of an OpenAI-compatible POST path (``.../v1/chat/completions``), or None."""
    for suffix, fmt in _OPENAI_ROUTES:
        if path.endswith(suffix):
            return fmt
    return None


def anthropic_format(path: str) -> WireFormat | None:
    """``/v1/messages`` (and the beta variant); token counting and batches are not model calls."""
    return ANTHROPIC_MESSAGES if path.endswith("/messages") else None


def json_body(content: bytes) -> dict[str, Any] | None:
    """A request or response body as a dict, or None when it is not a JSON object."""
    try:
        data = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


class SSEParser:
    """Splits a byte stream into server-sent events and feeds their JSON to a format.

    ``feed`` returns the bytes to hand on: the chunk itself, or (when ``drop`` may remove an
    event) the complete events kept so far. Events are separated by a blank line.
    """

    __slots__ = ("fmt", "state", "filtering", "_buffer")

    def __init__(self, fmt: WireFormat, state: StreamState, *, filtering: bool) -> None:
        self.fmt = fmt
        self.state = state
        self.filtering = filtering
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        buffer = self._buffer + chunk
        kept: list[bytes] = []
        start = 0
        while True:
            end, width = _boundary(buffer, start)
            if end < 0:
                break
            event = buffer[start : end + width]
            if not self._drop(event) and self.filtering:
                kept.append(event)
            start = end + width
        self._buffer = buffer[start:]
        return b"".join(kept) if self.filtering else chunk

    def tail(self) -> bytes:
        """What is left after the last blank line (handed on unchanged)."""
        rest, self._buffer = self._buffer, b""
        if rest.strip():
            self._drop(rest)
        return rest if self.filtering else b""

    def _drop(self, event: bytes) -> bool:
        data = b"\n".join(
            line[5:].lstrip(b" ") for line in event.replace(b"\r\n", b"\n").split(b"\n") if line.startswith(b"data:")
        )
        if not data or data == b"[DONE]":
            return False
        parsed = json_body(data)
        return parsed is not None and self.fmt.on_event(self.state, parsed)


def _boundary(buffer: bytes, start: int) -> tuple[int, int]:
    """Index and width of the first blank line at or after ``start``, or (-1, 0)."""
    lf = buffer.find(b"\n\n", start)
    crlf = buffer.find(b"\r\n\r\n", start)
    if crlf >= 0 and (lf < 0 or crlf < lf):
        return crlf, 4
    return (lf, 2) if lf >= 0 else (-1, 0)
