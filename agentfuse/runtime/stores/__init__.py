"""Store backends behind one protocol; :func:`open_store` picks one from a URL.

URLs follow SQLAlchemy's convention: ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db``;
``redis://host:port/db`` and ``rediss://`` for Redis. A relative SQLite path is made absolute
before the store is opened (:func:`absolute_url`): against the policy's folder for a policy's
``store:``, against the current directory for a URL given as an argument or in the environment.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from urllib.parse import urlsplit

from agentfuse.runtime.redaction import redact
from agentfuse.runtime.stores.base import AGENT_WIDE, Store

DEFAULT_STORE_URL = "sqlite:///.agentfuse/state.db"
DURABILITY_MODES = ("normal", "full")

__all__ = [
    "AGENT_WIDE", "DEFAULT_STORE_URL", "Store", "StoreNotFound", "StoreURLError", "absolute_url", "open_store",
]


class StoreURLError(ValueError):
    """A store URL that names no known backend or is malformed."""


class StoreNotFound(StoreURLError):
    """``open_store(..., create=False)`` found no store at the URL (a typo in a path?)."""


def _sqlite_file(url: str) -> Path | None:
    """The file of a well-formed ``sqlite:///`` URL (None for anything else)."""
    if urlsplit(url).scheme.lower() != "sqlite":
        return None
    from agentfuse.runtime.stores.sqlite import path_from_url

    try:
        return path_from_url(url)
    except ValueError:
        return None


def absolute_url(url: str, base: Path) -> str:
    """``url`` with a relative SQLite path made absolute against ``base``; other URLs unchanged."""
    file = _sqlite_file(url)
    if file is None or file.is_absolute():
        return url
    escaped = str(Path(base).absolute() / file).replace("%", "%25").replace("?", "%3F").replace("#", "%23")
    query = urlsplit(url).query
    return f"sqlite:///{escaped}" + (f"?{query}" if query else "")


def open_store(url: str, *, durability: str = "normal", create: bool = True) -> Store:
    """Open the store named by ``url``; ``durability`` ``full`` survives power loss (slower).

    ``create=False`` (operator commands) refuses a SQLite file that does not exist with
    :class:`StoreNotFound` instead of creating an empty store there.
    """
    if durability not in DURABILITY_MODES:
        raise StoreURLError(f"store durability must be one of {DURABILITY_MODES}, got {durability!r}")
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite":
        from agentfuse.runtime.stores.sqlite import SQLiteStore

        file = _sqlite_file(url)
        if not create and file is not None and not file.exists():
            raise StoreNotFound(f"no store at {file.absolute()} (nothing has run with it yet? check the path)")
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
        f"unknown store URL {redact(url)!r}: use sqlite:///path.db, sqlite:////abs/path.db or redis://host:port/db"
    )
