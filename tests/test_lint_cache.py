"""The lint result cache: a warm run reports exactly what a cold one does, and an entry is
used only while the file and everything its findings were derived from are unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agentfuse.lint.cache import ResultCache
from tests.test_lint_cli import assert_no_traceback, write

LLM_CALL = """from openai import OpenAI

client = OpenAI()


def ask(question):
    return client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
"""
SHELL = "import subprocess\n\nsubprocess.run('rm -rf build', shell=True)\n"
RETRY = "from tenacity import retry\n\n\n@retry\ndef fetch():\n    return 1\n"
CLEAN = "def add(a, b):\n    return a + b\n"
POLICY = """version: 1
agent: cached
budget: {run_usd: 1.0, daily_usd: 2.0}
breaker: {failure_threshold: 3, cooldown_s: 60}
fail_fast: {max_attempts: 1}
"""
SENTINEL = "served from the cache"
AGENT_OF_CLIENTS = """from clients import client


def ask():
    return client.chat.completions.create(model='m', messages=[])
"""


def lint(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "AGENTFUSE_CACHE_DIR"}
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--format", "json", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, **(env or {})},
    )
    assert_no_traceback(result)
    assert result.returncode in (0, 1), result.stderr
    return result


def findings(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    return json.loads(result.stdout)


def entries(cache: Path) -> dict[str, Path]:
    """Entry files by the path they hold results for."""
    found = [path for path in (cache / "v1").iterdir() if not path.name.startswith(".")]
    return {json.loads(path.read_text())["path"]: path for path in found}


def mark(entry: Path) -> None:
    """Rewrite a cached entry's messages, so a run that uses it shows it did."""
    record = json.loads(entry.read_text())
    record["findings"] = [[*row[:5], SENTINEL] for row in record["findings"]]
    entry.write_text(json.dumps(record))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    write(
        tmp_path,
        {
            "pyproject.toml": "[project]\nname = 'tree'\n",
            "agents/ask.py": LLM_CALL,
            "agents/tools.py": SHELL,
            "agents/fetch.py": RETRY,
            "agents/util.py": CLEAN,
        },
    )
    (tmp_path / ".git").mkdir()  # the repository root: the policy search stops here
    return tmp_path


def test_warm_run_reports_exactly_the_cold_findings_from_the_cache(tree: Path) -> None:
    cold = lint(cwd=tree)
    cache = tree / ".agentfuse_cache"
    assert sorted(entries(cache)) == ["agents/ask.py", "agents/fetch.py", "agents/tools.py", "agents/util.py"]
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    warm = lint(cwd=tree)
    assert warm.stdout == cold.stdout
    assert {f["code"] for f in findings(cold)} >= {"AF101", "AF102", "AF201", "AF401"}
    mark(entries(cache)["agents/tools.py"])
    assert [f["message"] for f in findings(lint(cwd=tree)) if f["path"] == "agents/tools.py"] == [SENTINEL]


def test_after_one_file_changes_only_its_findings_change(tree: Path) -> None:
    lint(cwd=tree)
    for entry in entries(tree / ".agentfuse_cache").values():
        mark(entry)
    (tree / "agents" / "util.py").write_text(CLEAN + "\nimport os\nos.system('rm -rf /tmp/x')\n")
    after = findings(lint(cwd=tree))
    fresh = [f for f in after if f["path"] == "agents/util.py"]
    assert [(f["code"], f["line"]) for f in fresh] == [("AF401", 5)]
    assert fresh[0]["message"] != SENTINEL
    assert {f["message"] for f in after if f["path"] != "agents/util.py"} == {SENTINEL}


def test_a_new_or_changed_policy_invalidates_af102_and_af103(tree: Path) -> None:
    codes = {f["code"] for f in findings(lint(cwd=tree)) if f["path"] == "agents/ask.py"}
    assert "AF102" in codes
    (tree / "agents" / "policy.yaml").write_text(POLICY)
    codes = {f["code"] for f in findings(lint(cwd=tree)) if f["path"] == "agents/ask.py"}
    assert codes == {"AF101"}
    (tree / "agents" / "policy.yaml").write_text(POLICY.replace("breaker:", "breakers:"))
    codes = {f["code"] for f in findings(lint(cwd=tree)) if f["path"] == "agents/ask.py"}
    assert codes == {"AF101", "AF103"}


def test_a_policy_naming_an_unset_variable_is_rechecked_when_the_variable_changes(tree: Path) -> None:
    (tree / "agents" / "policy.yaml").write_text(POLICY.replace("run_usd: 1.0", "run_usd: \"${RUN_CAP}\""))
    unset = {f["code"] for f in findings(lint(cwd=tree)) if f["path"] == "agents/ask.py"}
    wrong = {f["code"] for f in findings(lint(cwd=tree, env={"RUN_CAP": "ten"})) if f["path"] == "agents/ask.py"}
    assert (unset, wrong) == ({"AF101"}, {"AF101", "AF103"})


def test_a_change_in_a_module_the_project_index_read_invalidates_its_importers(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "clients.py": "from openai import OpenAI\n\nclient = OpenAI()\n",
            "agent.py": AGENT_OF_CLIENTS,
        },
    )
    first = [f["message"] for f in findings(lint(cwd=tmp_path)) if f["path"] == "agent.py" and f["code"] == "AF101"]
    assert first and first[0].startswith("openai ")
    (tmp_path / "clients.py").write_text("client = object()\n")
    after = findings(lint(cwd=tmp_path))
    assert after == findings(lint("--no-cache", cwd=tmp_path))
    assert [f["message"] for f in after if f["path"] == "agent.py" and f["code"] == "AF101"] != first


