"""A publishing agent as it is often first written: every incident in one file.

`agentfuse lint examples/publisher/naive_agent.py` finds each of them; guarded_agent.py is the
same agent after the fixes.
"""

from __future__ import annotations

import subprocess

from openai import OpenAI
from playwright.sync_api import sync_playwright
from tenacity import retry, wait_exponential

client = OpenAI()


@retry(wait=wait_exponential(multiplier=1, max=60))  # retries a transient error forever
def draft_post(topic: str) -> str:
    response = client.chat.completions.create(  # no budget, no breaker, no kill switch
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": f"Write a short post about {topic}."}],
    )
    return response.choices[0].message.content or ""


def publish(text: str, user: str, password: str) -> None:
    with sync_playwright() as p:
        page = p.chromium.launch().new_page()
        page.goto("https://example.invalid/login")
        # evaluate() takes ONE argument after the expression: this throws at run time
        page.evaluate("(u, pw) => login(u, pw)", user, password)
        page.fill("#post", text)


def clean_workspace(path: str) -> None:
    subprocess.run(f"rm -rf {path}", shell=True, check=True)


def main() -> None:
    while True:  # "retry until it works": every failure goes round again, forever
        try:
            publish(draft_post("circuit breakers"), "bot", "secret")
            break
        except Exception:
            continue
    clean_workspace("/tmp/agent-work")


if __name__ == "__main__":
    main()
