"""Store backends behind one protocol; :func:`open_store` picks one from a URL.

URLs follow SQLAlchemy's convention: ``sqlite:///relative/path.db`` (relative to the current
directory), ``sqlite:////absolute/path.db``; ``redis://host:port/db`` and ``rediss://`` for Redis.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from agentfuse.runtime.stores.base import AGENT_WIDE, Store

DEFAULT_STORE_URL = "sqlite:///.agentfuse/state.db"
DURABILITY_MODES = ("normal", "full")

__all__ = ["AGENT_WIDE", "DEFAULT_STORE_URL", "Store", "open_store", "StoreURLError"]


class StoreURLError(ValueError):
    """A store URL that names no known backend or is malformed."""


def open_store(url: str, *, durability: str = "normal") -> Store:
    """Open the store named by ``url``; ``durability`` ``full`` survives power loss (slower)."""
    if durability not in DURABILITY_MODES:
        raise StoreURLError(f"store durability must be one of {DURABILITY_MODES}, got {durability!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from agentfuse.runtime.stores.sqlite import SQLiteStore

        return SQLiteStore.from_url(url, durability=durability)
    if scheme in ("redis", "rediss"):
        try:
            module = importlib.import_module("agentfuse.runtime.stores.redis")
        except ModuleNotFoundError as exc:
            raise StoreURLError(
                f"store {scheme}:// needs the Redis backend: pip install 'agentfuse[redis]' ({exc})"
            ) from None
        store: Store = module.RedisStore.from_url(url, durability=durability)
        return store
    raise StoreURLError(
        f"unknown store URL {url!r}: use sqlite:///path.db, sqlite:////abs/path.db or redis://host:port/db"
    )
