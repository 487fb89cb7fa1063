"""AF401: destructive shell commands are found where they execute, and only there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentfuse.lint.checker import check_source
from agentfuse.lint_rules.shell import DestructiveShellCommand, destructive_command, shell_words

DATA = Path(__file__).parent / "data" / "rules" / "shell"
EXPECT = re.compile(r"#\s*expect:\s*AF401")


def _lines(source: str) -> list[int]:
    return [f.line for f in check_source(source, [DestructiveShellCommand]) if f.code == "AF401"]


POSITIVE = {
    "rm-rf-list": 'import subprocess\nsubprocess.run(["rm", "-rf", p])\n',
    "rm-fr-string": 'import subprocess\nsubprocess.run("rm -fr /tmp/x", shell=True)\n',
    "rm-Rf": 'import os\nos.system("rm -Rf build")\n',
    "rm-r-f-split": 'import subprocess\nsubprocess.call(["rm", "-r", "-f", path])\n',
    "rm-long-flags": 'import subprocess\nsubprocess.run(["rm", "--recursive", "--force", d])\n',
    "rm-abs-path": 'import subprocess\nsubprocess.run(["/bin/rm", "-rf", d])\n',
    "rm-sudo-xargs": 'import os\nos.system("find . -name x | sudo xargs -0 rm -rf")\n',
    "find-exec": 'import os\nos.system("find /tmp -name *.log -exec rm -rf {} \\\\;")\n',
    "sh-c-list": 'import subprocess\nsubprocess.run(["bash", "-lc", "cd /srv && rm -rf cache"])\n',
    "after-comment-line": 'import os\nos.system("echo start # note\\nrm -rf out")\n',
    "kill-9": 'import subprocess\nsubprocess.run(["kill", "-9", str(pid)])\n',
    "kill-KILL": 'import os\nos.system(f"kill -KILL {pid}")\n',
    "kill-s-KILL": 'import subprocess\nsubprocess.run(["kill", "-s", "KILL", pid])\n',
    "kill-SIGKILL": 'import subprocess\nsubprocess.check_call("kill -SIGKILL 1", shell=True)\n',
    "pkill-9": 'import subprocess\nsubprocess.run(["pkill", "-9", "-f", "worker"])\n',
    "pkill-signal": 'import subprocess\nsubprocess.run("pkill --signal=KILL chrome", shell=True)\n',
    "killall": 'import subprocess\nsubprocess.Popen(["killall", "node"])\n',
    "git-push-force": 'import subprocess\nsubprocess.run(["git", "push", "--force", "origin", "main"])\n',
    "git-push-f": 'import subprocess\nsubprocess.run("git -C repo push -f", shell=True)\n',
    "git-push-plus-refspec": 'import subprocess\nsubprocess.run(["git", "push", "origin", "+main"])\n',
    "git-reset-hard": 'import subprocess\nsubprocess.check_output(["git", "reset", "--hard", "origin/main"])\n',
    "git-clean-fdx": 'import subprocess\nsubprocess.run(["git", "clean", "-fdx"])\n',
    "git-clean-split": 'import subprocess\nsubprocess.run(["git", "clean", "-f", "-d", "-x"])\n',
    "mkfs": 'import os\nos.system("mkfs.ext4 /dev/sdb1")\n',
    "dd-device": 'import subprocess\nsubprocess.run(["dd", "if=image.iso", "of=/dev/sdb"])\n',
    "chmod-R-777": 'import os\nos.system("chmod -R 777 /srv")\n',
    "shutdown": 'import subprocess\nsubprocess.run(["sudo", "shutdown", "-h", "now"])\n',
    "systemctl-kexec": 'import subprocess\nsubprocess.run(["systemctl", "kexec"])\n',
    "systemctl-reboot": 'import subprocess\nsubprocess.run(["systemctl", "reboot"])\n',
    "alias-module": 'import subprocess as sp\nsp.run(["rm", "-rf", p])\n',
    "alias-function": 'from os import system as run_it\nrun_it("rm -rf /")\n',
    "from-import": 'from subprocess import check_call\ncheck_call(["git", "push", "-f"])\n',
    "async-shell": 'import asyncio\nasync def f():\n    await asyncio.create_subprocess_shell("killall python")\n',
    "async-exec": 'import asyncio\nasync def f(p):\n    await asyncio.create_subprocess_exec("rm", "-rf", p)\n',
    "pexpect-args": 'import pexpect\npexpect.spawn("git", ["push", "--force"])\n',
    "pexpect-run": 'import pexpect\npexpect.run("rm -rf /var/tmp/x")\n',
    "os-execvp": 'import os\nos.execvp("rm", ["rm", "-rf", p])\n',
    "os-execl": 'import os\nos.execl("/bin/rm", "rm", "-rf", p)\n',
    "os-spawnlp": 'import os\nos.spawnlp(os.P_WAIT, "git", "git", "reset", "--hard")\n',
    "os-popen": 'import os\nos.popen("kill -9 1234")\n',
    "getoutput": 'import subprocess\nsubprocess.getoutput("git clean -ffdx")\n',
    "fstring": 'import subprocess\nsubprocess.run(f"rm -rf {path}", shell=True)\n',
    "fstring-escaped-newline": 'import os\ndef f(d):\n    os.system(f"cd {d}\\nrm -rf build")\n',
    "concatenation": 'import subprocess\nsubprocess.run("rm -rf " + path, shell=True)\n',
    "empty-prefix": 'import os\nos.system("" + "rm -rf x")\n',
    "starred-literal": 'import subprocess\nsubprocess.run(["rm", *["-r", "-f"], p])\n',
    "implicit-concat": 'import os\nos.system("rm " "-rf " "x")\n',
    "percent-format": 'import os\nos.system("rm -rf %s" % path)\n',
    "dot-format": 'import os\nos.system("kill -9 {}".format(pid))\n',
    "join-list": 'import os\nos.system(" ".join(["git", "reset", "--hard"]))\n',
    "list-concat": 'import subprocess\nsubprocess.run(["git", "push"] + ["--force"])\n',
    "shlex-split": 'import subprocess, shlex\nsubprocess.run(shlex.split("rm -rf ./out"))\n',
    "str-split": 'import subprocess\nsubprocess.run("git reset --hard".split())\n',
    "str-split-separator": 'import subprocess\nsubprocess.run("rm -rf x".split(" "))\n',
    "tuple-form": 'import subprocess\nsubprocess.run(("git", "push", "--force"))\n',
    "args-keyword": 'import subprocess\nsubprocess.run(args=["rm", "-rf", d])\n',
    "local-name": 'import subprocess\ndef f():\n    cmd = ["rm", "-rf", "/data"]\n    subprocess.run(cmd)\n',
    "local-name-chain": 'import os\ndef f():\n    base = "rm -rf "\n    cmd = base + "x"\n    os.system(cmd)\n',
    "annotated-local": 'import os\ndef f():\n    cmd: str = "reboot"\n    os.system(cmd)\n',
    "grown-by-append": 'import subprocess\ndef f(force):\n    cmd = ["git", "push"]\n    if force:\n'
    '        cmd.append("--force")\n    subprocess.run(cmd)\n',
    "grown-by-extend": 'import subprocess\ndef f(p):\n    cmd = ["rm"]\n    cmd.extend(["-r", "-f", p])\n'
    '    subprocess.run(cmd)\n',
    "grown-by-plus-equals-list": 'import subprocess\ndef f():\n    cmd = ["git", "reset"]\n    cmd += ["--hard"]\n'
    '    subprocess.run(cmd)\n',
    "grown-by-plus-equals-string": 'import os\ndef f(p):\n    cmd = "rm -r"\n    cmd += " -f " + p\n'
    '    os.system(cmd)\n',
    "shell-true-list": 'import subprocess\nsubprocess.run(["rm -rf /tmp/x"], shell=True)\n',
    "env-prefix": 'import os\nos.system("LANG=C env FOO=1 rm -rf x")\n',
    "anyio": 'import anyio\nasync def f():\n    await anyio.run_process(["rm", "-rf", "x"])\n',
    "asyncio-subprocess-alias": 'from asyncio import subprocess as asp\nasync def f():\n'
    '    await asp.create_subprocess_shell("git push --force")\n',
    "popen-spawn": 'from pexpect import popen_spawn\npopen_spawn.PopenSpawn("git reset --hard")\n',
    "posix-spawn": 'import os\nos.posix_spawn("/usr/bin/killall", ["killall", "chrome"], {})\n',
    "pty-spawn": 'import pty\npty.spawn(["sudo", "reboot"])\n',
    "trio": 'import trio\nasync def f():\n    await trio.run_process(["chmod", "-R", "a+rwx", "/srv"])\n',
    "function-local-import": 'def f():\n    import subprocess\n    subprocess.run(["killall", "x"])\n',
    "gitpython-reset-hard": 'from git import Repo\nRepo(".").git.reset("--hard", sha)\n',
    "gitpython-keyword-flag": 'import git\ndef publish(repo: git.Repo):\n'
    '    repo.git.push("origin", "main", force=True)\n',
    "gitpython-local-import": 'class Workspace:\n    def __init__(self, path):\n        from git import Repo\n'
    '        self._repo = Repo(path)\n\n    def undo(self):\n        self._repo.git.clean("-fdxq")\n',
    "helper-extends-argv-then-spreads": 'import asyncio\n\nclass Checkpoints:\n'
    '    async def _run_git(self, *args):\n        cmd = ["git", "-c", "gc.auto=0", f"--git-dir={self.d}"]\n'
    '        cmd.extend(args)\n        return await asyncio.create_subprocess_exec(*cmd)\n\n'
    '    async def restore(self, sha):\n        await self._run_git("reset", "--hard", sha)\n',
    "pexpect-sendline": 'import pexpect\nchild = pexpect.spawn("bash")\nchild.sendline("kill -9 %1")\n',
}

NEGATIVE = {
    "docstring": 'import subprocess\ndef f():\n    """Runs rm -rf on the cache."""\n    subprocess.run(["ls"])\n',
    "comment": 'import subprocess\n# subprocess.run(["rm", "-rf", "/"])\nsubprocess.run(["ls"])\n',
    "logger": 'import logging, subprocess\nlogging.info("rm -rf %s", p)\nsubprocess.run(["ls"])\n',
    "print": 'import subprocess\nprint("git push --force is bad")\nsubprocess.run(["git", "status"])\n',
    "argparse-help": 'import argparse\nargparse.ArgumentParser().add_argument("-x", help="kill -9 the worker")\n',
    "unused-constant": 'import subprocess\nCLEAN = "git clean -fdx"\nsubprocess.run(["git", "status"])\n',
    "force-with-lease": 'import subprocess\nsubprocess.run(["git", "push", "--force-with-lease"])\n',
    "rm-without-force": 'import subprocess\nsubprocess.run(["rm", "-r", "build"])\n',
    "rm-force-only": 'import subprocess\nsubprocess.run(["rm", "-f", "file.txt"])\n',
    "rm-after-double-dash": 'import subprocess\nsubprocess.run(["rm", "--", "-rf"])\n',
    "kill-term": 'import subprocess\nsubprocess.run(["kill", "-TERM", pid])\n',
    "kill-plain": 'import os\nos.system(f"kill {pid}")\n',
    "pkill-session": 'import subprocess\nsubprocess.run(["pkill", "-s", "9", "x"])\n',
    "git-reset-soft": 'import subprocess\nsubprocess.run(["git", "reset", "--soft", "HEAD~1"])\n',
    "git-clean-dry-run": 'import subprocess\nsubprocess.run("git clean -fdxn", shell=True)\n',
    "git-push-plain": 'import subprocess\nsubprocess.run(["git", "push", "origin", "main"])\n',
    "dd-dev-null": 'import os\nos.system("dd if=/dev/urandom of=/dev/null count=1")\n',
    "chmod-not-recursive": 'import os\nos.system("chmod 777 file")\n',
    "chmod-R-safe": 'import os\nos.system("chmod -R 755 dir")\n',
    "quoted-argument": 'import os\nos.system("echo \'rm -rf /\' > notes.txt")\n',
    "grep-pattern": 'import subprocess\nsubprocess.run(["grep", "-r", "git push --force", "."])\n',
    "opaque-program": 'import subprocess\nsubprocess.run([tool, "-rf", p])\n',
    "unknown-name": 'import subprocess\ndef f(cmd):\n    subprocess.run(cmd, shell=True)\n',
    "shadowing-parameter": 'import os\nCMD = "reboot"\ndef f(CMD):\n    os.system(CMD)\n',
    "other-run-method": 'class Box:\n    def run(self, c):\n        pass\nBox().run(["rm", "-rf", "/"])\n',
    "not-imported": 'def system(c):\n    pass\nsystem("rm -rf /")\n',
    "shutil-rmtree": 'import shutil\nshutil.rmtree("/tmp/x", ignore_errors=True)\n',
    "os-kill": 'import os, signal\nos.kill(pid, signal.SIGKILL)\n',
    "asyncio-other": 'import asyncio\nasyncio.run(main("rm -rf"))\n',
    "class-attribute-not-visible": 'import os\nclass A:\n    CMD = "reboot"\n    def f(self, CMD="ls"):\n'
    '        os.system(CMD)\n',
    "splat-args": 'import subprocess\nsubprocess.run(*argv)\n',
    "lambda-parameter": 'import os\ncmd = "reboot"\nrun = lambda cmd: os.system(cmd)\n',
    "grown-harmlessly": 'import subprocess\ndef f():\n    cmd = ["git", "push"]\n    cmd.append("--tags")\n'
    '    subprocess.run(cmd)\n',
    "other-list-grown": 'import subprocess\ndef f():\n    cmd = ["git", "push"]\n    flags = []\n'
    '    flags.append("--force")\n    subprocess.run(cmd)\n',
    "growth-in-another-function": 'import subprocess\ndef a():\n    cmd = ["git", "push"]\n    subprocess.run(cmd)\n'
    'def b():\n    cmd = []\n    cmd.append("--force")\n',
    "raw-fstring-backslash-n": 'import os\ndef f(d):\n    os.system(rf"echo {d}\\nrm -rf build")\n',
    "rmdir": 'import subprocess\nsubprocess.run(["rmdir", "-p", "a/b"])\n',
    "pip-uninstall": 'import subprocess\nsubprocess.run(["pip", "uninstall", "-y", "rm"])\n',
    "gitpython-dry-run": 'from git import Repo\nRepo(".").git.clean("-fdx", n=True)\n',
    "gitpython-harmless": 'from git import Repo\nRepo(".").git.reset("--soft", "HEAD~1")\n',
    "git-attribute-without-gitpython": 'repo.git.reset("--hard")\n',
    "socket-send-without-pexpect": 'import socket\nconn.send(b"kill -9 1")\n',
    "pexpect-sendline-harmless": 'import pexpect\nchild.sendline("pkill -f worker")\n',
}


@pytest.mark.parametrize("source", POSITIVE.values(), ids=POSITIVE.keys())
def test_destructive_command_is_flagged_at_the_call(source: str) -> None:
    assert _lines(source) == [len(source.splitlines())]


def test_module_constant_defined_after_the_function_is_resolved() -> None:
    source = 'import os\ndef f():\n    os.system(WIPE)\nWIPE = "rm -rf /srv/data"\n'
    assert _lines(source) == [3]


def test_pre_filter_lets_every_flagged_case_through() -> None:
    pattern = DestructiveShellCommand.trigger_pattern()
    assert pattern is not None
    assert [name for name, source in POSITIVE.items() if not pattern.search(source)] == []


@pytest.mark.parametrize("source", NEGATIVE.values(), ids=NEGATIVE.keys())
def test_harmless_or_non_executing_text_is_not_flagged(source: str) -> None:
    assert _lines(source) == []


def test_message_names_the_command_the_api_and_the_fix() -> None:
    [finding] = check_source('import subprocess as sp\nsp.run(["rm", "-fr", p])\n', [DestructiveShellCommand])
    assert finding.message.startswith("`rm -fr` executed via subprocess.run()")
    assert "reviewed wrapper script" in finding.message and "# noqa: AF401" in finding.message


@pytest.mark.parametrize(
    ("line", "label"),
    [
        ("rm -r -f x", "rm -r -f"),
        ("sudo -u root kill -s KILL 1", "kill -s KILL"),
        ("timeout 5 git push origin +HEAD:main", "git push +HEAD:main"),
        ("git clean -xdf", "git clean -xdf"),
        ("true && dd if=x of=/dev/nvme0n1", "dd of=/dev/nvme0n1"),
    ],
)
def test_label_shows_the_command_as_written(line: str, label: str) -> None:
    assert destructive_command(shell_words(line)) == label


def test_example_file_findings_are_exactly_the_marked_lines() -> None:
    source = (DATA / "agent_tools.py").read_text(encoding="utf-8")
    marked = [n for n, line in enumerate(source.splitlines(), 1) if EXPECT.search(line)]
    assert len(marked) >= 5
    assert _lines(source) == marked


def test_unbalanced_quotes_do_not_crash_and_still_split() -> None:
    assert destructive_command(shell_words("rm -rf 'unterminated")) == "rm -rf"
