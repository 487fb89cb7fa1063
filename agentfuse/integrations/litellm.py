"""LiteLLM proxy: an agentfuse policy enforced per team or key, before the request (``agentfuse[litellm]``).

In a module next to the proxy's ``config.yaml``::

    fuse = ProxyFuse("policy.yaml", teams={"research": "research.yaml"})

and in the config: ``litellm_settings: {callbacks: agentfuse_callback.fuse}``.

Who is charged: a request's *tenant* is the team of its key (``team_id``), or the key itself when
it has no team (its ``key_alias``, else ``key-`` and the start of LiteLLM's hash of it). Each
tenant is one run of an agent: run id ``team-<team id>`` or ``key-<alias>``, resumed after a
proxy restart, so its spend and counters persist. The agent and its caps are those of the
team's own policy (``teams=``), else of the default policy: the run caps (``run_usd``,
``run_tokens``, ``max_steps``, ``timeout_s``, ``max_retries_total``) bind each tenant, the agent
caps (``daily_usd``, ``hourly_usd``, tokens), the breaker, the kill switch and operator halts
bind every tenant of that policy together. A key named in the policy's ``children:`` is a child
run ``team-<id>/<alias>`` with that cap of its own, its spend counting against its team's too.

What it adds over LiteLLM's own ``max_budget``: the check is the gate of ``guard.step()`` (kill
switch, breaker, rate limits, budgets, steps) and it *reserves* the request's estimated cost in
the store in the same transaction, before the request leaves; the success and failure hooks
replace the reservation by the cost of the usage the provider reported. Concurrent requests
(in one proxy process or many on one store) cannot all pass with the same last dollar, where
LiteLLM, which adds the spend after the call, lets them overshoot.

The hooks: ``async_pre_call_hook`` gates, named after the request's model (so a policy's
``rate_limits`` can name a model; its ``pricing:`` can price the proxy's model names); the
estimate is the larger of ``estimate_usd`` and what the request implies. The answer's usage
settles it (``async_post_call_success_hook``, the end of a stream, or ``async_log_success_event``,
whichever comes first); a stream the client did not ask usage of is asked for it, and that usage
chunk is dropped on its way out. ``async_post_call_failure_hook`` settles a failed request: with
nothing billed and no breaker count when it never reached a provider (the router, a guardrail or
another hook refused it after the gate; ``log_pre_api_call`` tells), nothing billed when the
provider answered with an error status (the breaker counts it), and the reservation kept when the
provider may have done the work (a timeout, a dropped connection). Set the router's
``num_retries: 0``: a retry is then the client's, and meets the gate again.

A refusal reaches the client as an OpenAI-style error whose ``type`` is ``agentfuse_refusal`` and
whose message names the reason: 429 for a cap (with ``x-should-retry: false``, which the OpenAI
SDKs obey) or a rate limit (with ``Retry-After``), 503 for an open breaker (``Retry-After``), the
kill switch and halts. The refusal is converted at the hook because ``Halted`` is a
``BaseException``, which the proxy's ``except Exception`` would leave to the server (a bare 500).
Do not also call ``guard.instrument()`` in the proxy process: its requests would be gated twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger

from agentfuse.integrations._family import _RUN_ID_CHARS, Family
from agentfuse.runtime import errors, instrument
from agentfuse.runtime.guard import Guard, enforce
from agentfuse.runtime.instrument.core import Call, begin
from agentfuse.runtime.instrument.wire import (
    ANTHROPIC_MESSAGES, OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS, OPENAI_RESPONSES, WireFormat, no_events,
)
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.policy_loader import load_policy
from agentfuse.runtime.pricing import CHARS_PER_TOKEN, Usage, extract_usage

__all__ = ["ProxyFuse", "refusal_status"]

_FORMATS: Mapping[str, WireFormat] = {
    "completion": OPENAI_CHAT, "acompletion": OPENAI_CHAT,
    "text_completion": OPENAI_COMPLETIONS, "atext_completion": OPENAI_COMPLETIONS,
    "embedding": OPENAI_EMBEDDINGS, "aembedding": OPENAI_EMBEDDINGS,
    "responses": OPENAI_RESPONSES, "aresponses": OPENAI_RESPONSES,
    "anthropic_messages": ANTHROPIC_MESSAGES, "aanthropic_messages": ANTHROPIC_MESSAGES,
}
"""Call types whose request body tells the estimate (input and output tokens)."""
_OTHER = WireFormat("litellm.proxy", (), (), no_events)
"""Any other call type that reaches a model: reserved at the policy's ``estimate_usd``."""
_NO_UPSTREAM = "litellm_no_upstream_llm_call"
"""The key LiteLLM's logging object carries when no provider call follows (a proxy-side refusal)."""
_UNGATED = frozenset({
    "list_mcp_tools", "retrieve_batch", "aretrieve_batch", "vector_store_file_list", "avector_store_file_list",
    "vector_store_file_retrieve", "avector_store_file_retrieve", "vector_store_file_content",
    "avector_store_file_content",
})
"""Call types that only read what was made before: no model runs, no step is taken."""


