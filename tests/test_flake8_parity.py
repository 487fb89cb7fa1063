"""``flake8 --select AF`` and ``agentfuse lint`` report the same findings on the same tree."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agentfuse.lint_rules as registry

TREES = Path(__file__).parent / "data" / "trees"
FLAKE8_FORMAT = "%(path)s\t%(row)d\t%(col)d\t%(code)s"

Key = tuple[str, int, int, str]


def flake8_findings(root: Path, *args: str) -> set[Key]:
    result = subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "AF", f"--format={FLAKE8_FORMAT}", *args, "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    found = set()
    for line in result.stdout.splitlines():
        path, row, col, code = line.split("\t")
        found.add((path.removeprefix("./"), int(row), int(col), code))
    return found


def cli_findings(root: Path) -> set[Key]:
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--select", "AF", "--format", "json", "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    return {(r["path"], r["line"], r["col"], r["code"]) for r in json.loads(result.stdout)}


@pytest.mark.slow
def test_parity_tree_gives_identical_findings() -> None:
    cli = cli_findings(TREES / "parity")
    assert {code for *_, code in cli} >= {"AF101", "AF201", "AF202", "AF203", "AF301", "AF401"}
    assert ("scripts/ops.py", 11, 5, "AF401") in cli  # a noqa on a later line of the call does not count
    assert not any(path == "scripts/ops.py" and line == 10 for path, line, *_ in cli)  # bare noqa
    assert cli == flake8_findings(TREES / "parity")


@pytest.mark.slow
def test_every_rule_example_gives_identical_findings(tmp_path: Path) -> None:
    """Each VALID/INVALID example of every registered rule, as one file each."""
    for rule in registry.all_rules():
        for kind in ("VALID", "INVALID"):
            for number, example in enumerate(getattr(rule, kind)):
                (tmp_path / f"{rule.code}_{kind.lower()}_{number}.py").write_text(example)
    cli = cli_findings(tmp_path)
    assert len({path for path, *_ in cli}) >= len(registry.all_rules())
    assert cli == flake8_findings(tmp_path)


@pytest.mark.slow
def test_flake8_jobs_and_its_own_noqa_switch(tmp_path: Path) -> None:
    shutil.copytree(TREES / "parity", tmp_path / "tree")
    root = tmp_path / "tree"
    with_noqa = flake8_findings(root, "-j", "2")
    without_noqa = flake8_findings(root, "--disable-noqa")
    assert with_noqa == cli_findings(root)
    assert without_noqa - with_noqa == {("agents/writer.py", 33, 19, "AF301"), ("scripts/ops.py", 10, 5, "AF401")}
