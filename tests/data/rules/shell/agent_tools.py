"""Tools an agent may call. Lines marked with an expect comment must be flagged, no others.

This module mentions rm -rf, git push --force and kill -9 in its docstring: never flagged.
"""

import asyncio
import logging
import os
import shlex
import subprocess as sp
from os import system as run_it

import pexpect

log = logging.getLogger(__name__)
DANGEROUS_EXAMPLE = "git reset --hard"  # a constant that never runs
RESET = ["git", "reset", "--hard", "origin/main"]


def clear_workspace(path: str) -> None:
    """Empty the workspace (like rm -rf, but only after a dry run)."""
    log.info("would run rm -rf %s", path)
    sp.run(["rm", "-rf", "--", path], check=True)  # expect: AF401
    sp.run(["rm", "-r", "--", path], check=True)


def sync_branch() -> None:
    sp.check_call(RESET)  # expect: AF401
    sp.check_call(["git", "push", "--force-with-lease"])
    command = "git push origin main --force"
    sp.check_call(shlex.split(command))  # expect: AF401


def stop_browser(pid: int) -> None:
    # kill -9 used to leave zombies; SIGTERM first
    run_it(f"kill -TERM {pid}")
    run_it(f"kill -9 {pid}")  # expect: AF401


async def restart_workers() -> None:
    print("restarting: killall worker")
    await asyncio.create_subprocess_exec(  # expect: AF401
        "killall", "worker"
    )
    proc = await asyncio.create_subprocess_shell("pkill -KILL -f worker")  # expect: AF401
    await proc.wait()


def clean_repo(repo: str) -> str:
    child = pexpect.spawn(f"git -C {repo} clean -fdx")  # expect: AF401
    child.expect(pexpect.EOF)
    return os.path.basename(repo)
