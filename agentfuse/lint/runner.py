"""Lint many files: serially for a few, else in a process pool, in chunks balanced by size.

Each worker reads its files, runs the text pre-filter and the candidate stage, and parses
only what is left; so the pre-filter, which reads every byte of the tree, is shared by the
workers too. Below ``PARALLEL_FROM`` files (a pre-commit run, a single package) the pool's
start-up would cost more than it saves: everything runs in this process.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentfuse.lint.checker import RuleSet, lint_bytes, parse_error
from agentfuse.lint.config import LintConfig, Selection
from agentfuse.lint.project_index import with_project_index
from agentfuse.lint.reporters import sort_key
from agentfuse.lint_rules.base import Finding

PARALLEL_FROM = 100
"""From this many files on, a run with more than one job uses a process pool."""
CHUNKS_PER_JOB = 8


@dataclasses.dataclass(frozen=True)
class WorkItem:
    """A file to lint: where it is, how reports show it, its size (for balancing chunks)."""

    path: str
    display: str
    size: int


def display_path(path: Path, cwd: Path) -> str:
    """The path as reports show it: relative to the working folder when inside it, posix."""
    absolute = path.absolute()
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return path.as_posix()


def read_file(path: Path, display: str) -> bytes | Finding:
    """The file's bytes, or the AF001 finding saying why it cannot be read."""
    try:
        return path.read_bytes()
    except IsADirectoryError:
        return parse_error(display, "cannot read file: it is a directory")
    except OSError as exc:
        return parse_error(display, f"cannot read file: {exc.strerror or exc}")


def lint_files(
    files: Iterable[Path],
    rule_set: RuleSet,
    config: LintConfig,
    *,
    jobs: int | None = None,
    cwd: Path | None = None,
) -> list[Finding]:
    """Findings for ``files`` after noqa, selection and per-file ignores, in report order."""
    cwd = (cwd or Path.cwd()).absolute()
    items = [WorkItem(str(path), display_path(path, cwd), _size(path)) for path in files]
    workers = min(jobs or os.cpu_count() or 1, len(items))
    options = with_project_index(config.options, cwd)  # cross-module lookups (rules read it lazily)
    if workers <= 1 or len(items) < PARALLEL_FROM:
        findings = _lint_items(rule_set, options, items)
    else:
        findings = _lint_in_pool(rule_set, options, items, workers)
    return sorted(apply_selection(findings, config, cwd), key=sort_key)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def apply_selection(findings: Iterable[Finding], config: LintConfig, cwd: Path) -> list[Finding]:
    """Drop findings whose code is not selected, globally or by ``per-file-ignores``."""
    kept = []
    selections: dict[str, Selection] = {}
    for finding in findings:
        selection = selections.get(finding.path)
        if selection is None:
            relative = display_path((cwd / finding.path).resolve(), config.root)
            selection = config.selection.without(config.ignored_for(relative))
            selections[finding.path] = selection
        if selection.enabled(finding.code, default_enabled=True):
            kept.append(finding)
    return kept


def _lint_in_pool(
    rule_set: RuleSet, options: Mapping[str, Any], items: Sequence[WorkItem], workers: int
) -> list[Finding]:
    by_size = sorted(items, key=lambda item: item.size, reverse=True)
    count = min(len(by_size), workers * CHUNKS_PER_JOB)
    chunks = [by_size[i::count] for i in range(count)]
    work = functools.partial(_lint_items, rule_set, options)
    findings: list[Finding] = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk_findings in pool.map(work, chunks):
            findings.extend(chunk_findings)
    return findings


def _lint_items(rule_set: RuleSet, options: Mapping[str, Any], items: Sequence[WorkItem]) -> list[Finding]:
    """Read, pre-filter, parse and check files (in a worker process, or in this one)."""
    findings: list[Finding] = []
    for item in items:
        data = read_file(Path(item.path), item.display)
        if isinstance(data, Finding):
            findings.append(data)
        else:
            findings.extend(lint_bytes(data, rule_set, path=item.display, options=options).findings)
    return findings
