"""The ``agentfuse`` command: one sub-command per module that registers it.

Each command module exposes ``register(subparsers)``, which adds its sub-parsers and sets
``func`` (taking the parsed ``argparse.Namespace``, returning the exit status).
Exit statuses: 0 success, 1 findings or a refused check, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from agentfuse import __version__

COMMAND_MODULES: tuple[str, ...] = (
    "agentfuse.lint.command",             # lint
    "agentfuse.runtime.policy_commands",  # check-policy, init
    "agentfuse.runtime.operator_commands",  # halt, resume, status, runs, ...
    "agentfuse.runtime.metrics_command",  # metrics (Prometheus)
    "agentfuse.runtime.store_commands",   # store reset, store caps
    "agentfuse.runtime.price_commands",   # prices
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 without a traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="agentfuse", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"agentfuse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1


if __name__ == "__main__":
    sys.exit(main())
