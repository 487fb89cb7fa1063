"""Every rule is registered once, documented, and proven by its own examples."""

from __future__ import annotations

import pkgutil
import re

import pytest

import agentfuse.lint_rules as registry
from agentfuse.lint.checker import check_source
from agentfuse.lint_rules.base import Rule

RULES = registry.all_rules()
EXPECT = re.compile(r"#\s*expect:\s*([A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*)")


def test_every_rule_module_is_registered() -> None:
    modules = {
        f"agentfuse.lint_rules.{info.name}"
        for info in pkgutil.iter_modules(registry.__path__)
        if info.name not in {"base"} and not info.name.startswith("_")
    }
    assert modules == set(registry.RULE_MODULES)


def test_codes_are_unique_and_well_formed() -> None:
    codes = [rule.code for rule in RULES]
    assert len(codes) == len(set(codes))
    assert all(re.fullmatch(r"AF\d{3}", code) for code in codes)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_is_documented_with_examples(rule: type[Rule]) -> None:
    assert rule.__doc__ and rule.__doc__.strip(), f"{rule.code} needs a docstring saying why"
    assert rule.message.startswith(rule.code + " ") is False, "message carries no code prefix"
    assert rule.VALID and rule.INVALID, f"{rule.code} needs VALID and INVALID examples"


def _cases(kind: str) -> list[tuple[type[Rule], str]]:
    return [(rule, example) for rule in RULES for example in getattr(rule, kind)]


def _ids(kind: str) -> list[str]:
    ids: list[str] = []
    for rule in RULES:
        ids.extend(f"{rule.code}-{kind.lower()}-{i}" for i in range(len(getattr(rule, kind))))
    return ids


@pytest.mark.parametrize(("rule", "example"), _cases("VALID"), ids=_ids("VALID"))
def test_valid_example_has_no_finding(rule: type[Rule], example: str) -> None:
    findings = [f for f in check_source(example, [rule]) if f.code == rule.code]
    assert findings == []


@pytest.mark.parametrize(("rule", "example"), _cases("INVALID"), ids=_ids("INVALID"))
def test_invalid_example_is_flagged_where_marked(rule: type[Rule], example: str) -> None:
    findings = [f for f in check_source(example, [rule]) if f.code == rule.code]
    assert findings, f"{rule.code} found nothing in:\n{example}"
    marked = {
        number
        for number, line in enumerate(example.splitlines(), start=1)
        if (m := EXPECT.search(line)) and rule.code in m.group(1)
    }
    if marked:
        assert {f.line for f in findings} == marked


@pytest.mark.parametrize(("rule", "example"), _cases("INVALID"), ids=_ids("INVALID"))
def test_invalid_example_passes_the_text_prefilter(rule: type[Rule], example: str) -> None:
    pattern = rule.trigger_pattern()
    assert pattern is None or pattern.search(example), (
        f"{rule.code}'s triggers would skip this file before parsing it:\n{example}"
    )
