"""Numeric options are finite and in range, or exit 2 with a message; JSON output is strict
(never ``NaN`` or ``Infinity``). Every command's options are walked, so a new ``type=float``
option cannot slip in; the named cases run the installed ``agentfuse`` script."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentfuse.cli import build_parser, main
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.operator_helpers import agentfuse, write_policy_file
from tests.runtime_helpers import run_worker

NOT_FINITE = ("nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999")


def options() -> Iterator[tuple[str, argparse.Action]]:
    """(command, option) for every option of every sub-command that converts its text."""
    parser = build_parser()
    (commands,) = [action for action in parser._actions if isinstance(action, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        for action in sub._actions:
            if action.type is not None:
                yield name, action


def strict_json(text: str) -> Any:
    """``json.loads`` that refuses NaN and Infinity (Python's parser accepts them)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    return json.loads(text, parse_constant=refuse)


def test_no_option_is_typed_with_bare_int_or_float() -> None:
    bare = [f"{name} {action.option_strings}" for name, action in options() if action.type in (int, float)]
    assert bare == []


@pytest.mark.parametrize("text", NOT_FINITE)
def test_no_option_takes_a_number_that_is_not_finite(text: str) -> None:
    taken = []
    for name, action in options():
        assert callable(action.type)
        try:
            value = action.type(text)
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
        if isinstance(value, (int, float)):
            taken.append(f"{name} {action.option_strings} took {text!r} as {value!r}")
    assert taken == []


@pytest.fixture()
def policy(tmp_path: Path) -> Path:
    path = write_policy_file(tmp_path / "proj")
    run_worker({"policy_file": str(path), "max_calls": 1})
    return path


@pytest.mark.parametrize("value", [*NOT_FINITE, "0", "-5", "4000d", "99999999999999999999999d", "soon", ""])
@pytest.mark.parametrize(
    "command",
    [
        ["status", "--stale-after"],
        ["runs", "--stale-after"],
        ["watch", "--stale-after"],
        ["reconcile", "r1", "--settle-as", "zero", "--reason", "r", "--stale-after"],
        ["report", "--html", "REPORT", "--since"],
    ],
    ids=lambda command: command[0],
)
def test_a_bad_number_exits_2_with_a_message_before_anything_happens(
    policy: Path, command: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        report = str(policy.parent / "r.html")
        args = [report if arg == "REPORT" else arg for arg in command[:-1]]
        main([*args, f"{command[-1]}={value}", "--policy", str(policy)])  # "-inf" is not an option
    assert exited.value.code == 2
    err = capsys.readouterr().err
    option = command[-1]
    assert f"argument {option}: " in err and ("out of range" in err or "not a duration" in err)
    assert not (policy.parent / "r.html").exists()


def test_the_reported_cases_are_usage_errors_from_the_installed_command(policy: Path, tmp_path: Path) -> None:
    since = agentfuse("report", "--html", "r.html", "--since", "99999999999999999999999d", "--policy", str(policy),
                      cwd=tmp_path)
    assert since.returncode == 2 and "Traceback" not in since.stderr
    assert "'99999999999999999999999d' is out of range: --since must be more than 0" in since.stderr
    assert not (tmp_path / "r.html").exists()
    for command in ("status", "watch"):
        nan = agentfuse(command, "--stale-after", "nan", "--json" if command == "status" else "--alert",
                        "--policy", str(policy), cwd=tmp_path)
        assert nan.returncode == 2 and "Traceback" not in nan.stderr
        assert "'nan' is not a duration for --stale-after" in nan.stderr
    jobs = agentfuse("lint", "-j", "99999999999999999999999", str(tmp_path), cwd=tmp_path)
    assert jobs.returncode == 2 and "--jobs must be at least 1 and at most 1024" in jobs.stderr


def test_json_output_is_strict_and_a_tiny_stale_after_still_finds_a_stale_agent(policy: Path, tmp_path: Path) -> None:
    store = SQLiteStore(policy.parent / ".agentfuse" / "state.db")
    try:
        assert store.heartbeats("publisher")  # the worker beat once
    finally:
        store.close()
    for command in (["status", "--json"], ["runs", "--json"], ["runs", "--stale", "--json"]):
        result = agentfuse(*command, "--stale-after", "0.001", "--policy", str(policy), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        document = strict_json(result.stdout)
        if command[0] == "status":
            assert document["stale_after_s"] == 0.001
    watched = agentfuse("watch", "--stale-after", "0.001", "--policy", str(policy), cwd=tmp_path)
    assert watched.returncode == 1 and "STALE publisher" in watched.stdout
