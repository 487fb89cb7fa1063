"""The words each rule needs to see in a file's text before the file is worth parsing.

Plain data (regular expressions), kept apart from the rule classes so that the engine's
pre-filter runs without importing libcst or any rule: a file that matches no rule's
triggers costs neither. Each rule class names its triggers from here and the registry
(``agentfuse.lint_rules.REGISTRY``) lists them per code; a test checks that they agree.

``triggers``: the file must match one of them. ``required_triggers``: when a rule has
them, it must match one of these too ("mentions a provider *and* a request word").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentfuse.lint_rules._llm_catalogue import DEFAULT_CATALOGUE, LLM_TRIGGERS

_IDENTIFIER = re.compile(r"[^\W\d]\w*")


def any_word(words: Iterable[str]) -> str:
    """A trigger matching any of ``words`` as a whole word."""
    return r"\b(?:" + "|".join(sorted(re.escape(word) for word in set(words))) + r")\b"


def option_words(options: Mapping[str, Any], names: Sequence[str]) -> frozenset[str]:
    """The identifiers in the string (or list of strings) options ``names``."""
    words: set[str] = set()
    for name in names:
        value = options.get(name)
        entries = [value] if isinstance(value, str) else value if isinstance(value, (list, tuple)) else []
        for entry in entries:
            if isinstance(entry, str):
                words.update(_IDENTIFIER.findall(entry))
    return frozenset(words)


def trigger_text(triggers: Sequence[str]) -> str | None:
    """One regex over all ``triggers``, or None (the rule runs on every file)."""
    return "|".join(f"(?:{t})" for t in triggers) if triggers else None


def required_text(
    required: Sequence[str], option_names: Sequence[str], options: Mapping[str, Any] | None
) -> str | None:
    """The second trigger group as one regex, with the words ``options`` add, or None."""
    if not required:
        return None
    words = option_words(options or {}, option_names)
    return trigger_text((*required, *((any_word(words),) if words else ())))


def trigger_pattern(triggers: Sequence[str]) -> re.Pattern[str] | None:
    """:func:`trigger_text`, compiled."""
    text = trigger_text(triggers)
    return re.compile(text) if text is not None else None


def required_pattern(
    required: Sequence[str], option_names: Sequence[str], options: Mapping[str, Any] | None
) -> re.Pattern[str] | None:
    """:func:`required_text`, compiled."""
    text = required_text(required, option_names, options)
    return re.compile(text) if text is not None else None


LLM_REQUEST_TRIGGERS: tuple[str, ...] = (any_word(DEFAULT_CATALOGUE.call_names),)
"""A request name from the catalogue (``create``, ``invoke``, ``completion``, ...)."""
LLM_OPTIONS: tuple[str, ...] = ("llm-apis", "guard-names")
"""Options whose names join the request words (``llm-apis = ["mylib.ask"]`` adds ``ask``)."""
ENFORCE_TRIGGERS: tuple[str, ...] = (r"\benforce\b",)
POLICY_TRIGGERS: tuple[str, ...] = LLM_TRIGGERS + ENFORCE_TRIGGERS
POLICY_REQUIRED_TRIGGERS: tuple[str, ...] = LLM_REQUEST_TRIGGERS + ENFORCE_TRIGGERS

TENACITY_TRIGGERS: tuple[str, ...] = (r"tenacity\b",)
BACKOFF_TRIGGERS: tuple[str, ...] = (r"backoff\b",)
RETRY_HELPER_TRIGGERS: tuple[str, ...] = (
    r"(?:from|import)\s+(?:retrying|stamina|retry)\b",
    r"Retry\b",
    r"(?:OpenAI|Anthropic\w*|Client|with_options)\s*\((?:[^()]|\([^()]*\))*max_retries",
)
RETRY_LOOP_TRIGGERS: tuple[str, ...] = (r"while\s+\(?\s*(?:True|1)\s*\)?\s*:",)
PLAYWRIGHT_TRIGGERS: tuple[str, ...] = (r"\.(?:evaluate|wait_for_function|eval_on_selector)",)
SHELL_TRIGGERS: tuple[str, ...] = (
    # Each starts with a literal, which keeps the pre-filter scan fast (a leading \b or
    # an alternation of different first letters makes Python's re many times slower).
    r"rm(?: -| [\"']|[\"'][,)\]+ ])",
    r"git(?: |[\"'])",
    r"--hard[\"']",
    r"-fdx?[\"']",
    r"kill(?: -|[\"'],|all)",
    r"chmod(?: -|[\"'],)",
    r"of=/dev/",
    r"mk(?:fs|e2fs)",
    r"shutdown[ \"']",
    r"halt[ \"']",
    r"reboot",
    r"poweroff",
    r"kexec",
    r"\.git\.(?:reset|clean|push)\(",
)
