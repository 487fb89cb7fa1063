"""Rule AF401: destructive shell commands executed from Python."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

import libcst as cst

from agentfuse.lint_rules._shell_apis import APIS as _APIS
from agentfuse.lint_rules._shell_apis import GITPYTHON, GITPYTHON_OPTIONS, Api, object_api
from agentfuse.lint_rules._shell_commands import MAX_DEPTH, OPAQUE, destructive_command, shell_words
from agentfuse.lint_rules._triggers import SHELL_TRIGGERS
from agentfuse.lint_rules.base import FileContext, Rule


_FIX_TEXT = (
    "move it into a reviewed wrapper script where a separate guard sees it, "
    "or suppress with `# noqa: AF401` and a reason"
)


# --- reading the command out of the Python expression ------------------------------------


@dataclasses.dataclass
class _Scope:
    """Names bound in one module, class or function body (flow-insensitive)."""

    parent: _Scope | None
    is_class: bool = False
    bindings: dict[str, list[cst.BaseExpression]] = dataclasses.field(default_factory=dict)
    growth: dict[str, list[tuple[str, cst.BaseExpression]]] = dataclasses.field(default_factory=dict)
    """``cmd.append(x)`` -> ("item", x); ``cmd.extend(xs)`` / ``cmd += xs`` -> ("items", xs)."""

    def owner(self, name: str) -> _Scope | None:
        """The scope where Python would look ``name`` up (class bodies are skipped from inside)."""
        scope: _Scope | None = self
        first = True
        while scope is not None:
            if (first or not scope.is_class) and name in scope.bindings:
                return scope
            scope = scope.parent
            first = False
        return None

    def lookup(self, name: str) -> list[cst.BaseExpression] | None:
        """Every value bound to ``name``; None if never bound."""
        scope = self.owner(name)
        return None if scope is None else scope.bindings[name]


_PROGRAM_WORDS = frozenset({"cmd", "bin", "binary", "exe", "executable", "path", "command"})


def _program_named(name: str) -> str | None:
    """``GIT_CMD``, ``git_bin``: an imported constant named for the program it holds."""
    words = name.lower().split("_")
    programs = [word for word in words if word in {"git", "rm", "kill", "pkill", "killall"}]
    if len(programs) == 1 and all(word in _PROGRAM_WORDS or word in programs for word in words):
        return programs[0]
    return None


def _known(text: str | None) -> str:
    return OPAQUE if text is None else text


_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'"}


def _fstring_text(source: str, raw: bool) -> str:
    """The value of an f-string's literal part: ``{{`` -> ``{``; ``\\n`` -> newline unless raw."""
    text = source.replace("{{", "{").replace("}}", "}")
    if raw:
        return text
    return re.sub(r"\\(.)", lambda match: _ESCAPES.get(match.group(1), match.group(0)), text)


