"""The policy files the tests share, and the checks their own marks ask for.

``tests/data/policies/invalid/*.yaml`` each start with a comment saying what is wrong, then
``# expect: LINE: text`` marks (an issue at LINE whose text contains ``text``) and, where a JSON
Schema cannot express the rule, ``# schema-blind: why``. A new case is one new file.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from agentfuse.runtime.errors import PolicyError
from agentfuse.runtime.policy_loader import load_policy, policy_issues

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data" / "policies"
EXAMPLE_POLICIES = sorted((REPO / "policies").glob("**/*.yaml"))
VALID_POLICIES = sorted((DATA / "valid").glob("*.yaml"))
INVALID_POLICIES = sorted((DATA / "invalid").glob("*.yaml"))
NO_ENVIRONMENT: dict[str, str] = {}

_EXPECT = re.compile(r"^# expect: (\d+): (.+)$", re.MULTILINE)
_SCHEMA_BLIND = re.compile(r"^# schema-blind: (.+)$", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Expectation:
    """An issue that must be reported at ``line`` with ``fragment`` in its text."""

    line: int
    fragment: str


def _marks(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def expectations(path: Path) -> list[Expectation]:
    return [Expectation(int(line), text) for line, text in _EXPECT.findall(_marks(path))]


def schema_blind_reason(path: Path) -> str | None:
    match = _SCHEMA_BLIND.search(_marks(path))
    return match.group(1) if match else None


def case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def assert_reported(issues: list[str], path: Path, expectation: Expectation) -> None:
    """``issues`` (as printed) hold one at the expected line that contains the fragment."""
    prefix = f"{path}:{expectation.line}:"
    matching = [text for text in issues if text.startswith(prefix) and expectation.fragment in text]
    got = "\n".join(issues)
    assert matching, f"no issue at {prefix} containing {expectation.fragment!r}; got:\n{got}"


def test_the_malformed_cases_number_at_least_30_and_all_say_what_they_expect() -> None:
    assert len(INVALID_POLICIES) >= 30
    assert [p.name for p in INVALID_POLICIES if not expectations(p)] == []


def test_the_examples_cover_default_strict_and_multi_agent() -> None:
    names = {case_id(p) for p in EXAMPLE_POLICIES}
    assert {"policies/default", "policies/strict"} <= names
    assert len([n for n in names if n.startswith("multi-agent/")]) >= 2


@pytest.mark.parametrize("path", INVALID_POLICIES, ids=case_id)
def test_malformed_policy_reports_every_expected_issue(path: Path) -> None:
    issues = policy_issues(path, environ=NO_ENVIRONMENT)
    printed = [str(issue) for issue in issues]
    for expectation in expectations(path):
        assert_reported(printed, path, expectation)
    with pytest.raises(PolicyError) as raised:
        load_policy(path, environ=NO_ENVIRONMENT)
    assert list(raised.value.issues) == issues
    assert str(raised.value) == "\n".join(printed)


@pytest.mark.parametrize("path", EXAMPLE_POLICIES + VALID_POLICIES, ids=case_id)
def test_valid_policy_loads_with_its_source(path: Path) -> None:
    assert policy_issues(path, environ=NO_ENVIRONMENT) == []
    policy = load_policy(path, environ=NO_ENVIRONMENT)
    assert policy.source == path.resolve()
    assert policy.version == 1 and policy.agent
