"""A stand-in model provider on loopback: real HTTP, real wire formats, no key, no cost.

It speaks what the provider SDKs send: OpenAI ``/v1/chat/completions``, ``/v1/completions``,
``/v1/responses`` and ``/v1/embeddings``, and Anthropic ``/v1/messages``, each as JSON or as a
server-sent-event stream. It counts the requests that reach it (the figure a fuse is meant to
keep small), and can be told to fail (``429``, ``500``, ``401``, ...) or to answer slowly. Point
a real SDK at it with ``base_url``; nothing in the SDK is replaced::

    with StandIn() as provider:
        client = openai.OpenAI(base_url=provider.openai_url, api_key="none")
        client.chat.completions.create(model="gpt-4o", messages=[...])
        provider.requests  # -> 1

Every answer reports the same usage (``input_tokens``/``output_tokens``, 100 and 20 by default),
so a test knows the exact price of each call. With ``tool_turns=N`` a chat request that offers
tools gets a tool call back until it carries N tool results, then a final answer (a scripted
agent loop). Run ``python -m agentfuse.testing.standin`` to serve it from a terminal;
``GET /standin/stats`` returns its counts as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["StandIn", "Reply"]

_ERRORS = {
    400: ("invalid_request_error", "Bad request."),
    401: ("authentication_error", "Incorrect API key provided."),
    403: ("permission_error", "Permission denied."),
    404: ("not_found_error", "Not found."),
    429: ("rate_limit_error", "Rate limit reached; slow down."),
    500: ("api_error", "The server had an error while processing your request."),
    503: ("overloaded_error", "The engine is currently overloaded."),
    529: ("overloaded_error", "Overloaded."),
}


@dataclasses.dataclass(frozen=True)
class Reply:
    """What one request was: its path, model, whether it streamed, and the status answered."""

    path: str
    model: str | None
    stream: bool
    status: int
    body: dict[str, Any]


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    standin: StandIn


class StandIn:
    """The server: start it (or use it as a context manager), point SDKs at its URLs."""

    def __init__(
        self,
        *,
        input_tokens: int = 100,
        output_tokens: int = 20,
        text: str = "Hello from the stand-in.",
        chunks: int = 4,
        tool_turns: int = 0,
        delay_s: float = 0.0,
        port: int = 0,
    ) -> None:
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.text = text
        self.chunks = max(1, chunks)
        self.tool_turns = tool_turns
        self.delay_s = delay_s
        self._port = port
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self._fail_always: int | None = None
        self._break_after: int | None = None
        self.replies: list[Reply] = []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -----------------------------------------------------------------------------

    def start(self) -> StandIn:
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.standin = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- where to point a client ----------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the stand-in is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (Anthropic's ``base_url``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def openai_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` (OpenAI's ``base_url``, LiteLLM's ``api_base``)."""
        return f"{self.url}/v1"

    # -- what reached it ------------------------------------------------------------------------

    @property
    def requests(self) -> int:
        """Model requests that reached the stand-in (failed ones included)."""
        with self._lock:
            return len(self.replies)

    @property
    def served(self) -> int:
        """Requests answered with a success."""
        with self._lock:
            return sum(1 for reply in self.replies if reply.status < 400)

    def reset(self) -> None:
        with self._lock:
            self.replies.clear()
            self._failures.clear()
            self._fail_always = None
            self._break_after = None

    # -- behaviour ------------------------------------------------------------------------------

    def fail(self, status: int, times: int | None = 1) -> None:
        """Answer the next ``times`` requests with ``status`` (``None``: every request from now)."""
        with self._lock:
            if times is None:
                self._fail_always = status
            else:
                self._failures.extend([status] * times)

    def heal(self) -> None:
        """Stop failing."""
        with self._lock:
            self._failures.clear()
            self._fail_always = None

    def break_streams_after(self, events: int | None) -> None:
        """Cut every stream's connection after this many events (``None``: streams complete)."""
        with self._lock:
            self._break_after = events

    def _admit(self, path: str, body: dict[str, Any]) -> tuple[int, int | None]:
        model = body.get("model") if isinstance(body.get("model"), str) else None
        with self._lock:
            status = self._failures.pop(0) if self._failures else (self._fail_always or 200)
            self.replies.append(Reply(path, model, bool(body.get("stream")), status, body))
            return status, self._break_after

    # -- the wire formats -----------------------------------------------------------------------

    def _pieces(self) -> list[str]:
        size = max(1, -(-len(self.text) // self.chunks))
        return [self.text[i : i + size] for i in range(0, len(self.text), size)] or [""]

    def _tool_call_due(self, body: dict[str, Any]) -> bool:
        if not self.tool_turns or not body.get("tools"):
            return False
        messages = body.get("messages") or body.get("input") or []
        results = 0
        for message in messages if isinstance(messages, list) else []:
            if not isinstance(message, dict):
                continue
            if message.get("role") == "tool" or message.get("type") == "function_call_output":
                results += 1
            content = message.get("content")
            if isinstance(content, list):
                results += sum(1 for part in content if isinstance(part, dict) and part.get("type") == "tool_result")
        return results < self.tool_turns

    def openai_chat(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        model = body.get("model", "gpt-4o")
        tool = self._tool_call_due(body)
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else self.text}
        if tool:
            name = body["tools"][0].get("function", {}).get("name", "tool")
            message["tool_calls"] = [
                {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": "{}"}}
            ]
        return {
            "id": f"chatcmpl-standin{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "tool_calls" if tool else "stop"}
            ],
            "usage": self._openai_usage(),
        }

    def _openai_usage(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.input_tokens,
            "completion_tokens": self.output_tokens,
            "total_tokens": self.input_tokens + self.output_tokens,
            "prompt_tokens_details": {"cached_tokens": 0},
        }

    def openai_chat_events(self, body: dict[str, Any], n: int) -> Iterator[str]:
        model = body.get("model", "gpt-4o")
        base = {"id": f"chatcmpl-standin{n}", "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        tool = self._tool_call_due(body)
        yield json.dumps({**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]})
        if tool:
            name = body["tools"][0].get("function", {}).get("name", "tool")
            call = {"index": 0, "id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": "{}"}}
            yield json.dumps({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]},
                                                   "finish_reason": None}]})
        else:
            for piece in self._pieces():
                yield json.dumps({**base, "choices": [{"index": 0, "delta": {"content": piece},
                                                       "finish_reason": None}]})
        yield json.dumps({**base, "choices": [{"index": 0, "delta": {},
                                               "finish_reason": "tool_calls" if tool else "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            yield json.dumps({**base, "choices": [], "usage": self._openai_usage()})
        yield "[DONE]"

    def openai_completion(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        return {
            "id": f"cmpl-standin{n}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": body.get("model", "gpt-3.5-turbo-instruct"),
            "choices": [{"index": 0, "text": self.text, "logprobs": None, "finish_reason": "stop"}],
            "usage": self._openai_usage(),
        }

    def openai_completion_events(self, body: dict[str, Any], n: int) -> Iterator[str]:
        base = {"id": f"cmpl-standin{n}", "object": "text_completion", "created": int(time.time()),
                "model": body.get("model", "gpt-3.5-turbo-instruct")}
        for piece in self._pieces():
            yield json.dumps({**base, "choices": [{"index": 0, "text": piece, "logprobs": None,
                                                   "finish_reason": None}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            yield json.dumps({**base, "choices": [], "usage": self._openai_usage()})
        yield "[DONE]"

    def openai_embeddings(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        inputs = body.get("input")
        count = len(inputs) if isinstance(inputs, list) and inputs and not isinstance(inputs[0], int) else 1
        return {
            "object": "list",
            "data": [{"object": "embedding", "index": i, "embedding": [0.0, 0.5, 1.0]} for i in range(count)],
            "model": body.get("model", "text-embedding-3-small"),
            "usage": {"prompt_tokens": self.input_tokens, "total_tokens": self.input_tokens},
        }

    def _response_object(self, body: dict[str, Any], n: int, status: str) -> dict[str, Any]:
        done = status == "completed"
        output = [
            {
                "type": "message",
                "id": f"msg_standin{n}",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": self.text, "annotations": []}],
            }
        ] if done else []
        return {
            "id": f"resp_standin{n}",
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "model": body.get("model", "gpt-4o"),
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": self.input_tokens,
                "input_tokens_details": {"cached_tokens": 0},
                "output_tokens": self.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": self.input_tokens + self.output_tokens,
            } if done else None,
        }

    def openai_response(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        return self._response_object(body, n, "completed")

    def openai_response_events(self, body: dict[str, Any], n: int) -> Iterator[tuple[str, str]]:
        item_id = f"msg_standin{n}"
        item = {"type": "message", "id": item_id, "status": "in_progress", "role": "assistant", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        events: list[dict[str, Any]] = [
            {"type": "response.created", "response": self._response_object(body, n, "in_progress")},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.content_part.added", **where, "part": part},
        ]
        events += [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
                   for piece in self._pieces()]
        done = self._response_object(body, n, "completed")
        events += [
            {"type": "response.output_text.done", **where, "text": self.text, "logprobs": []},
            {"type": "response.content_part.done", **where, "part": {**part, "text": self.text}},
            {"type": "response.output_item.done", "output_index": 0, "item": done["output"][0]},
            {"type": "response.completed", "response": done},
        ]
        for seq, event in enumerate(events):
            yield event["type"], json.dumps({**event, "sequence_number": seq})

    def anthropic_message(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        tool = self._tool_call_due(body)
        content: list[dict[str, Any]] = (
            [{"type": "tool_use", "id": f"toolu_{n}", "name": body["tools"][0].get("name", "tool"), "input": {}}]
            if tool
            else [{"type": "text", "text": self.text}]
        )
        return {
            "id": f"msg_standin{n}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-sonnet-4-5"),
            "content": content,
            "stop_reason": "tool_use" if tool else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                      "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        }

    def anthropic_events(self, body: dict[str, Any], n: int) -> Iterator[tuple[str, str]]:
        start = self.anthropic_message(body, n)
        start.update(content=[], stop_reason=None)
        start["usage"] = {**start["usage"], "output_tokens": 1}
        yield "message_start", json.dumps({"type": "message_start", "message": start})
        yield "content_block_start", json.dumps({"type": "content_block_start", "index": 0,
                                                 "content_block": {"type": "text", "text": ""}})
        for piece in self._pieces():
            yield "content_block_delta", json.dumps({"type": "content_block_delta", "index": 0,
                                                     "delta": {"type": "text_delta", "text": piece}})
        yield "content_block_stop", json.dumps({"type": "content_block_stop", "index": 0})
        yield "message_delta", json.dumps({"type": "message_delta",
                                           "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                           "usage": {"output_tokens": self.output_tokens}})
        yield "message_stop", json.dumps({"type": "message_stop"})

    def error_body(self, path: str, status: int) -> dict[str, Any]:
        kind, message = _ERRORS.get(status, ("api_error", f"Error {status}."))
        if path.endswith("/messages"):
            return {"type": "error", "error": {"type": kind, "message": message}}
        return {"error": {"message": message, "type": kind, "param": None, "code": None}}


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        """Quiet: a test's output is not the place for an access log."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        standin = self.server.standin
        if self.path.rstrip("/") == "/standin/stats":
            self._json(200, {"requests": standin.requests, "served": standin.served})
            return
        self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        standin = self.server.standin
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/v1/"):
            path = path[3:]
        routes = ("/chat/completions", "/completions", "/responses", "/embeddings", "/messages")
        route = next((r for r in routes if path.endswith(r)), None)
        if route is None:
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found_error"}})
            return
        status, break_after = standin._admit(route, body)
        n = standin.requests
        if standin.delay_s:
            time.sleep(standin.delay_s)
        if status >= 400:
            headers = {"retry-after-ms": "10"} if status in (429, 503, 529) else {}
            self._json(status, standin.error_body(route, status), headers)
            return
        stream = bool(body.get("stream"))
        if route == "/chat/completions":
            if stream:
                self._sse(((None, data) for data in standin.openai_chat_events(body, n)), break_after)
            else:
                self._json(200, standin.openai_chat(body, n))
        elif route == "/completions":
            if stream:
                self._sse(((None, data) for data in standin.openai_completion_events(body, n)), break_after)
            else:
                self._json(200, standin.openai_completion(body, n))
        elif route == "/responses":
            if stream:
                self._sse(standin.openai_response_events(body, n), break_after)
            else:
                self._json(200, standin.openai_response(body, n))
        elif route == "/embeddings":
            self._json(200, standin.openai_embeddings(body, n))
        elif stream:
            self._sse(standin.anthropic_events(body, n), break_after)
        else:
            self._json(200, standin.anthropic_message(body, n))

    def _json(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: Iterator[tuple[str | None, str]], break_after: int | None) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("cache-control", "no-cache")
        self.send_header("connection", "close")
        self.end_headers()
        self.close_connection = True
        for index, (event, data) in enumerate(events):
            if break_after is not None and index >= break_after:
                return  # the connection closes mid-stream
            head = f"event: {event}\n" if event else ""
            self.wfile.write(f"{head}data: {data}\n\n".encode())
            self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in in the foreground until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m agentfuse.testing.standin", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--input-tokens", type=int, default=100)
    parser.add_argument("--output-tokens", type=int, default=20)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before each answer")
    args = parser.parse_args(argv)
    standin = StandIn(
        port=args.port, input_tokens=args.input_tokens, output_tokens=args.output_tokens, delay_s=args.delay
    ).start()
    print(f"stand-in provider on {standin.url} (OpenAI base_url {standin.openai_url})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        standin.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
