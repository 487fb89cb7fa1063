"""Lint many files: pre-filter in the parent, parse and check candidates in a process pool.

The parent reads every file once and keeps only the candidates (files whose text matches
an enabled rule's triggers): typically 15% of a general tree. Candidates go to worker
processes as paths plus the indices of the rules that may fire, in chunks balanced by
size; a small run stays in one process, where a pool would only add start-up time.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentfuse.lint.checker import RuleSet, decode_source, lint_bytes, parse_error
from agentfuse.lint.config import LintConfig, Selection
from agentfuse.lint.reporters import sort_key
from agentfuse.lint_rules.base import Finding

SERIAL_BELOW = 20
"""Fewer candidate files than this are checked in the parent process."""
CHUNKS_PER_JOB = 8


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A file worth parsing: where it is, how it is shown, which rules may fire in it."""

    path: str
    display: str
    rule_indices: tuple[int, ...]
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
    findings: list[Finding] = []
    candidates: list[Candidate] = []
    for path in files:
        display = display_path(path, cwd)
        data = read_file(path, display)
        if isinstance(data, Finding):
            findings.append(data)
            continue
        try:
            source = decode_source(data)
        except (SyntaxError, UnicodeDecodeError, LookupError):
            findings.extend(lint_bytes(data, rule_set, path=display, options=config.options).findings)
            continue
        rules = rule_set.candidates(source)
        if rules:
            indices = tuple(rule_set.rules.index(rule) for rule in rules)
            candidates.append(Candidate(str(path), display, indices, len(data)))
    workers = min(jobs or os.cpu_count() or 1, max(1, len(candidates) // 4))
    if workers <= 1 or len(candidates) < SERIAL_BELOW:
        findings.extend(_lint_candidates(rule_set, config.options, candidates))
    else:
        findings.extend(_lint_in_pool(rule_set, config.options, candidates, workers))
    return sorted(apply_selection(findings, config, cwd), key=sort_key)


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
    rule_set: RuleSet, options: Mapping[str, Any], candidates: Sequence[Candidate], workers: int
) -> list[Finding]:
    by_size = sorted(candidates, key=lambda c: c.size, reverse=True)
    count = min(len(by_size), workers * CHUNKS_PER_JOB)
    chunks = [by_size[i::count] for i in range(count)]
    work = functools.partial(_lint_candidates, rule_set, options)
    findings: list[Finding] = []
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers) as pool:
        for chunk_findings in pool.map(work, chunks):
            findings.extend(chunk_findings)
    return findings


def _lint_candidates(
    rule_set: RuleSet, options: Mapping[str, Any], candidates: Sequence[Candidate]
) -> list[Finding]:
    """Parse and check candidate files (runs in a worker process, or in the parent)."""
    findings: list[Finding] = []
    for candidate in candidates:
        data = read_file(Path(candidate.path), candidate.display)
        if isinstance(data, Finding):
            findings.append(data)
            continue
        rules = [rule_set.rules[i] for i in candidate.rule_indices]
        outcome = lint_bytes(data, rule_set, path=candidate.display, options=options, rules=rules)
        findings.extend(outcome.findings)
    return findings
