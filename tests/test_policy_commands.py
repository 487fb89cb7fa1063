"""``agentfuse check-policy`` and ``agentfuse init``, run as real subprocesses."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from agentfuse.runtime.policy_loader import load_policy
from tests.test_policy_cases import (
    DATA,
    EXAMPLE_POLICIES,
    INVALID_POLICIES,
    REPO,
    assert_reported,
    case_id,
    expectations,
)

ISSUE_LINE = re.compile(r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<message>.+)\. Fix: .+$")
MINIMAL = (DATA / "valid" / "minimal.yaml").read_text()


def agentfuse(
    *args: str | Path, cwd: Path, keep: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh interpreter with no AGENTFUSE_* variables but those in ``keep``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFUSE_") or k in keep}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", *map(str, args)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], path: Path) -> list[str]:
    """Exit 2, only well-formed issue lines about ``path`` on stdout, nothing on stderr."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines
    for line in lines:
        match = ISSUE_LINE.match(line)
        assert match and match["path"] == str(path), line
    return lines


@pytest.mark.slow  # one interpreter per file: the acceptance asks for each file's exit status
@pytest.mark.parametrize("path", INVALID_POLICIES, ids=case_id)
def test_check_policy_reports_malformed_file_with_line_and_exit_2(
    path: Path, tmp_path: Path
) -> None:
    lines = assert_clean_failure(agentfuse("check-policy", path, cwd=tmp_path), path)
    for expectation in expectations(path):
        assert_reported(lines, path, expectation)
    assert list(tmp_path.iterdir()) == []  # nothing was written, let alone executed


def test_object_tag_is_not_executed(tmp_path: Path) -> None:
    marker = tmp_path / "executed"
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        MINIMAL + f'store: !!python/object/apply:os.system ["touch {marker}"]\n'
        f'alerts: !!python/object/apply:subprocess.check_call [["touch", "{marker}"]]\n'
    )
    lines = assert_clean_failure(agentfuse("check-policy", policy, cwd=tmp_path), policy)
    assert len(lines) == 2 and all("is not allowed" in line for line in lines)
    assert not marker.exists()


def test_five_megabyte_file_is_refused_unread(tmp_path: Path) -> None:
    policy = tmp_path / "huge.yaml"
    policy.write_text(MINIMAL + "pricing:\n" + "  m: {input: 1, output: 2}\n" * 200_000)
    assert policy.stat().st_size > 5_000_000
    [line] = assert_clean_failure(agentfuse("check-policy", policy, cwd=tmp_path), policy)
    assert f"{policy}:1:1: file is larger than" in line


def test_non_utf8_bytes_are_located(tmp_path: Path) -> None:
    policy = tmp_path / "latin1.yaml"
    policy.write_bytes(MINIMAL.encode() + "kill_switch: {stop_file: ARRÊT}\n".encode("latin-1"))
    line_number = MINIMAL.count("\n") + 1
    [line] = assert_clean_failure(agentfuse("check-policy", policy, cwd=tmp_path), policy)
    assert line.startswith(f"{policy}:{line_number}:29: byte 0xca is not UTF-8")


@pytest.mark.parametrize("content", [b"", b"[1, 2]\n"], ids=["empty", "list"])
def test_empty_or_list_file_fails_cleanly(tmp_path: Path, content: bytes) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(content)
    assert_clean_failure(agentfuse("check-policy", policy, cwd=tmp_path), policy)


def test_example_policies_pass(tmp_path: Path) -> None:
    result = agentfuse("check-policy", *EXAMPLE_POLICIES, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [f"{path}: ok" for path in EXAMPLE_POLICIES]


def test_one_bad_file_among_good_ones_fails_the_run(tmp_path: Path) -> None:
    good, missing = EXAMPLE_POLICIES[0], tmp_path / "missing.yaml"
    bad = DATA / "invalid" / "negative_cap.yaml"
    result = agentfuse("check-policy", good, bad, missing, cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stdout.splitlines()
    assert lines[0] == f"{good}: ok"
    assert any(line.startswith(f"{bad}:") for line in lines)
    assert lines[-1].startswith(f"{missing}:1:1: file not found. Fix: create it with")


def test_secrets_stay_out_of_the_output(tmp_path: Path) -> None:
    for name in ("webhook_not_http", "unknown_store_scheme"):
        result = agentfuse("check-policy", DATA / "invalid" / f"{name}.yaml", cwd=tmp_path)
        assert result.returncode == 2
        assert "hunter2" not in result.stdout + result.stderr


def test_check_policy_reads_the_environment_and_hides_what_it_read(tmp_path: Path) -> None:
    default = REPO / "policies" / "default.yaml"
    env_line = next(
        n for n, line in enumerate(default.read_text().splitlines(), 1) if "WEBHOOK" in line
    )
    os.environ["AGENTFUSE_WEBHOOK"] = "gopher://alerts.example.com/hunter2"
    try:
        result = agentfuse("check-policy", default, cwd=tmp_path, keep=("AGENTFUSE_WEBHOOK",))
    finally:
        del os.environ["AGENTFUSE_WEBHOOK"]
    [line] = assert_clean_failure(result, default)
    assert line.startswith(f"{default}:{env_line}:")
    assert "alerts.webhook must be an http:// or https:// URL (value hidden)" in line
    assert "hunter2" not in line and "alerts.example.com" not in line


def test_check_policy_without_files_is_a_usage_error(tmp_path: Path) -> None:
    result = agentfuse("check-policy", cwd=tmp_path)
    assert result.returncode == 2
    assert "FILE" in result.stderr and "Traceback" not in result.stderr


# -- init ---------------------------------------------------------------------------------------


def test_init_writes_a_commented_policy_that_loads(tmp_path: Path) -> None:
    result = agentfuse("init", "--agent", "publisher", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = tmp_path / "policy.yaml"
    assert "agentfuse check-policy policy.yaml" in result.stdout
    policy = load_policy(written, environ={})
    assert policy.agent == "publisher"
    assert policy.budget.run_usd is not None and policy.budget.daily_usd is not None
    assert policy.alerts.webhook is None
    text = written.read_text()
    assert text.count("\n#") >= 5 and "# rate_limits:" in text
    checked = agentfuse("check-policy", "policy.yaml", cwd=tmp_path)
    assert (checked.returncode, checked.stdout) == (0, "policy.yaml: ok\n")


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    existing = tmp_path / "policy.yaml"
    existing.write_text("# mine\n")
    refused = agentfuse("init", cwd=tmp_path)
    assert refused.returncode == 2
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert existing.read_text() == "# mine\n"
    forced = agentfuse("init", "--force", "--agent", "worker-2", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert load_policy(existing, environ={}).agent == "worker-2"


def test_init_writes_to_a_new_folder_with_a_default_agent(tmp_path: Path) -> None:
    result = agentfuse("init", "--path", "agents/a/policy.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert load_policy(tmp_path / "agents/a/policy.yaml", environ={}).agent == "my-agent"


@pytest.mark.parametrize("agent", ["bad name", "", "x/../y"])
def test_init_refuses_an_invalid_agent_name(tmp_path: Path, agent: str) -> None:
    result = agentfuse("init", "--agent", agent, cwd=tmp_path)
    assert result.returncode == 2
    assert "is not valid. Fix:" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_init_into_a_directory_path_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    result = agentfuse("init", "--force", "--path", "taken", cwd=tmp_path)
    assert result.returncode == 2
    assert "cannot write taken" in result.stderr and "Traceback" not in result.stderr
