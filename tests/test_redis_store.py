"""What only the Redis store has: URLs and secrets, Redis TIME, TTLs, hash tags, scripts, failures."""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib
from redis.crc import key_slot

from agentfuse import StoreUnavailable, enforce
from agentfuse.runtime.errors import PolicyError
from agentfuse.runtime.policy import Events
from agentfuse.runtime.stores import open_store
from agentfuse.runtime.stores import redis_scripts
from agentfuse.runtime.stores.base import BreakerSpec, GateRequest, GateResult, Outcome, RateLimitSpec, Settlement
from agentfuse.runtime.stores.redis import DAY_TTL_S, RedisStore, parse_url, redact_url
from tests.redis_server import RedisServer, free_port, running_server
from tests.runtime_helpers import REPO, FakeClient, make_policy

SECRET = "s3cret-Pa55"
ROTATED = "r0tated-Pa55"


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from running_server(tmp_path_factory.mktemp("redis-auth"), password=SECRET)


def raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host=server.host, port=server.port, password=server.password, decode_responses=True)


def server_time(server: RedisServer) -> float:
    seconds, micros = raw(server).time()
    return seconds + micros / 1e6


def gate_request(rid: str, *, now: float, run_id: str = "r", **options: object) -> GateRequest:
    minute = int(now // 60)
    return GateRequest(rid, "a", run_id, "login", 0, now, "2027-01-15", minute, **options)  # type: ignore[arg-type]


# -- URLs and secrets -------------------------------------------------------------------------------


def test_urls_carry_prefix_and_clock_and_are_validated() -> None:
    assert parse_url("redis://h:1/2?prefix=fleet&clock=client&socket_timeout=3") == (
        "redis://h:1/2?socket_timeout=3", "fleet", "client",
    )
    assert parse_url("rediss://h/0") == ("rediss://h/0", "agentfuse", "redis")
    for bad, message in [
        ("redis://h/0?clock=worker", "clock"),
        ("redis://h/0?prefix=a{b}", "prefix"),
        ("redis://h/0?prefix=", "prefix"),
        ("http://h/0", "not a Redis URL"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_url(bad)


def test_open_store_builds_a_tls_store_with_acl_user_without_showing_the_password() -> None:
    store = open_store(f"rediss://agent-bot:{SECRET}@cache.internal:6380/3?prefix=fleet")
    assert isinstance(store, RedisStore)
    pool = store._client.connection_pool
    assert pool.connection_class is redis.SSLConnection
    kwargs = pool.connection_kwargs
    assert (kwargs["username"], kwargs["password"], kwargs["db"]) == ("agent-bot", SECRET, 3)
    assert SECRET not in repr(store) and "agent-bot:***@cache.internal:6380" in repr(store)
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"
    assert redact_url("redis://:pw@[::1]:6379/0") == "redis://:***@[::1]:6379/0"


def test_a_bad_store_url_in_enforce_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="clock"):
        enforce(make_policy(), store="redis://127.0.0.1:1/0?clock=sometimes")


def test_password_auth_works_and_a_wrong_password_never_leaks(locked_server: RedisServer, tmp_path: Path) -> None:
    good = RedisStore(locked_server.url())
    assert good.open_run("r", agent="a", parent_id=None, cap_micros=None, now=0).run_id == "r"
    wrong_url = locked_server.url().replace(SECRET, "not-the-password")
    with pytest.raises(StoreUnavailable) as refused:
        RedisStore(wrong_url).halts()
    assert "not-the-password" not in str(refused.value) and "***" in str(refused.value)
    events = tmp_path / "events.jsonl"
    policy = make_policy(events=Events(path=str(events)))
    guard = enforce(policy, store=locked_server.url())
    admin = raw(locked_server)
    admin.config_set("requirepass", ROTATED)  # the server's password is rotated under the running agent
    try:
        admin.client_kill_filter(_type="normal", skipme=True)  # its connections must log in again
        client = FakeClient()
        with pytest.raises(StoreUnavailable):
            with guard.step():
                client.chat.completions.create()
        guard.close()
    finally:
        admin.config_set("requirepass", SECRET)
    assert client.calls == 0
    text = events.read_text()
    assert "store_unavailable" in text and "AuthenticationError" in text
    assert SECRET not in text and ROTATED not in text


# -- failing closed ---------------------------------------------------------------------------------


def test_an_unreachable_server_is_refused_quickly_with_bounded_retries() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0")
    started = time.monotonic()
    with pytest.raises(StoreUnavailable, match="unavailable: ConnectionError"):
        store.gate(gate_request("1", now=0.0))
    assert time.monotonic() - started < 5.0
    with pytest.raises(StoreUnavailable):
        enforce(make_policy(), store=f"redis://127.0.0.1:{free_port()}/0")


def test_a_run_whose_data_was_lost_is_refused_not_spent_untracked(redis_server: RedisServer) -> None:
    url = redis_server.url()
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    client = FakeClient()
    with guard.step():
        client.chat.completions.create()
    prefix = url.split("prefix=")[1]
    connection = raw(redis_server)
    for key in connection.scan_iter(f"{prefix}:*"):
        connection.delete(key)
    with pytest.raises(StoreUnavailable, match="appendonly"):
        with guard.step():
            client.chat.completions.create()
    assert client.calls == 1


def test_scripts_are_reloaded_after_the_server_forgets_them(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url())
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=0)
    assert store.gate(gate_request("1", now=0.0)).allowed
    raw(redis_server).script_flush()
    assert store.gate(gate_request("2", now=0.0)).allowed
    assert store.settle(Settlement("1", "a", "r", "login", 5, 0.0, Outcome.SUCCESS)).settled


# -- Redis TIME, TTLs, hash tags --------------------------------------------------------------------


def test_windows_cooldowns_and_deadlines_use_redis_time_not_the_workers_clock(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url())  # clock=redis, the default
    skew = 7200.0  # this worker's clock runs two hours ahead
    before = server_time(redis_server)
    run = store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=time.time() + skew)
    assert before - 1 <= run.started_at <= server_time(redis_server) + 1
    limit = RateLimitSpec("login", max=1, window_s=600, cooldown_s=0)
    assert store.gate(gate_request("1", now=time.time() + skew, rate_limit=limit)).allowed
    skewed_more = store.gate(gate_request("2", now=time.time() + 2 * skew, rate_limit=limit))
    assert skewed_more.refusal is not None and skewed_more.refusal.kind == "rate_limited"
    assert 590 < skewed_more.refusal.figures["retry_after_s"] <= 600
    deadline = store.gate(gate_request("3", now=time.time() + skew, timeout_s=60.0))
    assert deadline.allowed and deadline.remaining_s is not None and 55 < deadline.remaining_s <= 60
    spec = BreakerSpec(failure_threshold=1, cooldown_s=300, probe_lease_s=300)
    store.settle(Settlement("3", "a", "r", "login", 0, time.time(), Outcome.FAILURE, breaker=spec))
    opened_at = store.get_breaker("a").opened_at
    assert opened_at is not None and abs(opened_at - server_time(redis_server)) < 5
    early = store.gate(gate_request("4", now=time.time() + skew, breaker=spec))
    assert early.refusal is not None and early.refusal.kind == "circuit_open"