def test_a_module_appearing_where_the_index_looked_invalidates_the_importer(tmp_path: Path) -> None:
    call = "messages.create(model='m', max_tokens=9)"
    agent = AGENT_OF_CLIENTS.replace("chat.completions.create(model='m', messages=[])", call)
    write(tmp_path, {"agent.py": agent})
    lint(cwd=tmp_path)
    looked = json.loads(entries(tmp_path / ".agentfuse_cache")["agent.py"].read_text())["dependencies"]
    assert looked[str(tmp_path / "clients.py")] == "missing"
    (tmp_path / "clients.py").write_text("from anthropic import Anthropic\n\nclient = Anthropic()\n")
    after = findings(lint(cwd=tmp_path))
    assert after == findings(lint("--no-cache", cwd=tmp_path))
    assert any(f["path"] == "agent.py" and str(f["message"]).startswith("anthropic ") for f in after)


def test_two_concurrent_runs_on_a_shared_cache_both_report_every_finding(tmp_path: Path) -> None:
    files = {f"pkg/m{i:03}.py": (LLM_CALL, SHELL, RETRY, CLEAN)[i % 4] + f"\nNUMBER = {i}\n" for i in range(120)}
    write(tmp_path, {"pyproject.toml": "[project]\nname = 'p'\n", **files})
    expected = lint("--no-cache", cwd=tmp_path).stdout
    for _round in range(2):  # both cold, then both warm
        command = [sys.executable, "-m", "agentfuse", "lint", "--format", "json", "-j", "2"]
        runs = [
            subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)
        ]
        outputs = [run.communicate(timeout=300) for run in runs]
        assert [out for out, _ in outputs] == [expected, expected], [err for _, err in outputs]
    assert len(entries(tmp_path / ".agentfuse_cache")) == 120


def test_truncated_garbage_and_foreign_entries_are_ignored(tree: Path) -> None:
    cold = lint(cwd=tree).stdout
    found = sorted(entries(tree / ".agentfuse_cache").values())
    found[0].write_bytes(found[0].read_bytes()[:25])
    found[1].write_bytes(b"\xff\xfe garbage \x00")
    found[2].write_text(json.dumps({"format": 1, "path": "agents/other.py", "dependencies": {}, "findings": []}))
    wrong_types = {"format": 1, "path": json.loads(cold)[0]["path"], "dependencies": [], "findings": 7}
    found[3].write_text(json.dumps(wrong_types))
    assert lint(cwd=tree).stdout == cold
    assert lint(cwd=tree).stdout == cold


def test_no_cache_neither_reads_nor_writes(tree: Path) -> None:
    cold = lint("--no-cache", cwd=tree)
    assert not (tree / ".agentfuse_cache").exists()
    lint(cwd=tree)
    for entry in entries(tree / ".agentfuse_cache").values():
        mark(entry)
    assert lint("--no-cache", cwd=tree).stdout == cold.stdout


def test_default_location_is_next_to_the_nearest_pyproject(tree: Path) -> None:
    lint(".", cwd=tree / "agents")
    assert (tree / ".agentfuse_cache" / "CACHEDIR.TAG").is_file()
    assert not (tree / "agents" / ".agentfuse_cache").exists()


def test_cache_dir_from_the_environment_and_from_pyproject(
    tree: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    elsewhere = tmp_path_factory.mktemp("cache")
    lint(cwd=tree, env={"AGENTFUSE_CACHE_DIR": str(elsewhere)})
    assert len(entries(elsewhere)) == 4 and not (tree / ".agentfuse_cache").exists()
    (tree / "pyproject.toml").write_text("[tool.agentfuse]\ncache-dir = 'build/lint-cache'\n")
    lint(cwd=tree)
    assert len(entries(tree / "build" / "lint-cache")) == 4 and not (tree / ".agentfuse_cache").exists()


def test_bad_cache_dir_setting_is_a_configuration_error(tree: Path) -> None:
    (tree / "pyproject.toml").write_text("[tool.agentfuse]\ncache-dir = 3\n")
    result = subprocess.run([sys.executable, "-m", "agentfuse", "lint"], cwd=tree, capture_output=True, text=True)
    assert result.returncode == 2
    assert "cache-dir must be a folder name" in result.stderr
    assert_no_traceback(result)


def test_a_cache_that_cannot_be_written_is_not_used(tree: Path) -> None:
    (tree / "blocked").write_text("a file where the cache folder would go\n")
    result = lint(cwd=tree, env={"AGENTFUSE_CACHE_DIR": str(tree / "blocked")})
    assert result.stdout == lint("--no-cache", cwd=tree).stdout


def test_fix_does_not_trust_the_cache(tree: Path) -> None:
    lint(cwd=tree)
    entry = entries(tree / ".agentfuse_cache")["agents/fetch.py"]
    record = json.loads(entry.read_text())
    record["findings"] = []
    entry.write_text(json.dumps(record))
    subprocess.run([sys.executable, "-m", "agentfuse", "lint", "--fix", "agents/fetch.py"], cwd=tree, check=False)
    assert "stop=" in (tree / "agents" / "fetch.py").read_text()


def test_prune_keeps_the_newest_entries_and_removes_stale_temporary_files(tmp_path: Path) -> None:
    cache = ResultCache.open(tmp_path / "c", "key")
    assert cache is not None
    now = time.time()
    for i in range(12):
        path = cache.entries / f"{i:064x}"
        path.write_text("{}")
        os.utime(path, (now - 1000 + i, now - 1000 + i))
    stale = cache.entries / ".tmp-left-behind"
    stale.write_text("")
    os.utime(stale, (now - 7200, now - 7200))
    cache.prune(max_entries=10, keep=5)
    assert sorted(p.name for p in cache.entries.iterdir()) == [f"{i:064x}" for i in range(7, 12)]
