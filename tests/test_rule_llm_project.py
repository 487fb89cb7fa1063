"""AF101 across modules: clients built in one module of a project and used in another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from agentfuse.lint.checker import RuleSet, lint_text
from agentfuse.lint.project_index import ProjectIndex, with_project_index
from agentfuse.lint_rules.llm_calls import UnguardedLlmCall

FILES = {
    "app/__init__.py": "",
    "app/llm/__init__.py": "from .clients import client, make_llm\n",
    # a research agent's client module: a module-level client, a factory, a base class
    "app/llm/clients.py": (
        "from openai import OpenAI\n"
        "from langchain_openai import ChatOpenAI\n"
        "client = OpenAI()\n"
        "def make_llm(model='gpt-4o'):\n"
        "    return ChatOpenAI(model=model)\n"
        "class BaseAgent:\n"
        "    def __init__(self):\n"
        "        self.llm = ChatOpenAI(model='gpt-4o-mini')\n"
        "        self.store = dict()\n"
    ),
    "app/agent.py": (
        "from langchain_core.messages import HumanMessage\n"
        "from app.llm import client, make_llm\n"
        "from .llm.clients import BaseAgent\n"
        "def ask(q):\n"
        "    return client.responses.create(model='m', input=q)\n"  # line 5
        "def summarise(text):\n"
        "    return make_llm().invoke([HumanMessage(text)])\n"  # line 7
        "class Writer(BaseAgent):\n"
        "    def write(self, topic):\n"
        "        self.store.invoke(topic)\n"  # line 10: a dict, not a client
        "        return self.llm.invoke(topic)\n"  # line 11
    ),
}


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    for name, text in FILES.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def cli_lines(root: Path, *paths: str) -> set[tuple[str, int]]:
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--select", "AF101", "--format", "json", *paths],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stderr
    return {(f["path"], f["line"]) for f in json.loads(result.stdout)}


def test_cli_resolves_clients_imported_from_other_project_modules(project: Path) -> None:
    assert cli_lines(project, ".") == {("app/agent.py", 5), ("app/agent.py", 7), ("app/agent.py", 11)}


def test_cli_resolves_them_when_only_the_importing_file_is_linted(project: Path) -> None:
    assert cli_lines(project, "app/agent.py") == {("app/agent.py", 5), ("app/agent.py", 7), ("app/agent.py", 11)}


def test_without_an_index_a_file_is_checked_alone(project: Path) -> None:
    """The flake8 path: no index in the options, so nothing is read from other files."""
    source = (project / "app" / "agent.py").read_text()
    rule_set = RuleSet.of([UnguardedLlmCall])
    alone = lint_text(source, rule_set, path="app/agent.py", options={}).findings
    assert {f.line for f in alone} == {5}  # only the API-shape fallback (responses.create with model=)


def test_index_reports_the_modules_a_file_depended_on(project: Path) -> None:
    options = with_project_index({}, project)
    index = options["agentfuse.project-index"]
    assert isinstance(index, ProjectIndex)
    source = (project / "app" / "agent.py").read_text()
    lint_text(source, RuleSet.of([UnguardedLlmCall]), path="app/agent.py", options=options)
    read = {str(project / "app" / "llm" / "__init__.py"), str(project / "app" / "llm" / "clients.py")}
    found = index.dependencies("app/agent.py")
    assert read <= found
    # the rest are places looked at on the way: absent files, or the package markers passed
    assert all(not Path(path).exists() or path.endswith("__init__.py") for path in found - read)
    before = index.digest("app/agent.py")
    (project / "app" / "llm" / "clients.py").write_text(FILES["app/llm/clients.py"] + "# changed\n")
    assert index.digest("app/agent.py") != before


def test_locate_follows_relative_and_absolute_imports(project: Path) -> None:
    index = ProjectIndex(project)
    llm = project / "app" / "llm"
    assert index.locate("app/agent.py", ".llm.clients.client") == (llm / "clients.py", "client")
    assert index.locate("app/agent.py", "app.llm.make_llm") == (llm / "__init__.py", "make_llm")
    assert index.locate("app/agent.py", "openai.OpenAI") is None
