"""The guard's behaviour tests (tests/test_guard.py) again, on a real redis-server.

Every test there that takes the ``url`` fixture is collected here too, with ``url`` naming a fresh
key prefix on a throwaway Redis (``clock=client``, so the tests' injected clock drives the
windows). The tests are the same functions, so the two stores are held to the same behaviour.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import pytest
from _pytest.fixtures import FixtureFunctionDefinition

from tests import test_guard
from tests.redis_server import RedisServer, running_server

for _name, _value in vars(test_guard).items():
    if _name == "url":
        continue
    if _name.startswith("test_") and callable(_value):
        if "url" in inspect.signature(_value).parameters:
            globals()[_name] = _value
    elif isinstance(_value, FixtureFunctionDefinition):
        globals()[_name] = _value  # the guard tests' other fixtures (their clock)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    yield from running_server(tmp_path_factory.mktemp("redis"))


@pytest.fixture
def url(redis_server: RedisServer) -> str:
    return redis_server.url(clock="client")
