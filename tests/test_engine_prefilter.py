"""The fast pre-filter answers exactly like ``re.search`` on the same trigger patterns."""

from __future__ import annotations

import itertools
import re

import pytest

import agentfuse.lint_rules as registry
from agentfuse.lint.prefilter import TriggerMatcher, required_literals, split_alternatives

PATTERNS = [
    r"\bsubprocess\b",
    r"(?:\brm\b)|(?:kill)|(?:\bgit\b)",
    r"\b(?:openai|anthropic)\b|[\"'\[]llm\b",
    r"(?:\bmkfs|\bmke2fs\b)",
    r"while\s+\(?\s*(?:True|1)\s*\)?\s*:",
    r"(?:from|import)\s+(?:retrying|stamina|retry)\b",
    r"[|(]\brm\b|x\|y",
    r"(?i)\bopenai\b",
    r"\bab|\bb",
]
TEXTS = [
    "",
    "import subprocess\n",
    "from subprocess_tools import x\n",
    "platform form perform\n",
    "os.system('rm -rf /')\n",
    "skill = 1\n",
    "legit = 'digit'\n",
    "git push --force\n",
    "OpenAI()\n",
    "import openai\n",
    "x = 'llm'\n",
    "llm = 1\n",
    "mke2fs /dev/sda; mkfs.ext4\n",
    "while True:\n    pass\n",
    "while (1) :\n",
    "whileTrue:\n",
    "from retrying import retry\n",
    "import   stamina\n",
    "|rm (rm x|y\n",
    "cab ab\n",
    "cab\n",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matcher_agrees_with_re_search(pattern: str) -> None:
    compiled = re.compile(pattern)
    matcher = TriggerMatcher.of(compiled)
    for text in TEXTS:
        assert matcher.search(text) is (compiled.search(text) is not None), (pattern, text)


def test_registry_triggers_agree_with_re_search_on_rule_examples() -> None:
    texts = [e for rule in registry.all_rules() for e in (*rule.VALID, *rule.INVALID)] + TEXTS
    for rule in registry.all_rules():
        compiled = rule.trigger_pattern()
        if compiled is None:
            continue
        matcher = TriggerMatcher.of(compiled)
        for text in texts:
            assert matcher.search(text) is (compiled.search(text) is not None), (rule.code, text)


def test_required_literals() -> None:
    assert required_literals(r"\bsubprocess\.run\b") == ("subprocess.run",)
    assert required_literals(r"\b(?:openai|anthropic)\b") == ("anthropic", "openai")
    assert required_literals(r"(?:from|import)\s+(?:retrying|stamina)\b") == ("retrying", "stamina")
    assert required_literals(r"a?b*") is None
    assert required_literals(r"(?i)openai") is None


def test_split_alternatives_respects_groups_classes_and_escapes() -> None:
    assert split_alternatives(r"a|(b|c)|[|]|\||d") == ["a", "(b|c)", "[|]", r"\|", "d"]


def test_literal_memo_is_shared_between_matchers() -> None:
    seen: dict[str, bool] = {}
    first = TriggerMatcher.of(re.compile(r"\bopenai\b"))
    second = TriggerMatcher.of(re.compile(r"\bopenai\.chat\b|\bopenai\b"))
    assert not first.search("nothing here", seen)
    assert seen == {"openai": False}
    assert not second.search("nothing here", seen)
    assert set(seen) == {"openai", "openai.chat"}
    assert list(itertools.chain(seen.values())) == [False, False]
