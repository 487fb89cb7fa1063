"""What every adapter shares: one child run per sub-agent name, and binding it to the context."""

from __future__ import annotations

import re
import threading
from typing import Any

from agentfuse.runtime import instrument
from agentfuse.runtime.guard import Guard

_RUN_ID_CHARS = re.compile(r"[^A-Za-z0-9_.:-]+")


class Family:
    """A guard's child runs, one per sub-agent name, opened on first use and kept for the run.

    A sub-agent's run id is ``<parent run id>/<name>``, so a resumed parent run resumes its
    children's books too; its cap is ``children.<name>.run_usd`` from the policy (else none of
    its own: the parent's caps still bind it, since a child's spend counts against every ancestor).
    """

    def __init__(self, guard: Guard, *, sub_agents: Any = None) -> None:
        self.guard = guard
        named = {name for name, _ in guard.policy.children}
        self.sub_agents = frozenset(named | set(sub_agents or ()))
        self._children: dict[tuple[str, str], Guard] = {}
        self._lock = threading.Lock()

    def is_sub_agent(self, name: str | None) -> bool:
        return name is not None and name in self.sub_agents

    def child(self, name: str, parent: Guard | None = None) -> Guard:
        """The child run of ``parent`` (default: the adapter's guard) for the sub-agent ``name``."""
        parent = parent or self.guard
        key = (parent.run_id, name)
        with self._lock:
            found = self._children.get(key)
            if found is None:
                caps = self.guard.policy.child_caps(name)
                run_id = f"{parent.run_id}/{_RUN_ID_CHARS.sub('_', name)}"
                found = self._children[key] = parent.child(
                    run_usd=caps.run_usd if caps is not None else None,
                    run_id=run_id,
                    run_tokens=caps.run_tokens if caps is not None else None,
                )
            return found

    def enter(self, guard: Guard, action: str | None) -> tuple[Guard | None, str | None]:
        """Charge this context's requests to ``guard``, named ``action``; returns what to restore."""
        previous = instrument.charged_guard()
        if previous is not guard:
            guard.instrument()
        return previous, instrument.name_action(action)

    def leave(self, guard: Guard, restore: tuple[Guard | None, str | None]) -> None:
        """Undo :meth:`enter`: the previous guard and action name are this context's again."""
        previous, action = restore
        if previous is not guard:
            guard.uninstrument()
            if previous is not None:
                previous.instrument()
        instrument.name_action(action)

    def close(self) -> None:
        """Close the child runs (their deferred settlements are applied)."""
        with self._lock:
            children, self._children = list(self._children.values()), {}
        for child in children:
            child.close()
