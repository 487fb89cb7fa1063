"""Check one file's source: parse once, run every rule in one batched traversal."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import libcst as cst
from libcst.metadata import MetadataWrapper, PositionProvider

from agentfuse.lint_rules.base import FileContext, Finding, ImportCollector, ImportTable, Report, Rule


def check_source(
    source: str,
    rules: Sequence[type[Rule]],
    *,
    path: str = "<string>",
    options: Mapping[str, Any] | None = None,
) -> list[Finding]:
    """Findings of ``rules`` on ``source``, sorted by position (no noqa filtering here)."""
    module = cst.parse_module(source)
    findings, _ = run_rules(module, source, rules, path=path, options=options or {})
    return findings


def run_rules(
    module: cst.Module,
    source: str,
    rules: Sequence[type[Rule]],
    *,
    path: str,
    options: Mapping[str, Any],
) -> tuple[list[Finding], list[Report]]:
    """Run ``rules`` over a parsed module; returns findings and the raw reports (for fixes)."""
    table = ImportTable()
    context = FileContext(path=path, source=source, imports=table, options=options)
    instances = [rule(context) for rule in rules]
    wrapper = MetadataWrapper(module, unsafe_skip_copy=True)
    wrapper.visit_batched([ImportCollector(table), *instances])
    positions = wrapper.resolve(PositionProvider)
    findings: list[Finding] = []
    reports: list[Report] = []
    for instance in instances:
        for report in instance.reports:
            where = positions[report.node]
            findings.append(
                Finding(
                    path=path,
                    line=where.start.line,
                    col=where.start.column + 1,
                    end_line=where.end.line,
                    end_col=where.end.column + 1,
                    code=report.code,
                    message=report.message,
                )
            )
            reports.append(report)
    findings.sort()
    return findings, reports
