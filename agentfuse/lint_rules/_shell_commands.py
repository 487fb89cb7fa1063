"""AF401's shell reading: splitting a command line into words as ``sh`` would, and finding the
first destructive command among them (``rm -rf``, ``pkill -9``, ``git push --force``, ...)."""

from __future__ import annotations

import dataclasses
import re
import shlex
from collections.abc import Callable, Sequence

OPAQUE = "\ue000"
"""Stands in a token for text the linter cannot know (an f-string field, a variable)."""

MAX_DEPTH = 4
"""How many name-to-literal hops a command may take (``a = b`` chains; stops cycles)."""


def shell_words(text: str) -> list[str]:
    """Split a shell command line roughly as sh would: words, with ``;``/``&&``/``|`` apart.

    Newlines separate commands; a word starting with ``#`` comments out the rest of its line.
    """
    lexer = shlex.shlex(text.replace("\n", " \n; "), posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        raw = list(lexer)
    except ValueError:
        raw = text.replace("\n", " ; ").split()
    words: list[str] = []
    in_comment = False
    for word in raw:
        if in_comment:
            in_comment = word != ";"
            if not in_comment:
                words.append(word)
            continue
        if word.startswith("#"):
            in_comment = True
            continue
        words.append(word)
    return words


# --- recognising destructive commands ----------------------------------------------------

_SEPARATOR = re.compile(r"[();<>|&]+|!|\{|\}|if|then|do|else|elif|while|until")
_ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "ash"})
_WRAPPERS: dict[str, tuple[frozenset[str], int]] = {
    "sudo": (frozenset({"-u", "-g", "-p", "-C", "-D", "-r", "-t", "-U", "-h"}), 0),
    "doas": (frozenset({"-u", "-C"}), 0),
    "env": (frozenset({"-u", "-C", "-S"}), 0),
    "nohup": (frozenset(), 0),
    "exec": (frozenset({"-a"}), 0),
    "time": (frozenset(), 0),
    "command": (frozenset(), 0),
    "builtin": (frozenset(), 0),
    "nice": (frozenset({"-n"}), 0),
    "ionice": (frozenset({"-c", "-n", "-p"}), 0),
    "timeout": (frozenset({"-s", "-k", "--signal", "--kill-after"}), 1),
    "xargs": (frozenset({"-I", "-n", "-P", "-L", "-d", "-E", "-s", "-a"}), 0),
    "stdbuf": (frozenset(), 0),
    "setsid": (frozenset(), 0),
}
_SAFE_DEVICES = frozenset({"null", "zero", "stdout", "stderr", "tty", "random", "urandom"})
_OPEN_MODES = frozenset({"777", "0777", "a+rwx", "ugo+rwx", "a=rwx", "ugo=rwx"})
_ALWAYS = frozenset({"killall", "killall5", "shutdown", "reboot", "poweroff", "halt", "mke2fs"})


@dataclasses.dataclass
class _Options:
    """The options before ``--``: short letters (``-rf`` -> r, f) and long names."""

    short: dict[str, str] = dataclasses.field(default_factory=dict)
    long: dict[str, str] = dataclasses.field(default_factory=dict)

    @classmethod
    def parse(cls, args: Sequence[str]) -> _Options:
        options = cls()
        for word in args:
            if word == "--":
                break
            if OPAQUE in word or not word.startswith("-") or word == "-":
                continue
            if word.startswith("--"):
                options.long.setdefault(word.split("=", 1)[0], word)
            else:
                for letter in word[1:]:
                    options.short.setdefault(letter, word)
        return options

    def spelled(self, *names: str) -> str | None:
        """How the first present option among ``names`` (``"r"``, ``"--force"``) was written."""
        for name in names:
            found = self.long.get(name) if name.startswith("--") else self.short.get(name)
            if found is not None:
                return found
        return None


def _joined(command: str, *flags: str | None) -> str:
    """``rm -rf`` from the command and the distinct flag words that made it destructive."""
    seen: list[str] = []
    for flag in flags:
        if flag is not None and flag not in seen:
            seen.append(flag)
    return " ".join([command, *seen])


def _rm(args: Sequence[str]) -> str | None:
    options = _Options.parse(args)
    recursive = options.spelled("r", "R", "--recursive")
    force = options.spelled("f", "--force")
    return _joined("rm", recursive, force) if recursive and force else None


def _is_kill_signal(signal: str) -> bool:
    return signal.upper().removeprefix("SIG") in {"9", "KILL"}


