"""The process pool of a run over many files.

Each worker receives the run's work function once (the pool's initializer), so what it
builds for the run (the project index's parsed modules) serves all its chunks. A worker
that dies (a native crash, the OOM killer) breaks the pool; the files it had not finished
are then linted again one at a time in a fresh one-worker pool, so a file that kills its
worker again is the one reported (AF001) and every other file still gets its findings.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from typing import TYPE_CHECKING

from agentfuse.lint.checker import parse_error
from agentfuse.lint.finding import Finding

if TYPE_CHECKING:
    from agentfuse.lint.runner import WorkItem

CHUNKS_PER_JOB = 8
WORKER_DIED = (
    "the process analysing this file died (a crash in the parser, or the system killed it); "
    "agentfuse could not lint it"
)

Work = Callable[[Sequence["WorkItem"]], list[Finding]]

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


def lint_in_pool(work: Work, items: Sequence[WorkItem], workers: int) -> list[Finding]:
    """``work`` over ``items`` in ``workers`` processes, in chunks interleaved by file size."""
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
