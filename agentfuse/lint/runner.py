"""Lint many files: serially for a few, else in a process pool, in chunks balanced by size.

Each worker reads its files, runs the text pre-filter and the candidate stage, and parses
only what is left; so the pre-filter, which reads every byte of the tree, is shared by the
workers too. Below ``PARALLEL_FROM`` files (a pre-commit run, a single package) the pool's
start-up would cost more than it saves: everything runs in this process.

:func:`lint_file` is the unit of work: one path in, its findings out. A worker that dies
(a native crash, the OOM killer) breaks the pool; the files it had not finished are then
linted again one at a time in a fresh one-worker pool, so a file that kills its worker
again is the one reported (AF001) and every other file still gets its findings.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from agentfuse.lint.cache import ResultCache
from agentfuse.lint.checker import RuleSet, lint_bytes, parse_error
from agentfuse.lint.config import LintConfig, Selection
from agentfuse.lint.project_index import with_project_index
from agentfuse.lint.reading import read_source
from agentfuse.lint.reporters import sort_key
from agentfuse.lint.finding import Finding

PARALLEL_FROM = 100
"""From this many files on, a run with more than one job uses a process pool."""
CHUNKS_PER_JOB = 8
WORKER_DIED = (
    "the process analysing this file died (a crash in the parser, or the system killed it); "
    "agentfuse could not lint it"
)


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
        findings = _lint_in_pool(work, items, workers)
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


Work = Callable[[Sequence[WorkItem]], list[Finding]]

_installed: list[Work] = []
"""In a worker process: the run's work function, sent once by the pool's initializer, so
what it holds for the whole run (the project index's parsed modules) lives as long as the
worker, not one chunk."""


def _install(work: Work) -> None:
    _installed[:] = [work]


def _run_installed(batch: Sequence[WorkItem]) -> list[Finding]:
    return _installed[0](batch)


def _pool(work: Work, workers: int) -> concurrent.futures.ProcessPoolExecutor:
    return concurrent.futures.ProcessPoolExecutor(max_workers=workers, initializer=_install, initargs=(work,))


def _lint_in_pool(work: Work, items: Sequence[WorkItem], workers: int) -> list[Finding]:
    by_size = sorted(items, key=lambda item: item.size, reverse=True)
    count = min(len(by_size), workers * CHUNKS_PER_JOB)
    chunks = [by_size[i::count] for i in range(count)]
    findings: list[Finding] = []
    unfinished: list[WorkItem] = []
    with _pool(work, workers) as pool:
        futures = _submit_all(pool, chunks)
        for chunk, future in zip(chunks, futures):
            try:
                if future is None:
                    raise BrokenProcessPool("the pool broke before this chunk was submitted")
                findings.extend(future.result())
            except BrokenProcessPool:
                unfinished.extend(chunk)
    if unfinished:
        findings.extend(_lint_one_at_a_time(work, unfinished))
    return findings


def _lint_one_at_a_time(work: Work, items: Sequence[WorkItem]) -> list[Finding]:
    """Each file alone, in order, in a one-worker pool replaced whenever its worker dies:
    the first unfinished file when the pool breaks is the one that killed it."""
    findings: list[Finding] = []
    remaining = list(items)
    while remaining:
        with _pool(work, 1) as pool:
            futures = _submit_all(pool, [[item] for item in remaining])
            done = len(remaining)
            for index, future in enumerate(futures):
                try:
                    if future is None:
                        raise BrokenProcessPool("the pool broke before this file was submitted")
                    findings.extend(future.result())
                except BrokenProcessPool:
                    findings.append(parse_error(remaining[index].display, WORKER_DIED))
                    done = index + 1
                    break
        remaining = remaining[done:]
    return findings


def _submit_all(
    pool: concurrent.futures.ProcessPoolExecutor, batches: Sequence[Sequence[WorkItem]]
) -> list[concurrent.futures.Future[list[Finding]] | None]:
    """Submit every batch to the pool's installed work; None for those a pool broken
    meanwhile refused."""
    futures: list[concurrent.futures.Future[list[Finding]] | None] = []
    for batch in batches:
        try:
            futures.append(pool.submit(_run_installed, batch))
        except BrokenProcessPool:
            futures.append(None)
    return futures


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
