"""Idempotent inbox: ``guard.claim()`` takes a message durably BEFORE the work (real processes)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agentfuse import enforce
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.runtime_helpers import REPO, make_policy, store_url
from tests.test_operator_cli import wait_until, write_policy

INBOX_WORKER = f"""
import sys, time
sys.path.insert(0, {str(REPO)!r})
from pathlib import Path
from agentfuse import enforce
policy, processed, hang_on = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
guard = enforce(policy)
for message_id in ("m1", "m2", "m3"):
    with guard.claim(message_id) as fresh:
        if not fresh:
            print("skipped", message_id, flush=True)
            continue
        with processed.open("a") as out:
            out.write(message_id + "\\n")
        if message_id == hang_on:
            time.sleep(3600)  # stuck mid-message until killed
guard.close()
"""


def processed_ids(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split() if path.exists() else []


def test_a_worker_killed_mid_message_does_not_process_it_again_after_restart(tmp_path: Path) -> None:
    policy = write_policy(tmp_path)
    processed = tmp_path / "processed.txt"
    first = subprocess.Popen(
        [sys.executable, "-c", INBOX_WORKER, str(policy), str(processed), "m2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_until(lambda: processed_ids(processed) == ["m1", "m2"])
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate(timeout=30)
    restarted = subprocess.run(
        [sys.executable, "-c", INBOX_WORKER, str(policy), str(processed), "none"],
        capture_output=True, text=True, timeout=60,
    )
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.split("\n")[:2] == ["skipped m1", "skipped m2"]
    assert processed_ids(processed) == ["m1", "m2", "m3"]  # each exactly once


def test_a_claim_expires_after_its_ttl_and_is_scoped_to_the_agent(tmp_path: Path) -> None:
    now = [1_800_000_000.0]
    url = store_url(tmp_path / "state.db")
    guard = enforce(make_policy(agent="inbox"), store=url, clock=lambda: now[0], claim_ttl_s=60)
    other = enforce(make_policy(agent="other"), store=url, clock=lambda: now[0])
    with guard.claim("msg-1") as fresh:
        assert fresh
    with guard.claim("msg-1") as fresh:
        assert not fresh
    with other.claim("msg-1") as fresh:
        assert fresh  # another agent's inbox
    now[0] += 59
    with guard.claim("msg-1") as fresh:
        assert not fresh
    now[0] += 1
    with guard.claim("msg-1") as fresh:
        assert fresh  # expired: may be taken again
    with guard.claim("msg-2", ttl_s=1) as fresh:
        assert fresh
    now[0] += 1
    with guard.claim("msg-2") as fresh:
        assert fresh
    guard.close()
    other.close()


def test_a_body_that_raises_keeps_its_claim(tmp_path: Path) -> None:
    guard = enforce(make_policy(), store=store_url(tmp_path / "state.db"))
    with pytest.raises(RuntimeError), guard.claim("m") as fresh:
        assert fresh
        raise RuntimeError("failed mid-message")
    with guard.claim("m") as fresh:
        assert not fresh
    with pytest.raises(ValueError, match="positive"), guard.claim("n", ttl_s=0):
        pass
    guard.close()


def test_only_one_of_many_processes_claims_a_message(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    SQLiteStore(db).close()
    script = (
        f"import sys; sys.path.insert(0, {str(REPO)!r})\n"
        "from agentfuse.runtime.stores.sqlite import SQLiteStore\n"
        "import os\n"
        f"store = SQLiteStore({str(db)!r})\n"
        "print(json.dumps([store.claim('a', f'm{i}', run_id='r', pid=os.getpid(), host='h', now=1.0, ttl_s=60)"
        " for i in range(20)]))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", "import json\n" + script], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [json.loads(proc.communicate(timeout=60)[0]) for proc in procs]
    assert [sum(column) for column in zip(*results)] == [1] * 20
