"""In-process providers for the SDKs the stand-in does not speak (google-genai, mistralai, cohere,
Bedrock): each answers in its provider's wire format with the same usage, counts the requests that
reach it, and can be told to fail first. SDKs reach them through their own supported test hooks
(an ``httpx`` transport handed to the client) or over loopback HTTP."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

from agentfuse.runtime.policy import ModelPrice
from instrument_helpers import Guards

MODEL = "test-model"
CHEAP = "test-model-mini"
PRICING = ((MODEL, ModelPrice(Decimal("1"), Decimal("2"))), (CHEAP, ModelPrice(Decimal("0.1"), Decimal("0.2"))))
CALL_MICROS = 100 * 1 + 20 * 2
"""Every answer below reports 100 input and 20 output tokens: 140 micro-dollars at MODEL's price."""
TEXT = "Hello from the provider."


def priced(guards: Guards, budget: dict[str, Any] | None = None, **policy: Any) -> Any:
    return guards(budget, pricing=PRICING, **policy)


class Provider:
    """A provider in the test process: answers each request with ``answer(path, body)``, counts them.

    Reached through an SDK's ``httpx`` transport hook (:meth:`transport`) or over loopback HTTP
    (:meth:`serve`, for SDKs without such a hook). :meth:`fail` makes it answer errors first.
    """

    def __init__(self, answer: Callable[[str, dict[str, Any]], Any]) -> None:
        self.answer = answer
        self.bodies: list[dict[str, Any]] = []
        self.fail_status: int | None = None
        self.failures_left: int | None = None
        """Requests still to fail (None: every one while ``fail_status`` is set)."""
        self.error_headers: dict[str, str] = {"retry-after-ms": "1"}
        self.drops = 0
        """Connections still to close without an answer (over loopback HTTP only)."""
        self._lock = threading.Lock()

    @property
    def requests(self) -> int:
        return len(self.bodies)

    def fail(self, status: int, times: int | None = None, headers: dict[str, str] | None = None) -> None:
        """Answer ``status`` (with ``headers``) to the next ``times`` requests (None: to every one)."""
        self.fail_status, self.failures_left = status, times
        self.error_headers.update(headers or {})

    def reply(self, path: str, raw: bytes) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, body) of the answer to one request."""
        body = json.loads(raw or b"{}")
        with self._lock:
            self.bodies.append(body)
            failing = self.fail_status is not None and self.failures_left != 0
            if failing and self.failures_left is not None:
                self.failures_left -= 1
        if failing:
            assert self.fail_status is not None
            error = json.dumps({"message": "down", "error": "down"}).encode()
            return self.fail_status, {"content-type": "application/json", **self.error_headers}, error
        answer = self.answer(path, body)
        if isinstance(answer, list):  # a stream: lines of JSON or SSE text
            return 200, {"content-type": _kind(answer)}, b"".join(answer)
        if isinstance(answer, tuple):  # (headers, raw body)
            return 200, answer[0], answer[1]
        return 200, {"content-type": "application/json"}, json.dumps(answer).encode()

    def handle(self, module: Any) -> Callable[[Any], Any]:
        def handler(request: Any) -> Any:
            status, headers, content = self.reply(request.url.path, request.content)
            return module.Response(status, content=content, headers=headers)

        return handler

    def transport(self, module: Any) -> Any:
        return module.MockTransport(self.handle(module))

    @contextlib.contextmanager
    def serve(self) -> Iterator[str]:
        """Serve over loopback HTTP for the block; yields the base URL."""
        provider = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
                return

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                with provider._lock:
                    drop = provider.drops > 0
                    provider.drops -= drop
                if drop:
                    provider.bodies.append(json.loads(raw or b"{}"))
                    self.close_connection = True  # no answer: the client sees the connection dropped
                    return
                status, headers, content = provider.reply(self.path.split("?", 1)[0], raw)
                self.send_response(status)
                for name, value in {**headers, "content-length": str(len(content))}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(content)

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def _kind(lines: list[bytes]) -> str:
    return "text/event-stream" if lines and lines[0].startswith((b"data:", b"event:")) else "application/x-ndjson"


# -- answers in each wire format -------------------------------------------------------------------


def mistral_answer(path: str, body: dict[str, Any]) -> Any:
    usage = {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}
    if path.endswith("/embeddings"):
        return {"id": "e1", "object": "list", "model": body["model"], "usage": {**usage, "completion_tokens": 0},
                "data": [{"object": "embedding", "embedding": [0.1], "index": 0}]}
    if not body.get("stream"):
        return {"id": "c1", "object": "chat.completion", "model": body["model"], "created": 1, "usage": usage,
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": TEXT}}]}
    base = {"id": "c1", "object": "chat.completion.chunk", "model": body["model"], "created": 1}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"content": TEXT}, "finish_reason": None}]},
              {**base, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "stop"}], "usage": usage}]
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]


def cohere_answer(path: str, body: dict[str, Any]) -> Any:
    units = {"input_tokens": 100, "output_tokens": 20}
    if path.endswith("/embed"):
        return {"id": "e1", "response_type": "embeddings_by_type", "embeddings": {"float": [[0.1]]},
                "texts": body.get("texts", []), "meta": {"billed_units": {"input_tokens": 100}}}
    if path.startswith("/v2/"):
        if not body.get("stream"):
            return {"id": "c1", "finish_reason": "COMPLETE", "usage": {"billed_units": units, "tokens": units},
                    "message": {"role": "assistant", "content": [{"type": "text", "text": TEXT}]}}
        events = [{"type": "message-start", "id": "c1", "delta": {"message": {"role": "assistant"}}},
                  {"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": TEXT}}}},
                  {"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {"billed_units": units}}}]
        return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    if not body.get("stream"):
        return {"text": TEXT, "generation_id": "g1", "finish_reason": "COMPLETE", "meta": {"billed_units": units}}
    events = [{"event_type": "stream-start", "generation_id": "g1", "is_finished": False},
              {"event_type": "text-generation", "text": TEXT, "is_finished": False},
              {"event_type": "stream-end", "finish_reason": "COMPLETE", "is_finished": True,
               "response": {"text": TEXT, "generation_id": "g1", "meta": {"billed_units": units}}}]
    return [json.dumps(e).encode() + b"\n" for e in events]


def genai_answer(path: str, body: dict[str, Any]) -> Any:
    usage = {"promptTokenCount": 100, "candidatesTokenCount": 20, "totalTokenCount": 120}
    if path.endswith(":embedContent") or path.endswith(":batchEmbedContents"):
        return {"embeddings": [{"values": [0.1]}]}
    candidate = {"content": {"role": "model", "parts": [{"text": TEXT}]}, "finishReason": "STOP"}
    if path.endswith(":generateContent"):
        return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": MODEL}
    first = {"candidates": [{"content": {"role": "model", "parts": [{"text": TEXT}]}}], "modelVersion": MODEL,
             "usageMetadata": {"promptTokenCount": 100}}
    last = {"candidates": [{**candidate, "content": {"role": "model", "parts": [{"text": ""}]}}],
            "usageMetadata": usage, "modelVersion": MODEL}
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in (first, last)]


def bedrock_answer(path: str, body: dict[str, Any]) -> Any:
    """Bedrock Runtime over HTTP: ``/model/{id}/converse`` and ``/model/{id}/invoke``."""
    if path.endswith("/converse"):
        return {"output": {"message": {"role": "assistant", "content": [{"text": TEXT}]}}, "stopReason": "end_turn",
                "usage": {"inputTokens": 100, "outputTokens": 20, "totalTokens": 120}, "metrics": {"latencyMs": 1}}
    headers = {"content-type": "application/json", "x-amzn-bedrock-input-token-count": "100",
               "x-amzn-bedrock-output-token-count": "20"}
    return headers, json.dumps({"content": [{"type": "text", "text": TEXT}]}).encode()
