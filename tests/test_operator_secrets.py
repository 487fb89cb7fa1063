"""Secrets never printed: Redis passwords (in the URL's user part or its query), webhook tokens and
values filled in from the environment, in every operator command's output and error, in
``enforce()``'s errors, in ``repr`` of policies and stores, in the event log and the HTML report.
A real password-protected ``redis-server``, real SQLite files, the installed ``agentfuse`` script."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfuse import PolicyError, enforce
from agentfuse.runtime.policy_loader import load_policy
from agentfuse.runtime.stores.redis import RedisStore
from tests.operator_helpers import OPERATOR_COMMANDS, agentfuse, clean_env, write_policy_file
from tests.redis_server import RedisServer, free_port, running_server
from tests.runtime_helpers import recording_webhook, start_worker

PASSWORD = "pw-Zq8sTq4LmN"
TOKEN = "hooktoken-K2v9Xr"

COMMANDS = OPERATOR_COMMANDS


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from running_server(tmp_path_factory.mktemp("redis"), password=PASSWORD)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert PASSWORD not in text and TOKEN not in text, text
        assert "Traceback" not in text, text


def run_agent(policy: Path, env: dict[str, str], calls: int = 2) -> None:
    proc = start_worker({"policy_file": str(policy), "max_calls": calls}, env=clean_env(env))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert_no_secret(out, err)


def test_a_password_in_the_store_query_is_never_printed(tmp_path: Path, server: RedisServer) -> None:
    url = f"redis://127.0.0.1:{server.port}/0?password={PASSWORD}&prefix=q-{tmp_path.name[-12:]}"
    for command in COMMANDS:
        result = agentfuse(*command, "--store", url, cwd=tmp_path)
        assert result.returncode in (0, 1), result.stdout + result.stderr
        assert_no_secret(result.stdout, result.stderr)
    assert_no_secret((tmp_path / "report.html").read_text())
    nobody = f"redis://127.0.0.1:{free_port()}/0?password={PASSWORD}"
    for command in (["status"], ["halt", "--agent", "publisher", "--reason", "r"]):
        for result in (agentfuse(*command, "--store", nobody, cwd=tmp_path),
                       agentfuse(*command, cwd=tmp_path, env={"AGENTFUSE_STORE": nobody})):
            assert result.returncode == 1 and "unavailable" in result.stderr, result.stdout + result.stderr
            assert "password=***" in result.stderr
            assert_no_secret(result.stdout, result.stderr)


@pytest.mark.parametrize(
    "command", [c for c in COMMANDS if c[0] in ("report", "halt") or c == ["status", "--json"]], ids=" ".join
)
def test_a_mistyped_scheme_is_refused_without_printing_the_password(tmp_path: Path, command: list[str]) -> None:
    url = f"redix://:{PASSWORD}@127.0.0.1:6379/0"
    for result in (agentfuse(*command, "--store", url, cwd=tmp_path),
                   agentfuse(*command, cwd=tmp_path, env={"AGENTFUSE_STORE": url})):
        assert result.returncode == 2, result.stdout + result.stderr
        assert "unknown store URL 'redix://:***@127.0.0.1:6379/0'" in result.stderr
        assert_no_secret(result.stdout, result.stderr)


def test_enforce_errors_never_show_the_store_password(tmp_path: Path) -> None:
    policy = write_policy_file(tmp_path)
    with pytest.raises(PolicyError) as argument:
        enforce(policy, store=f"redix://:{PASSWORD}@127.0.0.1:6379/0")
    with pytest.raises(PolicyError) as environment:
        enforce(policy, environ={"AGENTFUSE_STORE": f"redix://u:{PASSWORD}@127.0.0.1:6379/0"})
    for raised in (argument.value, environment.value):
        assert "unknown store URL" in str(raised)
        assert_no_secret(str(raised), repr(raised), *(str(issue) for issue in raised.issues))


def test_repr_of_a_policy_and_a_store_hides_filled_in_passwords_and_the_webhook(
    tmp_path: Path, server: RedisServer
) -> None:
    policy_file = write_policy_file(
        tmp_path,
        store=f"redis://default:${{REDIS_PW}}@127.0.0.1:{server.port}/0?prefix=repr",
        webhook="https://ntfy.example.org/${HOOK_TOKEN}",
    )
    policy = load_policy(policy_file, environ={"REDIS_PW": PASSWORD, "HOOK_TOKEN": TOKEN})
    assert policy.store is not None and PASSWORD in policy.store and TOKEN in str(policy.alerts.webhook)
    assert_no_secret(repr(policy), str(policy), f"{policy!r}", repr(policy.alerts), str([policy]))
    assert "store='redis://default:***@127.0.0.1" in repr(policy)
    assert "webhook='https://ntfy.example.org/***'" in repr(policy.alerts)
    store = RedisStore(f"redis://127.0.0.1:{server.port}/0?password={PASSWORD}&prefix=repr")
    try:
        assert_no_secret(repr(store), str(store.url))
    finally:
        store.close()
    guard = enforce(policy)  # the filled-in password opens the real server
    try:
        assert_no_secret(repr(guard), repr(guard.policy), repr(guard.store))
    finally:
        guard.close()


def test_an_agent_and_every_operator_command_on_a_secret_store_and_webhook_print_no_secret(
    tmp_path: Path, server: RedisServer
) -> None:
    env = {"REDIS_PW": PASSWORD, "HOOK_TOKEN": TOKEN}
    with recording_webhook() as hook:
        policy = write_policy_file(
            tmp_path,
            store=f"redis://:${{REDIS_PW}}@127.0.0.1:{server.port}/0?prefix=all-{tmp_path.name[-12:]}",
            webhook=f"{hook.url}/${{HOOK_TOKEN}}",
        )
        run_agent(policy, env)
        outputs = []
        for command in COMMANDS:
            result = agentfuse(*command, "--policy", str(policy), cwd=tmp_path, env=env)
            assert result.returncode in (0, 1), result.stderr
            outputs += [result.stdout, result.stderr]
        assert hook.arrived.wait(10)  # the halt was alerted: the webhook itself was used
    assert hook.received[0]["path"] == f"/agentfuse/{TOKEN}"
    assert_no_secret(*outputs)
    assert_no_secret((tmp_path / "events.jsonl").read_text(), (tmp_path / "report.html").read_text())
    status = json.loads(agentfuse("status", "--json", "--policy", str(policy), cwd=tmp_path, env=env).stdout)
    assert status["store"].startswith("redis://:***@127.0.0.1")
