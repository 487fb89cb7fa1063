"""The linter never crashes and never hangs: hostile files cost one AF001 each, never the run.

Real CLI and flake8 subprocesses over real files: code that kills libcst's native parser,
trees with symlink loops and FIFOs, huge modules, names that are not UTF-8.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from agentfuse.lint.checker import RuleSet, lint_text
from agentfuse.lint.command import enabled_rules
from agentfuse.lint.config import Selection
from tests.test_lint_cli import SHELL_BAD, agentfuse, assert_no_traceback, write

LLM_CALL = "import openai\nopenai.chat.completions.create()\n"
DEEP = {
    "and.py": "x = " + " and ".join(["a"] * 8000) + "\n",  # CPython parses it; libcst segfaulted
    "unary.py": "x = " + "- " * 20000 + "x\n",
    "lambdas.py": "x = " + "lambda: " * 8000 + "x\n",
    "attributes.py": "x = a" + ".b" * 20000 + "\n",
}
TOO_DEEP = "file is too deeply nested to analyse"
RETRY_BAD = "from tenacity import retry\n\n\n@retry\ndef fetch():\n    return 1\n"


def findings_of(result: subprocess.CompletedProcess[str]) -> set[tuple[str, str]]:
    return {(record["path"], record["code"]) for record in json.loads(result.stdout)}


def messages_of(result: subprocess.CompletedProcess[str], code: str = "AF001") -> dict[str, str]:
    return {record["path"]: record["message"] for record in json.loads(result.stdout) if record["code"] == code}


def flake8(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flake8", "--isolated", "--select", "AF", "--format=%(path)s:%(row)d:%(code)s %(text)s",
         *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def deep_tree(root: Path, padding: int = 0) -> None:
    write(root, {name: LLM_CALL + body for name, body in DEEP.items()})
    write(root, {"shell.py": SHELL_BAD})
    write(root, {f"pad/m{i}.py": "x = 1\n" for i in range(padding)})


@pytest.mark.slow
def test_code_that_crashed_the_native_parser_costs_its_file_one_af001(tmp_path: Path) -> None:
    deep_tree(tmp_path)
    result = agentfuse("--format", "json", "-j", "1", cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert findings_of(result) == {*((name, "AF001") for name in DEEP), ("shell.py", "AF401")}
    assert all(message.startswith(TOO_DEEP) for message in messages_of(result).values())
    assert "8003 levels deep" in messages_of(result)["and.py"]


@pytest.mark.slow
def test_process_pool_run_reports_deep_files_like_one_process(tmp_path: Path) -> None:
    deep_tree(tmp_path, padding=100)  # >= 100 files: the process pool
    result = agentfuse("--format", "json", "-j", "2", cwd=tmp_path)
    assert_no_traceback(result)
    assert "BrokenProcessPool" not in result.stderr
    assert result.returncode == 1
    assert findings_of(result) == {*((name, "AF001") for name in DEEP), ("shell.py", "AF401")}


@pytest.mark.slow
def test_flake8_plugin_survives_code_that_crashed_the_native_parser(tmp_path: Path) -> None:
    write(tmp_path, {"and.py": LLM_CALL + DEEP["and.py"], "shell.py": SHELL_BAD})
    result = flake8(tmp_path, ".")
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    lines = sorted(result.stdout.splitlines())
    assert lines[0].startswith(f"./and.py:3:AF001 {TOO_DEEP}: it nests 8003 levels deep")
    assert lines[1].startswith("./shell.py:5:AF401 ")


def test_imported_project_module_too_deep_to_parse_does_not_crash_the_run(tmp_path: Path) -> None:
    """The project index parses the modules a file imports: the same limits apply there."""
    write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/clients.py": "import openai\nclient = openai.OpenAI()\n" + DEEP["and.py"],
            "pkg/main.py": "from .clients import client\nclient.chat.completions.create()\n",
        },
    )
    result = agentfuse("--format", "json", "--no-cache", "pkg/main.py", cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    assert findings_of(result) <= {("pkg/main.py", "AF101"), ("pkg/main.py", "AF102")}


@pytest.mark.slow
def test_long_elif_chain_with_a_finding_gets_its_finding(tmp_path: Path) -> None:
    branches = "".join(f"elif a == {i}:\n    pass\n" for i in range(700))
    write(tmp_path, {"chain.py": "import openai\nif a:\n    pass\n" + branches + "openai.chat.completions.create()\n"})
    result = agentfuse("--format", "json", "chain.py", cwd=tmp_path)
    assert_no_traceback(result)
    assert len(result.stderr) < 1000
    assert result.returncode == 1
    assert [(r["code"], r["line"]) for r in json.loads(result.stdout) if r["code"] == "AF101"] == [("AF101", 1404)]


@pytest.mark.parametrize("count", [500, 950])
def test_elif_chain_is_analysed_in_process(count: int) -> None:
    branches = "".join(f"elif a == {i}:\n    pass\n" for i in range(count))
    source = "import openai\nif a:\n    pass\n" + branches + "openai.chat.completions.create()\n"
    limit = sys.getrecursionlimit()
    findings = lint_text(source, RuleSet.of(enabled_rules(Selection())), path="chain.py", options={}).findings
    assert {f.code for f in findings} >= {"AF101"} and "AF001" not in {f.code for f in findings}
    assert sys.getrecursionlimit() == limit


def test_symlink_loops_broken_links_and_folders_named_py_cost_one_af001_each(tmp_path: Path) -> None:
    write(tmp_path, {"shell.py": SHELL_BAD, "dir.py/inner.py": SHELL_BAD})
    (tmp_path / "loop.py").symlink_to("loop.py")
    (tmp_path / "ping.py").symlink_to("pong.py")
    (tmp_path / "pong.py").symlink_to("ping.py")
    (tmp_path / "broken.py").symlink_to("missing.py")
    result = agentfuse("--format", "json", cwd=tmp_path, timeout=60)
    assert_no_traceback(result)
    assert result.returncode == 1
    assert findings_of(result) == {
        ("shell.py", "AF401"),
        ("dir.py/inner.py", "AF401"),
        ("loop.py", "AF001"),
        ("ping.py", "AF001"),
        ("pong.py", "AF001"),
        ("broken.py", "AF001"),
    }
    messages = messages_of(result)
    assert messages["loop.py"] == "cannot read file: symbolic link loop"
    assert messages["broken.py"] == "cannot read file: broken symbolic link (its target does not exist)"


@pytest.mark.parametrize("mode", [(), ("--fix",)], ids=["lint", "fix"])
def test_fifo_named_py_is_af001_not_a_hang(tmp_path: Path, mode: tuple[str, ...]) -> None:
    write(tmp_path, {"shell.py": SHELL_BAD})
    os.mkfifo(tmp_path / "pipe.py")
    walked = agentfuse("--format", "json", *mode, cwd=tmp_path, timeout=60)
    named = agentfuse("--format", "json", *mode, "pipe.py", cwd=tmp_path, timeout=60)
    for result in (walked, named):
        assert_no_traceback(result)
        assert result.returncode == 1
    assert messages_of(walked)["pipe.py"] == "cannot read file: it is a named pipe (FIFO), not a regular file"
    assert findings_of(named) == {("pipe.py", "AF001")}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_af001_permission_denied(tmp_path: Path) -> None:
    write(tmp_path, {"secret.py": SHELL_BAD})
    (tmp_path / "secret.py").chmod(0)
    result = agentfuse("--format", "json", cwd=tmp_path)
    assert_no_traceback(result)
    assert messages_of(result) == {"secret.py": "cannot read file: permission denied"}


def test_file_over_the_default_size_limit_is_af001_too_large(tmp_path: Path) -> None:
    write(tmp_path, {"generated.py": LLM_CALL + "# padding\n" * 410_000, "shell.py": SHELL_BAD})
    result = agentfuse("--format", "json", cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 1
    assert findings_of(result) == {("generated.py", "AF001"), ("shell.py", "AF401")}
    assert messages_of(result)["generated.py"].startswith(
        "file is too large to lint: 4,100,047 bytes, more than max-file-bytes = 4,000,000"
    )


@pytest.mark.slow
def test_fifty_megabyte_module_is_refused_quickly(tmp_path: Path) -> None:
    with (tmp_path / "huge.py").open("w") as handle:
        handle.write(LLM_CALL)
        handle.writelines("x = 1\n" for _ in range(8_400_000))
    result = agentfuse("--format", "json", cwd=tmp_path, timeout=60)
    assert_no_traceback(result)
    assert messages_of(result)["huge.py"].startswith("file is too large to lint: 50,400,047 bytes")


def test_max_file_bytes_from_config_and_command_line(tmp_path: Path) -> None:
    write(tmp_path, {"pyproject.toml": "[tool.agentfuse]\nmax-file-bytes = 2000\n", "big.py": LLM_CALL + "#\n" * 1500})
    limited = agentfuse("--format", "json", cwd=tmp_path)
    unlimited = agentfuse("--format", "json", "--max-file-bytes", "0", cwd=tmp_path)
    raised = agentfuse("--format", "json", "--max-file-bytes", "5000", cwd=tmp_path)
    assert findings_of(limited) == {("big.py", "AF001")}
    assert "more than max-file-bytes = 2,000" in messages_of(limited)["big.py"]
    codes = {code for _, code in findings_of(unlimited)}
    assert "AF101" in codes and "AF001" not in codes
    assert findings_of(raised) == findings_of(unlimited)
    in_flake8 = flake8(tmp_path, "big.py")
    assert in_flake8.stdout.startswith("big.py:1:AF001 file is too large to lint: 3,047 bytes"), in_flake8.stdout


@pytest.mark.parametrize(
    ("table", "flag", "message"),
    [
        ('max-file-bytes = "4MB"', (), "max-file-bytes must be a whole number of bytes"),
        ("max-file-bytes = -1", (), "max-file-bytes must be a whole number of bytes"),
        ("max-file-bytes = true", (), "max-file-bytes must be a whole number of bytes"),
        ("", ("--max-file-bytes", "-5"), "--max-file-bytes must be at least 0"),
        ("", ("--max-file-bytes", "lots"), "expected a whole number for --max-file-bytes"),
    ],
)
def test_bad_max_file_bytes_is_a_usage_error(tmp_path: Path, table: str, flag: tuple[str, ...], message: str) -> None:
    write(tmp_path, {"pyproject.toml": f"[tool.agentfuse]\n{table}\n", "shell.py": SHELL_BAD})
    result = agentfuse(*flag, cwd=tmp_path)
    assert_no_traceback(result)
    assert result.returncode == 2
    assert message in result.stderr


@pytest.mark.parametrize("report_format", ["text", "json", "sarif", "github"])
def test_every_format_reports_a_file_name_that_is_not_utf8(tmp_path: Path, report_format: str) -> None:
    (tmp_path / os.fsdecode(b"bad\xff.py")).write_text(SHELL_BAD)
    for environment in ({}, {"PYTHONIOENCODING": "utf-8"}):  # the second: stdout in strict mode
        result = subprocess.run(
            [sys.executable, "-m", "agentfuse", "lint", "--format", report_format],
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
            env={**os.environ, **environment},
        )
        assert b"Traceback" not in result.stderr, result.stderr.decode(errors="replace")
        assert result.returncode == 1
        if report_format == "text":
            assert result.stdout.startswith(b"bad\xff.py:5:5: AF401 ")
        elif report_format == "github":
            assert result.stdout.startswith(b"::warning file=bad\xff.py,line=5,")
        elif report_format == "json":
            [record] = json.loads(result.stdout)
            assert os.fsencode(record["path"]) == b"bad\xff.py"
        else:
            document = json.loads(result.stdout)
            [finding] = document["runs"][0]["results"]
            assert finding["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "bad%FF.py"


def test_four_thousand_adjacent_strings_are_linted_not_af001(tmp_path: Path) -> None:
    pieces = "".join(f'    "line {i}\\n"\n' for i in range(4000))
    write(tmp_path, {"prompt.py": f"import openai\nPROMPT = (\n{pieces})\nopenai.chat.completions.create()\n"})
    result = agentfuse("--format", "json", cwd=tmp_path)
    assert_no_traceback(result)
    assert [(r["code"], r["line"]) for r in json.loads(result.stdout)] == [("AF101", 4004), ("AF102", 4004)]


def test_fix_never_writes_the_split_of_a_long_string_run(tmp_path: Path) -> None:
    """The engine splits runs libcst refuses with ``+``; that text must never reach the disk."""
    pieces = "".join(f'    "line {i}\\n"\n' for i in range(4000))
    source = f"PROMPT = (\n{pieces})\n" + RETRY_BAD
    write(tmp_path, {"retry.py": source})
    result = agentfuse("--format", "json", "--fix", cwd=tmp_path)
    assert_no_traceback(result)
    assert (tmp_path / "retry.py").read_text() == source
    assert findings_of(result) == {("retry.py", "AF201")}


def test_flake8_and_the_cli_agree_on_an_undecodable_file(tmp_path: Path) -> None:
    write(tmp_path, {"latin.py": LLM_CALL.encode() + b"# caf\xe9\n"})
    cli = agentfuse("--format", "json", cwd=tmp_path)
    in_flake8 = flake8(tmp_path, "latin.py")
    [record] = json.loads(cli.stdout)
    assert (record["code"], record["line"]) == ("AF001", 3)
    assert record["message"].startswith("cannot decode file:")
    assert in_flake8.stdout.splitlines() == [f"latin.py:3:AF001 {record['message']}"]


def test_flake8_lints_a_valid_latin1_file_like_the_cli(tmp_path: Path) -> None:
    write(tmp_path, {"latin.py": b"# -*- coding: latin-1 -*-\n" + LLM_CALL.encode() + b"# caf\xe9\n"})
    cli = agentfuse("--format", "json", "--select", "AF101", cwd=tmp_path)
    in_flake8 = flake8(tmp_path, "--select", "AF101", "latin.py")
    assert [(r["code"], r["line"]) for r in json.loads(cli.stdout)] == [("AF101", 3)]
    assert [line.split(" ")[0] for line in in_flake8.stdout.splitlines()] == ["latin.py:3:AF101"]


def _cpu_limit(seconds: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@pytest.mark.slow
def test_a_worker_that_dies_costs_its_file_one_af001_and_the_others_are_linted(tmp_path: Path) -> None:
    """A worker killed mid-file (here by its CPU limit, SIGXCPU) breaks the pool: the pool is
    replaced, the files it had not finished are linted again one by one, and the one that
    kills its worker again is reported."""
    heavy = LLM_CALL + "".join(f"v{i} = f(a, b[c], d.e) + g(h) * {i}\n" for i in range(40_000))
    write(tmp_path, {"heavy.py": heavy, "shell.py": SHELL_BAD})
    write(tmp_path, {f"pad/m{i}.py": SHELL_BAD for i in range(100)})
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--format", "json", "-j", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _cpu_limit(4),
    )
    assert_no_traceback(result)
    assert result.returncode == 1
    found = findings_of(result)
    assert ("heavy.py", "AF001") in found
    assert messages_of(result)["heavy.py"].startswith("the process analysing this file died")
    assert {path for path, code in found if code == "AF401"} == {"shell.py", *(f"pad/m{i}.py" for i in range(100))}


def test_the_code_being_linted_raises_no_python_warnings() -> None:
    """CPython's parser warns about invalid escapes (a SyntaxWarning on stderr from 3.12)."""
    source = LLM_CALL + 'pattern = "\\d+"\nx = 1 is 1\n'
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        findings = lint_text(source, RuleSet.of(enabled_rules(Selection())), path="t.py", options={}).findings
    assert "AF101" in {f.code for f in findings}
    assert [str(w.message) for w in caught] == []
