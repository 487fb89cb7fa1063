"""The publishing agent after the fixes: every model call behind the fuse, every retry bounded."""

from __future__ import annotations

from pathlib import Path

from openai import OpenAI
from playwright.sync_api import sync_playwright
from tenacity import retry, stop_after_attempt, wait_exponential

from agentfuse import enforce

guard = enforce(Path(__file__).with_name("policy.yaml"))
client = OpenAI()


@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=1, max=60))
def draft_post(topic: str) -> str:
    with guard.step(action="draft") as step:
        response = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": f"Write a short post about {topic}."}],
            timeout=step.remaining_s,
        )
        step.record(response)
    return response.choices[0].message.content or ""


def publish(text: str, user: str, password: str) -> None:
    with sync_playwright() as p:
        page = p.chromium.launch().new_page()
        page.goto("https://example.invalid/login")
        page.evaluate("([u, pw]) => login(u, pw)", [user, password])
        page.fill("#post", text)


def main() -> None:
    publish(draft_post("circuit breakers"), "bot", "secret")


if __name__ == "__main__":
    main()
