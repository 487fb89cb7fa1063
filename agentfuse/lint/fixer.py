"""``--fix`` / ``--diff``: apply the ``Fix`` objects rules attach to their reports.

A fix replaces one node; the imports it needs go through libcst's ``AddImportsVisitor``,
which keeps formatting and comments. Fixing runs in passes until nothing changes (an
outer fix can hide an inner one), so applying the fixer twice is the same as once.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import libcst as cst
from libcst.codemod import CodemodContext
from libcst.codemod.visitors import AddImportsVisitor

from agentfuse.lint.checker import RuleSet, decoded, lint_text, source_encoding
from agentfuse.lint.config import DEFAULT_MAX_FILE_BYTES
from agentfuse.lint.limits import call_with_stack
from agentfuse.lint.reading import read_source
from agentfuse.lint_rules.base import Finding, Fix, Rule

MAX_PASSES = 4


class _Replacer(cst.CSTTransformer):
    """Swap each node that has a fix (matched by identity) for its replacement."""

    def __init__(self, fixes: Sequence[Fix]) -> None:
        super().__init__()
        self._replacements = {id(fix.node): fix for fix in fixes}

    def on_leave(self, original_node: cst.CSTNode, updated_node: cst.CSTNode) -> Any:
        fix = self._replacements.get(id(original_node))
        if fix is not None and fix.node is original_node:
            return fix.replacement
        return updated_node


def apply_fixes(module: cst.Module, fixes: Sequence[Fix]) -> cst.Module:
    """``module`` with every fix's node replaced and its imports added."""
    fixed = module.visit(_Replacer(fixes))
    imports = sorted({item for fix in fixes for item in fix.imports}, key=lambda i: (i[0], i[1] or ""))
    if not imports:
        return fixed
    context = CodemodContext()
    for module_name, name in imports:
        AddImportsVisitor.add_needed_import(context, module_name, name)
    return AddImportsVisitor(context).transform_module(fixed)


def fix_text(
    source: str,
    rule_set: RuleSet,
    *,
    path: str,
    options: Mapping[str, Any],
    keep: Callable[[Finding], bool] = lambda finding: True,
) -> tuple[str, list[Finding]]:
    """Apply fixes for the kept findings until none is left; (new source, fixed findings)."""
    fixed_findings: list[Finding] = []
    for _ in range(MAX_PASSES):
        outcome = lint_text(source, rule_set, path=path, options=options, keep_tree=True)
        if outcome.module is None:
            break
        pairs = [
            (finding, report.fix)
            for finding, report in zip(outcome.findings, outcome.reports)
            if report.fix is not None and keep(finding)
        ]
        if not pairs:
            break
        new_source = call_with_stack(False, _fixed_code, outcome.module, [fix for _, fix in pairs])
        if new_source == source:
            break
        fixed_findings.extend(finding for finding, _ in pairs)
        source = new_source
    return source, fixed_findings


def _fixed_code(module: cst.Module, fixes: Sequence[Fix]) -> str:
    return apply_fixes(module, fixes).code


def fix_source(
    source: str,
    rules: Sequence[type[Rule]],
    *,
    path: str = "<string>",
    options: Mapping[str, Any] | None = None,
) -> tuple[str, list[Finding]]:
    """Fixed source and the findings that were fixed (for rule tests of their fixes)."""
    return fix_text(source, RuleSet.of(rules), path=path, options=options or {})


@dataclasses.dataclass(frozen=True)
class FileFix:
    """What fixing one file did: the text before and after, what it fixed, what is left."""

    display: str
    before: str
    after: str
    fixed: list[Finding]
    remaining: list[Finding]

    def diff(self) -> str:
        return "".join(
            difflib.unified_diff(
                self.before.splitlines(keepends=True),
                self.after.splitlines(keepends=True),
                fromfile=f"a/{self.display}",
                tofile=f"b/{self.display}",
            )
        )


def fix_file(
    path: Path,
    display: str,
    rule_set: RuleSet,
    *,
    options: Mapping[str, Any],
    keep: Callable[[Finding], bool],
    write: bool,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> FileFix:
    """Fix one file in memory, write it back if asked, and lint what is left."""
    data = read_source(path, display, max_bytes)
    if not isinstance(data, bytes):
        return FileFix(display, "", "", [], [data])
    source = decoded(data, display)
    if isinstance(source, Finding):
        return FileFix(display, "", "", [], [source])
    encoding = source_encoding(data)
    after, fixed = fix_text(source, rule_set, path=display, options=options, keep=keep)
    remaining = lint_text(after, rule_set, path=display, options=options).findings
    if write and after != source:
        path.write_bytes(after.encode(encoding))
    return FileFix(display, source, after, fixed, remaining)
