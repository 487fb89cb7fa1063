"""Shared fixtures: one redis-server for the session, and a fresh store on each backend.

A test that takes ``url`` (or ``store``) runs twice, ids ``[sqlite]`` and ``[redis]``: on a new
SQLite file under ``tmp_path`` and on a new key prefix of the session's ``redis-server``. The
Redis URL carries ``clock=client``, so a test's injected clock drives both backends alike
(``tests/test_redis_store.py`` covers Redis ``TIME``). The ``[redis]`` cases skip, saying so,
when ``redis-server`` is not installed, and fail instead under ``AGENTFUSE_REQUIRE_REDIS=1``
(see ``tests/redis_server.py``); the ``[sqlite]`` cases never need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from agentfuse.runtime.stores import open_store
from agentfuse.runtime.stores.base import Store
from tests.redis_server import RedisServer, running_server
from tests.runtime_helpers import store_url

BACKENDS = ("sqlite", "redis")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A throwaway ``redis-server`` on loopback (no persistence); each test takes its own prefix."""
    yield from running_server(tmp_path_factory.mktemp("redis"))


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend of this case: ``sqlite`` or ``redis``."""
    return str(request.param)


@pytest.fixture
def url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """The URL of a fresh, empty store on ``backend``."""
    if backend == "sqlite":
        return store_url(tmp_path / "state.db")
    server: RedisServer = request.getfixturevalue("redis_server")  # only the Redis cases need it
    return server.url(clock="client")


@pytest.fixture
def store(url: str) -> Iterator[Store]:
    """The store at ``url``, opened, and closed after the test."""
    opened = open_store(url)
    yield opened
    opened.close()
