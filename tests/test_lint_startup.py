"""Each command imports only what it needs: no libcst outside the linter, no codemod
machinery outside --fix/--diff, nothing of the linter in an agent process."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import libcst as cst
import pytest

from agentfuse import cli
from agentfuse.lint_rules import REGISTRY
from agentfuse.lint.traversal import node_child_fields, visited_in_source

POLICY = """version: 1
agent: startup
budget: {run_usd: 1.0, daily_usd: 2.0}
breaker: {failure_threshold: 3, cooldown_s: 60}
fail_fast: {max_attempts: 1}
store: sqlite:///state.db
"""
NO_TRIGGER = "def add(a, b):\n    return a + b\n"
PROSE_ONLY = '"""Never run rm -rf from here."""\n\n\ndef add(a, b):\n    # nor kill -9\n    return a + b\n'
WITH_FINDING = "import subprocess\n\nsubprocess.run('rm -rf build', shell=True)\n"
LIBCST = ("libcst",)
CODEMOD = ("libcst.matchers", "libcst.codemod")
LINTER = ("agentfuse.lint", "agentfuse.lint_rules", "libcst")
RULE_MODULES = tuple(dict.fromkeys(entry.module for entry in REGISTRY))

RUN_CLI = """
import json, sys
from agentfuse.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""


def imported(*args: str, cwd: Path) -> tuple[int, list[str]]:
    """Exit status and the modules loaded by ``agentfuse ARGS`` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-c", RUN_CLI, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )
    report = json.loads(result.stderr.strip().splitlines()[-1])
    return report["code"], report["modules"]


def loaded(modules: list[str], prefixes: tuple[str, ...]) -> list[str]:
    return [m for m in modules if any(m == p or m.startswith(p + ".") for p in prefixes)]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "plain.py").write_text(NO_TRIGGER)
    (tmp_path / "shell.py").write_text(WITH_FINDING)
    opened = "import agentfuse; agentfuse.enforce('policy.yaml')"  # creates the store the commands read
    subprocess.run([sys.executable, "-c", opened], cwd=tmp_path, check=True, timeout=120)
    return tmp_path


OPERATOR_COMMANDS = [
    ["--version"],
    ["--help"],
    ["check-policy", "policy.yaml"],
    ["halt", "--agent", "startup", "--policy", "policy.yaml", "--reason", "test"],
    ["resume", "--agent", "startup", "--policy", "policy.yaml"],
    ["status", "--policy", "policy.yaml"],
    ["runs", "--policy", "policy.yaml"],
    ["watch", "--help"],
    ["metrics", "--once", "--policy", "policy.yaml"],
    ["prices", "gpt-4o"],
    ["store", "caps", "--agent", "startup", "--policy", "policy.yaml"],
]


@pytest.mark.parametrize("args", OPERATOR_COMMANDS, ids=lambda a: " ".join(a))
def test_operator_commands_import_no_libcst_and_no_linter(project: Path, args: list[str]) -> None:
    code, modules = imported(*args, cwd=project)
    assert code in (0, 1), f"agentfuse {' '.join(args)} exited {code}"
    assert loaded(modules, LINTER) == []


def test_version_imports_no_runtime(project: Path) -> None:
    _, modules = imported("--version", cwd=project)
    assert loaded(modules, ("agentfuse.runtime.policy", "agentfuse.runtime.stores", "yaml", *LINTER)) == []


def test_lint_of_a_file_without_trigger_words_imports_no_libcst_and_no_rule(project: Path) -> None:
    code, modules = imported("lint", "--no-cache", "plain.py", cwd=project)
    assert code == 0
    assert loaded(modules, LIBCST) == []
    assert loaded(modules, RULE_MODULES) == []


def test_lint_of_a_file_with_trigger_words_only_in_prose_imports_no_libcst(project: Path) -> None:
    (project / "prose.py").write_text(PROSE_ONLY)
    code, modules = imported("lint", "--no-cache", "prose.py", cwd=project)
    assert code == 0
    assert loaded(modules, LIBCST) == []


def test_lint_with_findings_imports_no_codemod(project: Path) -> None:
    code, modules = imported("lint", "--no-cache", "shell.py", cwd=project)
    assert code == 1
    assert "libcst" in modules
    assert loaded(modules, CODEMOD) == []


def test_lint_diff_loads_the_codemod_machinery(project: Path) -> None:
    _, modules = imported("lint", "--diff", "shell.py", cwd=project)
    assert "agentfuse.lint.fixer" in modules


def test_import_agentfuse_loads_neither_libcst_nor_the_linter() -> None:
    code = "import sys, agentfuse; print(' '.join(sorted(sys.modules)))"
    modules = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "agentfuse" in modules
    assert loaded(modules, LINTER) == []


def test_command_table_matches_what_the_modules_register() -> None:
    full = cli.build_parser()
    (commands,) = [a for a in full._actions if isinstance(a, argparse._SubParsersAction)]
    registered = {action.dest: action.help for action in commands._choices_actions}
    assert registered == {name: help_line for name, (_, help_line) in cli.COMMANDS.items()}
    for name, (module, _) in cli.COMMANDS.items():
        assert commands.choices[name].get_default("func").__module__ == module


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_each_command_help_works_with_only_its_module(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main([name, "--help"])
    assert exit_.value.code == 0
    assert f"usage: agentfuse {name}" in capsys.readouterr().out


def test_child_fields_from_code_constants_agree_with_the_source() -> None:
    fields = node_child_fields()
    assert len(fields) > 150
    differing = {kind.__name__ for kind, found in fields.items() if found != visited_in_source(kind)}
    assert differing == set()
    assert fields[cst.Call] == ("lpar", "func", "whitespace_after_func", "whitespace_before_args", "args", "rpar")
