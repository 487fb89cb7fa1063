"""``agentfuse lint`` as users run it: a real subprocess over real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SHELL_BAD = 'import subprocess as sp\n\n\ndef wipe(path):\n    sp.run(["rm", "-rf", path])\n'
RETRY_BAD = "from tenacity import retry\n\n\n@retry\ndef fetch():\n    return 1\n"
CLEAN = "import subprocess\n\nsubprocess.run(['ls', '-l'])\n"


def agentfuse(*args: str | Path, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content)


def assert_no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


def test_clean_tree_exits_0(tmp_path: Path) -> None:
    write(tmp_path, {"ok.py": CLEAN})
    result = agentfuse(cwd=tmp_path)
    assert (result.returncode, result.stdout) == (0, "")


def test_findings_exit_1_in_flake8_text_format(tmp_path: Path) -> None:
    write(tmp_path, {"pkg/shell.py": SHELL_BAD, "ok.py": CLEAN})
    result = agentfuse(".", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("pkg/shell.py:5:5: AF401 ")
    assert len(result.stdout.splitlines()) == 1


def test_json_has_exactly_the_documented_keys(tmp_path: Path) -> None:
    write(tmp_path, {"shell.py": SHELL_BAD, "retry.py": RETRY_BAD})
    result = agentfuse("--format", "json", cwd=tmp_path)
    records = json.loads(result.stdout)
    assert result.returncode == 1
    assert [(r["path"], r["line"], r["code"]) for r in records] == [("retry.py", 4, "AF201"), ("shell.py", 5, "AF401")]
    assert all(list(r) == ["path", "line", "col", "end_line", "end_col", "code", "message"] for r in records)


def test_github_annotations(tmp_path: Path) -> None:
    write(tmp_path, {"shell.py": SHELL_BAD})
    result = agentfuse("--format", "github", cwd=tmp_path)
    line = result.stdout.strip()
    assert line.startswith("::warning file=shell.py,line=5,col=5,endLine=5,endColumn=")
    assert ",title=AF401::" in line


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--select", "AF4"), {"AF401"}),
        (("--select", "AF2"), {"AF201"}),
        (("--ignore", "AF40"), {"AF201"}),
        (("--select", "AF", "--ignore", "AF2,AF4"), set()),
    ],
)
def test_select_and_ignore_prefixes(tmp_path: Path, args: tuple[str, ...], expected: set[str]) -> None:
    write(tmp_path, {"shell.py": SHELL_BAD, "retry.py": RETRY_BAD})
    result = agentfuse("--format", "json", *args, cwd=tmp_path)
    assert {r["code"] for r in json.loads(result.stdout)} == expected
    assert result.returncode == (1 if expected else 0)


def test_noqa_with_code_suppresses(tmp_path: Path) -> None:
    write(tmp_path, {"shell.py": SHELL_BAD.replace("path])", "path])  # noqa: AF401 reviewed")})
    assert agentfuse(cwd=tmp_path).returncode == 0


def test_default_excludes_extend_exclude_and_explicit_files(tmp_path: Path) -> None:
    write(tmp_path, {".venv/lib/x.py": SHELL_BAD, "build/y.py": SHELL_BAD, "gen/z.py": SHELL_BAD, "a.py": SHELL_BAD})
    linted = agentfuse("--format", "json", "--extend-exclude", "gen", cwd=tmp_path)
    assert {r["path"] for r in json.loads(linted.stdout)} == {"a.py"}
    explicit = agentfuse("--format", "json", "build/y.py", cwd=tmp_path)
    assert {r["path"] for r in json.loads(explicit.stdout)} == {"build/y.py"}
    replaced = agentfuse("--format", "json", "--exclude", "a.py,.venv", cwd=tmp_path)
    assert {r["path"] for r in json.loads(replaced.stdout)} == {"build/y.py", "gen/z.py"}


def test_pyproject_config_select_exclude_and_per_file_ignores(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "pyproject.toml": (
                "[tool.agentfuse]\n"
                'select = ["AF2", "AF4"]\n'
                'extend-exclude = ["vendor"]\n'
                '[tool.agentfuse.per-file-ignores]\n"scripts/*" = ["AF401"]\n'
            ),
            "src/shell.py": SHELL_BAD,
            "src/retry.py": RETRY_BAD,
            "scripts/cleanup.py": SHELL_BAD,
            "vendor/lib.py": SHELL_BAD,
        },
    )
    result = agentfuse("--format", "json", ".", "../scripts", "../vendor", cwd=tmp_path / "src")
    assert result.returncode == 1, result.stderr
    records = json.loads(result.stdout)
    assert {(r["path"], r["code"]) for r in records} == {("retry.py", "AF201"), ("shell.py", "AF401")}


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        ("[tool.agentfuse\nselect = 1\n", "invalid TOML"),
        ('[tool.agentfuse]\nselect = "E501"\n', "'E501' is not a code prefix"),
        ("[tool.agentfuse]\nignore = 3\n", "ignore must be a list"),
        ('[tool.agentfuse]\nper-file-ignores = ["x"]\n', "per-file-ignores must be a table"),
        ('[tool.agentfuse]\nper_file_ignores = {}\n', "write 'per_file_ignores' as 'per-file-ignores'"),
    ],
)
def test_bad_config_exits_2_with_a_clear_message(tmp_path: Path, pyproject: str, message: str) -> None:
    write(tmp_path, {"pyproject.toml": pyproject, "a.py": SHELL_BAD})
    result = agentfuse(cwd=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert_no_traceback(result)


@pytest.mark.parametrize(
    "args",
    [("--bogus",), ("--format", "xml"), ("--jobs", "0"), ("--select", "E5"), ("missing.py",), ("--fix", "--diff")],
)
def test_usage_errors_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = agentfuse(*args, cwd=tmp_path)
    assert result.returncode == 2
    assert_no_traceback(result)


def _hostile_tree(root: Path) -> None:
    deep_sum = " + ".join(f"s{i}**2*s{i + 1}" for i in range(600))
    table_row = '    "' + "0123456789abcdef" * 6 + '",\n'
    trigger = 'import subprocess\nsubprocess.run(["rm", "-rf", "/tmp/x"])\n'
    write(
        root,
        {
            "syntax_error.py": trigger + "x = (\n",
            "latin1.py": trigger.encode() + b"# caf\xe9\n",
            "generated.py": trigger + "TABLE = [\n" + table_row * 50_000 + "]\n",
            "resolvent_lookup.py": (
                "import subprocess\n\nresolvent = {\n    (4, 0): lambda s: (" + deep_sum + "),\n}\n"
                'subprocess.run(["rm", "-rf", "/tmp/x"])\n'
            ),
            "brackets.py": trigger + "x = " + "[" * 3000 + "]" * 3000 + "\n",
            "fine.py": SHELL_BAD,
        },
    )
    (root / "dangling.py").symlink_to(root / "nowhere.py")
    (root / "folder.py").mkdir()
    os.mkfifo(root / "pipe.txt")  # not a .py file: must not be opened at all


@pytest.mark.slow
def test_hostile_tree_finishes_with_af001_and_no_traceback(tmp_path: Path) -> None:
    """Files without any rule's trigger words are never parsed, so each hostile file has one."""
    _hostile_tree(tmp_path)
    assert (tmp_path / "generated.py").stat().st_size > 5_000_000
    result = agentfuse("--format", "json", "-j", "2", "--max-file-bytes", "8000000", cwd=tmp_path, timeout=240)
    assert_no_traceback(result)
    assert result.returncode == 1, result.stderr
    found = {(r["path"], r["code"]) for r in json.loads(result.stdout)}
    assert found == {
        ("syntax_error.py", "AF001"),
        ("latin1.py", "AF001"),
        ("dangling.py", "AF001"),
        ("brackets.py", "AF001"),
        ("resolvent_lookup.py", "AF401"),
        ("generated.py", "AF401"),
        ("fine.py", "AF401"),
    }


