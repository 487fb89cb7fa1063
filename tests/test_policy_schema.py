"""policies/policy.schema.json and the loader accept and reject the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agentfuse.runtime.money import MAX_AMOUNT_USD, MAX_CALL_TOKENS, MAX_CAP_USD, MAX_COUNT, MAX_SECONDS
from agentfuse.runtime.policy import MAX_BACKUPS
from agentfuse.runtime.policy_loader import policy_issues
from agentfuse.runtime.policy_validation import BUDGET_CAPS, REQUIRED_KEYS, SECTION_KEYS
from tests.test_policy_cases import (
    EXAMPLE_POLICIES,
    INVALID_POLICIES,
    NO_ENVIRONMENT,
    REPO,
    VALID_POLICIES,
    case_id,
    schema_blind_reason,
)

SCHEMA_PATH = REPO / "policies" / "policy.schema.json"
SCHEMA_CHECKED = [p for p in INVALID_POLICIES if schema_blind_reason(p) is None]


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
    return loaded


@pytest.fixture(scope="module")
def validator(schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema)


def schema_errors(validator: jsonschema.Draft202012Validator, path: Path) -> list[str]:
    """What an editor using the schema would say; a file YAML itself refuses counts as refused."""
    try:
        document = yaml.safe_load(path.read_bytes())
    except (yaml.YAMLError, ValueError) as exc:
        return [f"YAML: {exc}"]
    return [error.message for error in validator.iter_errors(document)]


def test_schema_is_valid_draft_2020_12(schema: dict[str, Any]) -> None:
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


def test_schema_names_exactly_the_loaders_keys(schema: dict[str, Any]) -> None:
    properties = schema["properties"]
    assert set(properties) == set(SECTION_KEYS[""])
    assert set(schema["required"]) == set(REQUIRED_KEYS)
    for section, keys in SECTION_KEYS.items():
        if not section:
            continue
        body = properties[section]
        if section in ("pricing", "children"):  # model or sub-agent name -> its fields
            body = body["additionalProperties"]
        body = body.get("items", body)  # rate_limits and degrade are lists
        assert set(body["properties"]) == set(keys), section
        assert body["additionalProperties"] is False, section
    caps = {tuple(alternative["required"]) for alternative in properties["budget"]["anyOf"]}
    assert caps == {(cap,) for cap in BUDGET_CAPS}


@pytest.mark.parametrize("path", EXAMPLE_POLICIES + VALID_POLICIES, ids=case_id)
def test_schema_and_loader_both_accept(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    assert policy_issues(path, environ=NO_ENVIRONMENT) == []
    assert schema_errors(validator, path) == []


@pytest.mark.parametrize("path", SCHEMA_CHECKED, ids=case_id)
def test_schema_and_loader_both_reject(
    validator: jsonschema.Draft202012Validator, path: Path
) -> None:
    assert policy_issues(path, environ=NO_ENVIRONMENT)
    assert schema_errors(validator, path)


def test_most_malformed_cases_are_within_the_schemas_reach() -> None:
    """Only what JSON Schema cannot say is left to the loader alone (each file says why)."""
    blind = {
        case_id(p): schema_blind_reason(p) for p in INVALID_POLICIES if p not in SCHEMA_CHECKED
    }
    assert len(SCHEMA_CHECKED) >= 30
    assert len(blind) <= 8, blind


BASE = "version: 1\nagent: bounds\nbreaker: {}\nfail_fast: {}\n"
BOUNDS = [
    # (policy lines with X for the value, largest value both accept, smallest value both refuse)
    ("budget: {run_usd: X}", "1000000000", "1000000000.000001"),
    ("budget: {daily_usd: X}", "'1000000000.00'", "'1000000000.01'"),
    ("budget: {run_usd: 1, estimate_usd: X}", "1000000", "1000000.5"),
    ("budget: {run_usd: 1, estimate_usd: X}", "'0999999.99'", "'1000001'"),
    ("budget: {max_steps: X}", "1000000000000000", "1000000000000001"),
    ("budget: {run_tokens: X}", "1000000000000000", "1000000000000001"),
    ("budget: {daily_tokens: X}", "1", "0"),
    ("budget: {run_usd: 1, estimate_tokens: X}", "1000000000000", "1000000000001"),
    ("budget: {run_usd: 1}\nchildren: {r: {run_tokens: X}}", "1000000000000000", "-1"),
    ("budget: {timeout_s: X}", "1000000000", "1000000000.5"),
    ("budget: {run_usd: 1}\nrate_limits: [{action: a, max: 1, window_s: 1, cooldown_s: X}]", "1000000000", "1.0e+10"),
    ("budget: {run_usd: 1}\nalerts: {dedupe_window_s: X}", "1000000000.0", "1.0e+308"),
    ("budget: {run_usd: 1}\nevents: {backup_count: X}", "1000", "1001"),
    ("budget: {run_usd: 1}\npricing: {m: {input: X, output: 1}}", "1000000", "1000000.000001"),
    ("budget: {run_usd: 1}\npricing: {m: {input: 1, output: X}}", "'1000000.0'", "'1000000.1'"),
]


@pytest.mark.parametrize(("lines", "largest", "refused"), BOUNDS, ids=lambda v: str(v)[:30])
def test_schema_and_loader_agree_on_the_largest_values(
    validator: jsonschema.Draft202012Validator, tmp_path: Path, lines: str, largest: str, refused: str
) -> None:
    for value, accepted in ((largest, True), (refused, False)):
        path = tmp_path / "policy.yaml"
        path.write_text(BASE + lines.replace("X", value) + "\n")
        assert (policy_issues(path, environ=NO_ENVIRONMENT) == []) is accepted, value
        assert (schema_errors(validator, path) == []) is accepted, value


def test_schema_maxima_are_the_loaders_constants(schema: dict[str, Any]) -> None:
    defs = schema["$defs"]
    assert defs["money"]["anyOf"][0]["maximum"] == MAX_CAP_USD
    assert defs["amount"]["anyOf"][0]["maximum"] == defs["price"]["anyOf"][0]["maximum"] == MAX_AMOUNT_USD
    assert defs["positiveInteger"]["anyOf"][0]["maximum"] == MAX_COUNT
    assert defs["callTokens"]["anyOf"][0]["maximum"] == MAX_CALL_TOKENS
    assert defs["backupCount"]["anyOf"][0]["maximum"] == MAX_BACKUPS
    assert defs["seconds"]["anyOf"][0]["maximum"] == defs["secondsOrZero"]["anyOf"][0]["maximum"] == MAX_SECONDS
