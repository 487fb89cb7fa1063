"""ollama: ``chat``, ``generate``, ``embed`` (and the older ``embeddings``) of ``Client`` and
``AsyncClient``, streams included.

Patched: those methods of ``ollama._client.Client`` and ``AsyncClient``. The request is read
from the arguments (``model`` and the prompt may be positional; ``options.num_predict`` is the
output cap), the usage from the answer's ``prompt_eval_count`` and ``eval_count`` (in a stream:
the last chunk, ``done`` true). A local model has no price in the built-in table: give it one
in the policy's ``pricing:`` (0 for free), or each call is charged its reservation. Clients are
recognised by themselves.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from agentfuse.runtime.instrument.core import Patch, Provider, patch
from agentfuse.runtime.instrument.methods import Method, count, field, report, stream_flag, wrap
from agentfuse.runtime.instrument.wire import StreamState, WireFormat, no_events
from agentfuse.runtime.pricing import Usage

CHAT = WireFormat("ollama.chat", ("messages", "tools"), ("num_predict",), no_events)
GENERATE = WireFormat("ollama.generate", ("prompt", "suffix", "system"), ("num_predict",), no_events)
EMBED = WireFormat("ollama.embed", ("input", "prompt"), (), no_events)


def _named(names: tuple[str, ...]) -> Callable[[tuple[Any, ...], dict[str, Any]], Mapping[str, Any]]:
    def request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Mapping[str, Any]:
        body = dict(kwargs)
        for name, value in zip(names, args):
            body[name] = value
        body["num_predict"] = field(body.get("options"), "num_predict")
        return body

    return request


def _degrade(args: tuple[Any, ...], kwargs: dict[str, Any], model: str) -> tuple[Any, ...]:
    if args:
        return (model, *args[1:])
    kwargs["model"] = model
    return args


def _usage(response: Any) -> Usage | None:
    prompt, output = field(response, "prompt_eval_count"), field(response, "eval_count")
    if prompt is None and output is None:
        return None
    model = field(response, "model")
    return Usage(model if isinstance(model, str) and model else None, count(prompt), count(output))


def _chunk(state: StreamState, item: Any) -> None:
    text = field(item, "message", "content") if field(item, "message") is not None else field(item, "response")
    report(state, _usage(item), text, complete=bool(field(item, "done")))


def _method(fmt: WireFormat, names: tuple[str, ...]) -> Method:
    return Method(fmt, usage=_usage, request=_named(names), streams=stream_flag, chunk=_chunk, degrade=_degrade)


_METHODS = (
    ("chat", _method(CHAT, ("model", "messages"))),
    ("generate", _method(GENERATE, ("model", "prompt", "suffix"))),
    ("embed", _method(EMBED, ("model", "input"))),
    ("embeddings", _method(EMBED, ("model", "prompt"))),
)


class OllamaProvider(Provider):
    name = "ollama"
    module = "ollama"

    def install(self) -> list[Patch]:
        _client = importlib.import_module("ollama._client")

        return [
            patch(owner, name, wrap(method))
            for owner in (_client.Client, _client.AsyncClient)
            for name, method in _METHODS
            if hasattr(owner, name)
        ]

    def client_key(self, client: Any) -> Any:
        _client = importlib.import_module("ollama._client")

        return client if isinstance(client, (_client.Client, _client.AsyncClient)) else None