def test_windows_expire_and_runs_do_not(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url())
    store.open_run("r", agent="a", parent_id=None, cap_micros=None, now=0)
    limit = RateLimitSpec("login", max=2, window_s=900, cooldown_s=1800)
    assert store.gate(gate_request("1", now=0.0, rate_limit=limit, hourly_cap_micros=10)).allowed
    connection = raw(redis_server)
    ttl = connection.ttl
    assert 3600 < ttl(store.key("a", "minutes")) <= 3720
    assert 2700 < ttl(store.key("a", "rate", "login")) <= 2760
    assert DAY_TTL_S - 60 < ttl(store.key("a", "day", "2027-01-15")) <= DAY_TTL_S
    assert ttl(store.key("a", "run", "r")) == -1 and ttl(store.key("a", "ledger", "r")) == -1


def test_every_key_of_an_agent_hashes_to_one_slot(redis_server: RedisServer) -> None:
    url = redis_server.url()
    prefix = url.split("prefix=")[1]
    policy = make_policy(agent="bot:one", rate_limits=[{"action": "login", "max": 5, "window_s": 60}])
    guard = enforce(policy, store=url)
    child = guard.child(run_usd="0.10")
    client = FakeClient()
    for owner in (guard, child):
        with owner.step(action="login", estimate_usd="0.01"):
            client.chat.completions.create()
    with pytest.raises(RuntimeError):
        with guard.step():
            raise RuntimeError("provider down")
    guard.halt("pause")
    keys = sorted(raw(redis_server).scan_iter(f"{prefix}:*"))
    agent_keys = [key for key in keys if key not in (f"{prefix}:runs", f"{prefix}:agents")]
    assert len(agent_keys) >= 9
    assert all(key.startswith(f"{prefix}:{{bot:one}}:") for key in agent_keys)
    assert len({key_slot(key.encode()) for key in agent_keys}) == 1


