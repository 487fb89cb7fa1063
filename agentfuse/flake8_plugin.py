"""flake8 plugin: ``flake8 --select AF`` runs the same engine and rules as ``agentfuse lint``.

A thin adapter: flake8 hands over the file's lines; the engine pre-filters, parses with
libcst and runs every enabled rule. flake8 applies its own noqa, select/ignore and
per-file-ignores, and its own ``--jobs``; this plugin never starts processes.

Before the text is linted the plugin gives the verdicts the CLI gives on the file itself:
too large (``max-file-bytes``), or not decodable. flake8 decodes a file it cannot decode as
latin-1 and carries on; the CLI reports AF001, and so does the plugin, from the file's bytes.
(A FIFO named ``x.py`` blocks flake8 itself, in its own file reading, before any plugin runs.)
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from agentfuse import __version__
from agentfuse.lint.checker import RuleSet, decoded, lint_text
from agentfuse.lint.command import enabled_rules
from agentfuse.lint.config import DEFAULT_MAX_FILE_BYTES, ConfigError, LintConfig, Selection, load_config
from agentfuse.lint.finding import Finding
from agentfuse.lint.reading import read_source, too_large


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
        problem = self._file_problem(source)
        findings = [problem] if problem else lint_text(
            source, rule_set, path=self.filename, options=options, apply_noqa=False
        ).findings
        for finding in findings:
            yield finding.line, finding.col - 1, f"{finding.code} {finding.message}", type(self)

    def _file_problem(self, source: str) -> Finding | None:
        """The CLI's verdict on the file before its text is linted: too large, undecodable."""
        max_bytes = self.config.max_file_bytes if self.config else DEFAULT_MAX_FILE_BYTES
        size = len(source) if source.isascii() else len(source.encode("utf-8", "surrogatepass"))
        if max_bytes and size > max_bytes:
            return too_large(self.filename, size, max_bytes)
        if source.isascii():  # the file's own bytes (flake8 only changed its line ends)
            verdict = decoded(source.encode("ascii"), self.filename)
            return verdict if isinstance(verdict, Finding) else None
        data = read_source(Path(self.filename), self.filename, max_bytes)
        if isinstance(data, Finding):  # not a file on disk (stdin): lint what flake8 read
            return None
        verdict = decoded(data, self.filename)
        if isinstance(verdict, Finding) and _universal_newlines(data.decode("latin-1")) == source:
            return verdict  # flake8 fell back to latin-1 on exactly these bytes
        return None


def _universal_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")
