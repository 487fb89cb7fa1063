"""The store's operator operations (tests/test_operator_store.py) again, on a real redis-server.

``url`` names a fresh key prefix on a throwaway Redis (``clock=client``), as in test_redis_guard.py.
"""

from __future__ import annotations

import inspect

from _pytest.fixtures import FixtureFunctionDefinition

from tests import test_operator_store
from tests.test_redis_guard import redis_server, url  # noqa: F401 (the fixtures)

for _name, _value in vars(test_operator_store).items():
    if _name == "url":
        continue
    if _name.startswith("test_") and callable(_value):
        parameters = inspect.signature(_value).parameters
        if "url" in parameters or "store" in parameters:
            globals()[_name] = _value
    elif isinstance(_value, FixtureFunctionDefinition):
        globals()[_name] = _value  # the shared ``store`` fixture
