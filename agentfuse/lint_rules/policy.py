"""Rules AF102, AF103 (not written yet)."""

from __future__ import annotations

from agentfuse.lint_rules.base import Rule

RULES: tuple[type[Rule], ...] = ()
