"""The APIs that execute a command (subprocess, os, asyncio, pexpect, anyio, trio, pty,
GitPython), and how each takes it: the table AF401 reads."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class Api:
    """How one executing API takes its command.

    ``kind``: ``command`` (one string or argv sequence), ``exec_l`` (program, then argv
    spread out), ``exec_v`` (program, argv sequence), ``spawn_l`` / ``spawn_v`` (the same
    after a mode argument), ``variadic`` (every positional argument is one argv word),
    ``pexpect`` (a command string plus an optional ``args`` list), ``gitpython`` (a git
    subcommand named by the method, its arguments and ``flag=True`` keywords).
    """

    kind: str
    keyword: str = ""


def _table() -> dict[str, Api]:
    """Fully qualified executing API -> how it takes its command."""
    table: dict[str, Api] = {}
    for name in ("run", "call", "check_call", "check_output", "Popen"):
        table[f"subprocess.{name}"] = Api("command", "args")
    for module in ("subprocess", "commands"):
        for name in ("getoutput", "getstatusoutput"):
            table[f"{module}.{name}"] = Api("command", "cmd")
    table["os.system"] = Api("command", "command")
    table["os.popen"] = Api("command", "cmd")
    for suffix in ("", "e", "p", "pe"):
        table[f"os.execl{suffix}"] = Api("exec_l")
        table[f"os.execv{suffix}"] = Api("exec_v")
        table[f"os.spawnl{suffix}"] = Api("spawn_l")
        table[f"os.spawnv{suffix}"] = Api("spawn_v")
    table["os.posix_spawn"] = Api("exec_v")
    table["os.posix_spawnp"] = Api("exec_v")
    for module in ("asyncio", "asyncio.subprocess"):
        table[f"{module}.create_subprocess_shell"] = Api("command", "cmd")
        table[f"{module}.create_subprocess_exec"] = Api("variadic")
    for name in ("spawn", "spawnu"):
        table[f"pexpect.{name}"] = Api("pexpect", "command")
    for name in ("run", "runu"):
        table[f"pexpect.{name}"] = Api("command", "command")
    table["pexpect.popen_spawn.PopenSpawn"] = Api("command", "cmd")
    for name in ("anyio.run_process", "anyio.open_process", "trio.run_process", "trio.lowlevel.open_process"):
        table[name] = Api("command", "command")
    table["pty.spawn"] = Api("command", "argv")
    for name in ("sendline", "send"):  # a line typed into a spawned shell
        table[f"pexpect.spawn.{name}"] = Api("command", "s")
    table["pexpect.replwrap.REPLWrapper.run_command"] = Api("command", "command")
    table["git.cmd.Git.execute"] = Api("command", "command")
    return table


GITPYTHON = "git.cmd.Git."
"""GitPython runs ``repo.git.<subcommand>(*args, **flags)`` as ``git <subcommand> ...``."""
GITPYTHON_OPTIONS = frozenset(
    {
        "as_process",
        "env",
        "istream",
        "kill_after_timeout",
        "max_chunk_size",
        "output_stream",
        "shell",
        "stdout_as_string",
        "strip_newline_in_stdout",
        "universal_newlines",
        "with_exceptions",
        "with_extended_output",
        "with_stdout",
        "insert_kwargs_after",
    }
)
"""Keyword arguments GitPython keeps for itself rather than turning into ``--flags``."""


def object_api(func_attr: str, receiver_attr: str | None) -> tuple[str, str] | None:
    """(qualified API, module that must be imported) for a method called on an object the
    module got from pexpect or GitPython: ``child.sendline(...)``, ``repo.git.reset(...)``."""
    if receiver_attr == "git" and not func_attr.startswith("_"):
        return GITPYTHON + func_attr, "git"
    if func_attr in {"sendline", "send"}:
        return f"pexpect.spawn.{func_attr}", "pexpect"
    if func_attr == "run_command":
        return "pexpect.replwrap.REPLWrapper.run_command", "pexpect"
    return None


APIS = _table()
