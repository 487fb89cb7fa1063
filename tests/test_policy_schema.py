"""policies/policy.schema.json and the loader accept and reject the same files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agentfuse.runtime.policy import BUDGET_CAPS, REQUIRED_KEYS, SECTION_KEYS, policy_issues
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
        if section == "pricing":  # model name -> prices
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
