"""``events: {path: "-"}``: the JSON lines go to stdout (or stderr) of a real agent process."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from agentfuse.runtime.events import EventLog, stream_name
from agentfuse.runtime.policy_loader import load_policy
from agentfuse.operator.status import events_path
from tests.runtime_helpers import REPO

AGENT = """
from agentfuse import Halted, enforce
say = print
say("agent starting", flush=False)
guard = enforce("policy.yaml")
for _ in range(3):
    try:
        with guard.step(action="draft") as step:
            step.record(cost_usd="0.01")
    except Halted:
        say("refused")
guard.close()
"""


def write_policy(folder: Path, events_path: str) -> None:
    (folder / "policy.yaml").write_text(
        "version: 1\nagent: boxed\nbudget: {run_usd: 0.02, estimate_usd: 0.01}\nbreaker: {failure_threshold: 3}\n"
        f"fail_fast: {{max_attempts: 2}}\nevents: {{path: {json.dumps(events_path)}}}\n"
        "store: sqlite:///state.db\n"
    )


def run_agent(folder: Path, **popen: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(AGENT)],
        cwd=folder,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
        **popen,  # type: ignore[arg-type]
    )


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_dash_writes_the_event_lines_to_stdout_in_order_with_the_programs_output(tmp_path: Path) -> None:
    write_policy(tmp_path, "-")
    result = run_agent(tmp_path, capture_output=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "agent starting"  # printed (buffered) before the first event: flushed first
    events = json_lines(result.stdout)
    assert [event["event"] for event in events] == [
        "run_started", "allowed", "settled", "allowed", "settled", "refused", "halt",
    ]
    assert lines.index("refused") > lines.index(json.dumps(events[5], separators=(",", ":")))
    assert all(event["agent"] == "boxed" for event in events)
    assert not (tmp_path / "-").exists() and result.stderr == ""


def test_stderr_sends_them_to_standard_error(tmp_path: Path) -> None:
    write_policy(tmp_path, "stderr")
    result = run_agent(tmp_path, capture_output=True)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == []
    assert [event["event"] for event in json_lines(result.stderr)][:2] == ["run_started", "allowed"]
    assert not (tmp_path / "stderr").exists()


def test_a_closed_stdout_costs_one_line_on_stderr_never_the_agent(tmp_path: Path) -> None:
    write_policy(tmp_path, "-")
    agent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(AGENT).replace("say = print", "say = lambda *args, **kwargs: None")],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert agent.stdout is not None and agent.stderr is not None
    agent.stdout.close()  # nobody reads the events: every write fails with EPIPE
    errors = agent.stderr.read()
    assert agent.wait(timeout=120) == 0, errors
    assert errors.count("agentfuse: cannot write events to stdout") == 1


def test_a_file_named_like_a_stream_is_written_with_a_path(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "stderr")
    log.emit("allowed", agent="a", run="r")
    log.close()
    assert json.loads((tmp_path / "stderr").read_text())["event"] == "allowed"
    assert stream_name("./stderr") is None and stream_name(" - ") == "stdout" and stream_name("STDERR") == "stderr"


@pytest.mark.parametrize("path", ["-", "stdout", "stderr"])
def test_operator_views_read_no_log_file_for_a_stream(tmp_path: Path, path: str) -> None:
    write_policy(tmp_path, path)
    policy = load_policy(tmp_path / "policy.yaml")
    assert policy.events.path == path and events_path(policy) is None
