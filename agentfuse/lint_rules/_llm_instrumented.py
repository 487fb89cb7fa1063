"""Modules whose LLM requests ``guard.instrument()`` gates (AF101).

``guard.instrument()`` patches the provider SDKs process-wide, so every request made after it
meets the gate, wherever it is written. The linter cannot follow a process, so it takes two
signs that a module's requests run instrumented:

- the module itself calls ``<guard>.instrument()`` (no argument: the whole process, not one
  client) or builds a framework adapter with a guard (``AgentfuseCallbackHandler(guard)``,
  ``AgentsFuse(guard)``, ``AgentfuseCapability(guard)``, ``CrewFuse(guard)``): every request in it
  counts as guarded;
- ``[tool.agentfuse] instrumented = ["pkg.main", "pkg.tools"]`` names modules whose requests run
  only after an entry point instrumented; a package name covers every module below it.

A module's name is its dotted path through the packages (folders with ``__init__.py``) above it,
so ``src/pkg/tools/search.py`` is ``pkg.tools.search``, and a script outside any package is its
file's stem.
"""

from __future__ import annotations

from pathlib import Path

from agentfuse.lint_rules._llm_catalogue import string_list
from agentfuse.lint_rules.base import FileContext

INSTRUMENT_METHOD = "instrument"
ADAPTER_NAMES = frozenset({"AgentfuseCallbackHandler", "AgentsFuse", "AgentfuseCapability", "CrewFuse"})
"""The framework adapters of ``agentfuse.integrations``; built with a guard, they instrument it."""


def module_name(path: str) -> str:
    """The dotted module name of the file at ``path``, through the packages above it."""
    file = Path(path)
    parts = [file.stem] if file.stem != "__init__" else []
    folder = file.parent
    while (folder / "__init__.py").is_file() and folder.name:
        parts.insert(0, folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    return ".".join(parts)


def listed_as_instrumented(context: FileContext) -> bool:
    """Whether ``[tool.agentfuse] instrumented`` names this module or a package above it."""
    listed = string_list(context.options.get("instrumented"))
    if not listed:
        return False
    name = module_name(context.path)
    return any(name == entry or name.startswith(entry + ".") for entry in listed)
