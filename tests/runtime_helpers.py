"""Test helpers for the runtime: policies built in code, a fake LLM client, a worker process.

The fake client is the only fake: it returns real-shaped chat completion dicts and counts its
requests (in memory, or as lines appended to a file so several processes can be counted).
Run as a script (``python tests/runtime_helpers.py SPEC_JSON``) it is a worker process that
spends against a real SQLite store, for the kill -9, race, breaker and halt tests.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from agentfuse.runtime.policy import (  # noqa: E402
    Budget,
    Breaker,
    DegradeStep,
    Events,
    FailFast,
    KillSwitch,
    Policy,
    RateLimit,
)


def make_policy(
    *,
    agent: str = "tester",
    budget: Mapping[str, Any] | None = None,
    breaker: Mapping[str, Any] | None = None,
    fail_fast: Mapping[str, Any] | None = None,
    rate_limits: Sequence[Mapping[str, Any]] = (),
    stop_file: str | None = None,
    degrade: Sequence[Mapping[str, Any]] = (),
    source: str | None = None,
    **extra: Any,
) -> Policy:
    """A Policy built directly (no YAML), with events off unless asked for."""
    money = {"run_usd", "daily_usd", "hourly_usd", "estimate_usd"}
    budget_args = {
        key: Decimal(str(value)) if key in money and value is not None else value
        for key, value in (budget or {}).items()
    }
    fail_args = dict(fail_fast or {})
    if "halt_on" in fail_args:
        fail_args["halt_on"] = tuple(fail_args["halt_on"])
    breaker_args = {
        key: tuple(value) if key in ("count", "ignore") else value for key, value in (breaker or {}).items()
    }
    extra.setdefault("events", Events(path=None))
    return Policy(
        agent=agent,
        budget=Budget(**budget_args),
        breaker=Breaker(**breaker_args),
        fail_fast=FailFast(**fail_args),
        rate_limits=tuple(RateLimit(**limit) for limit in rate_limits),
        kill_switch=KillSwitch(stop_file=stop_file),
        degrade=tuple(DegradeStep(**rung) for rung in degrade),
        source=Path(source) if source else None,
        **extra,
    )


def store_url(path: Path) -> str:
    """A SQLAlchemy-style URL for an absolute path: ``sqlite:////abs/path.db``."""
    return f"sqlite:///{path.resolve()}"


class FakeCompletions:
    """``client.chat.completions.create(...)`` returning a real-shaped chat completion dict."""

    def __init__(self, client: FakeClient) -> None:
        self._client = client

    def create(self, *, model: str = "gpt-4o-mini", messages: Any = (), **kwargs: Any) -> dict[str, Any]:
        return self._client.request(model=model, messages=messages, **kwargs)


@dataclasses.dataclass
class _Chat:
    completions: FakeCompletions


class FakeClient:
    """A fake OpenAI-style client that counts requests and can fail on demand.

    ``failures``: exceptions to raise, one per request, before answering normally.
    ``counter_file``: if given, each request appends a line there (counts across processes).
    """

    def __init__(
        self,
        *,
        failures: Sequence[BaseException] = (),
        counter_file: Path | None = None,
        prompt_tokens: int = 1000,
        completion_tokens: int = 500,
        on_request: Callable[[], Any] | None = None,
    ) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures = list(failures)
        self.counter_file = counter_file
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.on_request = on_request
        self.chat = _Chat(FakeCompletions(self))

    def request(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(kwargs)
        if self.counter_file is not None:
            with open(self.counter_file, "a", encoding="utf-8") as out:
                out.write(f"{os.getpid()}\n")
        if self.on_request is not None:
            self.on_request()
        if self.failures:
            raise self.failures.pop(0)
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "model": kwargs.get("model", "gpt-4o-mini"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": self.prompt_tokens,
                "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens,
            },
        }

    @property
    def calls(self) -> int:
        return len(self.requests)


