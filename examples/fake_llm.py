"""A stand-in for an OpenAI client: same call shape, same response shape, no network.

``FakeOpenAI(fail_first=N)`` raises a transient ``APIConnectionError`` for its first N requests
(``fail_first=-1``: always), then answers with a chat completion whose usage is priced like
gpt-4o (2,000 input + 500 output tokens = $0.01 a call). ``requests`` counts every request that
reached the "provider", which is what a fuse is meant to keep small.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace
from typing import Any


class APIConnectionError(Exception):
    """Shaped like ``openai.APIConnectionError``: a transient error worth retrying, for a while."""


class _Completions:
    def __init__(self, client: FakeOpenAI) -> None:
        self._client = client

    def create(self, *, model: str, messages: list[dict[str, str]], **_: Any) -> SimpleNamespace:
        client = self._client
        client.requests += 1
        if client.fail_first < 0 or client.requests <= client.fail_first:
            raise APIConnectionError("Connection error.")
        n = next(client._ids)
        return SimpleNamespace(
            id=f"chatcmpl-fake{n}",
            object="chat.completion",
            model=f"{model}-2024-08-06",
            choices=[
                SimpleNamespace(
                    index=0,
                    finish_reason="stop",
                    message=SimpleNamespace(role="assistant", content=f"draft #{n}"),
                )
            ],
            usage=SimpleNamespace(
                prompt_tokens=2000,
                completion_tokens=500,
                total_tokens=2500,
                prompt_tokens_details=SimpleNamespace(cached_tokens=0),
            ),
        )


class FakeOpenAI:
    """``client.chat.completions.create(model=..., messages=...)`` without a provider."""

    def __init__(self, fail_first: int = 0) -> None:
        self.fail_first = fail_first
        self.requests = 0
        self._ids = itertools.count(1)
        self.chat = SimpleNamespace(completions=_Completions(self))
