"""Helpers for the operator CLI tests: the installed ``agentfuse`` script run as a subprocess, and
policy files on disk.

The script is the console entry point next to the test interpreter (``.venv/bin/agentfuse``),
run with ``PYTHONPATH`` set to this checkout. ``AGENTFUSE_*`` variables of the test runner's own
environment are dropped, so only what a test sets reaches the command.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.runtime_helpers import REPO

AGENTFUSE = Path(sys.executable).parent / "agentfuse"
OPERATOR_COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["runs", "--json"],
    ["runs", "--stale"],
    ["watch", "--stale-after", "86400"],
    ["report", "--html", "report.html"],
    ["halt", "--agent", "publisher", "--reason", "operator test"],
    ["resume", "--agent", "publisher"],
    ["reconcile", "no-such-run", "--settle-as", "zero", "--reason", "r"],
]
"""Every operator command once, with the arguments it needs besides the store or policy."""


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runner's environment without ``AGENTFUSE_*``, plus ``extra`` and this checkout on the path."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AGENTFUSE_")}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra or {})
    return env


def agentfuse(
    *args: str, cwd: Path, env: Mapping[str, str] | None = None, umask: int | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``agentfuse ARGS`` in ``cwd`` as an operator would (stdout is a pipe, not a TTY)."""
    return subprocess.run(
        [str(AGENTFUSE), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=clean_env(env),
        timeout=120,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),  # noqa: PLW1509 - no threads here
    )


def policy_text(
    *,
    agent: str = "publisher",
    store: str | None = "sqlite:///.agentfuse/state.db",
    daily_usd: str = "20",
    events: str = "events.jsonl",
    webhook: str | None = None,
    stop_file: str | None = None,
) -> str:
    """A valid policy; ``store=None`` leaves the ``store:`` key out (the default store)."""
    lines = [
        "version: 1",
        f"agent: {agent}",
        f"budget: {{run_usd: 5, daily_usd: {daily_usd}, max_steps: 200, estimate_usd: 0.02}}",
        "breaker: {failure_threshold: 5, cooldown_s: 300}",
        "fail_fast: {max_attempts: 3, halt_on: [PermissionError]}",
        f"events: {{path: '{events}'}}",
    ]
    if store is not None:
        lines.append(f"store: '{store}'")
    if webhook is not None:
        lines.append(f"alerts: {{webhook: '{webhook}'}}")
    if stop_file is not None:
        lines.append(f"kill_switch: {{stop_file: '{stop_file}'}}")
    return "\n".join(lines) + "\n"


def write_policy_file(folder: Path, name: str = "policy.yaml", **options: str | None) -> Path:
    """``folder/name`` holding :func:`policy_text` (the folder is created)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(policy_text(**options), encoding="utf-8")  # type: ignore[arg-type]
    return path
