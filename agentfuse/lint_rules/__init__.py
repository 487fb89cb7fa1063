"""The rule registry: every rule family module, in a fixed order.

Each module in ``RULE_MODULES`` exports ``RULES``, a tuple of :class:`Rule` subclasses.
A test checks that every module in this package is listed here, that codes are unique and
that every rule has examples.
"""

from __future__ import annotations

import importlib

from agentfuse.lint_rules.base import Rule

RULE_MODULES: tuple[str, ...] = (
    "agentfuse.lint_rules.llm_calls",   # AF101
    "agentfuse.lint_rules.policy",      # AF102, AF103
    "agentfuse.lint_rules.retries",     # AF201-AF203
    "agentfuse.lint_rules.retry_loops",  # AF204
    "agentfuse.lint_rules.playwright",  # AF301
    "agentfuse.lint_rules.shell",       # AF401
)


def all_rules() -> tuple[type[Rule], ...]:
    """Every registered rule class, in registry order."""
    rules: list[type[Rule]] = []
    for name in RULE_MODULES:
        rules.extend(importlib.import_module(name).RULES)
    return tuple(rules)
