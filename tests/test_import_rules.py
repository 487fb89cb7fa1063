"""The import rules of docs/architecture.md, read from every module's import statements.

The runtime is what an agent process imports: it must not pull in the linter, the framework
adapters, the CLI or the operator tools (agentfuse.operator). The linter reads the runtime only for the policy
loader (one source of truth for policy errors). The flake8 plugin does not import the CLI.
Imports inside functions count too: a lazy import is still an import the rule forbids.
What an agent imports to open a store and decide a call loads no PyYAML (checked in a fresh
interpreter): only reading a policy file needs it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "agentfuse"

LINTER_MAY_IMPORT = frozenset({"agentfuse.runtime.policy_loader", "agentfuse.runtime.errors"})


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every agentfuse module the file imports, at any depth, absolute or relative."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m == "agentfuse" or m.startswith("agentfuse.")}


MODULES = {module_name(p): imported(p) for p in sorted(PACKAGE.rglob("*.py"))}


def within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def violations(sources: list[str], forbidden: list[str], allowed: frozenset[str] = frozenset()) -> list[str]:
    return sorted(
        f"{source} imports {target}"
        for source in sources
        for target in MODULES[source]
        if not any(within(target, a) for a in allowed) and any(within(target, f) for f in forbidden)
    )


def test_the_scan_sees_the_package() -> None:
    assert "agentfuse.runtime.guard" in MODULES
    assert "agentfuse.runtime.policy" in MODULES["agentfuse.runtime.guard"]
    assert "agentfuse.lint_rules" in MODULES["agentfuse.lint.checker"]


def test_module_names() -> None:
    assert module_name(PACKAGE / "runtime" / "stores" / "sqlite.py") == "agentfuse.runtime.stores.sqlite"
    assert module_name(PACKAGE / "lint" / "__init__.py") == "agentfuse.lint"


def test_the_runtime_imports_no_linter_adapter_operator_tool_or_cli() -> None:
    runtime = [m for m in MODULES if within(m, "agentfuse.runtime")]
    assert runtime
    forbidden = ["agentfuse.lint", "agentfuse.lint_rules", "agentfuse.integrations", "agentfuse.operator",
                 "agentfuse.cli", "agentfuse.cli_args", "agentfuse.flake8_plugin"]
    assert violations(runtime, forbidden) == []


def test_the_operator_tools_import_no_linter_or_adapter() -> None:
    operator = [m for m in MODULES if within(m, "agentfuse.operator")]
    assert "agentfuse.operator.status" in operator
    forbidden = ["agentfuse.lint", "agentfuse.lint_rules", "agentfuse.integrations", "agentfuse.cli",
                 "agentfuse.flake8_plugin"]
    assert violations(operator, forbidden) == []


def test_the_adapters_import_no_operator_tool_or_linter() -> None:
    adapters = [m for m in MODULES if within(m, "agentfuse.integrations")]
    assert adapters
    assert violations(adapters, ["agentfuse.operator", "agentfuse.lint", "agentfuse.lint_rules", "agentfuse.cli"]) == []


@pytest.mark.parametrize("package", ["agentfuse.lint", "agentfuse.lint_rules"])
def test_the_linter_reads_the_runtime_only_for_the_policy_loader(package: str) -> None:
    linter = [m for m in MODULES if within(m, package)]
    assert linter
    assert violations(linter, ["agentfuse.runtime"], allowed=LINTER_MAY_IMPORT) == []
    assert violations(linter, ["agentfuse.integrations"]) == []


def test_the_flake8_plugin_does_not_import_the_cli() -> None:
    assert violations(["agentfuse.flake8_plugin"], ["agentfuse.cli", "agentfuse.cli_args"]) == []


def test_a_rule_breach_is_seen() -> None:
    """The checker itself can fail: a runtime module importing the linter is reported."""
    MODULES["agentfuse.runtime.fake"] = {"agentfuse.lint.checker"}
    try:
        assert violations(["agentfuse.runtime.fake"], ["agentfuse.lint"]) == [
            "agentfuse.runtime.fake imports agentfuse.lint.checker"
        ]
    finally:
        del MODULES["agentfuse.runtime.fake"]


NO_YAML = ("agentfuse.runtime.decisions", "agentfuse.runtime.stores.sqlite", "agentfuse.runtime.stores.redis",
           "agentfuse.runtime.policy", "agentfuse.runtime.money")


def yaml_loaded_by(*modules: str) -> bool:
    """Whether importing ``modules`` in a fresh interpreter loads PyYAML."""
    code = f"import sys, {', '.join(modules)}; print('yaml' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip() == "True"


def test_the_policy_model_the_decisions_and_the_stores_import_no_yaml() -> None:
    assert not yaml_loaded_by(*NO_YAML)


def test_the_policy_loader_imports_yaml() -> None:
    """The check above can fail: the loader does load PyYAML."""
    assert yaml_loaded_by("agentfuse.runtime.policy_loader")
