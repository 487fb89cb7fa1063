"""The rule registry: every rule, in a fixed order, with the words it needs to see.

``REGISTRY`` lists each rule's code, its class (module and name) and its triggers as plain
data, so the engine pre-filters a file and picks its rules without importing any rule
module (nor libcst): :meth:`RuleEntry.load` imports a rule's class when a file needs it.
A test checks that every module in this package is listed, that each entry agrees with its
class, that codes are unique and that every rule has examples.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING

from agentfuse.lint_rules import _triggers as t

if TYPE_CHECKING:
    from agentfuse.lint_rules.base import Rule


@dataclasses.dataclass(frozen=True)
class RuleEntry:
    """A registered rule as the pre-filter sees it, and where its class lives."""

    code: str
    module: str
    name: str
    triggers: tuple[str, ...] = ()
    required_triggers: tuple[str, ...] = ()
    trigger_word_options: tuple[str, ...] = ()
    default_enabled: bool = True

    def load(self) -> type[Rule]:
        """The rule's class (imports its module, and libcst, on first use)."""
        rule: type[Rule] = getattr(importlib.import_module(self.module), self.name)
        return rule


_LLM = "agentfuse.lint_rules.llm_calls"
_POLICY = "agentfuse.lint_rules.policy"
_RETRIES = "agentfuse.lint_rules.retries"

REGISTRY: tuple[RuleEntry, ...] = (
    RuleEntry("AF101", _LLM, "UnguardedLlmCall", t.LLM_TRIGGERS, t.LLM_REQUEST_TRIGGERS, t.LLM_OPTIONS),
    RuleEntry("AF102", _POLICY, "MissingPolicy", t.POLICY_TRIGGERS, t.POLICY_REQUIRED_TRIGGERS, t.LLM_OPTIONS),
    RuleEntry("AF103", _POLICY, "InvalidPolicy", t.POLICY_TRIGGERS, t.POLICY_REQUIRED_TRIGGERS, t.LLM_OPTIONS),
    RuleEntry("AF201", _RETRIES, "UnboundedTenacityRetry", t.TENACITY_TRIGGERS),
    RuleEntry("AF202", _RETRIES, "UnboundedBackoff", t.BACKOFF_TRIGGERS),
    RuleEntry("AF203", _RETRIES, "UnboundedRetryHelper", t.RETRY_HELPER_TRIGGERS),
    RuleEntry("AF204", "agentfuse.lint_rules.retry_loops", "UnboundedRetryLoop", t.RETRY_LOOP_TRIGGERS),
    RuleEntry("AF301", "agentfuse.lint_rules.playwright", "PlaywrightEvaluateArity", t.PLAYWRIGHT_TRIGGERS),
    RuleEntry("AF401", "agentfuse.lint_rules.shell", "DestructiveShellCommand", t.SHELL_TRIGGERS),
)

RULE_MODULES: tuple[str, ...] = tuple(dict.fromkeys(entry.module for entry in REGISTRY))
"""Each rule family module, in registry order; each exports ``RULES``, its rule classes."""


def all_rules() -> tuple[type[Rule], ...]:
    """Every registered rule class, in registry order (imports every rule module)."""
    return tuple(entry.load() for entry in REGISTRY)