def refusal_status(refusal: errors.Halted) -> tuple[int, dict[str, str]]:
    """The HTTP status and headers a refusal is answered with."""
    if isinstance(refusal, (errors.RateLimited, errors.CircuitOpen)):
        wait = refusal.figures.get("retry_after_s")
        headers = {"retry-after": str(max(1, math.ceil(wait)))} if isinstance(wait, (int, float)) else {}
        return (429 if isinstance(refusal, errors.RateLimited) else 503), headers
    if isinstance(refusal, errors.StoreUnavailable):
        return 503, {}  # the books cannot be read: fail closed, a later try may find them
    spent = isinstance(refusal, errors.RunHalted) and refusal.figures.get("source") == "budget"
    if spent or isinstance(refusal, (errors.BudgetExceeded, errors.AttemptsExhausted)):
        return 429, {"x-should-retry": "false"}  # a cap reached (and the halt it left): like a spent quota
    return 503, {"x-should-retry": "false"}  # the kill switch, an operator's or fail-fast halt: until resumed


def _proxy_exception(refusal: errors.Halted) -> Exception:
    """The refusal as the exception the proxy turns into an OpenAI-style error response."""
    from litellm.proxy._types import ProxyException

    status, headers = refusal_status(refusal)
    return ProxyException(
        message=f"agentfuse refused the request ({refusal.reason}): {refusal}",
        type="agentfuse_refusal", param=None, code=status, headers=headers, openai_code=refusal.reason,
    )


def _provider_answered(exc: BaseException) -> bool:
    """Whether the provider answered with an error status (it did no billable work)."""
    import openai

    return isinstance(exc, openai.APIStatusError)


class _Pending:
    """A request between its gate and its settlement."""

    __slots__ = ("call", "ask_usage", "sent")

    def __init__(self, call: Call, ask_usage: bool) -> None:
        self.call = call
        self.ask_usage = ask_usage
        """We asked for the stream's usage (the client did not): its usage chunk is dropped again."""
        self.sent = False
        """LiteLLM handed the request to a provider (``log_pre_api_call``)."""