def test_fix_rewrites_the_file_and_exit_status_reflects_what_is_left(tmp_path: Path) -> None:
    write(tmp_path, {"retry.py": RETRY_BAD, "shell.py": SHELL_BAD})
    result = agentfuse("--fix", "--format", "json", cwd=tmp_path)
    assert result.returncode == 1
    assert {r["code"] for r in json.loads(result.stdout)} == {"AF401"}
    assert "retry.py: fixed AF201 x1" in result.stderr
    fixed = (tmp_path / "retry.py").read_text()
    assert "@retry(stop=stop_after_attempt(5))" in fixed
    assert "stop_after_attempt" in fixed.split("@retry")[0]
    again = agentfuse("--fix", "--select", "AF2", cwd=tmp_path)
    assert again.returncode == 0
    assert (tmp_path / "retry.py").read_text() == fixed


def test_diff_prints_a_patch_and_writes_nothing(tmp_path: Path) -> None:
    write(tmp_path, {"retry.py": RETRY_BAD})
    result = agentfuse("--diff", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("--- a/retry.py\n+++ b/retry.py\n")
    assert "+@retry(stop=stop_after_attempt(5))" in result.stdout
    assert (tmp_path / "retry.py").read_text() == RETRY_BAD


def test_fix_only_applies_selected_codes(tmp_path: Path) -> None:
    write(tmp_path, {"retry.py": RETRY_BAD})
    result = agentfuse("--fix", "--ignore", "AF201", cwd=tmp_path)
    assert result.returncode == 0
    assert (tmp_path / "retry.py").read_text() == RETRY_BAD


def test_policy_files_named_explicitly_are_checked_by_the_policy_loader(tmp_path: Path) -> None:
    shipped = Path(__file__).resolve().parent.parent / "policies" / "default.yaml"
    write(tmp_path, {"policy.yaml": "version: 1\nagent: x\n", "good/agentfuse.yaml": shipped.read_text()})
    bad = agentfuse("--format", "json", "policy.yaml", cwd=tmp_path)
    assert_no_traceback(bad)
    assert bad.returncode == 1
    assert {(r["path"], r["code"]) for r in json.loads(bad.stdout)} == {("policy.yaml", "AF103")}
    good = agentfuse("good/agentfuse.yaml", cwd=tmp_path)
    assert (good.returncode, good.stdout) == (0, "")
