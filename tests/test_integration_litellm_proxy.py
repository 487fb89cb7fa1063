"""A real LiteLLM proxy (``litellm --config``, a subprocess on loopback) under ProxyFuse, in front of
the stand-in provider: requests are counted where they arrive, books read with ``status --json``.

The proxy runs the example's config, callback and demo keys (a copy of examples/litellm_proxy/),
plus a team policy per test written into its ``teams/`` folder, so tests do not share caps,
breakers or halts. Keys are ``sk-demo.<team>.<alias>`` (examples/litellm_proxy/demo_auth.py).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("litellm")
pytest.importorskip("fastapi")  # the proxy's server dependencies (dev extra)
pytest.importorskip("apscheduler")

import httpx  # noqa: E402
import openai  # noqa: E402

from agentfuse.testing.standin import StandIn  # noqa: E402
from framework_helpers import status_runs  # noqa: E402
from instrument_helpers import GPT4O_CALL_MICROS  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "litellm_proxy"
CALL_USD = GPT4O_CALL_MICROS / 1e6
"""One request at the stand-in's usage (100 in, 20 out) and gpt-4o's price: $0.00045."""
STARTUP_S = 240


def _team_policy(team: str, budget: str = "run_usd: 10", **sections: str) -> str:
    policy = {
        "version": "1", "agent": team, "budget": f"{{{budget}, estimate_usd: {CALL_USD}}}",
        "breaker": "{failure_threshold: 5, cooldown_s: 300}", "fail_fast": "{max_attempts: 100}",
        "store": "sqlite:///../.agentfuse/state.db", "events": "{path: ../.agentfuse/events.jsonl}", **sections,
    }
    return "".join(f"{key}: {value}\n" for key, value in policy.items())


TEAMS = {
    **{f"t-n{n}": _team_policy(f"t-n{n}", f"run_usd: {n * CALL_USD:.5f}") for n in (1, 3, 5)},
    "t-sdk": _team_policy("t-sdk", f"run_usd: {CALL_USD:.5f}"),
    "t-burst": _team_policy("t-burst", f"run_usd: {5 * CALL_USD:.5f}"),
    "t-steps": _team_policy("t-steps", "run_usd: 10, max_steps: 2"),
    "t-breaker": _team_policy("t-breaker", breaker="{failure_threshold: 2, cooldown_s: 300}"),
    "t-stop": _team_policy("t-stop", kill_switch="{stop_file: STOP-t-stop}"),
    "t-halt": _team_policy("t-halt"),
    "t-stream": _team_policy("t-stream"),
    "t-unsent": _team_policy("t-unsent", breaker="{failure_threshold: 1, cooldown_s: 300}"),
    "t-rate": _team_policy("t-rate", rate_limits="[{action: gpt-4o, max: 2, window_s: 600}]"),
    "t-timeout": _team_policy("t-timeout", "run_usd: 10").replace(f"estimate_usd: {CALL_USD}", "estimate_usd: 0.001"),
}


class Proxy:
    """The running proxy: where it listens, its folder, and the books it keeps."""

    def __init__(self, url: str, folder: Path, standin: StandIn) -> None:
        self.url = url
        self.folder = folder
        self.standin = standin
        self.store = f"sqlite:///{folder / '.agentfuse' / 'state.db'}"

    def ask(self, team: str, alias: str = "bot", **body: Any) -> httpx.Response:
        """One chat request with the key ``sk-demo.<team>.<alias>``; no retries."""
        payload = {"model": "gpt-4o", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}], **body}
        return httpx.post(
            f"{self.url}/v1/chat/completions", json=payload, timeout=60,
            headers={"Authorization": f"Bearer sk-demo.{team}.{alias}"},
        )

    def runs(self) -> dict[str, dict[str, Any]]:
        """The active runs ``agentfuse status --json`` shows, by run id."""
        return status_runs(self.store)

    def events(self, team: str, event: str) -> list[dict[str, Any]]:
        """The JSONL events of the team's agent named ``event``."""
        lines = []
        for path in sorted((self.folder / ".agentfuse").glob("events*.jsonl")):
            lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return [line for line in lines if line.get("agent") == team and line.get("event") == event]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_until_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the LiteLLM proxy exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/health/liveliness", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    pytest.fail(f"the LiteLLM proxy did not start in {STARTUP_S}s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def standin() -> Iterator[StandIn]:
    with StandIn() as provider:
        yield provider