def test_halts_and_runs_read_back_exactly(redis_server: RedisServer) -> None:
    store = RedisStore(redis_server.url(clock="client"))
    store.open_run("r", agent="a", parent_id=None, cap_micros=30_000, now=1_800_000_000.123456)
    run = store.get_run("r")
    assert run is not None and run.started_at == 1_800_000_000.123456
    refused = store.gate(GateRequest("1", "a", "r", "x", 40_000, 1_800_000_001.5, "2027-01-15", 30_000_000))
    (halt,) = store.halts()
    assert halt == refused.halt
    stored = json.loads(str(raw(redis_server).hget(store.key("a", "halts"), "r")))
    assert stored["figures"] == {"capped_run": "r", "used_usd": "0.00", "estimate_usd": "0.04", "cap_usd": "0.03"}


@pytest.mark.slow
def test_operator_halt_and_resume_work_on_redis_and_never_print_the_password(locked_server: RedisServer) -> None:
    url = locked_server.url()

    def agentfuse(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentfuse", *args], cwd=str(REPO), capture_output=True, text=True, timeout=60
        )

    halted = agentfuse("halt", "--agent", "a", "--reason", "maintenance", "--store", url)
    assert halted.returncode == 0, halted.stderr
    store = RedisStore(url)
    assert [(h.agent, h.run_id, h.reason, h.source) for h in store.halts()] == [("a", "", "maintenance", "operator")]
    assert agentfuse("resume", "--agent", "a", "--store", url).returncode == 0
    assert store.halts() == []
    refused = agentfuse("halt", "--agent", "a", "--reason", "x", "--store", url.replace(SECRET, "wrong-pass"))
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "unavailable" in refused.stderr and "wrong-pass" not in refused.stderr + refused.stdout


# -- the scripts: Lua files shipped with the package, arguments by name -------------------------------


def test_every_lua_file_ships_as_package_data_and_is_loaded_from_it() -> None:
    package = REPO / "agentfuse"
    globs = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["agentfuse"]
    files = sorted(path.relative_to(package).as_posix() for path in (package / "runtime/stores/lua").iterdir())
    assert files and all(any(fnmatch.fnmatch(name, glob) for glob in globs) for name in files)
    used = {part for parts in redis_scripts.PARTS.values() for part in parts}
    assert {f"runtime/stores/lua/{name}.lua" for name in used} == set(files)


def test_the_records_are_the_fields_of_the_stores_values() -> None:
    for record, value in [
        (redis_scripts.GATE_REQUEST, GateRequest), (redis_scripts.SETTLEMENT, Settlement),
        (redis_scripts.BREAKER_SPEC, BreakerSpec), (redis_scripts.RATE_LIMIT_SPEC, RateLimitSpec),
    ]:
        fields = dataclasses.fields(value)
        assert set(record.fields) == {field.name for field in fields}, record
        assert record.optional == {field.name for field in fields if "None" in str(field.type)}, record
    assert set(redis_scripts.GATE_ADMITTED.fields) <= {field.name for field in dataclasses.fields(GateResult)}


def test_a_record_reaches_lua_by_name_and_a_misspelt_field_fails_the_load(redis_server: RedisServer) -> None:
    deferred = Settlement("d", "a", "r", "call", 700, 5.0, Outcome.FAILURE, tokens=None)
    request = GateRequest(
        "1", "a", "r", "login", 12_345, 5.5, "2027-01-15", 0, breaker=BreakerSpec("m", 4, 60.0, 30.0),
        rate_limit=RateLimitSpec("login", 2, 300.0), daily_cap_micros=None, settle_first=(deferred,),
    )
    lua = (
        "local null = cjson.null\n"
        "local req = cjson.decode(ARGV[1])  --: GateRequest\n"
        "local s = req.settle_first[1]  --: Settlement\n"
        "return cjson.encode({req.estimate_micros, req.breaker.failure_threshold, req.rate_limit.window_s,"
        " req.daily_cap_micros, s.cost_micros, s.outcome, s.tokens, s.halt, #req.settle_first})"
    )
    text = redis_scripts.compile_records(lua, redis_scripts.declarations(lua))
    assert "req[9][2]" in text and "s.cost_micros" not in text and "(req[11] ~= null and req[11])" in text
    reply = raw(redis_server).eval(text, 0, json.dumps(redis_scripts.GATE_REQUEST.values(request)))
    assert json.loads(str(reply)) == [12_345, 4, 300, False, 700, "failure", False, False, 1]
    misspelt = "local req = wire[2]  --: GateRequest\nreturn req.estimate_micro -- req.not_checked_in_comments"
    with pytest.raises(ValueError, match="record GateRequest has no field 'estimate_micro'"):
        redis_scripts.compile_records(misspelt, redis_scripts.declarations(misspelt))
    with pytest.raises(TypeError, match="record Store takes"):
        redis_scripts.STORE.pack(prefix="p")
