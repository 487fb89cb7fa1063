"""Anthropic: clients on self, assigned after use, count_tokens, beta, streams."""

import anthropic
from anthropic import AsyncAnthropic


class Writer:
    async def draft(self) -> None:
        await self.client.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101
        await self.client.beta.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101
        await self.client.messages.count_tokens(model="claude", messages=[])  # clean: AF101

    def __init__(self) -> None:
        self.client = AsyncAnthropic()


class Reviewer(Writer):
    async def review(self) -> None:
        async with self.client.messages.stream(model="claude", max_tokens=1, messages=[]) as s:  # expect: AF101
            await s.get_final_message()


class Mailbox:
    """Has its own messages.create(): not an LLM request."""

    def __init__(self, store: object) -> None:
        self.messages = store

    def post(self) -> None:
        self.messages.create(text="messages.create")  # clean: AF101


class Sync:
    client = anthropic.Anthropic()

    def ask(self) -> None:
        self.client.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101


def vertex() -> None:
    c = anthropic.AnthropicVertex(region="us-east5", project_id="p")
    c.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101
    c.messages.batches.list()  # clean: AF101