class _Reader:
    """Turns command expressions into shell tokens, resolving names through one scope."""

    def __init__(self, scope: _Scope, qualify: Callable[[cst.BaseExpression], str | None]) -> None:
        self.scope = scope
        self.qualify = qualify

    def commands(self, expr: cst.BaseExpression, *, shell_list: bool, depth: int = 0) -> list[list[str]]:
        """Token lists ``expr`` may run: one per value a name was bound to, plus its growth.

        ``cmd = ["git", "push"]`` ... ``cmd.append("--force")`` ... ``run(cmd)`` reads as
        ``git push --force``: a command that can grow into a destructive one counts.
        """
        if not isinstance(expr, cst.Name):
            tokens = self.tokens(expr, shell_list=shell_list)
            return [] if tokens is None else [tokens]
        scope = self.scope.owner(expr.value)
        if scope is None or depth > MAX_DEPTH:
            return []
        grown = self._growth(scope.growth.get(expr.value, []))
        return [
            tokens + grown
            for value in scope.bindings[expr.value]
            for tokens in self.commands(value, shell_list=shell_list, depth=depth + 1)
        ]

    def _growth(self, steps: list[tuple[str, cst.BaseExpression]]) -> list[str]:
        """The words appended, extended or ``+=``-ed onto a name, in source order."""
        words: list[str] = []
        for kind, value in steps:
            if kind == "item":
                words.append(_known(self.text(value)))
                continue
            listed = self.words(value)
            if listed is None:
                text = self.text(value)
                listed = [OPAQUE] if text is None else shell_words(text)
            words.extend(listed)
        return words

    def _single(self, expr: cst.BaseExpression, depth: int) -> cst.BaseExpression | None:
        """The one value a name was bound to, when there is exactly one."""
        values = self.scope.lookup(expr.value) if isinstance(expr, cst.Name) else None
        if values is None or len(values) != 1 or depth > MAX_DEPTH:
            return None
        return values[0]

    def text(self, expr: cst.BaseExpression, depth: int = 0) -> str | None:
        """The string ``expr`` builds, with OPAQUE for unknown parts; None if not a string."""
        if isinstance(expr, cst.SimpleString):
            try:
                literal = expr.evaluated_value
            except (SyntaxError, ValueError):
                return None
            return literal.decode("latin-1") if isinstance(literal, bytes) else literal
        if isinstance(expr, cst.ConcatenatedString):
            return _known(self.text(expr.left, depth)) + _known(self.text(expr.right, depth))
        if isinstance(expr, cst.FormattedString):
            raw = "r" in expr.prefix.lower()
            return "".join(
                _fstring_text(part.value, raw) if isinstance(part, cst.FormattedStringText) else OPAQUE
                for part in expr.parts
            )
        if isinstance(expr, cst.BinaryOperation):
            if isinstance(expr.operator, cst.Add):
                left, right = self.text(expr.left, depth), self.text(expr.right, depth)
                if left is None and right is None:
                    return None
                return _known(left) + _known(right)
            if isinstance(expr.operator, cst.Modulo):
                return self.text(expr.left, depth)
            return None
        if isinstance(expr, cst.Call):
            return self._call_text(expr, depth)
        if isinstance(expr, cst.Name):
            value = self._single(expr, depth)
            if value is None and self.scope.lookup(expr.value) is None:
                return _program_named(expr.value)
            return None if value is None else self.text(value, depth + 1)
        return None

    def _call_text(self, call: cst.Call, depth: int) -> str | None:
        """``"...".format(x)``, ``" ".join([...])`` and ``shlex.join([...])``."""
        func = call.func
        if self.qualify(func) == "shlex.join" and call.args:
            words = self.words(call.args[0].value, depth)
            return None if words is None else " ".join(words)
        if not isinstance(func, cst.Attribute):
            return None
        if func.attr.value == "format":
            return self.text(func.value, depth)
        if func.attr.value == "join" and call.args:
            separator = self.text(func.value, depth)
            words = self.words(call.args[0].value, depth)
            if separator is not None and words is not None:
                return separator.join(words)
        return None

    def words(self, expr: cst.BaseExpression, depth: int = 0) -> list[str] | None:
        """The argv a list/tuple expression builds; None if ``expr`` is not a sequence."""
        if isinstance(expr, (cst.List, cst.Tuple)):
            result: list[str] = []
            for element in expr.elements:
                if isinstance(element, cst.StarredElement):
                    spread = self.words(element.value, depth)
                    result.extend([OPAQUE] if spread is None else spread)
                else:
                    result.append(_known(self.text(element.value, depth)))
            return result
        if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, cst.Add):
            left, right = self.words(expr.left, depth), self.words(expr.right, depth)
            if left is None and right is None:
                return None
            return (left if left is not None else [OPAQUE]) + (right if right is not None else [OPAQUE])
        if isinstance(expr, cst.Call):
            func = expr.func
            if self.qualify(func) == "shlex.split" and expr.args:
                text = self.text(expr.args[0].value, depth)
                return [OPAQUE] if text is None else shell_words(text)
            if isinstance(func, cst.Attribute) and func.attr.value == "split":
                text = self.text(func.value, depth)
                return None if text is None else text.split()
            return None
        if isinstance(expr, cst.Name):
            value = self._single(expr, depth)
            return None if value is None else self.words(value, depth + 1)
        return None

    def tokens(self, expr: cst.BaseExpression, *, shell_list: bool = False) -> list[str] | None:
        """Shell tokens of a command given as a string or as an argv sequence."""
        argv = self.words(expr)
        if argv is not None:
            if shell_list and argv:
                return shell_words(argv[0]) + argv[1:]
            return argv
        text = self.text(expr)
        return None if text is None else shell_words(text)


# --- the rule ----------------------------------------------------------------------------


_GROWING_METHODS = {"append": "item", "extend": "items"}


