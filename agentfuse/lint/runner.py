"""Lint many files: serially for a few, else in a process pool (pool.py).

Each worker reads its files, runs the text pre-filter and the candidate stage, and parses
only what is left; so the pre-filter, which reads every byte of the tree, is shared by the
workers too. Below ``PARALLEL_FROM`` files (a pre-commit run, a single package) the pool's
start-up would cost more than it saves: everything runs in this process (pool.py holds
the pool, and what happens when a worker dies).

:func:`lint_file` is the unit of work: one path in, its findings out.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentfuse.lint.cache import ResultCache
from agentfuse.lint.checker import RuleSet, lint_bytes
from agentfuse.lint.config import LintConfig, Selection
from agentfuse.lint.finding import Finding
from agentfuse.lint.project_index import with_project_index
from agentfuse.lint.reading import read_source
from agentfuse.lint.reporters import sort_key

PARALLEL_FROM = 100
"""From this many files on, a run with more than one job uses a process pool."""


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


def lint_files(
    files: Iterable[Path],
    rule_set: RuleSet,
    config: LintConfig,
    *,
    jobs: int | None = None,
    cwd: Path | None = None,
    cache: ResultCache | None = None,
) -> list[Finding]:
    """Findings for ``files`` after noqa, selection and per-file ignores, in report order
    (each file's from ``cache`` when it holds them)."""
    cwd = (cwd or Path.cwd()).absolute()
    items = [WorkItem(str(path), display_path(path, cwd), _size(path)) for path in files]
    workers = min(jobs or os.cpu_count() or 1, len(items))
    options = with_project_index(config.options, cwd)  # cross-module lookups (rules read it lazily)
    work = functools.partial(_lint_items, rule_set, options, config.max_file_bytes, cache=cache)
    if workers <= 1 or len(items) < PARALLEL_FROM:
        findings = work(items)
    else:
        from agentfuse.lint.pool import lint_in_pool  # a run of a few files never starts a pool

        findings = lint_in_pool(work, items, workers)
    return sorted(apply_selection(findings, config, cwd), key=sort_key)


def lint_file(
    item: WorkItem, rule_set: RuleSet, options: Mapping[str, Any], max_bytes: int, cache: ResultCache | None = None
) -> list[Finding]:
    """One file's findings after noqa: read it (regular files only, up to ``max_bytes``),
    decode, pre-filter, parse, check. A pure function of the file's bytes and the run's
    rules and options (and, through the project index, of the modules it imports)."""
    data = read_source(Path(item.path), item.display, max_bytes)
    if isinstance(data, Finding):
        return [data]
    source = data

    def check() -> list[Finding]:
        return lint_bytes(source, rule_set, path=item.display, options=options).findings

    return check() if cache is None else cache.lint(item.display, source, options, check)


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
            relative = display_path(_resolved(cwd / finding.path), config.root)
            selection = config.selection.without(config.ignored_for(relative))
            selections[finding.path] = selection
        if selection.enabled(finding.code, default_enabled=True):
            kept.append(finding)
    return kept


def _resolved(path: Path) -> Path:
    """``path`` with symbolic links resolved; a link that cannot be (a loop) keeps its name
    in its resolved folder."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symlink loop, before Python 3.13
        return _resolved(path.parent) / path.name


def _lint_items(
    rule_set: RuleSet,
    options: Mapping[str, Any],
    max_bytes: int,
    items: Sequence[WorkItem],
    cache: ResultCache | None = None,
) -> list[Finding]:
    """Lint files one after another (in a worker process, or in this one)."""
    findings: list[Finding] = []
    for item in items:
        findings.extend(lint_file(item, rule_set, options, max_bytes, cache))
    return findings
