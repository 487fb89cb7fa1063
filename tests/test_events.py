"""The JSONL event log: line shape, redaction, rotation by size and by day, isolation."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfuse.runtime.events import EventLog
from agentfuse.runtime.redaction import redact, redact_url
from agentfuse.runtime.policy import Breaker, Budget, Events, FailFast, Policy
from agentfuse.runtime.policy_loader import load_policy
from tests.runtime_helpers import REPO


class FakeClock:
    """Epoch seconds that only move when the test says so."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start.timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
        microsecond: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=dt.timezone.utc)


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def all_lines_oldest_first(path: Path) -> list[dict[str, Any]]:
    """Every line of a rotated log: backups ``.N`` (oldest) to ``.1``, then the live file."""
    backups = sorted(path.parent.glob(path.name + ".*"), key=lambda p: -int(p.suffix[1:]))
    return [line for file in [*backups, path] if file.exists() for line in read_lines(file)]


def test_emit_writes_one_json_line_and_returns_it(tmp_path: Path) -> None:
    clock = FakeClock(utc(2026, 3, 1, 12, 30, 5, 123456))
    log = EventLog(tmp_path / "events.jsonl", clock=clock)
    returned = log.emit("step_settled", agent="publisher", run="r1", reason=None,
                        cost_usd=Decimal("0.0125"), steps=3)
    log.close()
    assert read_lines(tmp_path / "events.jsonl") == [returned]
    assert returned == {"ts": "2026-03-01T12:30:05.123Z", "agent": "publisher", "run": "r1",
                        "event": "step_settled", "reason": None, "cost_usd": "0.0125", "steps": 3}
    assert list(returned)[:5] == ["ts", "agent", "run", "event", "reason"]


def test_values_are_made_json_safe_consistently(tmp_path: Path) -> None:
    log = EventLog(None)
    event = log.emit("x", agent="a", run=None, money=[Decimal("1.10"), Decimal("0")],
                     where=tmp_path, error=PermissionError("no"), ratio=float("nan"),
                     tags={"b", "a"}, pair=(1, 2), when=utc(2026, 1, 2))
    assert event["money"] == ["1.10", "0"]
    assert event["where"] == str(tmp_path)
    assert event["error"] == "PermissionError: no"
    assert event["ratio"] == "nan"
    assert event["tags"] == ["a", "b"]
    assert event["pair"] == [1, 2]
    assert event["when"] == "2026-01-02T00:00:00+00:00"
    json.dumps(event, allow_nan=False)


def test_no_path_means_no_file_but_events_are_returned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    log = EventLog(None)
    assert log.emit("halt", agent="a", run="r", reason="budget")["reason"] == "budget"
    log.close()
    assert list(tmp_path.iterdir()) == []


def test_file_is_private_and_its_folder_is_created(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "events.jsonl"
    log = EventLog(path)
    log.emit("x", agent="a", run=None)
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_figures_may_not_shadow_the_fixed_fields() -> None:
    with pytest.raises(TypeError, match="ts"):
        EventLog(None).emit("x", agent="a", run=None, ts="yesterday")


def test_logs_are_private_loggers_that_touch_no_global_logging(tmp_path: Path) -> None:
    seen: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    root_handler = Collect()
    logging.getLogger().addHandler(root_handler)
    registered_before = set(logging.Logger.manager.loggerDict)
    try:
        first = EventLog(tmp_path / "a.jsonl")
        second = EventLog(tmp_path / "b.jsonl")
        first.emit("only_in_a", agent="a", run=None)
        second.emit("only_in_b", agent="b", run=None)
        first.close()
        second.close()
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert seen == []
    assert set(logging.Logger.manager.loggerDict) == registered_before
    assert [e["event"] for e in read_lines(tmp_path / "a.jsonl")] == ["only_in_a"]
    assert [e["event"] for e in read_lines(tmp_path / "b.jsonl")] == ["only_in_b"]


def test_an_unwritable_log_never_raises_into_the_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    path.mkdir()  # a directory where the file should be
    log = EventLog(path)
    assert log.emit("x", agent="a", run=None)["event"] == "x"
    log.close()
    err = capsys.readouterr().err
    assert "cannot write event log" in err and "Traceback" not in err


def test_size_rotation_keeps_every_line_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=300, backup_count=50)
    for i in range(40):
        log.emit("step", agent="a", run="r", i=i)
    log.close()
    backups = list(tmp_path.glob("events.jsonl.*"))
    assert len(backups) >= 5
    assert all(p.stat().st_size <= 300 for p in [*backups, path])
    assert [e["i"] for e in all_lines_oldest_first(path)] == list(range(40))
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in backups)


