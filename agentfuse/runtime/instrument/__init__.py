"""``guard.instrument()``: the gate inside the provider SDKs.

One module per provider holds what is patched there and why; :mod:`.core` holds which guard a
request is charged to (the context rule), the gated request and the metered streams.

Which SDKs: each provider whose module is already imported is patched at once; one that is
installed but not imported yet is patched right after its first import (an import hook on
``sys.meta_path``), so ``instrument()`` never imports an SDK the agent does not use (LiteLLM,
google-genai and boto3 take seconds to import); one that is not installed is skipped.
``uninstrument()`` by the last instrumenting guard puts every patched attribute back as it was
and removes the hook.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from agentfuse.runtime.instrument.core import _ACTION, _CONTEXT_GUARD, REGISTRY, Provider, loaded, settle_open_streams

if TYPE_CHECKING:
    from agentfuse.runtime.guard import Guard

__all__ = [
    "instrument", "uninstrument", "instrumented_providers", "providers", "settle_open_streams", "name_action",
    "charged_guard",
]


def providers() -> Sequence[Provider]:
    """Every provider instrumentation agentfuse has, in a fixed order."""
    from agentfuse.runtime.instrument.anthropic_sdk import AnthropicProvider
    from agentfuse.runtime.instrument.openai_sdk import OpenAIProvider

    found: list[Provider] = [OpenAIProvider(), AnthropicProvider()]
    for module, cls in (
        ("agentfuse.runtime.instrument.litellm_sdk", "LiteLLMProvider"),
        ("agentfuse.runtime.instrument.genai_sdk", "GoogleGenAIProvider"),
        ("agentfuse.runtime.instrument.mistral_sdk", "MistralProvider"),
        ("agentfuse.runtime.instrument.cohere_sdk", "CohereProvider"),
        ("agentfuse.runtime.instrument.ollama_sdk", "OllamaProvider"),
        ("agentfuse.runtime.instrument.bedrock_sdk", "BedrockProvider"),
        ("agentfuse.runtime.instrument.bedrock_sdk", "AioBedrockProvider"),
    ):
        try:
            found.append(getattr(__import__(module, fromlist=[cls]), cls)())
        except (ImportError, AttributeError):
            continue
    return found


class _ImportHook(importlib.abc.MetaPathFinder):
    """Patches a provider right after its module is first imported."""

    def __init__(self) -> None:
        self.waiting: dict[str, Provider] = {}

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        provider = self.waiting.get(name)
        if provider is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run = getattr(loader, "exec_module", None)
        if run is None:
            return spec

        def exec_module(module: Any) -> None:
            run(module)
            with REGISTRY.lock:
                if self.waiting.pop(name, None) is not None and REGISTRY.active():
                    _install(provider)

        loader.exec_module = exec_module  # type: ignore[union-attr, method-assign]  # this module's own loader
        return spec


_HOOK = _ImportHook()


def _install(provider: Provider) -> None:
    if provider.name not in REGISTRY.patches:
        REGISTRY.patches[provider.name] = provider.install()


def _install_all() -> None:
    for provider in providers():
        if provider.name in REGISTRY.patches:
            continue
        if provider.module in sys.modules:
            _install(provider)
        elif loaded(provider.module):
            _HOOK.waiting[provider.module] = provider
    if _HOOK.waiting and _HOOK not in sys.meta_path:
        sys.meta_path.insert(0, _HOOK)


def _remove_all() -> None:
    for patches in REGISTRY.patches.values():
        for item in reversed(patches):
            item.undo()
    REGISTRY.patches.clear()
    _HOOK.waiting.clear()
    if _HOOK in sys.meta_path:
        sys.meta_path.remove(_HOOK)


def instrument(guard: Guard, client: Any = None) -> Any:
    """Gate every model request of the installed SDKs (or of ``client`` only) with ``guard``.

    Returns ``client`` (or None). Instrumenting twice is a no-op.
    """
    with REGISTRY.lock:
        if client is None:
            if guard not in REGISTRY.global_guards:
                REGISTRY.global_guards.append(guard)
            _CONTEXT_GUARD.set(guard)
            _install_all()
            return None
        for provider in providers():
            if provider.module not in sys.modules:
                continue
            key = provider.client_key(client)
            if key is None:
                continue
            _install(provider)
            REGISTRY.clients[key] = guard
            return client
    name = f"{type(client).__module__}.{type(client).__qualname__}"
    raise TypeError(f"guard.instrument() does not know this client: {name}")


def uninstrument(guard: Guard, client: Any = None) -> None:
    """Stop gating with ``guard`` (everything, or ``client`` only); the last one restores the SDKs."""
    with REGISTRY.lock:
        if client is not None:
            found = (provider.client_key(client) for provider in providers() if provider.module in sys.modules)
            keys = [key for key in found if key is not None]
        else:
            keys = [key for key, bound in list(REGISTRY.clients.items()) if bound is guard]
            if guard in REGISTRY.global_guards:
                REGISTRY.global_guards.remove(guard)
            if _CONTEXT_GUARD.get(None) is guard:
                _CONTEXT_GUARD.set(None)
        for key in keys:
            if REGISTRY.clients.get(key) is guard:
                del REGISTRY.clients[key]
        if not REGISTRY.active():
            _remove_all()


def name_action(action: str | None) -> str | None:
    """Name this context's instrumented requests ``action`` (None: the API's name); returns the previous name.

    Framework adapters call it when a node, tool or agent starts, and again with the returned
    name when it ends, so rate limits and events speak of the framework's steps.
    """
    previous = _ACTION.get()
    _ACTION.set(action)
    return previous


def charged_guard() -> Guard | None:
    """The guard this context's instrumented requests are charged to (without a client bound)."""
    return REGISTRY.resolve(None)


def instrumented_providers() -> list[str]:
    """Names of the providers patched now (for status and tests)."""
    with REGISTRY.lock:
        return sorted(REGISTRY.patches)