@pytest.fixture(scope="module")
def proxy(standin: StandIn, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    folder = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("proxy") / "litellm_proxy")
    for team, text in TEAMS.items():
        (folder / "teams" / f"{team}.yaml").write_text(text)
    port = _free_port()
    env = {
        **os.environ,
        "STANDIN_URL": standin.openai_url,
        "LITELLM_MASTER_KEY": f"sk-{secrets.token_hex(24)}",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no price list fetched from the network
        "LITELLM_TELEMETRY": "False",
        "LITELLM_EVENT_LOOP": "asyncio",  # uvloop is optional
    }
    env.pop("AGENTFUSE_STORE", None)
    env.pop("AGENTFUSE_POLICY", None)
    log = folder / "proxy.log"
    command = [
        sys.executable, "-c", "from litellm.proxy.proxy_cli import run_server; run_server()",
        "--config", str(folder / "config.yaml"), "--host", "127.0.0.1", "--port", str(port),
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=folder, env=env, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, url, log)
        yield Proxy(url, folder, standin)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture()
def served(proxy: Proxy) -> Iterator[StandIn]:
    """The stand-in, counting from zero for this test."""
    proxy.standin.reset()
    yield proxy.standin
    proxy.standin.reset()


def _refusal(response: httpx.Response) -> dict[str, Any]:
    error = response.json()["error"]
    assert error["type"] == "agentfuse_refusal"
    return dict(error)


@pytest.mark.parametrize("calls", [1, 3, 5])
def test_a_run_budget_worth_n_requests_lets_exactly_n_reach_the_provider(
    proxy: Proxy, served: StandIn, calls: int
) -> None:
    team = f"t-n{calls}"
    statuses = [proxy.ask(team).status_code for _ in range(calls + 2)]
    assert statuses == [200] * calls + [429, 429]
    assert served.requests == calls
    run = proxy.runs()[f"team-{team}"]
    assert run["spent_usd"] == pytest.approx(calls * CALL_USD, abs=1e-9)  # what the stand-in served
    assert (run["reserved_usd"], run["steps"]) == (0, calls)


def test_the_refusal_is_a_clear_error_the_openai_sdk_does_not_retry(proxy: Proxy, served: StandIn) -> None:
    client = openai.OpenAI(base_url=proxy.url, api_key="sk-demo.t-sdk.bot")  # the SDK's default retries
    client.chat.completions.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 429
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "agentfuse refused the request (run_budget)" in caught.value.message
    assert len(proxy.events("t-sdk", "refused")) == 1  # one refusal: not retried
    assert served.requests == 1


def test_concurrent_requests_never_overshoot_the_budget(proxy: Proxy, served: StandIn) -> None:
    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda _: proxy.ask("t-burst").status_code, range(24)))
    assert statuses.count(200) == 5  # a budget worth five requests, reserved before each
    assert set(statuses) == {200, 429}
    assert served.requests == 5
    run = proxy.runs()["team-t-burst"]
    assert run["spent_usd"] == pytest.approx(5 * CALL_USD, abs=1e-9)
    assert run["reserved_usd"] == 0


def test_a_stream_settles_from_its_usage_and_the_client_gets_no_chunk_it_did_not_ask_for(
    proxy: Proxy, served: StandIn
) -> None:
    client = openai.OpenAI(base_url=proxy.url, api_key="sk-demo.t-stream.bot", max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices) == served.text
    assert all(chunk.usage is None for chunk in chunks)
    assert served.requests == 1 and served.replies[0].body["stream_options"] == {"include_usage": True}
    asked = client.chat.completions.create(
        model="gpt-4o", max_tokens=20, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True},
    )
    usage = [chunk.usage for chunk in asked if chunk.usage is not None]
    assert [(item.prompt_tokens, item.completion_tokens) for item in usage] == [(100, 20)]
    run = proxy.runs()["team-t-stream"]
    assert run["spent_usd"] == pytest.approx(2 * CALL_USD, abs=1e-9)
    assert run["reserved_usd"] == 0


def test_a_key_named_in_children_is_a_child_run_of_its_team(proxy: Proxy, served: StandIn) -> None:
    # the example's policy.yaml: three requests per team, one for the key ci-bot (children:)
    assert proxy.ask("t-kids", "ci-bot").status_code == 200
    refused = proxy.ask("t-kids", "ci-bot")
    assert refused.status_code == 429 and "team-t-kids/ci-bot" in _refusal(refused)["message"]
    assert [proxy.ask("t-kids", "alice").status_code for _ in range(3)] == [200, 200, 429]
    assert served.requests == 3
    runs = proxy.runs()
    child = runs["team-t-kids/ci-bot"]
    assert child["parent_id"] == "team-t-kids"
    assert child["spent_usd"] == pytest.approx(CALL_USD, abs=1e-9)
    assert runs["team-t-kids"]["spent_usd"] == pytest.approx(3 * CALL_USD, abs=1e-9)  # its child's included


