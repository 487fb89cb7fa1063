"""Fuzzing the linter: generated and deliberately deep programs never crash it.

A short, derandomised run for the suite (about half a minute); ``python bench/lint_fuzz.py``
runs the long one (bench/RESULTS.md, "Lint fuzz"). Each program goes through the real
``agentfuse lint`` entry point in this process, and a few trees through the real CLI in
subprocesses (one process and the process pool): the exit status is 0 or 1, never a
traceback, and a file the engine refuses costs exactly one AF001.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from agentfuse.lint import limits
from tests.lint_strategies import (
    TRIGGER_CODES,
    Segment,
    cpython_accepts,
    deep_programs,
    deep_source,
    grammar_programs,
    lint_in_process,
    outcome,
)
from tests.test_lint_cli import assert_no_traceback

SETTINGS = settings(
    deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck), print_blob=True
)


@settings(SETTINGS, max_examples=30)
@given(deep_programs())
def test_deep_programs_get_their_findings_or_one_af001(source: str) -> None:
    outcome(source, *lint_in_process(source))


@settings(SETTINGS, max_examples=10)
@given(grammar_programs())
def test_generated_programs_get_their_findings_or_one_af001(source: str) -> None:
    outcome(source, *lint_in_process(source))


KINDS_AT_THE_LIMITS = [
    [Segment(kind, count)]
    for kind in ("and", "unary", "lambda", "attribute", "call", "plus", "ifexp", "elif", "strings", "import")
    for count in (limits.FAST_DEPTH + 20, 9000)
]


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_cli_subprocess_on_a_tree_of_deep_programs(tmp_path: Path, jobs: str) -> None:
    """Every kind just past the in-thread limit and far past the parse limit, in one tree
    (with padding files, so ``-j 2`` uses the process pool)."""
    expected = {}
    for index, segments in enumerate(KINDS_AT_THE_LIMITS):
        source = deep_source(segments)
        name = f"deep_{segments[0].kind}_{segments[0].count}_{index}.py"
        (tmp_path / name).write_text(source)
        accepted = cpython_accepts(source)
        expected[name] = accepted and limits.nesting_depth(limits.python_tree(source))[0] <= limits.MAX_DEPTH
    for i in range(100 if jobs == "2" else 0):
        (tmp_path / f"pad{i}.py").write_text("x = 1\n")
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--format", "json", "-j", jobs],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert_no_traceback(result)
    assert result.returncode == 1
    by_file: dict[str, set[str]] = {}
    for record in json.loads(result.stdout):
        by_file.setdefault(record["path"], set()).add(record["code"])
    for name, analysed in expected.items():
        assert (TRIGGER_CODES <= by_file[name]) if analysed else by_file[name] == {"AF001"}, (name, by_file[name])