@dataclasses.dataclass
class _PendingCall:
    call: cst.Call
    api: str
    scope: _Scope
    needs: str = ""
    """For a method of an object (``child.sendline``, ``repo.git.reset``): the module the
    file must import for the call to be that API (``pexpect``, ``git``)."""


@dataclasses.dataclass
class _Helper:
    """A function or method of this module, and the executing calls directly in it."""

    params: list[str]
    star: str | None
    scope: _Scope
    is_method: bool
    calls: list[_PendingCall] = dataclasses.field(default_factory=list)

    def bound(self, call: cst.Call) -> _Scope | None:
        """The helper's scope with its parameters bound to ``call``'s arguments."""
        params = self.params[1:] if self.is_method else self.params
        values: dict[str, list[cst.BaseExpression]] = {}
        extra: list[cst.BaseExpression] = []
        for index, arg in enumerate(call.args):
            if arg.star:
                return None
            if arg.keyword is not None:
                values[arg.keyword.value] = [arg.value]
            elif index < len(params):
                values[params[index]] = [arg.value]
            else:
                extra.append(arg.value)
        if self.star is not None:
            values[self.star] = [cst.List([cst.Element(value) for value in extra])]
        if not values:
            return None
        return dataclasses.replace(self.scope, bindings={**self.scope.bindings, **values})


def _positional(call: cst.Call) -> list[cst.BaseExpression] | None:
    """Plain positional argument values; None when a ``*splat`` hides how many there are."""
    values: list[cst.BaseExpression] = []
    for arg in call.args:
        if arg.star == "*":
            return None
        if arg.keyword is None and arg.star == "":
            values.append(arg.value)
    return values


def _gitpython_tokens(reader: _Reader, api: str, call: cst.Call, positional: list[cst.BaseExpression]) -> list[str]:
    """``repo.git.clean("-fd", x=True)`` -> ``git clean -fd -x``, as GitPython builds it."""
    tokens = ["git", api.removeprefix(GITPYTHON).replace("_", "-")]
    for value in positional:
        listed = reader.words(value)
        tokens.extend(listed if listed is not None else [_known(reader.text(value))])
    for arg in call.args:
        if arg.keyword is None or arg.keyword.value in GITPYTHON_OPTIONS:
            continue
        name = arg.keyword.value
        flag = f"-{name}" if len(name) == 1 else "--" + name.replace("_", "-")
        value = arg.value
        if isinstance(value, cst.Name) and value.value in {"False", "None"}:
            continue
        tokens.append(flag if isinstance(value, cst.Name) and value.value == "True" else f"{flag}={OPAQUE}")
    return tokens


def _keyword(call: cst.Call, name: str) -> cst.BaseExpression | None:
    return next((a.value for a in call.args if a.keyword is not None and a.keyword.value == name), None)


