"""The contract between the lint engine and the rules.

A rule is a libcst ``BatchableCSTVisitor``: the engine parses a file once and runs every
enabled rule in one batched traversal. A rule reads names through ``self.context.imports``
(an alias table built from the module's import statements as the traversal meets them,
complete by ``leave_Module``), reports with ``self.report(node, ...)``, and carries its own
``VALID`` / ``INVALID`` examples, which are both its tests and its documentation.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import libcst as cst
from libcst.metadata import CodeRange, PositionProvider

from agentfuse.lint.finding import Finding as Finding  # noqa: F401  (the rules' contract names it here)
from agentfuse.lint_rules._triggers import required_pattern, trigger_pattern


@dataclasses.dataclass(frozen=True)
class Fix:
    """A replacement for one node, applied only under ``--fix``/``--diff``.

    ``imports`` are ``(module, name)`` pairs that the fixed code needs, added with libcst's
    ``AddImportsVisitor`` (``name`` may be ``None`` for ``import module``).
    """

    node: cst.CSTNode
    replacement: cst.CSTNode
    imports: tuple[tuple[str, str | None], ...] = ()


@dataclasses.dataclass
class Report:
    """A finding before it is turned into a :class:`Finding`: node, code, message, fix."""

    node: cst.CSTNode
    code: str
    message: str
    fix: Fix | None = None


def dotted_name(node: cst.CSTNode | None) -> str | None:
    """``a.b.c`` for a Name/Attribute chain, else ``None`` (calls, subscripts break a chain)."""
    parts: list[str] = []
    while isinstance(node, cst.Attribute):
        parts.append(node.attr.value)
        node = node.value
    if isinstance(node, cst.Name):
        parts.append(node.value)
        return ".".join(reversed(parts))
    return None


def _module_name(node: cst.BaseExpression | None, relative: Sequence[cst.Dot] = ()) -> str:
    dots = "." * len(relative)
    return dots + (dotted_name(node) or "") if node is not None else dots


class ImportTable:
    """Local name -> fully qualified name, from the module's import statements.

    ``import subprocess as sp`` binds ``sp`` -> ``subprocess``; ``import os.path`` binds
    ``os`` -> ``os``; ``from tenacity import retry as r`` binds ``r`` -> ``tenacity.retry``.
    Imports anywhere in the file count (function-local ones too): the table is a cheap,
    flow-insensitive approximation of scopes, which is what the rules need.
    """

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.star_modules: list[str] = []
        self.modules: set[str] = set()

    def add_import(self, node: cst.Import) -> None:
        for alias in node.names:
            full = dotted_name(alias.name) or ""
            self.modules.add(full)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                self.aliases[alias.asname.name.value] = full
            else:
                root = full.split(".")[0]
                self.aliases.setdefault(root, root)

    def add_import_from(self, node: cst.ImportFrom) -> None:
        module = _module_name(node.module, node.relative)
        self.modules.add(module)
        if isinstance(node.names, cst.ImportStar):
            self.star_modules.append(module)
            return
        for alias in node.names:
            name = dotted_name(alias.name) or ""
            local = name
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                local = alias.asname.name.value
            self.aliases[local] = f"{module}.{name}" if not module.endswith(".") else module + name

    def resolve(self, node: cst.CSTNode | None) -> str | None:
        """The qualified name of a Name/Attribute chain whose root was imported, else None."""
        name = dotted_name(node)
        if name is None:
            return None
        return self.resolve_dotted(name)

    def resolve_dotted(self, name: str) -> str | None:
        """Like :meth:`resolve`, for a dotted string such as ``"sp.run"``."""
        root, _, rest = name.partition(".")
        target = self.aliases.get(root)
        if target is None:
            return None
        return f"{target}.{rest}" if rest else target

    def imports_module(self, prefix: str) -> bool:
        """True if any import names ``prefix`` or a submodule of it (``playwright``)."""
        return any(m == prefix or m.startswith(prefix + ".") for m in self.modules)


class ImportCollector(cst.BatchableCSTVisitor):
    """Fills the file's :class:`ImportTable`; the engine runs it first in every batch."""

    def __init__(self, table: ImportTable) -> None:
        super().__init__()
        self.table = table

    def visit_Import(self, node: cst.Import) -> None:
        self.table.add_import(node)

    def visit_ImportFrom(self, node: cst.ImportFrom) -> None:
        self.table.add_import_from(node)


@dataclasses.dataclass
class FileContext:
    """What a rule may know about the file it checks."""

    path: str
    source: str
    imports: ImportTable
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    """The ``[tool.agentfuse]`` table (kebab-case keys), for rule options such as
    ``fix-max-attempts``, ``llm-apis`` or ``guard-names``."""
    shared: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Per-file scratch space for rules that share one analysis (e.g. AF101-AF103 collect the
    module's LLM calls once), keyed by the helper module that owns the entry."""


class Rule(cst.BatchableCSTVisitor):
    """Base class of every lint rule.

    Subclasses set ``code``, ``message`` (problem, then fix, one line), a docstring saying
    why the rule exists, ``triggers`` (regular expressions: a file whose text matches none
    of them is never parsed for this rule), optionally ``required_triggers`` (a second group
    the text must also match: "mentions a provider *and* a request word"), and
    ``VALID``/``INVALID`` examples. An invalid example may mark the lines it expects findings
    on with ``# expect: AF301``. The triggers are named from ``_triggers.py`` and the rule's
    entry in the registry (``agentfuse.lint_rules.REGISTRY``) lists the same ones, so the
    pre-filter reads them without importing the rule (a test checks that both agree).
    """

    code: ClassVar[str]
    message: ClassVar[str]
    triggers: ClassVar[tuple[str, ...]] = ()
    required_triggers: ClassVar[tuple[str, ...]] = ()
    """A file must match one of these too (all-of with ``triggers``); empty: no second group."""
    trigger_word_options: ClassVar[tuple[str, ...]] = ()
    """Options (kebab-case) whose entries' identifiers join ``required_triggers`` as words
    (``llm-apis = ["mylib.ask"]`` adds ``mylib`` and ``ask``), so configured names are never
    filtered out."""
    default_enabled: ClassVar[bool] = True
    METADATA_DEPENDENCIES = (PositionProvider,)
    VALID: ClassVar[tuple[str, ...]] = ()
    INVALID: ClassVar[tuple[str, ...]] = ()

    def __init__(self, context: FileContext) -> None:
        super().__init__()
        self.context = context
        self.reports: list[Report] = []

    def report(self, node: cst.CSTNode, message: str | None = None, *, fix: Fix | None = None) -> None:
        """Record a finding at ``node`` (the rule's default message unless one is given)."""
        self.reports.append(Report(node, self.code, message or self.message, fix))

    def position(self, node: cst.CSTNode) -> CodeRange:
        return self.get_metadata(PositionProvider, node)

    @classmethod
    def trigger_pattern(cls) -> re.Pattern[str] | None:
        """One compiled regex over all triggers, or None when the rule runs on every file."""
        return trigger_pattern(cls.triggers)

    @classmethod
    def required_pattern(cls, options: Mapping[str, Any] | None = None) -> re.Pattern[str] | None:
        """The second trigger group as one regex (with the words ``options`` add), or None."""
        return required_pattern(cls.required_triggers, cls.trigger_word_options, options)

    @classmethod
    def matches_triggers(cls, text: str, options: Mapping[str, Any] | None = None) -> bool:
        """True if the pre-filter lets ``text`` through for this rule (both groups match)."""
        patterns = (cls.trigger_pattern(), cls.required_pattern(options))
        return all(pattern is None or pattern.search(text) is not None for pattern in patterns)
