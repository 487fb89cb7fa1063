"""Can the books be trusted? The identity of an agent's books, who has seen it, declared caps.

A store that lost its data (a Redis without persistence restarted, a SQLite file emptied or
deleted) must never look like a fresh budget. So:

* An agent's books carry an identity, a random id the store writes when the agent is first booked
  (:meth:`~agentfuse.runtime.stores.base.BooksStore.create_identity`).
* Processes remember the identities they have seen in a small JSON *seen record* on local disk:
  beside the SQLite file (``state.db.seen.json``), or, for Redis, in the policy's ``.agentfuse/``
  folder (``seen-stores.json``, keyed by server, database and key prefix).
* :func:`open_books`, run by ``enforce()`` before it opens the run, compares the two. If the store
  has no identity, or another one, while the record has one, the books were lost: calls are
  refused (``StoreUnavailable``, reason ``store_lost``) until an operator acknowledges the loss
  with ``agentfuse store reset --agent A --accept-loss``, which writes a new identity marked as a
  reset; every process then adopts it.
* The handle pins the identity, so a process that was running when the store lost its data
  refuses its next call too.

What this cannot see is listed in docs/redis.md ("What is durable"): a loss that took the seen
record with it, a host with no record yet, a Redis policy built in code (no folder), and a rollback
to an older copy of the same books.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentfuse.runtime.errors import StoreUnavailable
from agentfuse.runtime.files import private_dirs
from agentfuse.runtime.money import to_micros
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.stores.base import BooksStore, CapDeclaration

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: records are replaced atomically, without a lock
    fcntl = None  # type: ignore[assignment]

SEEN_FILE_NAME = "seen-stores.json"
RECORD_VERSION = 1

_announced: set[str] = set()
"""Warnings already printed by this process (a warning is printed once, like ``warnings``')."""


class SeenRecord:
    """A JSON file: store key -> agent -> the identity of its books processes here have seen."""

    def __init__(self, path: Path, key: str) -> None:
        self.path = path
        self.key = key

    def agents(self) -> dict[str, str]:
        """agent -> identity recorded for this store."""
        entries = self._read().get(self.key, {})
        return {agent: entry["identity"] for agent, entry in entries.items()}

    def get(self, agent: str) -> str | None:
        return self.agents().get(agent)

    def put(self, agent: str, identity: str, *, now: float) -> None:
        """Record (or replace) the agent's identity; a read-modify-write under a file lock."""
        try:
            private_dirs(self.path.parent)
            with self._locked():
                stores = self._read()
                stores.setdefault(self.key, {})[agent] = {"identity": identity, "recorded_at": now}
                temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
                fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    json.dump({"version": RECORD_VERSION, "stores": stores}, out, indent=1, sort_keys=True)
                os.replace(temporary, self.path)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write the seen record {self.path}: {exc.strerror}") from None

    def _read(self) -> dict[str, dict[str, dict[str, Any]]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except OSError as exc:
            raise StoreUnavailable(f"cannot read the seen record {self.path}: {exc.strerror}") from None
        try:
            data = json.loads(text)
            stores = data["stores"]
            for entries in stores.values():
                for entry in entries.values():
                    str(entry["identity"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise StoreUnavailable(
                f"the seen record {self.path} is damaged, so lost books could go unnoticed; restore it,"
                " or delete it to trust the stores as they are now"
            ) from None
        return stores  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        if fcntl is None:
            yield
            return
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)


def seen_record(store: BooksStore, folder: Path | None) -> SeenRecord | None:
    """The record of ``store`` (``folder``: the policy's folder, ``None`` for a policy in code)."""
    where = store.seen_record(folder)
    return None if where is None else SeenRecord(*where)


def policy_folder(policy: Policy) -> Path | None:
    return Path(policy.source).resolve().parent if policy.source is not None else None


def policy_key(policy: Policy, host: str) -> str:
    """Who declares caps: ``host:/abs/policy.yaml``; a policy built in code by its caps."""
    if policy.source is not None:
        return f"{host}:{Path(policy.source).resolve()}"
    budget = policy.budget
    tokens = ""
    if budget.daily_tokens is not None or budget.hourly_tokens is not None:
        tokens = f" daily_tokens={budget.daily_tokens} hourly_tokens={budget.hourly_tokens}"
    return f"{host}:<code daily_usd={budget.daily_usd} hourly_usd={budget.hourly_usd}{tokens}>"


def declaration(policy: Policy, *, host: str, now: float) -> CapDeclaration:
    budget = policy.budget
    return CapDeclaration(
        agent=policy.agent,
        policy=policy_key(policy, host),
        daily_micros=to_micros(budget.daily_usd) if budget.daily_usd is not None else None,
        hourly_micros=to_micros(budget.hourly_usd) if budget.hourly_usd is not None else None,
        declared_at=now,
        daily_tokens=budget.daily_tokens,
        hourly_tokens=budget.hourly_tokens,
    )


def open_books(store: BooksStore, policy: Policy, *, host: str, now: float) -> list[str]:
    """Check the agent's books against the seen record, pin them, declare the policy's caps.

    Raises ``StoreUnavailable`` (reason ``store_lost``) when the store lost the books the record
    says it kept. Returns what could make the store forget (warnings for the operator).
    """
    agent = policy.agent
    record = seen_record(store, policy_folder(policy))
    seen = record.get(agent) if record is not None else None
    stored = store.identity(agent)
    if stored is None:
        if seen is not None:
            assert record is not None
            raise StoreUnavailable(_lost(store, agent, record, seen, None), reason="store_lost", agent=agent)
        stored = store.create_identity(agent, now=now)
    elif seen is not None and seen != stored.identity and stored.reset_reason is None:
        assert record is not None
        raise StoreUnavailable(_lost(store, agent, record, seen, stored.identity), reason="store_lost", agent=agent)
    warnings = store.durability_warnings()
    if record is not None and seen != stored.identity:
        try:
            record.put(agent, stored.identity, now=now)
        except StoreUnavailable as exc:  # e.g. a read-only policy folder: the guard runs, less watchful
            warnings.append(f"{exc}; a loss of these books would go unnoticed by the next process here")
    store.pin_identity(agent, stored.identity)
    store.declare_caps(declaration(policy, host=host, now=now))
    return warnings


def announce(warning: str) -> None:
    """Print a warning on stderr, once per process."""
    if warning not in _announced:
        _announced.add(warning)
        print(f"agentfuse: warning: {warning}", file=sys.stderr)


def reset_command(agent: str) -> str:
    return f"agentfuse store reset --agent {shlex.quote(agent)} --accept-loss"


def _lost(store: BooksStore, agent: str, record: SeenRecord, seen: str, found: str | None) -> str:
    what = "has no books for it" if found is None else f"holds other books for it (identity {found})"
    return (
        f"the books of agent {agent!r} were lost: the store {store!r} {what}, but {record.path} records"
        f" that it kept them (identity {seen}). The store lost its data (a Redis with appendonly no"
        " restarted, a store file deleted or emptied) or was replaced; calls are refused rather than"
        " started from a fresh budget. Once you know what was spent (the event log, the provider's"
        f" usage page), acknowledge the loss: {reset_command(agent)}"
    )


def identity_changed(store: object, agent: str, pinned: str, found: str | None) -> str:
    """Why a gate refuses: the books this process checked at start are no longer in the store."""
    what = "has no books for it any more" if found is None else f"holds other books for it (identity {found})"
    return (
        f"the books of agent {agent!r} changed under this process: the store {store!r} {what}, not"
        f" the ones it checked at start (identity {pinned}). The store lost its data (a Redis with"
        " appendonly no restarted, a store file deleted or emptied), or an operator"
        f" acknowledged a loss ({reset_command(agent)}); calls are refused. Restart the agent once"
        " the loss is acknowledged."
    )
