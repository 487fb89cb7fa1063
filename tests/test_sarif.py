"""``--format sarif`` validates against the SARIF 2.1.0 schema and carries rule help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import agentfuse.lint_rules as registry

SCHEMA = Path(__file__).parent / "data" / "sarif-schema-2.1.0.json"
PARITY_TREE = Path(__file__).parent / "data" / "trees" / "parity"


def sarif(root: Path, *args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--format", "sarif", *args, "."],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    return json.loads(result.stdout)


def validate(document: dict) -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft4Validator.check_schema(schema)
    validator = jsonschema.Draft4Validator(schema, format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])


@pytest.mark.slow
def test_sarif_of_the_parity_tree_validates_and_points_at_the_findings(tmp_path: Path) -> None:
    (tmp_path / "sub dir").mkdir()
    (tmp_path / "sub dir" / "bad.py").write_text("import subprocess\nsubprocess.run(['rm', '-rf', '/'])\nx = (\n")
    for source in PARITY_TREE.rglob("*.py"):
        target = tmp_path / source.relative_to(PARITY_TREE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(source.read_text())
    document = sarif(tmp_path)
    validate(document)
    run = document["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    ids = [rule["id"] for rule in rules]
    assert set(ids) == {"AF001"} | {rule.code for rule in registry.all_rules() if rule.default_enabled}
    assert all(rule["shortDescription"]["text"] and rule["help"]["text"] for rule in rules)
    results = run["results"]
    assert all(ids[r["ruleIndex"]] == r["ruleId"] for r in results)
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"agents/writer.py", "scripts/ops.py", "sub%20dir/bad.py"}
    [parse_error] = [r for r in results if r["ruleId"] == "AF001"]
    assert parse_error["level"] == "error"
    assert parse_error["locations"][0]["physicalLocation"]["region"]["startLine"] == 3


def test_sarif_with_no_findings_still_validates(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("print('hello')\n")
    document = sarif(tmp_path, "--select", "AF4")
    validate(document)
    assert document["runs"][0]["results"] == []
    assert [rule["id"] for rule in document["runs"][0]["tool"]["driver"]["rules"]] == ["AF001", "AF401"]


def test_schema_rejects_a_broken_document() -> None:
    """The validator really checks: a result without a message is refused."""
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "AF1"}]}]}
    with pytest.raises(AssertionError, match="message"):
        validate(broken)