def test_size_rotation_deletes_backups_beyond_backup_count(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=200, backup_count=2)
    for i in range(40):
        log.emit("step", agent="a", run="r", i=i)
    log.close()
    assert sorted(p.name for p in tmp_path.glob("events.jsonl*")) == [
        "events.jsonl", "events.jsonl.1", "events.jsonl.2"]
    kept = [e["i"] for e in all_lines_oldest_first(path)]
    assert kept == list(range(40 - len(kept), 40))


def test_day_rotation_starts_a_new_file_at_utc_midnight(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    clock = FakeClock(utc(2026, 5, 1, 23, 59, 59))
    log = EventLog(path, rotate_when="midnight", clock=clock)
    log.emit("late", agent="a", run=None)
    clock.advance(0.5)
    log.emit("later_same_day", agent="a", run=None)
    clock.advance(1.0)
    log.emit("next_day", agent="a", run=None)
    log.close()
    assert [e["event"] for e in read_lines(path.with_name("events.jsonl.1"))] == [
        "late", "later_same_day"]
    assert [(e["event"], e["ts"]) for e in read_lines(path)] == [
        ("next_day", "2026-05-02T00:00:00.500Z")]


def test_day_rotation_and_size_rotation_together(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    clock = FakeClock(utc(2026, 5, 1, 8))
    log = EventLog(path, max_bytes=250, backup_count=50, rotate_when="D", clock=clock)
    for i in range(10):
        log.emit("day1", agent="a", run=None, i=i)
    clock.advance(86_400)
    log.emit("day2", agent="a", run=None, i=10)
    log.close()
    assert [e["event"] for e in read_lines(path)] == ["day2"]
    assert [e["i"] for e in all_lines_oldest_first(path)] == list(range(11))
    assert len(list(tmp_path.glob("events.jsonl.*"))) >= 3


def test_a_log_reopened_on_a_later_day_rotates_yesterdays_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    yesterday = utc(2026, 5, 1, 12)
    first = EventLog(path, rotate_when="midnight", clock=FakeClock(yesterday))
    first.emit("before_restart", agent="a", run=None)
    first.close()
    os.utime(path, (yesterday.timestamp(), yesterday.timestamp()))
    second = EventLog(path, rotate_when="midnight", clock=FakeClock(utc(2026, 5, 2, 9)))
    second.emit("after_restart", agent="a", run=None)
    second.close()
    assert [e["event"] for e in read_lines(path.with_name("events.jsonl.1"))] == ["before_restart"]
    assert [e["event"] for e in read_lines(path)] == ["after_restart"]


def test_unknown_rotate_when_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rotate_when must be one of S, M, H, D, midnight, W0"):
        EventLog(tmp_path / "e.jsonl", rotate_when="weekly")


@pytest.mark.parametrize(
    "rotate_when, last_of_old, first_of_new",
    [
        ("H", utc(2026, 5, 1, 13, 59, 59), utc(2026, 5, 1, 14)),
        ("midnight", utc(2026, 5, 1, 23, 59, 59), utc(2026, 5, 2)),
        ("W0", utc(2026, 5, 3, 23, 59, 59), utc(2026, 5, 4)),  # Sunday -> Monday
        ("w4", utc(2026, 5, 7, 23, 59, 59), utc(2026, 5, 8)),  # Thursday -> Friday
    ],
)
def test_every_policy_rotation_interval_rotates_at_its_utc_boundary(
    tmp_path: Path, rotate_when: str, last_of_old: dt.datetime, first_of_new: dt.datetime
) -> None:
    path = tmp_path / "events.jsonl"
    clock = FakeClock(last_of_old - dt.timedelta(minutes=50))
    log = EventLog(path, rotate_when=rotate_when, clock=clock)
    log.emit("old_a", agent="a", run=None)
    clock.now = last_of_old.timestamp()
    log.emit("old_b", agent="a", run=None)
    clock.now = first_of_new.timestamp()
    log.emit("new", agent="a", run=None)
    log.close()
    assert [e["event"] for e in read_lines(path.with_name("events.jsonl.1"))] == ["old_a", "old_b"]
    assert [e["event"] for e in read_lines(path)] == ["new"]


def test_a_second_writer_follows_a_size_rotation_instead_of_rotating_again(tmp_path: Path) -> None:
    """Two processes appending to one log: within a second of one rotating, the other follows."""
    path = tmp_path / "events.jsonl"
    clock = FakeClock(utc(2026, 5, 1, 8))
    rotating = EventLog(path, max_bytes=400, backup_count=50, clock=clock)
    other = EventLog(path, max_bytes=400, backup_count=50, clock=clock)
    other.emit("other_first", agent="b", run=None)
    for i in range(6):
        rotating.emit("filler", agent="a", run=None, i=i)
    assert path.with_name("events.jsonl.1").exists()
    clock.advance(1.0)
    other.emit("other_after_rotation", agent="b", run=None)
    rotating.close()
    other.close()
    assert [e["event"] for e in read_lines(path)][-2:] == ["filler", "other_after_rotation"]
    events = [e["event"] for e in all_lines_oldest_first(path)]
    assert events.count("filler") == 6 and events.count("other_first") == 1


def test_two_writers_rotate_once_at_midnight(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    clock = FakeClock(utc(2026, 5, 1, 23, 59, 59))
    first = EventLog(path, rotate_when="midnight", clock=clock)
    second = EventLog(path, rotate_when="midnight", clock=clock)
    first.emit("first_day1", agent="a", run=None)
    second.emit("second_day1", agent="b", run=None)
    clock.advance(2.0)
    first.emit("first_day2", agent="a", run=None)
    second.emit("second_day2", agent="b", run=None)
    first.close()
    second.close()
    assert [e["event"] for e in read_lines(path.with_name("events.jsonl.1"))] == [
        "first_day1", "second_day1"]
    assert [e["event"] for e in read_lines(path)] == ["first_day2", "second_day2"]
    assert not path.with_name("events.jsonl.2").exists()


WRITER = """
import sys
from pathlib import Path
from agentfuse.runtime.events import EventLog
log = EventLog(Path(sys.argv[1]), max_bytes=1500, backup_count=300)
for i in range(int(sys.argv[3])):
    log.emit("line", agent=sys.argv[2], run=None, i=i)
log.close()
"""


@pytest.mark.slow
def test_processes_rotating_one_log_together_lose_no_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{n}", "400"], cwd=REPO,
                         stderr=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    errors = [writer.communicate(timeout=120)[1] for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0, 0]
    assert errors == ["", "", ""]
    lines = all_lines_oldest_first(path)
    for n in range(3):
        assert sorted(e["i"] for e in lines if e["agent"] == f"w{n}") == list(range(400))
    assert len(list(tmp_path.glob("events.jsonl.*"))) >= 30


@pytest.mark.parametrize(
    "text, secret, kept",
    [
        ("https://hooks.slack.com/services/T0001/B0002/XXXXsecretXXXX", "XXXXsecretXXXX",
         "hooks.slack.com"),
        ("https://discord.com/api/webhooks/123456/tok-en_SECRET", "tok-en_SECRET", "discord.com"),
        ("https://discordapp.com/api/webhooks/123456/tokenSECRET", "tokenSECRET", "discordapp.com"),
        ("https://ntfy.sh/my-private-topic-8f3k", "my-private-topic-8f3k", "ntfy.sh"),
        ("redis://:hunter2@cache.internal:6379/0", "hunter2", "cache.internal:6379"),
        ("rediss://default:s3cr3t!@redis.example.com:6380", "s3cr3t!", "redis.example.com"),
        ("store at https://bob:pa55word@example.com/x failed", "pa55word", "bob"),
        ("connect password=hunter2 host=db", "hunter2", "host=db"),
        ("GET /v1?api_key=AIzaSyD-abcdef&x=1", "AIzaSyD-abcdef", "x=1"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload", "eyJhbGciOiJIUzI1NiJ9", "Bearer"),
        ("key sk-proj-abcdefghijklmnopqrstuvwx in env", "abcdefghijklmnopqrstuvwx", "in env"),
        ("https://api.telegram.org/bot123:ABCdef/sendMessage", "123:ABCdef", "sendMessage"),
    ],
)
def test_redact_removes_credentials_and_keeps_the_rest(text: str, secret: str, kept: str) -> None:
    cleaned = redact(text)
    assert secret not in cleaned
    assert kept in cleaned
    assert "***" in cleaned


@pytest.mark.parametrize(
    "text", ["budget of run r1 exceeded: $5.01 > $5.00", "https://example.com/docs/page",
             "redis://localhost:6379/0", ""]
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    assert redact(text) == text


def test_redact_url_keeps_only_scheme_and_host() -> None:
    assert redact_url("https://ntfy.example.org/alerts-x7Q") == "https://ntfy.example.org/***"
    assert redact_url("http://u:p@127.0.0.1:8080/t?auth=1") == "http://127.0.0.1:8080/***"
    assert redact_url("https://example.org") == "https://example.org"
    assert "hunter2" not in redact_url("not a url password=hunter2")


def test_emit_redacts_every_string_figure_and_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path)
    log.emit("store_error", agent="a", run="r", reason="cannot reach redis://:hunter2@h:6379",
             store="redis://:hunter2@h:6379/0",
             nested={"hooks": ["https://hooks.slack.com/services/T1/B2/SeCrEt"]},
             error=ConnectionError("redis://user:hunter2@h refused"))
    log.close()
    text = path.read_text("utf-8")
    assert "hunter2" not in text and "SeCrEt" not in text
    event = read_lines(path)[0]
    assert event["store"] == "redis://:***@h:6379/0"
    assert event["nested"]["hooks"] == ["https://hooks.slack.com/services/***"]


def test_from_policy_resolves_the_path_next_to_the_policy(tmp_path: Path) -> None:
    policy = Policy(agent="a", budget=Budget(), breaker=Breaker(), fail_fast=FailFast(),
                    events=Events(path="logs/ev.jsonl", max_bytes=1234, backup_count=2,
                                  rotate_when="midnight"),
                    source=tmp_path / "policy.yaml")
    log = EventLog.from_policy(policy)
    log.emit("x", agent="a", run=None)
    log.close()
    assert log.path == tmp_path / "logs" / "ev.jsonl"
    assert read_lines(tmp_path / "logs" / "ev.jsonl")[0]["event"] == "x"


def test_from_policy_without_a_path_writes_nothing(tmp_path: Path) -> None:
    policy = Policy(agent="a", budget=Budget(), breaker=Breaker(), fail_fast=FailFast(),
                    events=Events(path=None), source=tmp_path / "policy.yaml")
    log = EventLog.from_policy(policy)
    assert log.path is None
    log.emit("x", agent="a", run=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "rotate_when", ["S", "M", "H", "D", "midnight", "MIDNIGHT", "W0", "W3", "w6", "null"]
)
def test_every_interval_the_policy_loader_accepts_builds_an_event_log(
    tmp_path: Path, rotate_when: str
) -> None:
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(
        "version: 1\nagent: a\nbudget: {run_usd: 1.0}\nbreaker: {failure_threshold: 3}\n"
        "fail_fast: {max_attempts: 1}\n"
        f"events: {{path: logs/events.jsonl, max_bytes: 4096, backup_count: 3,"
        f" rotate_when: {rotate_when}}}\n"
    )
    log = EventLog.from_policy(load_policy(policy_file, environ={}))
    log.emit("x", agent="a", run=None)
    log.close()
    assert read_lines(tmp_path / "logs" / "events.jsonl")[0]["event"] == "x"


def test_lines_made_apart_are_written_together_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, clock=lambda: 1_800_000_000.25)
    first = log.line("settled", agent="a", run="r1", cost_micros=7)
    second = log.line("allowed", agent="a", run="r2", action="draft")
    assert not path.exists() or path.read_text() == ""  # made, not written
    log.write([first, second])
    log.write([])  # nothing to write is not an empty line
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [first, second]
    assert [line["event"] for line in lines] == ["settled", "allowed"] and lines[0]["ts"] == "2027-01-15T08:00:00.250Z"


def test_lines_are_byte_for_byte_what_the_json_module_writes(tmp_path: Path) -> None:
    """A line is what ``json.dumps`` writes (compact, ASCII), whatever the values."""
    log = EventLog(tmp_path / "e.jsonl")
    figures: dict[str, Any] = {
        "text": "caf\u00e9 \"quoted\"\n\ttab \u2603 \U0001f600",
        "big": 10**30,
        "negative": -7,
        "ratio": 0.1 + 0.2,
        "tiny": 5e-324,
        "nan": float("nan"),
        "flag": False,
        "nothing": None,
        "nested": {"list": [1, 2.5, "x", None, {"deep": True}], "empty": {}},
        "money": Decimal("0.012"),
    }
    written = log.emit("mixed", agent="a", run="r", reason="why", **figures)
    log.close()
    line = (tmp_path / "e.jsonl").read_text("utf-8").rstrip("\n")
    assert line == json.dumps(written, separators=(",", ":"))
    assert json.loads(line)["text"] == figures["text"]
    assert json.loads(line)["big"] == 10**30


def test_remembered_redactions_never_let_a_secret_through(tmp_path: Path) -> None:
    """Strings are redacted the same on the first and the thousandth line, past the memory's size."""
    log = EventLog(tmp_path / "e.jsonl")
    secret_url = "https://hooks.slack.com/services/T000/B000/XXXXXXXXSECRET"
    for index in range(3000):
        log.emit("tick", agent="a", run="r", action=f"step-{index % 1500}", webhook=secret_url, reason=secret_url)
    log.close()
    text = (tmp_path / "e.jsonl").read_text("utf-8")
    assert "XXXXXXXXSECRET" not in text
    lines = read_lines(tmp_path / "e.jsonl")
    assert len(lines) == 3000
    assert {line["webhook"] for line in lines} == {redact(secret_url)}
    assert [line["action"] for line in lines[1500:1503]] == ["step-0", "step-1", "step-2"]


def test_a_long_string_is_redacted_every_time(tmp_path: Path) -> None:
    log = EventLog(None)
    long_text = "x" * 500 + " password=hunter2"
    assert log.emit("e", agent="a", run=None, detail=long_text)["detail"].endswith("password=***")
    assert log.emit("e", agent="a", run=None, detail=long_text)["detail"].endswith("password=***")
