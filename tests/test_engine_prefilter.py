"""The fast pre-filter answers exactly like ``re.search`` on the same trigger patterns."""

from __future__ import annotations

import itertools
import re

import pytest

import agentfuse.lint_rules as registry
from agentfuse.lint.checker import RuleSet, lint_text
from agentfuse.lint.prefilter import TriggerMatcher, required_literals, split_alternatives
from agentfuse.lint_rules._llm_catalogue import DEFAULT_CATALOGUE
from agentfuse.lint_rules.base import Rule
from agentfuse.lint_rules.llm_calls import UnguardedLlmCall
from agentfuse.lint_rules.policy import MissingPolicy

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
    r"\b(?:run|call|create)\b|\bclaude\b",
    r"(?i)\b(?:run|call)\b",
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
    "subprocess.run(x)\n",
    "callback = tool_call or recall\n",
    "RUN = CALL\n",
    "client.chat.completions.create(model=m)\n",
    "create_and_poll runner\n",
]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_matcher_agrees_with_re_search(pattern: str) -> None:
    compiled = re.compile(pattern)
    matcher = TriggerMatcher.of(compiled)
    for text in TEXTS:
        assert matcher.search(text) is (compiled.search(text) is not None), (pattern, text)


def test_registry_triggers_agree_with_re_search_on_rule_examples() -> None:
    """Both trigger groups (``triggers`` and ``required_triggers``) of every rule."""
    texts = [e for rule in registry.all_rules() for e in (*rule.VALID, *rule.INVALID)] + TEXTS
    for rule in registry.all_rules():
        for compiled in (rule.trigger_pattern(), rule.required_pattern()):
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


def test_a_word_list_becomes_one_branch_per_word() -> None:
    """``\\b(?:a|b)\\b`` is searched word by word, each branch starting with its literal."""
    matcher = TriggerMatcher.of(re.compile(r"\b(?:run|call)\b|\b(?:langchain\w*|x)\b"))
    assert [branch.literals for branch in matcher.branches][:2] == [("run",), ("call",)]
    assert len(matcher.branches) == 3
    assert not matcher.search("rerun callback tool_call running")
    assert matcher.search("x = run")


@pytest.mark.parametrize("rule", [r for r in registry.all_rules() if r.required_triggers], ids=lambda r: r.code)
def test_every_invalid_example_matches_both_trigger_groups(rule: type[Rule]) -> None:
    for example in rule.INVALID:
        assert rule.matches_triggers(example), (rule.code, example)
        assert rule in RuleSet.of([rule]).candidates(example)


def test_every_catalogue_request_name_is_a_request_word_of_af101_to_af103() -> None:
    """The second group is derived from the catalogue: a new API cannot be filtered out."""
    for rule in (UnguardedLlmCall, MissingPolicy):
        pattern = rule.required_pattern()
        assert pattern is not None
        for name in DEFAULT_CATALOGUE.call_names:
            assert pattern.search(f"x.{name}(y)"), (rule.code, name)


PROVIDER_WITHOUT_REQUEST = """
import openai

def describe(error: openai.APIError) -> str:
    return f"{error.status_code}: {error.message}"
"""


def test_a_provider_mention_without_any_request_word_is_not_a_candidate() -> None:
    rule_set = RuleSet.of(list(registry.all_rules()))
    assert UnguardedLlmCall.trigger_pattern().search(PROVIDER_WITHOUT_REQUEST)  # type: ignore[union-attr]
    codes = {rule.code for rule in rule_set.candidates(PROVIDER_WITHOUT_REQUEST)}
    assert not codes & {"AF101", "AF102", "AF103"}


CONFIGURED_API = """
import openai
from mylib import ask

ask("summarise the report")
"""


def test_llm_apis_option_adds_its_names_to_the_request_words() -> None:
    """A request function named only in ``llm-apis`` still reaches the rule."""
    rule_set = RuleSet.of([UnguardedLlmCall])
    options = {"llm-apis": ["mylib.ask"]}
    assert rule_set.candidates(CONFIGURED_API) == []
    assert rule_set.candidates(CONFIGURED_API, options) == [UnguardedLlmCall]
    assert rule_set.for_options(options) is rule_set.for_options({"llm-apis": "mylib.ask"})
    assert rule_set.for_options({"policy": "p.yaml"}) is rule_set
    findings = lint_text(CONFIGURED_API, rule_set, path="t.py", options=options).findings
    assert [(f.code, f.line) for f in findings] == [("AF101", 5)]


def test_enforce_alone_passes_both_groups_of_af102() -> None:
    source = 'from agentfuse import enforce\nguard = enforce("no/such/policy.yaml")\n'
    assert MissingPolicy.matches_triggers(source)
    findings = lint_text(source, RuleSet.of([MissingPolicy]), path="t.py", options={}).findings
    assert [f.code for f in findings] == ["AF102"]


@pytest.mark.parametrize("entry", registry.REGISTRY, ids=lambda e: e.code)
def test_registry_entry_is_what_its_rule_class_declares(entry: registry.RuleEntry) -> None:
    rule = entry.load()
    assert rule.__name__ == entry.name and rule.__module__ == entry.module
    fields = ("code", "triggers", "required_triggers", "trigger_word_options", "default_enabled")
    assert [getattr(rule, name) for name in fields] == [getattr(entry, name) for name in fields]


def test_registry_lists_every_rule_of_every_family_in_order() -> None:
    import importlib

    exported = [rule for name in registry.RULE_MODULES for rule in importlib.import_module(name).RULES]
    assert [entry.load() for entry in registry.REGISTRY] == exported


def test_rule_set_from_registry_entries_picks_the_same_rules_as_from_classes() -> None:
    from_entries = RuleSet.of(list(registry.REGISTRY))
    from_classes = RuleSet.of(list(registry.all_rules()))
    texts = [e for rule in registry.all_rules() for e in (*rule.VALID, *rule.INVALID)] + TEXTS
    options = {"llm-apis": ["mylib.ask"]}
    for text in texts:
        assert from_entries.candidates(text) == from_classes.candidates(text)
        assert from_entries.candidates(text, options) == from_classes.candidates(text, options)
