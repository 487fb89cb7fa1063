"""LLM command-line tools started as subprocesses (``claude -p``, ``codex exec``, ``ollama run``).

The command is read from a list or tuple of words, a string (split like a shell would), a
``shlex.split(...)`` of one, or a name bound to any of these; the program may be a literal,
a name bound to one, or ``shutil.which("claude")``.
"""

from __future__ import annotations

import libcst as cst

from agentfuse.lint_rules._llm_catalogue import (
    ARGV_FUNCTIONS,
    CLI_HOUSEKEEPING,
    CLI_INFO_FLAGS,
    LLM_CLIS,
)
from agentfuse.lint_rules._llm_model import Scope, leading_text, split_command, string_value
from agentfuse.lint_rules._llm_resolve import Resolver

COMMAND_KEYWORDS = frozenset({"args", "cmd", "command"})
SHELL_SEPARATORS = frozenset({"&&", "||", ";", "|"})
WHICH_NAMES = frozenset({"shutil.which"})


def _word(resolver: Resolver, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> str | None:
    """One argv word: a literal, ``shutil.which("x")``, or a name bound to one of these."""
    text = string_value(expr)
    if text is not None:
        return text
    if isinstance(expr, cst.Call) and resolver.imports.resolve(expr.func) in WHICH_NAMES and expr.args:
        return string_value(expr.args[0].value)
    if depth < 2 and isinstance(expr, (cst.Name, cst.Attribute)):
        words = {_word(resolver, b.expr, b.scope, depth + 1) for b in resolver.bindings_of(expr, scope)}
        words.discard(None)
        return words.pop() if len(words) == 1 else None
    return None


def argv(resolver: Resolver, expr: cst.BaseExpression, scope: Scope, depth: int = 0) -> list[str | None]:
    """The words of a command expression (None for a word that is not static)."""
    if isinstance(expr, (cst.List, cst.Tuple)):
        words: list[str | None] = []
        for element in expr.elements:
            if isinstance(element, cst.StarredElement):
                break
            words.append(_word(resolver, element.value, scope))
        return words
    text = leading_text(expr)
    if text is not None:
        return split_command(text)
    if isinstance(expr, cst.Call) and resolver.imports.resolve(expr.func) == "shlex.split" and expr.args:
        return argv(resolver, expr.args[0].value, scope, depth)
    if depth < 2:
        for binding in resolver.bindings_of(expr, scope):
            if not binding.annotation and (words := argv(resolver, binding.expr, binding.scope, depth + 1)):
                return words
    return []


def cli_call(resolver: Resolver, call: cst.Call, qualified: str, scope: Scope) -> str | None:
    """The LLM CLI a process-starting call runs with a prompt, as an API label, or None."""
    positional = [arg.value for arg in call.args if arg.keyword is None and not arg.star]
    if qualified in ARGV_FUNCTIONS:
        words = [_word(resolver, value, scope) for value in positional]
    else:
        keywords = (a.value for a in call.args if a.keyword is not None and a.keyword.value in COMMAND_KEYWORDS)
        command = positional[0] if positional else next(keywords, None)
        words = argv(resolver, command, scope) if command is not None else []
    starts = [0] + [i + 1 for i, word in enumerate(words) if word in SHELL_SEPARATORS]
    for start in starts:
        if start >= len(words) or words[start] is None:
            continue
        program = str(words[start]).rsplit("/", 1)[-1]
        if program not in LLM_CLIS:
            continue
        rest = words[start + 1 :]
        needed = LLM_CLIS[program]
        if needed is not None and (not rest or rest[0] != needed):
            continue
        if rest and (rest[0] in CLI_INFO_FLAGS or rest[0] in CLI_HOUSEKEEPING.get(program, ())):
            continue
        label = f"{program} {needed}" if needed else program
        return f"the `{label}` CLI run through {qualified}"
    return None