def count_lines(path: Path) -> int:
    """Requests counted in a counter file (0 if none yet)."""
    try:
        return len(path.read_text(encoding="utf-8").splitlines())
    except FileNotFoundError:
        return 0


class TransientError(Exception):
    """A provider error that the breaker counts."""


@dataclasses.dataclass
class Webhook:
    """A real HTTP server on 127.0.0.1 that records every POST it receives."""

    url: str
    received: list[dict[str, Any]]
    arrived: threading.Event


@contextlib.contextmanager
def recording_webhook() -> Iterator[Webhook]:
    received: list[dict[str, Any]] = []
    arrived = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            received.append({"path": self.path, "headers": dict(self.headers), "body": body.decode()})
            self.send_response(200)
            self.end_headers()
            arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(f"http://127.0.0.1:{server.server_address[1]}/agentfuse", received, arrived)
    finally:
        server.shutdown()
        server.server_close()


def start_worker(spec: Mapping[str, Any], **popen: Any) -> subprocess.Popen[str]:
    """Start ``python tests/runtime_helpers.py SPEC`` (see :func:`worker_main`)."""
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), json.dumps(spec)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(spec.get("cwd", REPO)),
        **popen,
    )


def run_worker(spec: Mapping[str, Any], timeout: float = 60) -> dict[str, Any]:
    """Run a worker to the end and return its JSON report."""
    proc = start_worker(spec)
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"worker failed ({proc.returncode}):\n{err}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def _wait_for(path: str | None) -> None:
    while path and not os.path.exists(path):
        time.sleep(0.005)


def worker_main(spec: Mapping[str, Any]) -> dict[str, Any]:
    """Spend against the store as the spec says; report what happened as a dict.

    spec keys: store, policy (make_policy kwargs) or policy_file, run_id, calls_file, mode (``spend`` until
    refused, ``fail`` raising TransientError, ``once``), max_calls, estimate_usd, cost_usd,
    now (a fixed clock), go_file (wait before the first gate), release_file (hold inside the
    call until it exists), latency_s (the fake provider's response time).
    """
    from agentfuse import Halted, enforce

    policy: Policy | str = spec["policy_file"] if "policy_file" in spec else make_policy(**spec.get("policy", {}))
    fixed_now = spec.get("now")
    clock = (lambda: float(fixed_now)) if fixed_now is not None else None
    guard = enforce(policy, run_id=spec.get("run_id"), store=spec.get("store"), clock=clock)
    print(json.dumps({"run_id": guard.run_id, "started": True}), flush=True)
    calls_file = Path(spec["calls_file"]) if spec.get("calls_file") else None
    latency = float(spec.get("latency_s", 0))

    def provider_side() -> None:
        _wait_for(spec.get("release_file"))
        time.sleep(latency)  # the fake provider's response time

    client = FakeClient(
        counter_file=calls_file,
        on_request=provider_side,
        failures=[TransientError("503")] * 10_000 if spec.get("mode") == "fail" else (),
    )
    _wait_for(spec.get("go_file"))
    calls = 0
    refusal: dict[str, Any] | None = None
    error = None
    limit = spec.get("max_calls", 1 if spec.get("mode") == "once" else 1_000_000)
    while calls < limit:
        try:
            with guard.step(estimate_usd=spec.get("estimate_usd", "0.01"), action=spec.get("action")) as step:
                calls += 1
                client.chat.completions.create(messages=[{"role": "user", "content": "hi"}])
                step.record(cost_usd=spec.get("cost_usd", "0.01"))
        except Halted as exc:
            refusal = {"type": type(exc).__name__, "reason": exc.reason}
            break
        except TransientError as exc:
            error = str(exc)
    guard.close()
    return {"run_id": guard.run_id, "calls": calls, "refusal": refusal, "error": error}


if __name__ == "__main__":
    print(json.dumps(worker_main(json.loads(sys.argv[1]))), flush=True)
