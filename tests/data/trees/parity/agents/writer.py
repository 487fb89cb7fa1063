"""A small agent with the usual hazards: the parity test's main file."""

import asyncio
import subprocess as sp

import backoff
from openai import OpenAI
from playwright.async_api import Page
from tenacity import retry, stop_after_attempt

client = OpenAI()


@retry
def draft(topic: str) -> str:
    response = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": topic}])
    return response.choices[0].message.content or ""


@retry(stop=stop_after_attempt(3))
def polite_draft(topic: str) -> str:
    return draft(topic)


@backoff.on_exception(backoff.expo, TimeoutError)
def fetch(url: str) -> str:
    return url


async def scrape(page: Page, a: int, b: int) -> object:
    first = await page.evaluate("(a, b) => a + b", a, b)
    second = await page.evaluate("([a, b]) => a + b", [a, b])
    third = await page.eval_on_selector("#x", "(el, a, b) => el.textContent + a + b", a, b)  # noqa: AF301
    return first, second, third


def clean(workdir: str) -> None:
    sp.run(["rm", "-rf", workdir])
    sp.run(f"git reset --hard && git clean -fdx {workdir}", shell=True)
    print("never run: rm -rf /")  # a string that is only printed


async def loop_forever() -> None:
    while True:
        try:
            draft("again")
        except Exception:
            continue
        await asyncio.sleep(1)
