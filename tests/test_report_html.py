"""``agentfuse report --html``: one self-contained file, rendered by headless Chromium."""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from agentfuse import Halted, enforce
from tests.runtime_helpers import run_worker, store_url
from tests.test_operator_cli import agentfuse_cli, write_policy

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def chromium() -> str:
    """The Chromium binary, or skip (fail under ``AGENTFUSE_REQUIRE_CHROMIUM=1``, as in CI)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("AGENTFUSE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(f"{message}; AGENTFUSE_REQUIRE_CHROMIUM=1 requires it")
        pytest.skip(message)
    return binary


@pytest.fixture()
def report(tmp_path: Path) -> Path:
    """A report of a store with spend, failures, refusals, a breaker trip and a halt."""
    policy = write_policy(tmp_path, extra="timezone: UTC\n")
    run_worker({"policy_file": str(policy), "max_calls": 4, "estimate_usd": "0.50", "cost_usd": "0.40"})
    guard = enforce(policy)
    for attempt in range(6):
        try:
            with guard.step(action=f"post-{attempt}"):
                raise TimeoutError("provider timed out")
        except (TimeoutError, Halted):
            pass
    guard.halt("<script>alert('x')</script> runaway bill", scope_agent=True)
    guard.close()
    out = tmp_path / "report.html"
    result = agentfuse_cli("report", "--html", str(out), "--since", "7d", "--policy", str(policy))
    assert result.returncode == 0, result.stderr
    return out


def test_report_is_self_contained_and_holds_every_chart(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    assert not re.search(r"\b(?:src|href)\s*=", text, re.IGNORECASE)
    assert "http://" not in text and "https://" not in text and "@import" not in text and "<script" not in text
    assert "&lt;script&gt;" in text  # the halt reason is escaped, not run
    assert len(re.findall(r'<svg class="chart spend"', text)) == 1
    assert len(re.findall(r'<rect class="bar"', text)) >= 8  # 8 days of spend + reason bars
    assert '<line class="cap"' in text and "daily cap $20" in text
    assert '<svg class="chart timeline"' in text and 'class="mark breaker_open"' in text
    assert 'class="halt-span"' in text
    assert '<svg class="chart bars refusals"' in text and "circuit_open" in text
    assert '<svg class="chart bars failures"' in text and "TimeoutError" in text


def test_report_renders_in_headless_chromium(report: Path, tmp_path: Path) -> None:
    binary = chromium()
    screenshot = tmp_path / "report.png"
    common = [binary, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    shot = subprocess.run(
        [*common, f"--screenshot={screenshot}", "--window-size=1200,1600", report.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert screenshot.exists(), shot.stderr[-2000:]
    png = screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", png[16:24]) == (1200, 1600)
    assert len(png) > 20_000  # a blank page compresses to a few KiB
    dom = subprocess.run(
        [*common, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert dom.stdout.count("<svg") == 4  # spend, timeline, refusals, failures
    assert 'class="cap"' in dom.stdout and 'class="halt-span"' in dom.stdout


def test_report_from_a_store_alone_says_the_event_log_is_missing(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "store-only.html"
    result = agentfuse_cli("report", "--html", str(out), "--store", store_url(tmp_path / "state.db"))
    assert result.returncode == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert '<svg class="chart spend"' in text and '<line class="cap"' not in text
    assert "no event log read" in text
    assert 'class="halt-span"' in text  # current halts come from the store


def test_report_to_an_unwritable_path_fails_cleanly(report: Path, tmp_path: Path) -> None:
    out = tmp_path / "missing" / "r.html"
    result = agentfuse_cli("report", "--html", str(out), "--store", store_url(tmp_path / "state.db"))
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr
