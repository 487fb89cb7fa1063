"""flake8 plugin: ``flake8 --select AF`` runs the same engine and rules as ``agentfuse lint``.

A thin adapter: flake8 hands over the file's lines; the engine pre-filters, parses with
libcst and runs every enabled rule. flake8 applies its own noqa, select/ignore and
per-file-ignores, and its own ``--jobs``; this plugin never starts processes.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentfuse import __version__
from agentfuse.lint.checker import RuleSet, lint_text
from agentfuse.lint.config import ConfigError, LintConfig, Selection, load_config
from agentfuse.lint.command import enabled_rules


class AgentfuseChecker:
    """The ``AF`` entry point in ``flake8.extension``."""

    name = "agentfuse"
    version = __version__
    rule_set: ClassVar[RuleSet | None] = None
    config: ClassVar[LintConfig | None] = None

    def __init__(self, tree: ast.AST, filename: str, lines: Sequence[str]) -> None:
        self.filename = filename
        self.lines = lines

    @classmethod
    def parse_options(cls, options: argparse.Namespace) -> None:
        """Called once per flake8 process: read ``[tool.agentfuse]`` and pick the rules.

        flake8 selects codes itself; here a rule that is off by default runs only when
        flake8's ``--select``/``--extend-select`` names it, as in ``agentfuse lint``.
        """
        selected = [
            code
            for code in (*(getattr(options, "select", None) or ()), *(getattr(options, "extend_select", None) or ()))
            if code.startswith("AF")
        ]
        try:
            config = load_config(Path.cwd())
        except ConfigError:  # flake8 must not crash on our table; `agentfuse lint` reports it
            config = LintConfig(root=Path.cwd())
        selection = Selection(select=tuple(selected))
        cls.config = config
        cls.rule_set = RuleSet.of(enabled_rules(selection))

    def run(self) -> Iterator[tuple[int, int, str, type[Any]]]:
        """Yield flake8's ``(line, column from 0, "CODE message", type)`` tuples."""
        rule_set = self.rule_set or RuleSet.of(enabled_rules(Selection()))
        options = self.config.options if self.config else {}
        source = "".join(self.lines)
        outcome = lint_text(source, rule_set, path=self.filename, options=options, apply_noqa=False)
        for finding in outcome.findings:
            yield finding.line, finding.col - 1, f"{finding.code} {finding.message}", type(self)
