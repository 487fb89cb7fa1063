"""``agentfuse check-policy FILE...`` and ``agentfuse init``.

check-policy prints every issue (and ``FILE: ok`` for valid files) on stdout, like ``lint``
prints its findings; exit 0 when all are valid, 2 when any is invalid or missing. Without a file
it checks the one ``AGENTFUSE_POLICY`` names.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from agentfuse.runtime import config
from agentfuse.runtime.errors import PolicyError
from agentfuse.runtime.policy import AGENT_NAME
from agentfuse.runtime.policy_loader import load_policy_text, policy_issues

EXIT_OK = 0
EXIT_INVALID = 2

STARTER_POLICY = """\
# agentfuse policy for the agent "{agent}".
# enforce("{path_name}") checks it before every model call; validate edits with
#   agentfuse check-policy {path_name}
# Money is in USD. Relative paths are relative to this file's folder.
# ${{NAME}} and ${{NAME:-default}} are read from the environment.
version: 1
agent: "{agent}"

# Caps. At least one is required; a call whose estimate would cross a cap is refused
# before it is made.
budget:
  run_usd: 5.00          # one run (resumable by its run_id) spends at most this
  daily_usd: 20.00       # all runs of this agent per calendar day (see timezone)
  hourly_usd: 5.00       # all runs of this agent in any rolling 60 minutes
  max_steps: 200         # guarded calls per run
  max_retries_total: 10  # failed calls per run
  timeout_s: 3600        # a run's deadline, counted from its first start
  estimate_usd: 0.02     # reserved per call when the caller gives no estimate
  # Token caps (input + output tokens), checked like the money caps:
  # run_tokens: 500000     # one run and its child runs
  # daily_tokens: 2000000  # all runs of this agent per calendar day
  # hourly_tokens: 500000  # all runs of this agent in any rolling 60 minutes
  # estimate_tokens: 4000  # reserved per call that declares no max_tokens

# Stop calling a failing provider: open after 5 failures in a row, probe again after 5 minutes.
breaker:
  failure_threshold: 5
  cooldown_s: 300

# Never retry what cannot succeed.
fail_fast:
  max_attempts: 3        # failures of one action in a run before it is refused (1: never retry)
  halt_on: [PermissionError, openai.AuthenticationError, anthropic.AuthenticationError]

# At most 2 logins per 15 minutes, then 30 minutes off.
# rate_limits:
#   - {{action: login, max: 2, window_s: 900, cooldown_s: 1800}}

# Create this file to halt the agent before its next call.
kill_switch:
  stop_file: STOP

# Alerts on halts, cap hits, breaker trips (ntfy, Slack or Discord webhook).
alerts:
  webhook: ${{AGENTFUSE_WEBHOOK:-}}  # empty: no alerts

# Where spend, counters and halts are kept (sqlite:///relative.db, sqlite:////abs.db,
# redis://host:6379/0 to share budgets across hosts).
store: sqlite:///.agentfuse/state.db
timezone: UTC
"""


def register(subparsers: Any) -> None:
    """Add ``check-policy`` and ``init`` to the ``agentfuse`` command."""
    check = subparsers.add_parser(
        "check-policy",
        help="validate policy files",
        description="Validate policy files; print each problem as FILE:LINE:COL: problem. Fix: ...",
    )
    check.add_argument("files", nargs="*", metavar="FILE", help="policy.yaml files (default: $AGENTFUSE_POLICY)")
    check.set_defaults(func=check_policy)

    init = subparsers.add_parser(
        "init",
        help="write a commented starter policy.yaml",
        description="Write a commented starter policy that loads cleanly.",
    )
    init.add_argument("--agent", default="my-agent", help="the agent's name (default: my-agent)")
    init.add_argument(
        "--path",
        default="policy.yaml",
        type=Path,
        help="where to write it (default: ./policy.yaml)",
    )
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=init_policy)


def check_policy(args: argparse.Namespace) -> int:
    """Print each file's issues, or ``FILE: ok``; 2 if any file is invalid."""
    status = EXIT_OK
    files = list(args.files)
    if not files:
        from_env = config.policy_path(None)
        if from_env is None:
            print(f"agentfuse check-policy: give a policy FILE to check, or set {config.POLICY_ENV}", file=sys.stderr)
            return EXIT_INVALID
        files = [str(from_env)]
    for name in files:
        issues = policy_issues(name)
        for issue in issues:
            print(issue)
        if issues:
            status = EXIT_INVALID
        else:
            print(f"{name}: ok")
    return status


def starter_policy(agent: str, path: Path) -> str:
    """The commented starter policy for ``agent``, to be written at ``path``."""
    return STARTER_POLICY.format(agent=agent, path_name=path.name)


def init_policy(args: argparse.Namespace) -> int:
    """Write the starter policy; refuse to overwrite unless ``--force``."""
    path: Path = args.path
    if not AGENT_NAME.fullmatch(args.agent):
        print(
            f"agentfuse init: agent name {args.agent!r} is not valid. Fix: use letters, digits,"
            " '_', '.' and '-' only, such as --agent publisher",
            file=sys.stderr,
        )
        return EXIT_INVALID
    text = starter_policy(args.agent, path)
    try:
        load_policy_text(text, path, environ={})
    except PolicyError as exc:  # the template itself is broken: say so rather than write it
        print(
            f"agentfuse init: internal error, the starter policy is invalid:\n{exc}",
            file=sys.stderr,
        )
        return EXIT_INVALID
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w" if args.force else "x", encoding="utf-8") as stream:
            stream.write(text)
    except FileExistsError:
        print(
            f"agentfuse init: {path} already exists. Fix: pass --force to overwrite it, or"
            " --path to write elsewhere",
            file=sys.stderr,
        )
        return EXIT_INVALID
    except OSError as exc:
        print(f"agentfuse init: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INVALID
    shown = os.fspath(path)
    print(f"wrote {shown} for agent {args.agent!r}. Check it with: agentfuse check-policy {shown}")
    return EXIT_OK
