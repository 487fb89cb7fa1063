"""AF102 (no policy) and AF103 (invalid policy) on real folder trees, and check_policy_file."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from agentfuse.lint.checker import check_source
from agentfuse.lint_rules.base import Finding, Rule
from agentfuse.lint_rules.policy import InvalidPolicy, MissingPolicy, check_policy_file
from agentfuse.runtime.policy_loader import policy_issues

POLICIES = Path(__file__).parent / "data" / "rules" / "llm" / "policies"
VALID = (POLICIES / "valid.yaml").read_text()
INVALID_POLICIES = sorted(p for p in POLICIES.glob("*.yaml") if p.name != "valid.yaml")
EXPECT = re.compile(r"#\s*expect:\s*(AF\d{3}(?:\s*,\s*AF\d{3})*)")
OPENAI_CALL = "from openai import OpenAI\n\nOpenAI().chat.completions.create(model='m', messages=[])  # expect: AF102\n"


@dataclasses.dataclass(frozen=True)
class Tree:
    """A repository on disk: files (None = folder), the module to check, its source, options."""

    name: str
    files: Mapping[str, str | None]
    source: str
    module: str = "repo/agent/main.py"
    options: Mapping[str, object] = dataclasses.field(default_factory=dict)

    def build(self, root: Path, policy_text: str = VALID) -> Path:
        for relative, content in {"repo/.git": None, **self.files}.items():
            target = root / relative
            if content is None:
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(content.replace("{policy}", policy_text))
        module = root / self.module
        module.parent.mkdir(parents=True, exist_ok=True)
        module.write_text(self.source)
        return module


def lines_marked(source: str, code: str) -> set[int]:
    return {
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if (m := EXPECT.search(line)) and code in m.group(1)
    }


def run(tree: Tree, root: Path, rule: type[Rule], policy_text: str = VALID) -> list[Finding]:
    module = tree.build(root, policy_text)
    options = {k: (v.replace("{root}", str(root)) if isinstance(v, str) else v) for k, v in tree.options.items()}
    return check_source(module.read_text(), [rule], path=str(module), options=options)


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch folder that is also the working directory (policy paths resolve against it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


ENFORCE = "from agentfuse import enforce\n"
POLICY_HERE = {"repo/agent/policy.yaml": "{policy}"}

MISSING = [
    Tree("no-policy-anywhere", {}, OPENAI_CALL),
    Tree("policy-above-the-repository-root", {"policy.yaml": "{policy}"}, OPENAI_CALL),
    Tree("policy-in-a-sibling-folder", {"repo/other/policy.yaml": "{policy}"}, OPENAI_CALL),
    Tree("policy-yml-is-not-policy-yaml", {"repo/agent/policy.yml": "{policy}"}, OPENAI_CALL),
    Tree("enforce-literal", {}, ENFORCE + "guard = enforce('missing.yaml')  # expect: AF102\n"),
    Tree("enforce-keyword", {}, ENFORCE + "guard = enforce(policy='missing.yaml')  # expect: AF102\n"),
    Tree(
        "enforce-path-of-file",
        POLICY_HERE,
        "from pathlib import Path\n" + ENFORCE
        + "g = enforce(Path(__file__).parent / 'missing.yaml')  # expect: AF102\n",
    ),
    Tree(
        "enforce-os-path-join",
        {},
        "import os\n" + ENFORCE
        + "g = enforce(os.path.join(os.path.dirname(__file__), 'missing.yaml'))  # expect: AF102\n",
    ),
    Tree("enforce-constant", {}, ENFORCE + "POLICY = 'conf/agent.yaml'\ng = enforce(POLICY)  # expect: AF102\n"),
    Tree(
        "enforce-pathlib-path", {},
        "import pathlib\n" + ENFORCE + "g = enforce(pathlib.Path('x.yaml'))  # expect: AF102\n",
    ),
    Tree(
        "enforce-with-name",
        {"repo/policy.yaml": "{policy}"},
        "from pathlib import Path\n" + ENFORCE + "g = enforce(Path(__file__).with_name('p.yaml'))  # expect: AF102\n",
    ),
    Tree("enforce-alias", {}, "from agentfuse import enforce as fuse\ng = fuse('missing.yaml')  # expect: AF102\n"),
    Tree("enforce-module-attribute", {}, "import agentfuse\ng = agentfuse.enforce('missing.yaml')  # expect: AF102\n"),
    Tree(
        "enforce-in-init",
        {},
        ENFORCE + "class A:\n    def __init__(self):\n        self.guard = enforce('a.yaml')  # expect: AF102\n",
    ),
    Tree(
        "one-of-two-enforce-calls",
        POLICY_HERE,
        ENFORCE + "a = enforce('policy.yaml')\nb = enforce('research.yaml')  # expect: AF102\n",
    ),
    Tree(
        "enforce-missing-even-with-policy-next-to-module",
        POLICY_HERE,
        ENFORCE + "import litellm\ng = enforce('prod.yaml')  # expect: AF102\n"
        "litellm.completion(model='m', messages=[])\n",
    ),
    Tree("configured-policy-missing", {}, OPENAI_CALL, options={"policy": "{root}/nope.yaml"}),
    Tree(
        "async-call-in-nested-function",
        {},
        "from anthropic import AsyncAnthropic\nasync def a():\n    async def b():\n"
        "        await AsyncAnthropic().messages.create(model='c', max_tokens=1, messages=[])  # expect: AF102\n",
    ),
    Tree("cli-call", {}, "import subprocess\nsubprocess.run(['claude', '-p', 'hi'])  # expect: AF102\n"),
    Tree(
        "first-of-several-calls",
        {},
        "import litellm\nx = 1\nlitellm.completion(model='m', messages=[])  # expect: AF102\n"
        "litellm.completion(model='m', messages=[])\n",
    ),
    Tree(
        "langchain-model",
        {},
        "from langchain_openai import ChatOpenAI\nChatOpenAI(model='m').invoke('hi')  # expect: AF102\n",
    ),
    Tree(
        "guarded-call-without-policy",
        {},
        "from openai import OpenAI\nfrom app.guards import guard\n@guard\ndef f():\n"
        "    OpenAI().responses.create(model='m', input='x')  # expect: AF102\n",
    ),
    Tree("policy-is-a-folder-name-elsewhere", {"repo/agent/conf/policy.yaml": "{policy}"}, OPENAI_CALL),
]

FOUND = [
    Tree("policy-next-to-module", POLICY_HERE, OPENAI_CALL.replace("  # expect: AF102", "  # expect: AF103")),
    Tree(
        "agentfuse-yaml-next-to-module",
        {"repo/agent/agentfuse.yaml": "{policy}"},
        OPENAI_CALL.replace("AF102", "AF103"),
    ),
    Tree("policy-in-parent-folder", {"repo/policy.yaml": "{policy}"}, OPENAI_CALL.replace("AF102", "AF103")),
    Tree(
        "policy-at-root-module-deep",
        {"repo/policy.yaml": "{policy}"},
        OPENAI_CALL.replace("AF102", "AF103"),
        module="repo/src/pkg/sub/agent.py",
    ),
    Tree("nearest-wins", {"repo/policy.yaml": "{policy}", "repo/agent/agentfuse.yaml": "{policy}"},
         OPENAI_CALL.replace("AF102", "AF103")),
    Tree(
        "enforce-relative-to-module",
        {"repo/agent/conf/a.yaml": "{policy}"},
        ENFORCE + "g = enforce('conf/a.yaml')  # expect: AF103\n",
    ),
    Tree(
        "enforce-relative-to-cwd",
        {"conf/a.yaml": "{policy}"},
        ENFORCE + "g = enforce('conf/a.yaml')  # expect: AF103\n",
    ),
    Tree(
        "enforce-path-of-file-found",
        POLICY_HERE,
        "from pathlib import Path\n" + ENFORCE
        + "g = enforce(Path(__file__).resolve().parent / 'policy.yaml')  # expect: AF103\n",
    ),
    Tree(
        "enforce-os-path-join-found",
        POLICY_HERE,
        "import os.path\n" + ENFORCE
        + "g = enforce(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'policy.yaml'))  # expect: AF103\n",
    ),
    Tree(
        "enforce-with-name-found",
        POLICY_HERE,
        "from pathlib import Path\n" + ENFORCE
        + "g = enforce(Path(__file__).with_name('policy.yaml'))  # expect: AF103\n",
    ),
    Tree(
        "enforce-joinpath-found",
        {"repo/agent/conf/p.yaml": "{policy}"},
        "from pathlib import Path\n" + ENFORCE
        + "g = enforce(Path(__file__).parent.joinpath('conf/p.yaml'))  # expect: AF103\n",
    ),
    Tree("enforce-keyword-found", POLICY_HERE, ENFORCE + "g = enforce(policy='policy.yaml')  # expect: AF103\n"),
    Tree("enforce-constant-found", POLICY_HERE, ENFORCE + "P = 'policy.yaml'\ng = enforce(P)  # expect: AF103\n"),
    Tree("configured-absolute", {"cfg/p.yaml": "{policy}"}, OPENAI_CALL.replace("AF102", "AF103"),
         options={"policy": "{root}/cfg/p.yaml"}),
    Tree("configured-relative-to-cwd", {"cfg/p.yaml": "{policy}"}, OPENAI_CALL.replace("AF102", "AF103"),
         options={"policy": "cfg/p.yaml"}),
    Tree(
        "walk-beats-configured",
        POLICY_HERE,
        OPENAI_CALL.replace("AF102", "AF103"),
        options={"policy": "{root}/nope.yaml"},
    ),
    Tree(
        "enforce-module-attribute-found",
        POLICY_HERE,
        "import agentfuse\nimport litellm\ng = agentfuse.enforce('policy.yaml')  # expect: AF103\n"
        "litellm.completion(model='m', messages=[])\n",
    ),
    Tree(
        "enforce-in-class-found",
        POLICY_HERE,
        ENFORCE + "class A:\n    def __init__(self):\n        self.guard = enforce('policy.yaml')  # expect: AF103\n",
    ),
    Tree("cli-call-found", POLICY_HERE, "import os\nos.system('llm hello')  # expect: AF103\n"),
]

NO_LLM = [
    Tree("no-llm-calls", {}, "import json\nprint(json.dumps({}))\n"),
    Tree(
        "count-tokens-only",
        {},
        "import anthropic\nanthropic.Anthropic().messages.count_tokens(model='c', messages=[])\n",
    ),
    Tree("api-names-in-strings", {}, '"""openai.chat.completions.create()"""\nX = "litellm.completion(model=1)"\n'),
    Tree("registry-create", {}, "registry = Registry()\nregistry.create()\n"),
    Tree("enforce-from-environment", {}, "import os\n" + ENFORCE + "g = enforce(os.environ['POLICY'])\n"),
    Tree("enforce-with-policy-object", {}, ENFORCE + "from agentfuse.runtime.policy_loader import load_policy\n"
         "g = enforce(load_policy(path))\n"),
    Tree("unrelated-enforce", {}, "from myrules import enforce\nenforce('missing.yaml')\n"),
    Tree("ollama-pull", {}, "import subprocess\nsubprocess.run(['ollama', 'pull', 'llama3'])\n"),
]


@pytest.mark.parametrize("tree", MISSING, ids=lambda t: t.name)
def test_af102_flags_a_module_with_no_policy(tree: Tree, root: Path) -> None:
    findings = run(tree, root, MissingPolicy)
    expected = lines_marked(tree.source, "AF102") or {3}
    assert {f.line for f in findings} == expected
    assert all(f.code == "AF102" for f in findings)


@pytest.mark.parametrize("tree", FOUND + NO_LLM, ids=lambda t: t.name)
def test_af102_is_quiet_when_a_policy_is_found_or_not_needed(tree: Tree, root: Path) -> None:
    assert run(tree, root, MissingPolicy) == []


@pytest.mark.parametrize("tree", FOUND + NO_LLM + MISSING, ids=lambda t: t.name)
def test_af103_is_quiet_for_valid_or_missing_policies(tree: Tree, root: Path) -> None:
    assert run(tree, root, InvalidPolicy) == []


@pytest.mark.parametrize("tree", FOUND, ids=lambda t: t.name)
def test_af103_flags_an_invalid_policy_where_it_is_used(tree: Tree, root: Path) -> None:
    findings = run(tree, root, InvalidPolicy, policy_text=(POLICIES / "no_budget.yaml").read_text())
    assert [f.line for f in findings] == sorted(lines_marked(tree.source, "AF103"))
    [finding] = findings
    assert re.search(r"\.yaml:1:1: the policy needs budget", finding.message)


@pytest.mark.parametrize("policy", INVALID_POLICIES, ids=lambda p: p.stem)
def test_af103_names_the_loaders_first_problem_with_file_and_line(policy: Path, root: Path) -> None:
    tree = FOUND[0]
    [finding] = run(tree, root, InvalidPolicy, policy_text=policy.read_text())
    issues = policy_issues("repo/agent/policy.yaml")
    assert finding.line == 3 and finding.code == "AF103"
    assert finding.message.startswith(f"invalid policy: {issues[0]}")
    assert finding.message.startswith("invalid policy: repo/agent/policy.yaml:")
    if len(issues) > 1:
        assert f"and {len(issues) - 1} more; run `agentfuse check-policy repo/agent/policy.yaml`" in finding.message


def test_af103_checks_each_policy_once_per_file(root: Path) -> None:
    source = ENFORCE + "a = enforce('policy.yaml')\nb = enforce('policy.yaml')\n"
    tree = Tree("twice", POLICY_HERE, source)
    findings = run(tree, root, InvalidPolicy, policy_text="version: 1\n")
    assert [f.line for f in findings] == [2, 3]
    assert findings[0].message == findings[1].message


def test_af102_and_af103_cover_at_least_twenty_cases_each_way() -> None:
    assert len(MISSING) >= 20 and len(FOUND) + len(NO_LLM) >= 20
    assert len(INVALID_POLICIES) + 1 >= 20


def test_code_with_no_file_skips_the_folder_walk(root: Path) -> None:
    (root / "policy.yaml").write_text(VALID)
    findings = check_source(OPENAI_CALL, [MissingPolicy])
    assert [f.line for f in findings] == [3]
    assert "no policy" in findings[0].message
    assert check_source(OPENAI_CALL, [MissingPolicy], options={"policy": str(root / "policy.yaml")}) == []


def test_enforce_in_code_with_no_file_resolves_against_the_working_directory(root: Path) -> None:
    (root / "p.yaml").write_text(VALID)
    assert check_source(ENFORCE + "g = enforce('p.yaml')\n", [MissingPolicy, InvalidPolicy]) == []
    [finding] = check_source(ENFORCE + "g = enforce('q.yaml')\n", [MissingPolicy, InvalidPolicy])
    assert finding.code == "AF102" and "'q.yaml', which does not exist" in finding.message


def test_missing_policy_message_says_where_it_looked(root: Path) -> None:
    [finding] = run(MISSING[0], root, MissingPolicy)
    assert finding.message.startswith("openai chat.completions.create is made by a module with no policy")
    assert "from repo/agent up to the repository root" in finding.message
    assert "agentfuse init" in finding.message


def test_without_a_git_folder_the_walk_goes_on_upwards(root: Path) -> None:
    tree = Tree("no-git", {"policy.yaml": "{policy}"}, OPENAI_CALL.replace("AF102", "AF103"))
    module = root / tree.module
    module.parent.mkdir(parents=True)
    module.write_text(tree.source)
    (root / "policy.yaml").write_text(VALID)
    assert check_source(tree.source, [MissingPolicy], path=str(module)) == []


@pytest.mark.parametrize("policy", INVALID_POLICIES, ids=lambda p: p.stem)
def test_check_policy_file_reports_every_issue_at_its_yaml_position(policy: Path) -> None:
    findings = check_policy_file(str(policy))
    issues = policy_issues(str(policy))
    assert findings and len(findings) == len(issues)
    assert {(f.line, f.col) for f in findings} == {(i.line, i.col) for i in issues}
    assert all(f.code == "AF103" and f.path == str(policy) and "Fix: " in f.message for f in findings)
    assert not any(f.message.startswith(str(policy)) for f in findings)


def test_check_policy_file_accepts_a_valid_policy_and_reports_a_missing_one(tmp_path: Path) -> None:
    assert check_policy_file(str(POLICIES / "valid.yaml")) == []
    [finding] = check_policy_file(str(tmp_path / "absent.yaml"))
    assert finding.code == "AF103" and "not found" in finding.message


def test_check_policy_file_never_constructs_python_tags(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f'version: 1\nagent: !!python/object/apply:os.system ["touch {marker}"]\n')
    code = "import sys; from agentfuse.lint_rules.policy import check_policy_file as c; print(c(sys.argv[1]))"
    result = subprocess.run([sys.executable, "-c", code, str(policy)], capture_output=True, text=True,
                            cwd=os.getcwd(), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "is not allowed" in result.stdout
    assert not marker.exists()


POLICY_WITH_SECRET = """\
version: 1
agent: publisher
budget: {run_usd: 1.0}
breaker: {failure_threshold: 3, cooldown_s: 60}
fail_fast: {halt_on: [PermissionError]}
alerts: {webhook: "${AGENTFUSE_TEST_UNSET_WEBHOOK}"}
"""


def test_lint_treats_an_unset_secret_as_a_placeholder_but_the_runtime_does_not(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY_WITH_SECRET, encoding="utf-8")
    environ = {k: v for k, v in os.environ.items() if k != "AGENTFUSE_TEST_UNSET_WEBHOOK"}
    assert check_policy_file(str(policy)) == []
    runtime_issues = policy_issues(policy, environ=environ)
    assert [i.line for i in runtime_issues] == [6]
    assert "AGENTFUSE_TEST_UNSET_WEBHOOK" in runtime_issues[0].message
    agent = tmp_path / "agent.py"
    agent.write_text(
        "from agentfuse import enforce\nfrom openai import OpenAI\n"
        "guard = enforce('policy.yaml')\nclient = OpenAI()\n"
        "with guard.step():\n    client.chat.completions.create(model='m', messages=[])\n",
        encoding="utf-8",
    )
    findings = check_source(agent.read_text(), [InvalidPolicy], path=str(agent))
    assert findings == []
