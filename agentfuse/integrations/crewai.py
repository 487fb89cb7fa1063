"""CrewAI: each agent of a crew a child run of the crew's run (``agentfuse[crewai]``).

::

    fuse = CrewFuse(guard)                       # registers CrewAI LLM-call and tool-call hooks
    result = fuse.kickoff(crew, inputs={...})    # crew.kickoff(...); raises the refusal
    fuse.close()

What it adds to ``guard.instrument()``: the guard's run is the crew's run; each agent's requests
are the child run ``<run id>/<agent role>``, capped by ``children.<role>.run_usd`` (its spend
counts against the crew's caps too), named after the role, and a tool's own requests after the
tool (rate limits, events). A model whose SDK is not instrumented (a custom ``BaseLLM``, Azure AI
Inference) is gated in the ``before_llm_call`` hook and settled from the token usage the LLM
tracks (for one LLM shared by agents running at once, the split between them is approximate).

How: CrewAI runs its ``before_llm_call`` hooks in the context that then calls the model and its
``before_tool_call`` hooks in the one that runs the tool (its agent executor is a flow whose steps
run in contexts of their own), so the hooks bind the agent's run there. The hooks are global in
CrewAI (every crew of the process, like ``guard.instrument()``); :meth:`CrewFuse.kickoff` runs
``crew.kickoff`` in a copy of the caller's context, so the binding never outlives the run (a plain
``crew.kickoff()`` works too, but after a refusal the caller's context may stay charged to the
last agent's run). A refusal is a ``BaseException``: CrewAI's hook runner, agent loop, tool error
handling and ``kickoff`` catch ``Exception`` only, so it neither retries it nor hands it to the
model, and ``kickoff`` raises it. One place needs help: a task with ``async_execution=True`` runs
in a thread whose body hands only an ``Exception`` to the task's future, so a refusal there would
end the thread and leave ``kickoff`` waiting forever; while a fuse is open, that body
(``Task._execute_task_async``) also hands a refusal to the future, and ``kickoff`` raises it.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import threading
from concurrent.futures import Future
from typing import Any

from crewai import Task
from crewai.hooks import (
    register_after_llm_call_hook, register_before_llm_call_hook, register_before_tool_call_hook,
    unregister_after_llm_call_hook, unregister_before_llm_call_hook, unregister_before_tool_call_hook,
)

from agentfuse.integrations._family import Family
from agentfuse.runtime import instrument
from agentfuse.runtime.errors import Halted
from agentfuse.runtime.guard import Guard, Step

__all__ = ["CrewFuse"]

_SDK_OF_CLASS = {"OpenAICompletion": "openai", "AnthropicCompletion": "anthropic",
                 "GeminiCompletion": "google-genai", "BedrockCompletion": "bedrock"}
"""CrewAI's native provider classes (and their subclasses) -> the SDK agentfuse instruments under each."""

_OWNER: contextvars.ContextVar[CrewFuse | None] = contextvars.ContextVar("agentfuse_crewai_owner", default=None)
"""The fuse whose :meth:`CrewFuse.kickoff` this context runs in (None: a plain ``crew.kickoff()``)."""

_KICKOFF: contextvars.ContextVar[set[tuple[int, int]] | None] = contextvars.ContextVar(
    "agentfuse_crewai_kickoff", default=None
)
"""The open steps of the :meth:`CrewFuse.kickoff` this context runs in (every copy of it shares the set)."""


class _OpenStep:
    """A gated call of a non-instrumented model, and the LLM's usage counters when it began."""

    def __init__(self, step: Step, llm: Any) -> None:
        self.step = step
        self.llm = llm
        self.before = _usage_counters(llm)


