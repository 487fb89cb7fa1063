"""The framework examples: each runs to a refusal against the stand-in, and each lints clean."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
FRAMEWORKS = {"langchain": "langgraph", "openai_agents": "agents", "pydantic_ai": "pydantic_ai"}
"""Example folder -> the module its framework is imported as."""


@pytest.mark.parametrize("folder", sorted(FRAMEWORKS))
def test_the_example_agent_runs_until_its_sub_agent_is_refused(folder: str, tmp_path: Path) -> None:
    pytest.importorskip(FRAMEWORKS[folder])
    copy = shutil.copytree(EXAMPLES / folder, tmp_path / folder)  # its store and events stay out of the repo
    done = subprocess.run(
        [sys.executable, str(copy / "agent.py")], capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    # planner, researcher, planner: the researcher's own cap (children:) refuses its second call
    assert "stopped by agentfuse: BudgetExceeded in run " in done.stdout
    assert "/researcher\n" in done.stdout
    assert "requests that reached the stand-in provider: 3\n" in done.stdout
    assert (copy / ".agentfuse" / "state.db").is_file()


@pytest.mark.parametrize("folder", sorted(FRAMEWORKS))
def test_the_example_agent_lints_clean(folder: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", str(EXAMPLES / folder)],
        capture_output=True, text=True, timeout=180, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
