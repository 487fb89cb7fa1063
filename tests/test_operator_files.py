"""What agentfuse writes is private, and a failing event log is reported once: event-log folders
0700 and files 0600 and the HTML report 0600 under a umask of 000; a full disk under the event
log costs one stderr line, then an ``event_log_recovered`` event once lines are written again
(a real 64 KiB tmpfs, and ``/dev/full``)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfuse import enforce
from agentfuse.runtime.events import EventLog
from tests.operator_helpers import agentfuse, clean_env, write_policy_file
from tests.runtime_helpers import FakeClient, start_worker

FAILURE_LINE = "agentfuse: cannot write event log"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_under_umask_000_event_log_folders_and_files_and_the_report_are_private(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path / "proj", events="logs/deep/events.jsonl", store="sqlite:///data/deep/state.db")
    worker = start_worker({"policy_file": str(policy), "max_calls": 2}, preexec_fn=lambda: os.umask(0),
                          env=clean_env())
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    logs, data = tmp_path / "proj" / "logs", tmp_path / "proj" / "data"
    assert (mode(logs), mode(logs / "deep"), mode(logs / "deep" / "events.jsonl")) == (0o700, 0o700, 0o600)
    assert (mode(data), mode(data / "deep"), mode(data / "deep" / "state.db")) == (0o700, 0o700, 0o600)
    report = agentfuse("report", "--html", "report.html", "--policy", str(policy), cwd=tmp_path, umask=0)
    assert report.returncode == 0, report.stderr
    assert mode(tmp_path / "report.html") == 0o600


def test_an_event_log_on_dev_full_prints_one_line_not_one_per_write(capsys: pytest.CaptureFixture[str]) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    log = EventLog(Path("/dev/full"))
    try:
        for index in range(50):
            log.emit("allowed", agent="a", run="r", step=index)
    finally:
        log.close()
    err = capsys.readouterr().err
    assert err.count(FAILURE_LINE) == 1, err
    assert "No space left on device" in err


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs, unmounted afterwards (skipped where mounting is not allowed)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run([mount, "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(mount_point)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def parsed(line: str) -> dict[str, Any] | None:
    try:
        return dict(json.loads(line))
    except ValueError:
        return None


def fill(folder: Path) -> Path:
    """Fill the filesystem of ``folder`` to the last byte; return the filler file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 4096)
        except OSError:
            pass
        try:
            while True:
                out.write(b"\0")
        except OSError:
            pass
    return filler


def test_a_full_event_log_disk_is_reported_once_then_its_recovery_is_logged(
    tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = write_policy_file(tmp_path / "proj", events=str(small_disk / "events.jsonl"))
    guard = enforce(policy)
    client = FakeClient()
    with guard.step() as step:
        client.chat.completions.create(messages=[])
        step.record(cost_usd=0.001)
    filler = fill(small_disk)
    for _ in range(30):
        with guard.step() as step:
            client.chat.completions.create(messages=[])
            step.record(cost_usd=0.001)
    err = capsys.readouterr().err
    assert err.count(FAILURE_LINE) == 1, err
    assert "No space left on device" in err
    filler.unlink()
    with guard.step() as step:
        client.chat.completions.create(messages=[])
        step.record(cost_usd=0.001)
    guard.close()
    assert FAILURE_LINE not in capsys.readouterr().err
    lines = (small_disk / "events.jsonl").read_text().splitlines()
    events = [event for event in map(parsed, lines) if event is not None]
    assert len(lines) - len(events) <= 1  # at most the one line the disk cut short, on a line of its own
    (recovered,) = [event for event in events if event["event"] == "event_log_recovered"]
    assert recovered["agent"] == "publisher" and "No space left on device" in recovered["error"]
    assert recovered["lines_lost"] >= 30
    status = agentfuse("status", "--json", "--policy", str(policy), cwd=tmp_path)
    assert json.loads(status.stdout)["agents"][0]["today"]["used_usd"] == pytest.approx(0.032)  # books intact
