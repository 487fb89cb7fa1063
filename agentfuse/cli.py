"""The ``agentfuse`` command: one sub-command per module that registers it.

Each command module exposes ``register(subparsers)``, which adds its sub-parsers and sets
``func`` (taking the parsed ``argparse.Namespace``, returning the exit status).
Exit statuses: 0 success, 1 findings or a refused check, 2 usage or configuration error.

``COMMANDS`` names every sub-command, its module and its one-line help, so the command line
is parsed with only the chosen command's module imported (``agentfuse status`` never loads
the linter, ``agentfuse --version`` loads nothing); the others appear in ``--help`` from this
table. A test checks the table against what the modules register.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from agentfuse import __version__

LINT = "agentfuse.lint.command"
POLICY = "agentfuse.operator.policy_files"
OPERATOR = "agentfuse.operator.commands"
STORE = "agentfuse.operator.store"
METRICS = "agentfuse.operator.metrics"
PRICES = "agentfuse.operator.prices"

COMMANDS: dict[str, tuple[str, str]] = {
    "lint": (LINT, "find unguarded LLM calls, endless retries and other agent hazards"),
    "check-policy": (POLICY, "validate policy files"),
    "init": (POLICY, "write a commented starter policy.yaml"),
    "halt": (OPERATOR, "halt an agent (or one run) durably until `agentfuse resume`"),
    "resume": (OPERATOR, "clear a halt set by `agentfuse halt`, the kill switch, fail-fast or a budget"),
    "status": (OPERATOR, "spend against caps, active runs, breakers, halts, live workers and last events"),
    "runs": (OPERATOR, "list runs; --stale lists reservations left by dead processes"),
    "reconcile": (OPERATOR, "settle a run's stale reservations explicitly (recorded in the store and the event log)"),
    "watch": (OPERATOR, "dead-man's switch: exit 1 (and alert) when an agent has no fresh heartbeat"),
    "report": (OPERATOR, "write a self-contained HTML report (inline SVG charts, works offline)"),
    "store": (STORE, "acknowledge lost books (store reset), list or drop declared caps (store caps)"),
    "metrics": (METRICS, "serve the store's figures to Prometheus (or print them once)"),
    "prices": (PRICES, "show what a model costs (USD per 1M tokens) and where the price comes from"),
}
"""Sub-command -> (the module whose ``register`` adds it, its help line), in ``--help`` order."""
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(module for module, _ in COMMANDS.values()))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 2 without a traceback
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(command: str | None = None, *, every_command: bool = True) -> argparse.ArgumentParser:
    """The parser; with ``every_command=False`` only ``command``'s module is imported and the
    other sub-commands are listed by name and help (enough for ``--help`` and for errors)."""
    parser = _Parser(prog="agentfuse", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"agentfuse {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    wanted = COMMAND_MODULES if every_command else [COMMANDS[command][0]] if command in COMMANDS else []
    for module in wanted:
        importlib.import_module(module).register(subparsers)
    registered = dict(subparsers.choices)
    subparsers.choices.clear()
    subparsers._choices_actions.clear()  # re-added below in the table's order, each once
    for name, (_, help_line) in COMMANDS.items():
        sub = registered.pop(name, None)
        if sub is None:
            sub = subparsers.add_parser(name, help=help_line, add_help=False)
        else:
            subparsers.choices[name] = sub
            subparsers._choices_actions.append(subparsers._ChoicesPseudoAction(name, (), help_line))
    subparsers.choices.update(registered)  # a module's command missing from the table still runs
    return parser


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named on the command line: the first argument that is not an option
    (the top-level options take no values)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_command_of(arguments), every_command=False)
    args = parser.parse_args(arguments)
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
