"""Fuzzing the policy loader: generated, mutated and garbage policy text never ends in a traceback.

A bounded run (a few seconds; ``AGENTFUSE_FUZZ_SCALE`` multiplies the examples); the long run
is bench/policy_fuzz.py (bench/RESULTS.md). Every text either loads into a Policy whose numbers
are within the stores' bounds, or raises PolicyError whose issues carry file:line:col; the
file-based checks agree; ``agentfuse check-policy`` exits 0 or 2, with nothing on stderr; and
no tag is ever constructed (the ``!!python/object/apply`` tags would create a marker file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agentfuse.runtime.policy_loader import policy_issues
from tests.policy_strategies import (
    REPO,
    UNSET_PREFIX,
    check_text,
    garbage,
    mutated_examples,
    structured_policies,
)

SCALE = float(os.environ.get("AGENTFUSE_FUZZ_SCALE", "1"))
NO_ENVIRONMENT: dict[str, str] = {}
MARKER_DIR = Path(os.environ.get("TMPDIR", "/tmp")) / f"agentfuse-policy-fuzz-{os.getpid()}"
MARKER = MARKER_DIR / "tag-was-executed"


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=None,
        database=None,  # nothing written into the repository
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )


@pytest.fixture(scope="module", autouse=True)
def marker_dir() -> Iterator[Path]:
    """The folder the executing tags aim at; it must still be empty after every example."""
    MARKER_DIR.mkdir(parents=True, exist_ok=True)
    yield MARKER_DIR
    leftover = list(MARKER_DIR.iterdir())
    for path in leftover:
        path.unlink()
    MARKER_DIR.rmdir()
    assert leftover == [], "a tag in a policy was executed"


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "policy.yaml"


PLACEHOLDER_AGENT = 'version: 1\nagent: "${AF_FUZZ_UNSET}"\nbudget: {run_usd: 0.01}\nbreaker: {}\nfail_fast: {}\n'
"""Found by the long run: the linter's mode raised TypeError on it (no agent for the Policy)."""


@fuzz_settings(150)
@given(text=structured_policies(MARKER))
@example(text=PLACEHOLDER_AGENT)
def test_structured_policies_load_or_fail_with_located_issues(text: str, scratch: Path) -> None:
    check_text(text, scratch, NO_ENVIRONMENT)
    assert not MARKER.exists()


@fuzz_settings(100)
@given(text=mutated_examples())
def test_mutated_example_policies_load_or_fail_with_located_issues(text: str, scratch: Path) -> None:
    check_text(text, scratch, NO_ENVIRONMENT)


@fuzz_settings(200)
@given(data=garbage())
def test_garbage_fails_with_located_issues(data: str | bytes, scratch: Path) -> None:
    check_text(data, scratch, NO_ENVIRONMENT)


@fuzz_settings(2)
@given(texts=st.lists(st.one_of(structured_policies(MARKER), mutated_examples(), garbage()), min_size=10, max_size=20))
def test_check_policy_cli_agrees_and_never_shows_a_traceback(
    texts: list[str | bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """One real ``agentfuse check-policy`` run over a batch of files (an interpreter per file
    would cost a second each)."""
    folder = tmp_path_factory.mktemp("cli")
    files = []
    valid = []
    for number, text in enumerate(texts):
        path = folder / f"p{number}.yaml"
        path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
        valid.append(policy_issues(path, environ=NO_ENVIRONMENT) == [])
        files.append(path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFUSE_", UNSET_PREFIX))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "check-policy", *map(str, files)],
        capture_output=True, text=True, timeout=120, env=env, cwd=folder,
    )
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""
    assert result.returncode == (0 if all(valid) else 2)
    ok_lines = {line for line in result.stdout.splitlines() if line.endswith(": ok")}
    assert ok_lines == {f"{path}: ok" for path, good in zip(files, valid) if good}
    assert not MARKER.exists()


def test_an_unset_variable_as_the_agent_name_is_a_placeholder_in_the_linters_mode(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(PLACEHOLDER_AGENT)
    assert policy_issues(path, environ=NO_ENVIRONMENT, unset_ok=True) == []
    [issue] = policy_issues(path, environ=NO_ENVIRONMENT)
    assert (issue.line, issue.message) == (2, "agent uses ${AF_FUZZ_UNSET}, which is not set")
