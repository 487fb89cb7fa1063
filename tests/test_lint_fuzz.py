"""Fuzzing the linter: generated and deliberately deep programs never crash it.

A short, derandomised run for the suite (about half a minute); ``python bench/lint_fuzz.py``
runs the long one (bench/RESULTS.md, "Lint fuzz"). Each program goes through the real
``agentfuse lint`` entry point in this process, and a few trees through the real CLI in
subprocesses (one process and the process pool): the exit status is 0 or 1, never a
traceback, and a file the engine refuses costs exactly one AF001.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from agentfuse.cli import main
from agentfuse.lint import limits
from tests.lint_strategies import (
    TRIGGER_CODES,
    Segment,
    cpython_accepts,
    deep_programs,
    deep_source,
    grammar_programs,
)
from tests.test_lint_cli import assert_no_traceback

SETTINGS = settings(
    deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck), print_blob=True
)
TOO_DEEP = "file is too deeply nested to analyse"
INTERNAL_ERROR = "internal error"


def lint_in_process(source: str) -> tuple[int, list[dict[str, object]], str]:
    """``agentfuse lint --format json FILE`` through the CLI's ``main``: status, records, stderr."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "generated.py"
        path.write_text(source, encoding="utf-8", errors="surrogatepass")
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["lint", "--format", "json", "--max-file-bytes", "0", str(path)])
    return status, json.loads(out.getvalue()), err.getvalue()


def check_outcome(source: str, status: int, records: list[dict[str, object]], stderr: str) -> None:
    """The properties every program must have, valid or not, deep or not."""
    assert status in (0, 1), stderr
    assert "Traceback" not in stderr, stderr
    assert status == (1 if records else 0)
    refused = [r for r in records if r["code"] == "AF001"]
    assert not any(INTERNAL_ERROR in str(r["message"]) for r in refused), refused
    if refused:  # a refused file has that one finding and nothing else
        assert records == refused and len(refused) == 1, records


@settings(SETTINGS, max_examples=30)
@given(deep_programs())
def test_deep_programs_get_their_findings_or_one_af001(source: str) -> None:
    status, records, stderr = lint_in_process(source)
    check_outcome(source, status, records, stderr)
    codes = {str(r["code"]) for r in records}
    if cpython_accepts(source) and limits.nesting_depth(limits.python_tree(source))[0] <= limits.MAX_DEPTH:
        assert TRIGGER_CODES <= codes and "AF001" not in codes, records
    elif "AF001" in codes:
        message = str(records[0]["message"])
        assert message.startswith((TOO_DEEP, "cannot parse file:")), message


@settings(SETTINGS, max_examples=15)
@given(grammar_programs())
def test_generated_programs_never_crash_the_linter(source: str) -> None:
    status, records, stderr = lint_in_process(source)
    check_outcome(source, status, records, stderr)


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
