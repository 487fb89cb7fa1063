"""AF101 on annotated case files: every `# expect: AF101` line flagged, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentfuse.lint.checker import check_source
from agentfuse.lint_rules.llm_calls import UnguardedLlmCall

CASES = Path(__file__).parent / "data" / "rules" / "llm"
EXPECT = re.compile(r"#\s*expect:\s*AF101\b")
CLEAN = re.compile(r"#\s*clean:\s*AF101\b")
CASE_FILES = sorted(CASES.glob("*_cases.py")) + [CASES / "traps.py"]


def marked_lines(source: str, pattern: re.Pattern[str]) -> set[int]:
    return {number for number, line in enumerate(source.splitlines(), start=1) if pattern.search(line)}


def af101_lines(source: str, **options: object) -> set[int]:
    return {f.line for f in check_source(source, [UnguardedLlmCall], options=options) if f.code == "AF101"}


@pytest.mark.parametrize("case_file", CASE_FILES, ids=lambda p: p.stem)
def test_flags_exactly_the_marked_lines(case_file: Path) -> None:
    source = case_file.read_text()
    flagged = af101_lines(source)
    assert flagged == marked_lines(source, EXPECT)
    assert not flagged & marked_lines(source, CLEAN)


def test_case_files_hold_at_least_twenty_positive_and_negative_cases() -> None:
    sources = [path.read_text() for path in CASE_FILES]
    assert sum(len(marked_lines(s, EXPECT)) for s in sources) >= 20
    assert sum(len(marked_lines(s, CLEAN)) for s in sources) >= 20


def test_message_names_the_provider_api_and_the_fix() -> None:
    source = "import litellm\nlitellm.acompletion(model='m', messages=[])\n"
    [finding] = check_source(source, [UnguardedLlmCall])
    assert finding.message.startswith("litellm acompletion is not inside an agentfuse guard")
    assert "with guard.step():" in finding.message and "@guard" in finding.message
    assert "`guard.instrument()`" in finding.message
    assert (finding.line, finding.col) == (2, 1)


def test_cli_message_names_the_cli() -> None:
    [finding] = check_source("import subprocess\nsubprocess.run(['ollama', 'run', 'llama3'])\n", [UnguardedLlmCall])
    assert "`ollama run` CLI" in finding.message


def test_extra_llm_apis_option_adds_functions_and_client_methods() -> None:
    source = (
        "import mylib\n"
        "from mylib import Client\n"
        "mylib.ask('hi')\n"
        "Client().chat.send('hi')\n"
        "Client().close()\n"
    )
    assert af101_lines(source) == set()
    options = {"llm-apis": ["mylib.ask", "mylib.Client().chat.send"]}
    assert af101_lines(source, **options) == {3, 4}


def test_guard_names_option_accepts_guards_built_elsewhere() -> None:
    source = (
        "from openai import OpenAI\n"
        "from app.guards import agent_guard\n"
        "@agent_guard.step(action='x')\n"
        "def ask():\n"
        "    OpenAI().responses.create(model='m', input='x')\n"
        "with shared.guard.step():\n"
        "    OpenAI().responses.create(model='m', input='x')\n"
    )
    assert af101_lines(source) == {5, 7}
    assert af101_lines(source, **{"guard-names": ["agent_guard", "shared.guard"]}) == set()
    assert af101_lines(source, **{"guard-names": "agent_guard"}) == {7}


def test_instrumented_option_names_modules_and_the_packages_that_hold_them(tmp_path: Path) -> None:
    package = tmp_path / "src" / "pkg"
    (package / "tools").mkdir(parents=True)
    for init in (package / "__init__.py", package / "tools" / "__init__.py"):
        init.write_text("")
    search = package / "tools" / "search.py"
    source = "import litellm\nlitellm.completion(model='m', messages=[])\n"
    search.write_text(source)
    script = tmp_path / "run_agent.py"  # outside any package: its stem is its name

    def lines(path: Path, listed: object) -> set[int]:
        found = check_source(source, [UnguardedLlmCall], path=str(path), options={"instrumented": listed})
        return {f.line for f in found}

    assert lines(search, []) == {2}
    assert lines(search, ["pkg.main"]) == {2}  # the entry point alone does not cover its siblings
    assert lines(search, ["pkg.tools.search"]) == set()
    assert lines(search, ["pkg.tools"]) == set()
    assert lines(search, "pkg") == set()
    assert lines(search, ["pk"]) == {2}  # a prefix of a name is not a package
    assert lines(script, ["run_agent"]) == set()
    assert lines(script, [None, 3]) == {2}


def test_malformed_options_are_ignored_not_fatal() -> None:
    source = "import litellm\nlitellm.completion(model='m', messages=[])\n"
    assert af101_lines(source, **{"llm-apis": 3, "guard-names": [None, 4]}) == {2}


def test_triggers_match_case_files_and_skip_unrelated_text() -> None:
    pattern = UnguardedLlmCall.trigger_pattern()
    assert pattern is not None
    for path in CASE_FILES:
        if marked_lines(path.read_text(), EXPECT):
            assert pattern.search(path.read_text()), path.name
    assert not pattern.search("import json\nprint(json.dumps({'a': 1}))\n")


def test_unparseable_shapes_do_not_crash() -> None:
    source = (
        "import subprocess, openai\n"
        "subprocess.run()\n"
        "subprocess.run(*args)\n"
        "subprocess.run([*cmd, 'claude'])\n"
        "subprocess.run(['claude', '-p', \"unterminated ' quote\"])\n"
        "subprocess.run(\"claude -p 'unterminated\")\n"
        "x = y = openai.OpenAI()\n"
        "a, b = openai.OpenAI(), 1\n"
        "a.chat.completions.create()\n"
        "(lambda: 0)()\n"
        "f()()\n"
        "x[0].responses.create()\n"
    )
    assert af101_lines(source) == {5, 6, 9}


@pytest.mark.parametrize("case_file", CASE_FILES, ids=lambda p: p.stem)
def test_rules_sharing_one_analysis_find_what_each_finds_alone(case_file: Path) -> None:
    from agentfuse.lint_rules.policy import InvalidPolicy, MissingPolicy

    source = case_file.read_text()
    rules = [UnguardedLlmCall, MissingPolicy, InvalidPolicy]
    alone = sorted(f for rule in rules for f in check_source(source, [rule]))
    assert check_source(source, rules) == alone
    assert check_source(source, list(reversed(rules))) == alone


def test_catalogue_helpers_for_other_rules() -> None:
    from agentfuse.lint_rules._llm_catalogue import client_constructors, llm_module_roots

    assert {"openai.OpenAI", "anthropic.AsyncAnthropic", "litellm.Router"} <= client_constructors()
    assert {"openai", "anthropic", "litellm", "google.genai", "ollama"} <= llm_module_roots()


@pytest.mark.timeout(20)
def test_rebinding_chains_resolve_in_linear_time() -> None:
    rebinding = "x = x.with_options(timeout=1)\ng = g.step()\n" * 60
    source = (
        "from openai import OpenAI\nimport agentfuse\nx = OpenAI()\ng = agentfuse.enforce('p.yaml')\n"
        + rebinding
        + "with g:\n    x.chat.completions.create()\nx.chat.completions.create()\n"
    )
    last = len(source.splitlines())
    assert af101_lines(source) == {last}
