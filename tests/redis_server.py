"""A throwaway ``redis-server`` for tests: loopback, a free port, no persistence, stopped after.

``persistent=True`` turns on the append-only file (fsync on every write) for the tests that
kill the server and expect it to come back with its data, as a production Redis would.

Tests that need it skip with a clear reason when ``redis-server`` is not installed, unless
``AGENTFUSE_REQUIRE_REDIS=1`` (CI), where a missing server is a failure.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

START_TIMEOUT_S = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def redis_server_binary() -> str | None:
    """The ``redis-server`` to run, or skip (fail under ``AGENTFUSE_REQUIRE_REDIS=1``) if none."""
    binary = shutil.which("redis-server")
    if binary is None:
        message = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("AGENTFUSE_REQUIRE_REDIS") == "1":
            pytest.fail(f"{message}; AGENTFUSE_REQUIRE_REDIS=1 requires it")
        pytest.skip(message)
    return binary


class RedisServer:
    """One ``redis-server`` process; ``kill()`` and ``start()`` again on the same port."""

    def __init__(
        self,
        workdir: Path,
        *,
        password: str | None = None,
        host: str = "127.0.0.1",
        persistent: bool = False,
        launcher: Sequence[str] = (),
    ) -> None:
        binary = redis_server_binary()
        assert binary is not None
        self.binary = binary
        self.workdir = workdir
        self.password = password
        self.host = host
        self.persistent = persistent
        self.launcher = tuple(launcher)
        """A command prefix for the server, e.g. ``ip netns exec NAME`` to run it in a namespace."""
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, *, prefix: str | None = None, clock: str | None = None, db: int = 0) -> str:
        """A ``redis://`` URL for this server, with a fresh key prefix unless one is given."""
        auth = f"default:{self.password}@" if self.password else ""
        query = f"prefix={prefix or 'test-' + uuid.uuid4().hex[:12]}"
        if clock:
            query += f"&clock={clock}"
        return f"redis://{auth}{self.host}:{self.port}/{db}?{query}"

    def start(self) -> None:
        """Start the server (no RDB; AOF only if persistent) and wait until it answers PING."""
        args = [
            *self.launcher,
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--save", "",
            "--appendonly", "yes" if self.persistent else "no",
            "--appendfsync", "always",
            "--dir", str(self.workdir),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode(errors="replace") if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {err}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING on {self.host}:{self.port}")

    def ping(self) -> bool:
        """Whether the server answers PING (raw RESP, no client library involved)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as conn:
                if self.password:
                    conn.sendall(f"AUTH {self.password}\r\n".encode())
                    conn.recv(64)
                conn.sendall(b"PING\r\n")
                return conn.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the server (a crash: nothing is saved) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """Stop the server for good."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


def running_server(
    workdir: Path, *, password: str | None = None, persistent: bool = False
) -> Iterator[RedisServer]:
    """Yield a started server and stop it afterwards (body of a pytest fixture)."""
    server = RedisServer(workdir, password=password, persistent=persistent)
    server.start()
    try:
        yield server
    finally:
        server.stop()