def _attr(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _key_name(key: Any) -> str:
    """A key's name in the books: its alias, else ``key-`` and the start of its hash."""
    alias = _attr(key, "key_alias")
    if isinstance(alias, str) and alias:
        return alias
    token = _attr(key, "token")
    if not (isinstance(token, str) and token):
        raw = _attr(key, "api_key")
        token = hashlib.sha256(raw.encode()).hexdigest() if isinstance(raw, str) and raw else ""
    return f"key-{token[:12]}" if token else "anonymous"


class _Stream:
    """Observes a proxied stream's chunks on their way out; settles the call when it ends."""

    def __init__(self, fuse: ProxyFuse, call_id: str, pending: _Pending) -> None:
        self.fuse = fuse
        self.call_id = call_id
        self.call = pending.call
        self.drop_usage = pending.ask_usage
        self.usage: Usage | None = None
        self.chars = 0

    def see(self, chunk: Any) -> bool:
        """Note the chunk's usage and text; True when it is the usage chunk only we asked for."""
        usage = extract_usage(chunk) if _attr(chunk, "usage") is not None else None
        if usage is not None and (usage.input_tokens or usage.output_tokens):
            self.usage = usage
        choices = _attr(chunk, "choices") or ()
        for choice in choices:
            delta = _attr(choice, "delta")
            text = _attr(delta, "content") if delta is not None else _attr(choice, "text")
            self.chars += len(text) if isinstance(text, str) else 0
        return self.drop_usage and usage is not None and not choices

    def finish(self, exc: BaseException | None) -> None:
        usage = self.usage
        if usage is None and self.chars:  # no usage reported: at least the tokens received
            usage = Usage(self.call.model, self.call.input_estimate, -(-self.chars // CHARS_PER_TOKEN))
        self.fuse._settle(self.call_id, usage, exc if isinstance(exc, Exception) else None)


class ProxyFuse(CustomLogger):
    """A LiteLLM proxy callback that reserves before each request and settles after it."""

    def __init__(
        self,
        policy: Policy | str | os.PathLike[str],
        *,
        teams: Mapping[str, Policy | str | os.PathLike[str]] | None = None,
        store: str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.policy = policy if isinstance(policy, Policy) else load_policy(policy, environ=environ)
        self.teams = {
            team: found if isinstance(found, Policy) else load_policy(found, environ=environ)
            for team, found in (teams or {}).items()
        }
        self._store = store
        self._environ = environ
        self._runs: dict[tuple[int, str], tuple[Guard, Family]] = {}
        self._calls: dict[str, _Pending] = {}
        """The requests gated and not settled yet, by LiteLLM's call id."""
        self._lock = threading.Lock()

    # -- who is charged -------------------------------------------------------------------------

    def run_for(self, key: Any) -> Guard:
        """The run a request made with ``key`` (LiteLLM's ``UserAPIKeyAuth``) is charged to."""
        team = _attr(key, "team_id")
        name = _key_name(key)
        policy = self.teams.get(team, self.policy) if isinstance(team, str) and team else self.policy
        tenant = f"team-{team}" if isinstance(team, str) and team else f"key-{name}"
        tenant = _RUN_ID_CHARS.sub("_", tenant)
        with self._lock:
            found = self._runs.get((id(policy), tenant))
            if found is None:
                store = next((guard.store for (pid, _), (guard, _) in self._runs.items() if pid == id(policy)), None)
                guard = enforce(
                    policy, run_id=tenant, store=store or self._store, environ=self._environ, defer_settlement=False
                )
                found = self._runs[(id(policy), tenant)] = (guard, Family(guard))
        guard, family = found
        if tenant.startswith("team-") and family.is_sub_agent(name):
            return family.child(name)
        return guard

    # -- the hooks ------------------------------------------------------------------------------

    async def async_pre_call_hook(self, user_api_key_dict: Any, cache: Any, data: dict, call_type: Any) -> Any:
        """Gate the request and reserve its estimate; a refusal becomes the proxy's error response."""
        if call_type in _UNGATED:
            return data
        call_id = data.get("litellm_call_id")
        if not isinstance(call_id, str):
            return data  # not a proxied request: nothing to settle it by
        fmt = _FORMATS.get(call_type, _OTHER)
        model = data.get("model")
        try:
            call = await asyncio.to_thread(self._begin, user_api_key_dict, fmt, data, model)
        except errors.Halted as refusal:
            raise _proxy_exception(refusal) from None
        ask_usage = fmt.usage_option and fmt.streams(data) and not fmt.wants_usage(data)
        with self._lock:
            self._calls[call_id] = _Pending(call, ask_usage)
        if ask_usage:  # the stream's usage settles it; the client did not ask for it, so it is dropped again
            options = data.get("stream_options")
            data["stream_options"] = {**(options if isinstance(options, Mapping) else {}), "include_usage": True}
        return data

    def _begin(self, key: Any, fmt: WireFormat, body: Mapping[str, Any], model: Any) -> Call:
        instrument.name_action(model if isinstance(model, str) and model else None)  # this thread's context only
        return begin(self.run_for(key), fmt, body)

    async def async_post_call_success_hook(self, data: dict, user_api_key_dict: Any, response: Any) -> Any:
        """Settle the request from the usage of its answer."""
        call_id = data.get("litellm_call_id")
        if isinstance(call_id, str):
            await asyncio.to_thread(self._settle, call_id, extract_usage(response), None)
        return response

    async def async_post_call_streaming_iterator_hook(
        self, user_api_key_dict: Any, response: Any, request_data: dict
    ) -> AsyncGenerator[Any, None]:
        """Pass the stream through chunk by chunk; settle when it ends, is closed or breaks."""
        call_id = request_data.get("litellm_call_id")
        with self._lock:
            pending = self._calls.get(call_id) if isinstance(call_id, str) else None
        if pending is None or not isinstance(call_id, str):
            async for chunk in response:
                yield chunk
            return
        stream = _Stream(self, call_id, pending)
        try:
            async for chunk in response:
                if not stream.see(chunk):
                    yield chunk
        except BaseException as exc:
            stream.finish(exc)
            raise
        stream.finish(None)

    async def async_post_call_failure_hook(
        self, request_data: dict, original_exception: Exception, user_api_key_dict: Any,
        traceback_str: str | None = None,
    ) -> Any:
        """Settle a failed request: see the module's docstring for what is billed and counted."""
        call_id = request_data.get("litellm_call_id")
        with self._lock:
            pending = self._calls.get(call_id) if isinstance(call_id, str) else None
        if pending is None or not isinstance(call_id, str):
            return None
        if not pending.sent:  # refused by the proxy after the gate (a hook, a guardrail, the router)
            await asyncio.to_thread(self._settle, call_id, None, asyncio.CancelledError(), True)
        else:
            free = _provider_answered(original_exception)
            await asyncio.to_thread(self._settle, call_id, None, original_exception, free)
        return None

    def log_pre_api_call(self, model: Any, messages: Any, kwargs: Any) -> None:
        """Note that LiteLLM hands the request to a provider (it is called before every attempt)."""
        details = kwargs if isinstance(kwargs, Mapping) else {}
        call_id = details.get("litellm_call_id")
        if not isinstance(call_id, str) or _NO_UPSTREAM in details:
            return
        with self._lock:
            pending = self._calls.get(call_id)
            if pending is not None:
                pending.sent = True

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        """A request the hooks above did not settle (a route without them) settles from LiteLLM's log."""
        call_id = kwargs.get("litellm_call_id") if isinstance(kwargs, Mapping) else None
        if isinstance(call_id, str) and call_id in self._calls:
            await asyncio.to_thread(self._settle, call_id, extract_usage(response_obj), None)

    def _settle(self, call_id: str, usage: Usage | None, exc: BaseException | None, free: bool = False) -> None:
        with self._lock:
            pending = self._calls.pop(call_id, None)
        if pending is not None:
            pending.call.settle(usage, exc, free=free)

    def close(self) -> None:
        """Close every tenant's run and the stores they opened (at the proxy's shutdown)."""
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for guard, family in reversed(runs):  # the first run of a policy owns its store: closed last
            family.close()
            guard.close()
