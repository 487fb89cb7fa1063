"""Guarded requests: decorators (with arguments), with-blocks, guard.call, callers, children."""

import agentfuse
import litellm
from agentfuse import Guard, enforce
from anthropic import Anthropic, AsyncAnthropic
from openai import AsyncOpenAI, OpenAI

guard = enforce("policy.yaml")
research = guard.child(run_usd=1.0)
client = OpenAI()


@guard
def plain() -> None:
    client.chat.completions.create(model="gpt-4o", messages=[])  # clean: AF101


@guard.step(action="summarise", estimate_usd=0.02)
def with_arguments() -> None:
    client.responses.create(model="gpt-4o", input="hi")  # clean: AF101


@agentfuse.enforce("policy.yaml")
def inline_enforce() -> None:
    litellm.completion(model="gpt-4o", messages=[])  # clean: AF101


@research.step()
async def child_decorator() -> None:
    await AsyncOpenAI().chat.completions.create(model="gpt-4o", messages=[])  # clean: AF101


def with_block() -> None:
    with guard.step(action="plan") as step:
        response = client.chat.completions.create(model="gpt-4o", messages=[])  # clean: AF101
        step.record(response)


async def async_with_block() -> None:
    async with research.step():
        await AsyncOpenAI().responses.create(model="gpt-4o", input="hi")  # clean: AF101


def helper() -> None:
    client.embeddings.create(model="text-embedding-3-small", input="x")  # clean: AF101


def caller() -> None:
    with guard.step():
        helper()


async def async_helper() -> None:
    await AsyncOpenAI().chat.completions.create(model="gpt-4o", messages=[])  # clean: AF101


@guard
async def async_caller() -> None:
    await async_helper()


def handed() -> None:
    litellm.completion(model="gpt-4o", messages=[])  # clean: AF101


guard.call(handed)
guard.call(lambda: client.chat.completions.create(model="gpt-4o", messages=[]))  # clean: AF101


def sometimes_guarded() -> None:
    litellm.completion(model="gpt-4o", messages=[])  # expect: AF101


def guarded_site() -> None:
    with guard.step():
        sometimes_guarded()


sometimes_guarded()


def never_called() -> None:
    litellm.completion(model="gpt-4o", messages=[])  # expect: AF101


def outside_the_block() -> None:
    with guard.step():
        pass
    client.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101


def other_context() -> None:
    with open("log.txt") as log:
        log.write(str(client.chat.completions.create(model="gpt-4o", messages=[])))  # expect: AF101


def recursive(depth: int) -> None:
    litellm.completion(model="gpt-4o", messages=[])  # expect: AF101
    recursive(depth - 1)


class Agent:
    def __init__(self, policy: str) -> None:
        self.guard = enforce(policy)
        self.client = Anthropic()

    def think(self) -> None:
        with self.guard.step(action="think"):
            self.client.messages.create(model="claude", max_tokens=1, messages=[])  # clean: AF101

    def act(self) -> None:
        self.client.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101

    def _private(self) -> None:
        self.client.messages.create(model="claude", max_tokens=1, messages=[])  # clean: AF101

    def run(self) -> None:
        with self.guard.step():
            self._private()


async def passed_guard(g: Guard, llm: AsyncAnthropic) -> None:
    async with g.step():
        await llm.messages.create(model="claude", max_tokens=1, messages=[])  # clean: AF101
    await llm.messages.create(model="claude", max_tokens=1, messages=[])  # expect: AF101


guard.call(client.chat.completions.create, model="gpt-4o", messages=[])  # clean: AF101
research.call(litellm.completion, model="gpt-4o", messages=[])  # clean: AF101