class CrewFuse:
    """Child runs per agent, action names and gated non-instrumented models for the crews run under ``guard``."""

    def __init__(self, guard: Guard) -> None:
        self.guard = guard
        self.family = Family(guard)
        self._open: dict[tuple[int, int], _OpenStep] = {}
        self._lock = threading.Lock()
        guard.instrument()
        _ASYNC_TASKS.open()
        register_before_llm_call_hook(self._before_llm)
        register_after_llm_call_hook(self._after_llm)
        register_before_tool_call_hook(self._before_tool)

    def kickoff(self, crew: Any, **kwargs: Any) -> Any:
        """``crew.kickoff(**kwargs)`` in a copy of this context; raises the refusal that stopped it."""
        return contextvars.copy_context().run(self._kickoff, crew, kwargs)

    async def akickoff(self, crew: Any, **kwargs: Any) -> Any:
        """``await crew.akickoff(**kwargs)`` in a task of its own; raises the refusal that stopped it."""

        async def body() -> Any:
            opened = self._start_kickoff()
            try:
                return await crew.akickoff(**kwargs)
            finally:
                self._settle(opened)

        return await asyncio.create_task(body())

    def _kickoff(self, crew: Any, kwargs: dict[str, Any]) -> Any:
        opened = self._start_kickoff()
        try:
            return crew.kickoff(**kwargs)
        finally:
            self._settle(opened)

    def _start_kickoff(self) -> set[tuple[int, int]]:
        _OWNER.set(self)
        opened: set[tuple[int, int]] = set()
        _KICKOFF.set(opened)
        return opened

    # -- the hooks ------------------------------------------------------------------------------

    def _mine(self) -> bool:
        owner = _OWNER.get()
        return owner is None or owner is self  # not inside another fuse's kickoff

    def _bind(self, agent: Any, action: str | None) -> str | None:
        """Charge this context's requests to ``agent``'s run, named ``action``; returns the agent's role."""
        role = getattr(agent, "role", None)
        if role:
            target = self.family.child(str(role))
            if instrument.charged_guard() is not target:
                target.instrument()
        if action or role:
            instrument.name_action(action or str(role))
        return str(role) if role else None

    def _before_tool(self, context: Any) -> None:
        """A tool runs in a context of its own (CrewAI's agent executor is a flow): bind its agent's run there."""
        if self._mine():
            self._bind(getattr(context, "agent", None), getattr(context, "tool_name", None))

    def _before_llm(self, context: Any) -> None:
        if not self._mine():
            return
        agent = getattr(context, "agent", None)
        role = self._bind(agent, None)
        llm = getattr(context, "llm", None)
        if llm is None or _sdk_of(llm) in instrument.instrumented_providers():
            return  # the SDK underneath gates and settles each request
        key = (id(llm), id(agent))
        self._settle({key})  # this agent's last call on it raised, or answered with tool calls (no after hook)
        guard = instrument.charged_guard() or self.guard
        step = guard.step(action=role or "crew", model=_model_of(llm),
                          max_tokens=_int_or_none(getattr(llm, "max_tokens", None)))
        step.__enter__()  # raises the refusal: the model is not called
        with self._lock:
            self._open[key] = _OpenStep(step, llm)
        kickoff = _KICKOFF.get()
        if kickoff is not None:
            kickoff.add(key)

    def _after_llm(self, context: Any) -> None:
        llm = getattr(context, "llm", None)
        if llm is not None and self._mine():
            self._settle({(id(llm), id(getattr(context, "agent", None)))})

    def _settle(self, keys: set[tuple[int, int]] | None) -> None:
        """Settle the open steps of ``keys`` (None: all) from the usage their LLM tracked since each began."""
        with self._lock:
            found = [self._open.pop(key) for key in (list(self._open) if keys is None else keys) if key in self._open]
        for opened in found:
            step, spent = opened.step, _usage_delta(opened.before, _usage_counters(opened.llm))
            counts = opened.before is not None and opened.before["successful_requests"] > 0
            if spent is not None and counts and spent["successful_requests"] == 0:  # it counts answers: none came
                step.__exit__(RuntimeError, RuntimeError("the model call failed (no answer was counted)"), None)
                continue
            if spent is not None and spent["prompt_tokens"] + spent["completion_tokens"] > 0:
                usage = {"prompt_tokens": spent["prompt_tokens"], "completion_tokens": spent["completion_tokens"]}
                step.record({"model": step.model, "usage": usage})
            step.__exit__(None, None, None)  # no usage tracked: the reservation is the charge

    def close(self) -> None:
        """Unregister the hooks, settle what is open, close the agents' child runs (the guard stays the caller's)."""
        unregister_before_llm_call_hook(self._before_llm)
        unregister_after_llm_call_hook(self._after_llm)
        unregister_before_tool_call_hook(self._before_tool)
        self._settle(None)
        self.family.close()
        _ASYNC_TASKS.close()


class _AsyncTaskRefusals:
    """While a fuse is open: a refusal that ends an async task's thread is handed to the task's future.

    CrewAI's ``Task._execute_task_async(agent, context, tools, future)`` sets the future's
    exception for an ``Exception`` only; without this a refused async task leaves ``kickoff``
    waiting on its future forever. A CrewAI whose method has another shape is left as it is.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._users = 0
        self._original: Any = None

    def open(self) -> None:
        with self._lock:
            self._users += 1
            original = Task.__dict__.get("_execute_task_async")
            if self._users > 1 or original is None:
                return
            if list(inspect.signature(original).parameters) != ["self", "agent", "context", "tools", "future"]:
                return

            @functools.wraps(original)
            def execute(task: Any, agent: Any, context: Any, tools: Any, future: Future[Any]) -> None:
                try:
                    original(task, agent, context, tools, future)
                except Halted as refusal:
                    if not future.done():
                        future.set_exception(refusal)

            self._original = original
            Task._execute_task_async = execute  # type: ignore[method-assign,assignment]

    def close(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._original is not None:
                Task._execute_task_async = self._original  # type: ignore[method-assign]
                self._original = None


_ASYNC_TASKS = _AsyncTaskRefusals()


def _sdk_of(llm: Any) -> str | None:
    """The instrumented SDK a CrewAI LLM sends its requests through (None: none agentfuse knows)."""
    if getattr(llm, "is_litellm", False):
        return "litellm"
    for cls in type(llm).__mro__:
        if cls.__module__.startswith("crewai.") and cls.__name__ in _SDK_OF_CLASS:
            return _SDK_OF_CLASS[cls.__name__]
    return None


def _model_of(llm: Any) -> str | None:
    model = getattr(llm, "model", None)
    return model if isinstance(model, str) else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


_COUNTERS = ("prompt_tokens", "completion_tokens", "successful_requests")


def _usage_counters(llm: Any) -> dict[str, int] | None:
    """The LLM's cumulative token counters (``BaseLLM.get_token_usage_summary``), if it keeps them."""
    summary = getattr(llm, "get_token_usage_summary", None)
    if summary is None:
        return None
    try:
        found = summary()
    except Exception:  # a custom LLM's own bookkeeping: without it the reservation is the charge
        return None
    counters = {name: getattr(found, name, None) for name in _COUNTERS}
    if not all(isinstance(value, int) for value in counters.values()):
        return None
    return {name: int(value or 0) for name, value in counters.items()}


def _usage_delta(before: dict[str, int] | None, after: dict[str, int] | None) -> dict[str, int] | None:
    if before is None or after is None:
        return None
    delta = {name: after[name] - before[name] for name in _COUNTERS}
    return delta if all(value >= 0 for value in delta.values()) else None
