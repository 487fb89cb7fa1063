"""Two hosts on one machine: network namespaces joined by a veth pair, loopback-range addresses.

Host A runs redis-server and a worker; host B runs a worker. Both spend against one agent's
daily cap through Redis. Host B is cut off (its link goes down) for a while: its calls are
refused with ``StoreUnavailable`` and none is made, while host A goes on within the same cap;
when the link comes back B resumes. At the end exactly the cap was spent (or is held by a
reservation whose reply the cut swallowed: never under-counted), across both hosts.

Needs root and ``ip netns``; skips cleanly where namespaces cannot be made.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.redis_server import RedisServer, redis_server_binary
from tests.runtime_helpers import REPO

HOST_A, HOST_B = "127.77.0.1", "127.77.0.2"
PORT = 6390
PASSWORD = "fleet-secret"
"""Off the loopback interface Redis takes only authenticated clients (protected mode)."""
CAP_USD = "6.00"
CALL_USD = "0.01"

WORKER = """
import json, sys, time
from pathlib import Path
from agentfuse import BudgetExceeded, StoreUnavailable, enforce
from tests.runtime_helpers import FakeClient, make_policy

spec = json.loads(sys.argv[1])
log = open(spec["log"], "a", buffering=1)
policy = make_policy(agent="fleet", budget={"daily_usd": spec["cap"], "estimate_usd": spec["call"]})
guard = enforce(policy, store=spec["store"])
client = FakeClient()
while True:
    try:
        with guard.step() as step:
            client.chat.completions.create()
            log.write(json.dumps({"t": time.time(), "event": "call"}) + "\\n")
            step.record(cost_usd=spec["call"])
    except StoreUnavailable:
        log.write(json.dumps({"t": time.time(), "event": "store_unavailable"}) + "\\n")
        time.sleep(0.02)
        continue
    except BudgetExceeded as exc:
        log.write(json.dumps({"t": time.time(), "event": "done", "reason": exc.reason}) + "\\n")
        break
    time.sleep(0.01)
"""

CHECK = """
import datetime, json, sys, time
from agentfuse.runtime.stores import open_store
store = open_store(sys.argv[1])
day = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
totals = store.agent_totals("fleet", day_key=day, minute=int(time.time() // 60))
print(json.dumps({"day": totals.day_micros, "unsettled": store.unsettled()}))
"""


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _in(namespace: str, *args: str) -> list[str]:
    return ["ip", "netns", "exec", namespace, *args]


class NamespacedRedis(RedisServer):
    """A redis-server inside a network namespace, pinged from inside it."""

    def __init__(self, workdir: Path, namespace: str) -> None:
        super().__init__(workdir, host=HOST_A, launcher=_in(namespace), password=PASSWORD)
        self.namespace = namespace
        self.port = PORT

    def ping(self) -> bool:
        probe = subprocess.run(
            _in(self.namespace, "redis-cli", "-h", self.host, "-p", str(self.port), "--no-auth-warning",
                "-a", PASSWORD, "ping"),
            capture_output=True, text=True,
        )
        return probe.stdout.strip() == "PONG"


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str, str]]:
    """Namespaces A and B joined by a veth pair with 127.77.0.1 (A) and 127.77.0.2 (B)."""
    redis_server_binary()
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    tag = f"{os.getpid() % 100000}"
    ns_a, ns_b, veth_a, veth_b = f"afr-a-{tag}", f"afr-b-{tag}", f"afra{tag}", f"afrb{tag}"
    try:
        _ip("netns", "add", ns_a)
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        pytest.skip(f"ip netns is not permitted here: {getattr(exc, 'stderr', exc)}")
    try:
        _ip("netns", "add", ns_b)
        _ip("link", "add", veth_a, "type", "veth", "peer", "name", veth_b)
        for namespace, veth, address in ((ns_a, veth_a, HOST_A), (ns_b, veth_b, HOST_B)):
            _ip("link", "set", veth, "netns", namespace)
            for sysctl in ("all", "default", veth):
                subprocess.run(
                    _in(namespace, "sysctl", "-qw", f"net.ipv4.conf.{sysctl}.route_localnet=1"), check=True
                )
            _ip("-n", namespace, "link", "set", "lo", "up")
            # 127.77.0.0/24 is routed over the veth, not taken as local by lo's 127.0.0.0/8
            # (127.0.0.1 itself stays local through its own route)
            _ip("-n", namespace, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", veth)
            _ip("-n", namespace, "link", "set", veth, "up")
        yield ns_a, ns_b, veth_b
    finally:
        for namespace in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)


def _events(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_partitioned_host_fails_closed_and_the_fleet_spends_exactly_its_cap(
    two_hosts: tuple[str, str, str], tmp_path: Path
) -> None:
    ns_a, ns_b, veth_b = two_hosts
    server = NamespacedRedis(tmp_path, ns_a)
    server.start()
    # short socket timeouts: a cut-off host notices in well under a second, not after 5 s
    url = f"redis://:{PASSWORD}@{HOST_A}:{PORT}/0?prefix=fleet&socket_timeout=0.3&socket_connect_timeout=0.3"
    logs = {"A": tmp_path / "a.jsonl", "B": tmp_path / "b.jsonl"}
    workers = {
        name: subprocess.Popen(
            _in(namespace, sys.executable, "-c", WORKER,
                json.dumps({"store": url, "log": str(logs[name]), "cap": CAP_USD, "call": CALL_USD})),
            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, namespace in (("A", ns_a), ("B", ns_b))
    }
    try:
        deadline = time.monotonic() + 30
        while min(len(_events(log)) for log in logs.values()) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        _ip("-n", ns_b, "link", "set", veth_b, "down")  # host B loses its network
        cut_at = time.time()
        time.sleep(2.5)
        healed_at = time.time()
        _ip("-n", ns_b, "link", "set", veth_b, "up")
        for name, proc in workers.items():
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"worker {name}: {err}"
        check = subprocess.run(
            _in(ns_a, sys.executable, "-c", CHECK, url), cwd=str(REPO), capture_output=True, text=True, check=True
        )
    finally:
        for proc in workers.values():
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        server.stop()
    a_events, b_events = _events(logs["A"]), _events(logs["B"])
    b_during = [e for e in b_events if cut_at + 0.2 < e["t"] < healed_at]
    assert b_during and all(e["event"] == "store_unavailable" for e in b_during)  # fail closed
    assert any(e["event"] == "call" and cut_at + 0.2 < e["t"] < healed_at for e in a_events)  # A went on
    assert any(e["event"] == "call" and e["t"] > healed_at for e in b_events)  # B resumed
    calls = sum(1 for e in a_events + b_events if e["event"] == "call")
    totals = json.loads(check.stdout)
    # a reservation whose reply the cut swallowed stays counted (never under-counted), so the
    # calls made plus those open reservations are exactly the cap
    assert totals["day"] == 6_000_000 and calls + totals["unsettled"] == 600 and totals["unsettled"] <= 2
    assert [e["reason"] for e in a_events + b_events if e["event"] == "done"] == ["daily_budget"] * 2
