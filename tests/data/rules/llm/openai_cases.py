"""OpenAI and Azure OpenAI: sync and async clients, aliases, chains, module-level calls."""

import openai
from openai import AsyncAzureOpenAI, AsyncOpenAI, AzureOpenAI
from openai import OpenAI as O

client = O()
aclient = AsyncOpenAI()
azure = AzureOpenAI(api_version="2024-06-01")

client.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
client.chat.completions.parse(model="gpt-4o", messages=[])  # expect: AF101
client.beta.chat.completions.parse(model="gpt-4o", messages=[])  # expect: AF101
client.responses.create(model="gpt-4o", input="hi")  # expect: AF101
client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")  # expect: AF101
client.embeddings.create(model="text-embedding-3-small", input="hi")  # expect: AF101
client.images.generate(model="dall-e-3", prompt="a cat")  # expect: AF101
azure.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
openai.OpenAI().chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
openai.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101
openai.ChatCompletion.create(model="gpt-4", messages=[])  # expect: AF101
client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[])  # expect: AF101
client.with_options(timeout=5).chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101

chat = client.chat.completions
chat.create(model="gpt-4o", messages=[])  # expect: AF101

client.models.list()  # clean: AF101
client.files.create(file=b"", purpose="batch")  # clean: AF101


async def stream_answer() -> None:
    async with aclient.responses.stream(model="gpt-4o", input="hi") as stream:  # expect: AF101
        async for _ in stream:
            pass
    await aclient.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101


async def azure_async() -> None:
    async with AsyncAzureOpenAI(api_version="2024-06-01") as az:
        await az.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101


def annotated(llm: O | None, count: int) -> None:
    llm.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101


def unannotated(api) -> None:
    api.chat.completions.create(model="gpt-4o", messages=[])  # expect: AF101


def nested() -> None:
    local = O(api_key="k")

    def inner() -> None:
        local.chat.completions.stream(model="gpt-4o", messages=[])  # expect: AF101

    inner()


async def handed_to_other_callables() -> None:
    import asyncio
    import functools

    await asyncio.to_thread(client.chat.completions.create, model="gpt-4o", messages=[])  # expect: AF101
    functools.partial(client.embeddings.create, model="text-embedding-3-small")  # expect: AF101
    sorted([], key=client.models.retrieve)  # clean: AF101
