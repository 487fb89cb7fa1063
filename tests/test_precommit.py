"""The hooks in .pre-commit-hooks.yaml, run by real pre-commit from this checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def git(*args: str, cwd: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A git repository with one bad Python file and one incomplete policy file."""
    root = tmp_path / "project"
    (root / "agents").mkdir(parents=True)
    (root / "agent.py").write_text('import subprocess\n\nsubprocess.run(["rm", "-rf", "/srv/data"])\n')
    (root / "fine.py").write_text("print('hello')\n")
    (root / "agents" / "policy.yaml").write_text("version: 1\nagent: writer\n")
    (root / "config.yaml").write_text("not: a policy\n")
    git("init", "-q", cwd=root)
    git("add", ".", cwd=root)
    return root


def try_repo(project: Path, hook: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"), "PIP_NO_INPUT": "1"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        [*PRE_COMMIT, "try-repo", str(REPO_ROOT), hook, "--all-files", "--color", "never"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git")
def test_try_repo_agentfuse_hook_fails_on_the_bad_file(project: Path, tmp_path: Path) -> None:
    result = try_repo(project, "agentfuse", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "agent.py:3:1: AF401" in output
    assert "fine.py:" not in output
    assert "policy.yaml" not in output


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("git") is None, reason="pre-commit needs git")
def test_try_repo_policy_hook_checks_only_policy_files(project: Path, tmp_path: Path) -> None:
    result = try_repo(project, "agentfuse-policy", tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "agents/policy.yaml:1:1: AF103 the policy needs budget" in output
    assert "config.yaml" not in output and "agent.py" not in output


def test_manifest_and_project_config_are_valid() -> None:
    checks = (("validate-manifest", ".pre-commit-hooks.yaml"), ("validate-config", ".pre-commit-config.yaml"))
    for command, path in checks:
        result = subprocess.run([*PRE_COMMIT, command, str(REPO_ROOT / path)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
