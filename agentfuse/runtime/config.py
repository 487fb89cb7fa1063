"""Which policy and which store: argument > environment > policy > default.

* the policy: the ``--policy`` argument (``enforce(path)``), else ``AGENTFUSE_POLICY``;
* the store: the ``--store`` argument (``enforce(store=...)``), else ``AGENTFUSE_STORE``, else
  the policy's ``store:``, else ``sqlite:///.agentfuse/state.db``.

A relative SQLite path given as an argument or in the environment is taken from the current
directory; one in a policy (its ``store:`` or the default) from the policy file's folder, so
every process and operator command using one policy uses one store, wherever it was started.
An empty variable counts as unset. There is deliberately no variable that switches the
guard off: a fuse that an environment variable can disable is not a fuse.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from agentfuse.runtime.policy import Policy
from agentfuse.runtime.stores import DEFAULT_STORE_URL, absolute_url

POLICY_ENV = "AGENTFUSE_POLICY"
STORE_ENV = "AGENTFUSE_STORE"


def policy_path(
    argument: str | os.PathLike[str] | None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The policy file to load: the argument, else ``AGENTFUSE_POLICY``; None when neither."""
    if argument is not None and os.fspath(argument) != "":
        return Path(argument)
    value = (os.environ if environ is None else environ).get(POLICY_ENV, "").strip()
    return Path(value) if value else None


def store_url(
    argument: str | None, policy: Policy | None, environ: Mapping[str, str] | None = None
) -> str:
    """The store URL to open, with a relative SQLite path made absolute (see module docstring)."""
    value = argument or (os.environ if environ is None else environ).get(STORE_ENV, "").strip()
    if value:
        return absolute_url(value, Path.cwd())
    return policy.store_url if policy is not None else absolute_url(DEFAULT_STORE_URL, Path.cwd())