def test_a_key_without_a_team_is_a_run_of_its_own(proxy: Proxy, served: StandIn) -> None:
    assert [proxy.ask("", "solo").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert served.requests == 3
    assert proxy.runs()["key-solo"]["spent_usd"] == pytest.approx(3 * CALL_USD, abs=1e-9)


def test_a_step_limit_stops_the_team(proxy: Proxy, served: StandIn) -> None:
    responses = [proxy.ask("t-steps") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    assert "(max_steps)" in _refusal(responses[2])["message"]
    assert served.requests == 2


def test_a_rate_limit_names_the_model_and_says_when_to_come_back(proxy: Proxy, served: StandIn) -> None:
    responses = [proxy.ask("t-rate") for _ in range(3)]
    assert [response.status_code for response in responses] == [200, 200, 429]
    assert "(rate_limited)" in _refusal(responses[2])["message"]
    assert 0 < int(responses[2].headers["retry-after"]) <= 600
    assert "x-should-retry" not in responses[2].headers
    assert served.requests == 2


def test_an_open_breaker_refuses_before_the_provider(proxy: Proxy, served: StandIn) -> None:
    served.fail(500, times=None)
    responses = [proxy.ask("t-breaker") for _ in range(4)]
    assert [response.status_code for response in responses[:2]] == [500, 500]  # the provider's errors
    assert [response.status_code for response in responses[2:]] == [503, 503]
    assert "(circuit_open)" in _refusal(responses[2])["message"]
    assert int(responses[2].headers["retry-after"]) > 0
    assert served.requests == 2
    run = proxy.runs()["team-t-breaker"]
    assert (run["spent_usd"], run["reserved_usd"]) == (0, 0)  # an error answer is not billed


def test_a_stop_file_stops_the_team(proxy: Proxy, served: StandIn) -> None:
    assert proxy.ask("t-stop").status_code == 200
    (proxy.folder / "teams" / "STOP-t-stop").touch()
    refused = proxy.ask("t-stop")
    assert refused.status_code == 503 and "(kill_switch)" in _refusal(refused)["message"]
    assert served.requests == 1


def test_an_operator_halt_stops_the_team(proxy: Proxy, served: StandIn) -> None:
    assert proxy.ask("t-halt").status_code == 200
    subprocess.run(
        [sys.executable, "-m", "agentfuse", "halt", "--agent", "t-halt", "--store", proxy.store, "--reason", "test"],
        check=True, capture_output=True,
    )
    refused = proxy.ask("t-halt")
    assert refused.status_code == 503 and refused.headers["x-should-retry"] == "false"
    assert served.requests == 1


def test_a_request_the_proxy_refuses_after_the_gate_is_neither_billed_nor_a_breaker_failure(
    proxy: Proxy, served: StandIn
) -> None:
    for _ in range(2):  # the breaker opens after one failure: a counted failure would refuse the second
        assert proxy.ask("t-unsent", model="no-such-model").status_code == 400  # the router knows no such model
    assert proxy.ask("t-unsent").status_code == 200
    assert served.requests == 1
    run = proxy.runs()["team-t-unsent"]
    assert run["spent_usd"] == pytest.approx(CALL_USD, abs=1e-9)
    assert run["reserved_usd"] == 0
    # the gate let all three through; the two the router refused were settled as never sent
    assert [line["outcome"] for line in proxy.events("t-unsent", "settled")] == ["neutral", "neutral", "success"]
    assert [line["cost_micros"] for line in proxy.events("t-unsent", "settled")] == [0, 0, GPT4O_CALL_MICROS]


def test_a_request_that_times_out_keeps_its_reservation(proxy: Proxy, served: StandIn) -> None:
    served.delay_s = 3.0  # the provider may still do the work after the proxy gave up on it
    try:
        response = proxy.ask("t-timeout", timeout=1)
    finally:
        served.delay_s = 0.0
    assert response.status_code == 408
    assert served.requests == 1
    run = proxy.runs()["team-t-timeout"]
    assert (run["spent_usd"], run["reserved_usd"]) == (0.001, 0)  # the estimate, never less
    failures = proxy.events("t-timeout", "failure")  # a failure of the call: the breaker counts it
    assert [(line["reason"].rpartition(".")[2], line["cost_micros"]) for line in failures] == [("Timeout", 1000)]


def test_the_example_client_runs_to_the_refusal(proxy: Proxy, served: StandIn) -> None:
    done = subprocess.run(
        [sys.executable, str(proxy.folder / "client.py"), "--proxy", proxy.url, "--key", "sk-demo.research.alice",
         "--standin", served.url],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "request 3: refused by the proxy with 429" in done.stdout
    assert "requests that reached the stand-in provider: 2\n" in done.stdout


def test_the_example_lints_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", str(EXAMPLE)], capture_output=True, text=True, timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
