"""A client of the example LiteLLM proxy: asks until agentfuse refuses, then says why.

Run it against the proxy of config.yaml (its docstring says how to start it)::

    python client.py --proxy http://127.0.0.1:4000 --key sk-demo.research.alice

The team ``research`` may spend two requests' worth (teams/research.yaml), so the third request
is refused before it leaves the proxy: a 429 whose message names the cap, which the OpenAI SDK
does not retry (``x-should-retry: false``).
"""

from __future__ import annotations

import argparse
import json
import urllib.request

import openai


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxy", default="http://127.0.0.1:4000", help="the LiteLLM proxy's URL")
    parser.add_argument("--key", default="sk-demo.research.alice", help="a demo key: sk-demo.<team>.<alias>")
    parser.add_argument("--standin", help="the stand-in provider's URL, to show the requests that reached it")
    parser.add_argument("--max-requests", type=int, default=10)
    args = parser.parse_args(argv)
    client = openai.OpenAI(base_url=args.proxy, api_key=args.key)
    for number in range(1, args.max_requests + 1):
        try:
            # gated inside the proxy (agentfuse_callback.py), by the policy of this key's team
            answer = client.chat.completions.create(  # noqa: AF101
                model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "Write one line."}]
            )
        except openai.APIStatusError as refusal:
            print(f"request {number}: refused by the proxy with {refusal.status_code}: {refusal.message}")
            break
        print(f"request {number}: {answer.choices[0].message.content}")
    if args.standin:
        with urllib.request.urlopen(f"{args.standin.rstrip('/')}/standin/stats", timeout=10) as stats:
            print(f"requests that reached the stand-in provider: {json.load(stats)['requests']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