def _kill_with(name: str, valued: frozenset[str]) -> Callable[[Sequence[str]], str | None]:
    """A detector for ``name`` that flags SIGKILL however it is spelled."""

    def detect(args: Sequence[str]) -> str | None:
        for index, word in enumerate(args):
            if word in valued and index + 1 < len(args):
                if _is_kill_signal(args[index + 1]):
                    return f"{name} {word} {args[index + 1]}"
            elif word.startswith("--signal="):
                if _is_kill_signal(word.split("=", 1)[1]):
                    return f"{name} {word}"
            elif word.startswith("-") and not word.startswith("--") and _is_kill_signal(word[1:]):
                return f"{name} {word}"
        return None

    return detect


_GIT_VALUED_GLOBALS = frozenset({"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path"})


def _git(args: Sequence[str]) -> str | None:
    index = 0
    while index < len(args) and args[index].startswith("-"):
        index += 2 if args[index] in _GIT_VALUED_GLOBALS else 1
    if index >= len(args):
        return None
    sub, rest = args[index], args[index + 1 :]
    options = _Options.parse(rest)
    if options.spelled("n", "--dry-run"):
        return None
    if sub == "push":
        force = options.spelled("f", "--force")
        if force:
            return f"git push {force}"
        plus = next((w for w in rest if w.startswith("+") and len(w) > 1 and OPAQUE not in w), None)
        return f"git push {plus}" if plus else None
    if sub == "reset" and "--hard" in options.long:
        return "git reset --hard"
    if sub == "clean":
        force = options.spelled("f", "--force")
        if force:
            return _joined("git clean", force, options.spelled("d"), options.spelled("x", "X"))
    return None


def _dd(args: Sequence[str]) -> str | None:
    for word in args:
        if word.startswith("of=/dev/") and OPAQUE not in word:
            if word.removeprefix("of=/dev/") not in _SAFE_DEVICES and not word.startswith("of=/dev/fd/"):
                return f"dd {word}"
    return None


def _chmod(args: Sequence[str]) -> str | None:
    options = _Options.parse(args)
    recursive = options.spelled("R", "--recursive")
    mode = next((w for w in args if w in _OPEN_MODES), None)
    return _joined("chmod", recursive, mode) if recursive and mode else None


def _systemctl(args: Sequence[str]) -> str | None:
    action = next((w for w in args if not w.startswith("-")), None)
    return f"systemctl {action}" if action in {"reboot", "poweroff", "halt", "kexec"} else None


_DETECTORS: dict[str, Callable[[Sequence[str]], str | None]] = {
    "rm": _rm,
    "kill": _kill_with("kill", frozenset({"-s", "-n", "--signal"})),
    "pkill": _kill_with("pkill", frozenset({"--signal"})),
    "git": _git,
    "dd": _dd,
    "chmod": _chmod,
    "systemctl": _systemctl,
}


def _command_start(segment: Sequence[str]) -> int:
    """Index of the real command word, past ``VAR=x`` and wrappers such as sudo or xargs."""
    index = 0
    while index < len(segment):
        word = segment[index]
        if _ASSIGNMENT.match(word):
            index += 1
            continue
        wrapper = _WRAPPERS.get(word.rsplit("/", 1)[-1])
        if wrapper is None:
            return index
        valued, positionals = wrapper
        index += 1
        while index < len(segment) and segment[index].startswith("-"):
            index += 2 if segment[index] in valued else 1
        index += positionals
    return index


def _segment_label(segment: Sequence[str], depth: int) -> str | None:
    """The destructive command one simple command runs, or None."""
    start = _command_start(segment)
    if start >= len(segment) or OPAQUE in segment[start]:
        return None
    name, args = segment[start].rsplit("/", 1)[-1], segment[start + 1 :]
    if name in _ALWAYS or name.startswith("mkfs"):
        return name
    if name in _SHELLS:
        for index, word in enumerate(args[:-1]):
            if re.fullmatch(r"-[a-z]*c[a-z]*", word):
                return destructive_command(shell_words(args[index + 1]), depth + 1)
        return None
    if name == "find":
        for index, word in enumerate(args):
            if word in {"-exec", "-execdir", "-ok", "-okdir"}:
                return _segment_label(args[index + 1 :], depth)
        return None
    detector = _DETECTORS.get(name)
    return detector(args) if detector else None


def destructive_command(tokens: Sequence[str], depth: int = 0) -> str | None:
    """The first destructive command in a token list (``"rm -rf"``), or None."""
    if depth > MAX_DEPTH:
        return None
    segment: list[str] = []
    for word in [*tokens, ";"]:
        if _SEPARATOR.fullmatch(word):
            label = _segment_label(segment, depth) if segment else None
            if label:
                return label
            segment = []
        else:
            segment.append(word)
    return None
