"""mistralai: ``chat.complete``, ``chat.stream``, ``embeddings.create`` and their ``_async`` twins.

Patched: those methods of ``mistralai.client.chat.Chat`` and ``mistralai.client.embeddings.Embeddings``.
The request is read from the keyword arguments, the usage from the parsed response's ``usage``
(in a stream: the last event's ``data.usage``). Clients are recognised by their
``sdk_configuration``, which every resource of one ``Mistral`` client shares.
"""

from __future__ import annotations

from typing import Any

from agentfuse.runtime.instrument.core import Patch, Provider, patch
from agentfuse.runtime.instrument.methods import Method, always, field, report, wrap
from agentfuse.runtime.instrument.wire import StreamState, WireFormat, no_events
from agentfuse.runtime.pricing import extract_usage

CHAT = WireFormat("mistral.chat", ("messages", "tools"), ("max_tokens",), no_events)
EMBEDDINGS = WireFormat("mistral.embeddings", ("inputs",), (), no_events)


def _chunk(state: StreamState, event: Any) -> None:
    data = field(event, "data")
    choices = field(data, "choices") or ()
    text = field(choices[0], "delta", "content") if choices else None
    report(state, extract_usage(data), text, complete=True)


def _key(resource: Any) -> Any:
    return getattr(resource, "sdk_configuration", resource)


_CHAT = Method(CHAT, key=_key)
_STREAM = Method(CHAT, streams=always, chunk=_chunk, key=_key)
_EMBED = Method(EMBEDDINGS, key=_key)


class MistralProvider(Provider):
    name = "mistralai"
    module = "mistralai.client"

    def install(self) -> list[Patch]:
        from mistralai.client import chat, embeddings

        return [
            patch(chat.Chat, "complete", wrap(_CHAT)),
            patch(chat.Chat, "complete_async", wrap(_CHAT)),
            patch(chat.Chat, "stream", wrap(_STREAM)),
            patch(chat.Chat, "stream_async", wrap(_STREAM)),
            patch(embeddings.Embeddings, "create", wrap(_EMBED)),
            patch(embeddings.Embeddings, "create_async", wrap(_EMBED)),
        ]

    def client_key(self, client: Any) -> Any:
        from mistralai.client.sdk import Mistral

        return client.sdk_configuration if isinstance(client, Mistral) else None