class DestructiveShellCommand(Rule):
    """A destructive command run from agent code, where no human reviews it first.

    An unattended agent that can reach ``rm -rf``, ``git push --force`` or ``kill -9``
    through ``subprocess`` will eventually run it on the wrong path or the wrong process.
    Such commands belong in a reviewed wrapper script that a separate guard can see.

    Heuristic: a call is checked when its callee resolves through the module's imports to
    an executing API (``subprocess.run/call/check_call/check_output/Popen/getoutput/
    getstatusoutput``, ``os.system/popen/exec*/spawn*/posix_spawn*``,
    ``asyncio.create_subprocess_shell/exec``, ``pexpect.spawn/run``, ``anyio``/``trio``
    ``run_process``, ``pty.spawn``), or it is a line typed into a pexpect shell
    (``.sendline``/``.send``/``.run_command`` in a module importing pexpect) or a GitPython
    command (``repo.git.reset("--hard")``, ``force=True`` read as ``--force``, in a module
    importing ``git``). Its command is read from string literals, f-strings
    (fields unknown), ``+`` concatenation, ``%``/``.format`` templates, ``" ".join`` and
    ``shlex.join``/``shlex.split``, lists and tuples, and names bound to such a value
    anywhere in the same function (or module, for module-level code), then split like a
    shell line: ``;``/``&&``/``|``, ``sudo``/``env``/``xargs``/``timeout`` prefixes,
    ``sh -c "..."`` and ``find -exec`` are followed. Flagged: ``rm`` with recursive and
    force (``-rf``, ``-fr``, ``-Rf``, ``-r -f``, ``--recursive --force``); ``kill`` with
    SIGKILL (``-9``, ``-KILL``, ``-SIGKILL``, ``-s KILL``, ``--signal=KILL``), ``pkill``
    with SIGKILL, ``killall``; ``git push --force``/``-f``/``+refspec``, ``git reset
    --hard``, ``git clean -f...`` (unless ``-n``); ``mkfs*``, ``dd of=/dev/<disk>``,
    ``chmod -R 777``, ``shutdown``/``reboot``/``poweroff``/``halt``/``systemctl reboot``.
    ``git push --force-with-lease`` is not flagged: it refuses to overwrite remote commits
    the pusher has not seen, which is exactly the safe alternative this rule recommends.
    Text in comments, docstrings, log/print/help strings and constants that never reach
    an executing call is never read.

    A name's growth through ``cmd.append(x)``, ``cmd.extend(xs)`` and ``cmd += ...`` in the
    same scope is added to every value it was bound to (flow-insensitively, so a flag
    appended under an ``if`` counts: the command can become destructive).

    A command handed to a function or method of the same module that forwards its
    parameters to an executing call (``_run_git(["reset", "--hard"])``,
    ``self._command("rm -rf build")``) is flagged where the helper is called.

    Known misses: commands passed in from another module or held in attributes
    (``self.cmd``); commands run through other libraries' wrappers (fabric or
    invoke ``c.run``, paramiko ``exec_command``, docker ``exec_run``, sandbox ``exec``, the
    ``sh`` package); ``ssh host "rm -rf ..."``. Known noise: bindings are flow-insensitive,
    so a name assigned a destructive literal on any path counts.
    """

    code = "AF401"
    message = f"destructive shell command executed from Python; {_FIX_TEXT}"
    triggers = SHELL_TRIGGERS

    VALID = (
        # The command only appears in a comment, a docstring, a log and a help string.
        'import logging\nimport subprocess\n\ndef clean(path):\n    """Like rm -rf, but safe."""\n'
        '    # rm -rf would be faster\n    logging.getLogger(__name__).info("not running rm -rf %s", path)\n'
        '    subprocess.run(["rm", "-r", path])\n',
        'import argparse\nparser = argparse.ArgumentParser()\n'
        'parser.add_argument("--purge", help="runs git reset --hard first")\n',
        # A constant that never reaches an executing call.
        'import subprocess\nDANGER = "rm -rf /"\nsubprocess.run(["ls", "-la"])\nprint(DANGER)\n',
        # Safe alternatives and look-alikes.
        'import subprocess\nsubprocess.run(["git", "push", "--force-with-lease", "origin", "main"])\n',
        'import subprocess\nsubprocess.run("grep -r \'kill -9\' logs/", shell=True)\n',
        'import os\nos.system("dd if=/dev/sda of=/dev/null bs=1M count=1")\n',
        'import subprocess\nsubprocess.run(["git", "clean", "-ndx"])\n',
        'import shutil\nshutil.rmtree("build")\n',
        'import os, signal\nos.kill(1234, signal.SIGKILL)\n',
        # Not the subprocess module: a local object with a run() method.
        'class Runner:\n    def run(self, cmd):\n        return cmd\n\nRunner().run("rm -rf /")\n',
        # A parameter shadows the module-level constant.
        'import subprocess\nCMD = "rm -rf /"\n\ndef run(CMD):\n    subprocess.run(CMD, shell=True)\n',
    )
    INVALID = (
        'import subprocess\nsubprocess.run(["rm", "-rf", "/tmp/work"])  # expect: AF401\n',
        'import subprocess as sp\nsp.call("rm -fr build", shell=True)  # expect: AF401\n',
        'from os import system as run_it\nrun_it("rm -Rf ~/.cache")  # expect: AF401\n',
        'import asyncio\n\nasync def stop(pid):\n'
        '    await asyncio.create_subprocess_shell(f"kill -9 {pid}")  # expect: AF401\n',
        'import subprocess\n\ndef publish():\n    cmd = ("git", "push", "--force")\n'
        '    subprocess.check_call(cmd)  # expect: AF401\n',
        'import subprocess, shlex\nsubprocess.run(shlex.split("git reset --hard HEAD~1"))  # expect: AF401\n',
        'import os\n\ndef wipe(path):\n    os.system("rm -r -f " + path)  # expect: AF401\n',
        'import pexpect\npexpect.spawn("sudo killall python")  # expect: AF401\n',
        # A coding agent's git helper forwarding its arguments (the helper alone is harmless).
        'import subprocess\n\ndef _run_git(args, cwd=None):\n    return subprocess.run(["git", *args], cwd=cwd)\n\n'
        'def undo(repo):\n    _run_git(["reset", "--hard", "HEAD~1"], cwd=repo)  # expect: AF401\n',
        # A sandbox class whose shell method forwards a command string.
        'import os\n\nclass Sandbox:\n    def _command(self, line):\n        return os.system(line)\n\n'
        '    def wipe(self):\n        self._command("rm -rf /workspace/tmp")  # expect: AF401\n',
        # An agent backend whose exec_shell spreads the argv into create_subprocess_exec.
        'import asyncio\n\nclass LocalBackend:\n    async def exec_shell(self, command):\n'
        '        return await asyncio.create_subprocess_exec(*command)\n\n'
        '    async def delete_path(self, path):\n'
        '        await self.exec_shell(["rm", "-rf", path])  # expect: AF401\n',
        # A coding-agent benchmark resetting its checkout through GitPython.
        'from git import Repo\n\ndef reset(path, sha):\n    repo = Repo(path)\n'
        '    repo.git.reset("--hard", sha)  # expect: AF401\n',
        # A runtime that interrupts a job in its pexpect shell.
        'import pexpect\n\nclass Session:\n    def interrupt(self):\n'
        '        self.shell.sendline("kill -9 %1")  # expect: AF401\n',
        # A checkpointing agent: git comes from an imported constant named for it.
        'import subprocess\nfrom .util.git_cmd import GIT_CMD\n\ndef restore(sha):\n'
        '    subprocess.run([GIT_CMD, "reset", "--hard", sha])  # expect: AF401\n',
    )

    def __init__(self, context: FileContext) -> None:
        super().__init__(context)
        self._scopes: list[_Scope] = []
        self._pending: list[_PendingCall] = []
        self._helpers: list[_Helper | None] = []
        self._by_name: dict[tuple[bool, str], list[_Helper]] = {}
        self._calls: list[tuple[cst.Call, bool, str]] = []
        self._classes = 0

    def visit_Module(self, node: cst.Module) -> None:
        self._scopes.append(_Scope(parent=None))

    def visit_ClassDef(self, node: cst.ClassDef) -> None:
        self._scopes.append(_Scope(parent=self._scopes[-1], is_class=True))
        self._classes += 1

    def leave_ClassDef(self, original_node: cst.ClassDef) -> None:
        self._scopes.pop()
        self._classes -= 1

    def visit_FunctionDef(self, node: cst.FunctionDef) -> None:
        is_method = self._scopes[-1].is_class
        scope = _Scope(parent=self._scopes[-1])
        self._scopes.append(scope)
        params = [p.name.value for p in (*node.params.posonly_params, *node.params.params)]
        star = node.params.star_arg.name.value if isinstance(node.params.star_arg, cst.Param) else None
        helper = _Helper(params, star, scope, is_method)
        self._helpers.append(helper)
        self._by_name.setdefault((is_method, node.name.value), []).append(helper)

    def leave_FunctionDef(self, original_node: cst.FunctionDef) -> None:
        self._scopes.pop()
        self._helpers.pop()

    def visit_Lambda(self, node: cst.Lambda) -> None:
        self._scopes.append(_Scope(parent=self._scopes[-1]))
        self._helpers.append(None)

    def leave_Lambda(self, original_node: cst.Lambda) -> None:
        self._scopes.pop()
        self._helpers.pop()

    def visit_Param(self, node: cst.Param) -> None:
        self._scopes[-1].bindings.setdefault(node.name.value, [])

    def visit_Assign(self, node: cst.Assign) -> None:
        for target in node.targets:
            if isinstance(target.target, cst.Name):
                self._scopes[-1].bindings.setdefault(target.target.value, []).append(node.value)

    def visit_AnnAssign(self, node: cst.AnnAssign) -> None:
        if isinstance(node.target, cst.Name) and node.value is not None:
            self._scopes[-1].bindings.setdefault(node.target.value, []).append(node.value)

    def visit_AugAssign(self, node: cst.AugAssign) -> None:
        if isinstance(node.target, cst.Name) and isinstance(node.operator, cst.AddAssign):
            self._grow(node.target.value, "items", node.value)

    def visit_Call(self, node: cst.Call) -> None:
        func = node.func
        if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and len(node.args) == 1:
            kind = _GROWING_METHODS.get(func.attr.value)
            if kind is not None:
                self._grow(func.value.value, kind, node.args[0].value)
        api = self.context.imports.resolve(func)
        needs = ""
        if api not in _APIS and isinstance(func, cst.Attribute):
            receiver = func.value.attr.value if isinstance(func.value, cst.Attribute) else None
            found = object_api(func.attr.value, receiver)
            if found is not None:
                api, needs = found
        if api is not None and (api in _APIS or needs):
            pending = _PendingCall(node, api, self._scopes[-1], needs)
            self._pending.append(pending)
            if self._helpers and self._helpers[-1] is not None:
                self._helpers[-1].calls.append(pending)
        elif isinstance(func, cst.Name) and api is None:
            self._calls.append((node, False, func.value))
        elif isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and self._classes:
            if func.value.value in {"self", "cls"}:
                self._calls.append((node, True, func.attr.value))

    def _grow(self, name: str, kind: str, value: cst.BaseExpression) -> None:
        scope = self._scopes[-1].owner(name) or self._scopes[-1]
        scope.growth.setdefault(name, []).append((kind, value))

    def leave_Module(self, original_node: cst.Module) -> None:
        for pending in self._pending:
            label = self._label(pending)
            if label:
                self.report(pending.call, f"`{label}` executed via {pending.api}(): {_FIX_TEXT}")
        for call, is_method, name in self._calls:
            label, api = self._forwarded(call, self._by_name.get((is_method, name), ()))
            if label:
                self.report(call, f"`{label}` executed via {name}() -> {api}(): {_FIX_TEXT}")

    def _forwarded(self, call: cst.Call, helpers: Sequence[_Helper]) -> tuple[str | None, str]:
        """What a call of a command-forwarding helper of this module runs, when destructive."""
        for helper in helpers:
            scope = helper.bound(call) if helper.calls else None
            if scope is None:
                continue
            for pending in helper.calls:
                if not self._label(pending):
                    label = self._label(dataclasses.replace(pending, scope=scope))
                    if label:
                        return label, pending.api
        return None, ""

    def _label(self, pending: _PendingCall) -> str | None:
        if pending.needs and not self.context.imports.imports_module(pending.needs):
            return None
        reader = _Reader(pending.scope, self.context.imports.resolve)
        api = _APIS.get(pending.api) or Api("gitpython")
        call = pending.call
        positional = _positional(call)
        if positional is None and api.kind == "variadic" and call.args and call.args[0].star == "*":
            # create_subprocess_exec(*command), command grown by extend/append included
            for spread in reader.commands(call.args[0].value, shell_list=False):
                label = destructive_command(spread)
                if label:
                    return label
            return None
        if positional is None:
            return None
        if api.kind == "gitpython":
            return destructive_command(_gitpython_tokens(reader, pending.api, call, positional))
        if api.kind in {"command", "pexpect"}:
            command = positional[0] if positional else _keyword(call, api.keyword)
            if command is None:
                return None
            shell_value = _keyword(call, "shell")
            shell_list = isinstance(shell_value, cst.Name) and shell_value.value == "True"
            extra: list[str] = []
            if api.kind == "pexpect":
                args = positional[1] if len(positional) > 1 else _keyword(call, "args")
                listed = reader.words(args) if args is not None else []
                extra = [OPAQUE] if listed is None else listed
            for tokens in reader.commands(command, shell_list=shell_list):
                label = destructive_command(tokens + extra)
                if label:
                    return label
            return None
        return destructive_command(self._exec_tokens(reader, api.kind, positional))

    @staticmethod
    def _exec_tokens(reader: _Reader, kind: str, positional: list[cst.BaseExpression]) -> list[str]:
        """``[program, *argv[1:]]`` for the exec/spawn families, which take argv[0] apart."""
        if kind == "variadic":
            return [_known(reader.text(value)) for value in positional]
        offset = 1 if kind.startswith("spawn") else 0
        if len(positional) <= offset:
            return []
        program = _known(reader.text(positional[offset]))
        if kind.endswith("_l"):
            argv = [_known(reader.text(value)) for value in positional[offset + 1 :]]
        elif len(positional) > offset + 1:
            listed = reader.words(positional[offset + 1])
            argv = [OPAQUE, OPAQUE] if listed is None else listed
        else:
            argv = []
        return [program, *argv[1:]]


RULES: tuple[type[Rule], ...] = (DestructiveShellCommand,)
