"""LangChain and LangGraph: a callback handler (``agentfuse[langchain]``).

::

    fuse = AgentfuseCallbackHandler(guard)
    graph.invoke(inputs, config={"callbacks": [fuse]})

What it adds to ``guard.instrument()``: the requests a LangGraph node or a tool makes are named
after it (rate limits and events use that name); a chain, node or subgraph whose name is a sub-agent
(``children:`` in the policy, or ``sub_agents=``) runs as a child run of the run it is in, with
its own cap; a chat model whose SDK is not instrumented is gated here, before it is called,
and settled from its ``usage_metadata``. The handler is ``raise_error`` and ``run_inline``: it
runs in the caller's context, and a refusal (a ``BaseException``) passes through LangChain's
callback manager, ``with_retry()`` and tool error handling to the caller of ``invoke``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from agentfuse.integrations._family import Family
from agentfuse.runtime import instrument
from agentfuse.runtime.guard import Guard, Step

_SDK_OF_PROVIDER = {"azure": "openai", "azure_openai": "openai", "openai": "openai", "anthropic": "anthropic",
                    "litellm": "litellm"}
"""LangChain's ``ls_provider`` -> the SDK agentfuse instruments under it."""

__all__ = ["AgentfuseCallbackHandler"]


class AgentfuseCallbackHandler(BaseCallbackHandler):
    """Names, child runs and non-instrumented models for LangChain / LangGraph runs of ``guard``."""

    raise_error = True
    run_inline = True

    def __init__(self, guard: Guard, *, sub_agents: Iterable[str] = ()) -> None:
        super().__init__()
        self.guard = guard
        self.family = Family(guard, sub_agents=sub_agents)
        self._open: dict[UUID, tuple[Guard | None, tuple[Guard | None, str | None]]] = {}
        self._steps: dict[UUID, Step] = {}
        self._lock = threading.Lock()
        guard.instrument()

    # -- chains, nodes, subgraphs, tools ------------------------------------------------------

    def on_chain_start(
        self, serialized: dict[str, Any] | None, inputs: Any, *, run_id: UUID, metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = _name(serialized, kwargs)
        node = (metadata or {}).get("langgraph_node")
        if name == node or self.family.is_sub_agent(name):  # a graph's node, or a sub-agent
            self._enter(run_id, name)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_tool_start(
        self, serialized: dict[str, Any] | None, input_str: str, *, run_id: UUID, **kwargs: Any
    ) -> None:
        self._enter(run_id, _name(serialized, kwargs))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._leave(run_id)

    def _enter(self, run_id: UUID, name: str | None) -> None:
        if not name:
            return
        current = instrument.charged_guard() or self.guard
        target = self.family.child(name, current) if self.family.is_sub_agent(name) else None
        restore = self.family.enter(target or current, name)
        with self._lock:
            self._open[run_id] = (target, restore)

    def _leave(self, run_id: UUID) -> None:
        with self._lock:
            opened = self._open.pop(run_id, None)
        if opened is not None:
            target, restore = opened
            self.family.leave(target or restore[0] or self.guard, restore)

    # -- models whose SDK is not instrumented -------------------------------------------------

    def on_chat_model_start(
        self, serialized: dict[str, Any] | None, messages: Any, *, run_id: UUID,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        self._gate(run_id, metadata, kwargs)

    def on_llm_start(
        self, serialized: dict[str, Any] | None, prompts: Any, *, run_id: UUID,
        metadata: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        self._gate(run_id, metadata, kwargs)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            step = self._steps.pop(run_id, None)
        if step is None:
            return
        usage = _usage(response, step.model)
        if usage is not None:
            step.record(usage)
        step.__exit__(None, None, None)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        with self._lock:
            step = self._steps.pop(run_id, None)
        if step is not None:
            step.__exit__(type(error), error, None)

    def _gate(self, run_id: UUID, metadata: dict[str, Any] | None, kwargs: dict[str, Any]) -> None:
        provider = str((metadata or {}).get("ls_provider", "")).lower()
        if _SDK_OF_PROVIDER.get(provider) in instrument.instrumented_providers():
            return  # the SDK underneath gates and settles each request
        guard = instrument.charged_guard() or self.guard
        model = (metadata or {}).get("ls_model_name") or (kwargs.get("invocation_params") or {}).get("model")
        step = guard.step(action=_current_action(kwargs), model=model)
        step.__enter__()  # raises the refusal: the model is not called
        with self._lock:
            self._steps[run_id] = step

    def close(self) -> None:
        """Close the sub-agents' child runs (the guard itself stays the caller's to close)."""
        self.family.close()


def _name(serialized: dict[str, Any] | None, kwargs: dict[str, Any]) -> str | None:
    name = kwargs.get("name")
    if not name and serialized:
        name = serialized.get("name") or (serialized.get("id") or [None])[-1]
    return str(name) if name else None


def _current_action(kwargs: dict[str, Any]) -> str:
    from agentfuse.runtime.instrument.core import _ACTION

    return _ACTION.get() or str(kwargs.get("name") or "chat_model")


def _usage(response: Any, model: str | None) -> dict[str, Any] | None:
    """The OpenAI-shaped usage of a LangChain ``LLMResult`` (from ``usage_metadata``), if any."""
    for generations in getattr(response, "generations", None) or ():
        for generation in generations:
            message = getattr(generation, "message", None)
            meta = getattr(message, "usage_metadata", None)
            if meta:
                named = (getattr(message, "response_metadata", None) or {}).get("model_name")
                tokens = {"prompt_tokens": meta.get("input_tokens", 0),
                          "completion_tokens": meta.get("output_tokens", 0)}
                return {"model": named or model, "usage": tokens}
    return None
