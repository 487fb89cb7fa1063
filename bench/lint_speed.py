"""How fast is ``agentfuse lint`` next to ast, libcst, flake8 (pyflakes only) and bandit?

Builds two trees of real code outside the repository (``--cache``, default
``~/.cache/agentfuse-bench``) by installing packages with pip, then times each tool over
each tree in a fresh process: wall seconds, files per second and peak resident memory of
the largest process. Writes a Markdown table to stdout and, with ``--write``, into the
"Lint speed" section of bench/RESULTS.md.

``--user-facing`` measures instead what a pre-commit hook and a CI re-run feel, side by side
with bandit and ruff in one run: ``--version``; one small file (median of alternating runs);
and per tree a cold run (empty result cache), a warm re-run, and a warm re-run after one file
changed (agentfuse's findings of the warm runs are checked against the cold run's).

    python bench/lint_speed.py --write            # everything (several minutes)
    python bench/lint_speed.py --tree agent       # one tree
    python bench/lint_speed.py --user-facing --tree agent --write
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
TREES: dict[str, tuple[str, ...]] = {
    "general": ("django", "sqlalchemy", "sympy", "langchain-core", "openai", "anthropic", "playwright"),
    "agent": ("langchain-community", "crewai", "camel-ai", "autogen-ext", "autogen-agentchat"),
}
TOOLS = ("flake8", "bandit", "ruff")
SECTION = "## Lint speed"
TABLE_BEGIN = "<!-- lint_speed.py table: begin -->"
TABLE_END = "<!-- lint_speed.py table: end -->"

PARSE_ALL = """
import sys, pathlib
{import_line}
files = [p for p in pathlib.Path(sys.argv[1]).rglob("*.py") if p.is_file()]
failed = 0
for path in files:
    try:
        {parse_call}
    except Exception:
        failed += 1
print(len(files), failed, file=sys.stderr)
"""

PEAK_RSS = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode
print("PEAK_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, "EXIT", code, file=sys.stderr)
"""


@dataclasses.dataclass(frozen=True)
class Measurement:
    tree: str
    tool: str
    command: str
    files: int
    seconds: float
    peak_mb: float
    exit_code: int

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds if self.seconds else 0.0


def prepare_tree(cache: Path, name: str) -> Path:
    """Install the tree's packages (no dependencies, no bytecode) into ``cache/name``."""
    target = cache / name
    marker = target / ".complete"
    if not marker.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
             "--target", str(target), *TREES[name]],
            check=True,
        )
        marker.write_text(" ".join(TREES[name]) + "\n")
    return target


def prepare_tools(cache: Path) -> Path:
    """A separate venv for flake8 and bandit, so agentfuse's own flake8 plugin is not loaded."""
    tools = cache / "tools-venv"
    python = tools / "bin" / "python"
    marker = tools / ".complete"
    if not marker.exists() or marker.read_text().split() != list(TOOLS):
        if not python.exists():
            venv.EnvBuilder(with_pip=True, clear=True).create(tools)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *TOOLS], check=True)
        marker.write_text(" ".join(TOOLS) + "\n")
    return python


def count_py_files(root: Path) -> int:
    return sum(1 for path in root.rglob("*.py") if path.is_file())


def measure(tree: str, tool: str, command: Sequence[str], files: int, cwd: Path) -> Measurement:
    """Run ``command`` under a parent that reports its peak RSS; time it from outside."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command], cwd=cwd, capture_output=True, text=True
    )
    seconds = time.perf_counter() - started
    report = [line for line in result.stderr.splitlines() if line.startswith("PEAK_KB")]
    if not report:
        raise RuntimeError(f"{tool} did not run: {result.stderr[-2000:]}")
    _, peak_kb, _, code = report[-1].split()
    shown = " ".join(Path(part).name if part.startswith(str(cwd.parent)) else part for part in command)
    return Measurement(tree, tool, shown, files, seconds, int(peak_kb) / 1024, int(code))


def commands(root: Path, tools_python: Path, jobs: int) -> list[tuple[str, list[str]]]:
    python = sys.executable
    agentfuse = [python, "-m", "agentfuse", "lint", "--format", "json"]
    return [
        ("ast.parse", [python, "-c", PARSE_ALL.format(import_line="import ast",
                       parse_call="ast.parse(path.read_bytes())"), str(root)]),
        ("libcst.parse_module", [python, "-c", PARSE_ALL.format(import_line="import libcst",
                                 parse_call="libcst.parse_module(path.read_bytes())"), str(root)]),
        ("agentfuse lint -j1", [*agentfuse, "-j", "1", str(root)]),
        (f"agentfuse lint -j{jobs}", [*agentfuse, "-j", str(jobs), str(root)]),
        (f"flake8 --select F -j{jobs}", [str(tools_python), "-m", "flake8", "--isolated", "--select", "F",
                                         "-j", str(jobs), str(root)]),
        ("bandit -r", [str(tools_python), "-m", "bandit", "-r", "-q", "-f", "json", str(root)]),
    ]


def prefilter_stats(root: Path) -> dict[str, object]:
    """How many files the text pre-filter lets through, and for which rules."""
    from agentfuse.lint.checker import RuleSet, decode_source
    from agentfuse.lint.command import enabled_rules
    from agentfuse.lint.config import Selection

    rule_set = RuleSet.of(enabled_rules(Selection()))
    per_rule: collections.Counter[str] = collections.Counter()
    total = candidates = 0
    started = time.perf_counter()
    for path in root.rglob("*.py"):
        if not path.is_file():
            continue
        total += 1
        try:
            rules = rule_set.candidates(decode_source(path.read_bytes()))
        except (OSError, SyntaxError, UnicodeDecodeError, LookupError):
            continue
        candidates += bool(rules)
        per_rule.update(rule.code for rule in rules)
    return {
        "files": total,
        "candidates": candidates,
        "seconds": round(time.perf_counter() - started, 2),
        "per_rule": dict(sorted(per_rule.items())),
    }


def table(measurements: Sequence[Measurement]) -> str:
    lines = [
        "| tree | tool | files | wall s | files/s | peak RSS MB | exit |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.tree} | {m.tool} | {m.files} | {m.seconds:.1f} | {m.files_per_second:.0f} "
            f"| {m.peak_mb:.0f} | {m.exit_code} |"
        )
    return "\n".join(lines) + "\n"


def write_table(text: str) -> None:
    """Replace the table inside the "Lint speed" section of bench/RESULTS.md, nothing else."""
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    block = f"{TABLE_BEGIN}\n{text}{TABLE_END}\n"
    if TABLE_BEGIN in current and TABLE_END in current:
        before, rest = current.split(TABLE_BEGIN, 1)
        after = rest.split(TABLE_END, 1)[1].lstrip("\n")
        updated = before + block + after
    else:
        updated = current.rstrip("\n") + f"\n\n{SECTION}\n\n{block}"
    RESULTS.write_text(updated)


SMALL_FILE = """import subprocess

from openai import OpenAI

client = OpenAI()


def ask(question: str) -> str:
    reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": question}])
    return reply.choices[0].message.content or ""


def clean() -> None:
    subprocess.run("rm -rf build", shell=True)
"""
USER_SECTION_BEGIN = "<!-- lint_speed.py user-facing: begin -->"
USER_SECTION_END = "<!-- lint_speed.py user-facing: end -->"


def wall(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, str]:
    """Seconds for one run of ``command`` (a fresh process) and its standard output."""
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    return time.perf_counter() - started, result.stdout


def alternating(commands: dict[str, list[str]], cwd: Path, rounds: int) -> dict[str, float]:
    """Median seconds of each command, the commands run in turn ``rounds`` times."""
    times: dict[str, list[float]] = {label: [] for label in commands}
    for _ in range(rounds):
        for label, command in commands.items():
            times[label].append(wall(command, cwd)[0])
    return {label: statistics.median(values) for label, values in times.items()}


def user_facing(cache: Path, trees: Sequence[str], tools_python: Path, jobs: int, rounds: int) -> str:
    """The user-facing figures as Markdown (see the module docstring)."""
    tools = tools_python.parent
    agentfuse = [sys.executable, "-m", "agentfuse"]
    work = cache / "user-facing"
    work.mkdir(exist_ok=True)
    (work / "f.py").write_text(SMALL_FILE)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "agentfuse")], check=True)
    lines = ["| what | agentfuse s | bandit s | ruff s | agentfuse / bandit |", "|---|---:|---:|---:|---:|"]
    version = alternating(
        {"agentfuse": [*agentfuse, "--version"], "bandit": [str(tools / "bandit"), "--version"],
         "ruff": [str(tools / "ruff"), "--version"]}, work, rounds)
    lines.append(_row("`--version`", version))
    one = alternating(
        {"agentfuse": [*agentfuse, "lint", "--no-cache", "f.py"], "bandit": [str(tools / "bandit"), "-q", "f.py"],
         "ruff": [str(tools / "ruff"), "check", "--no-cache", "--isolated", "f.py"]}, work, rounds)
    lines.append(_row("one small file (`f.py`, 14 lines)", one))
    print("\n".join(lines), file=sys.stderr, flush=True)
    for name in trees:
        root = prepare_tree(cache, name)
        files = count_py_files(root)
        env = {**os.environ, "AGENTFUSE_CACHE_DIR": str(cache / f"lint-cache-{name}")}
        shutil.rmtree(env["AGENTFUSE_CACHE_DIR"], ignore_errors=True)
        lint = [*agentfuse, "lint", "--format", "json", "-j", str(jobs), str(root)]
        cold, cold_out = wall(lint, cache, env)
        warm, warm_out = wall(lint, cache, env)
        changed_file = cache / _file_with_findings(cold_out)
        original = changed_file.read_bytes()
        try:
            changed_file.write_bytes(original + b"\n# touched by lint_speed.py\n")
            one_changed, changed_out = wall(lint, cache, env)
        finally:
            changed_file.write_bytes(original)
        ruff_cache = cache / f"ruff-cache-{name}"
        shutil.rmtree(ruff_cache, ignore_errors=True)
        ruff = [str(tools / "ruff"), "check", "--isolated", "--exit-zero", "--cache-dir", str(ruff_cache), str(root)]
        ruff_cold, _ = wall(ruff, cache)
        ruff_warm, _ = wall(ruff, cache)
        bandit, _ = wall([str(tools / "bandit"), "-r", "-q", "-f", "json", str(root)], cache)
        same = "same findings" if warm_out == cold_out else "FINDINGS DIFFER"
        only = _only_changed(cold_out, changed_out, changed_file)
        rows = (
            (f"{name} tree, {files} files: cold, `-j{jobs}`", cold, ruff_cold),
            (f"{name} tree: warm re-run ({same})", warm, ruff_warm),
            (f"{name} tree: warm, one file changed ({only})", one_changed, ruff_warm),
        )
        for label, ours, theirs in rows:
            lines.append(_row(label, {"agentfuse": ours, "bandit": bandit, "ruff": theirs}))
        print(f"{name}: cold {cold:.1f} s, warm {warm:.2f} s, one changed {one_changed:.2f} s, bandit {bandit:.1f} s,"
              f" ruff {ruff_cold:.2f}/{ruff_warm:.2f} s; {same}; {only}", file=sys.stderr, flush=True)
    return "\n".join(lines) + "\n"


def _row(what: str, seconds: dict[str, float]) -> str:
    ratio = seconds["agentfuse"] / seconds["bandit"] if seconds.get("bandit") else float("nan")
    shown = {tool: f"{seconds[tool]:.2f}" if tool in seconds else "-" for tool in ("agentfuse", "bandit", "ruff")}
    return f"| {what} | {shown['agentfuse']} | {shown['bandit']} | {shown['ruff']} | **{ratio:.2f}** |"


def _file_with_findings(output: str) -> Path:
    paths = sorted({record["path"] for record in json.loads(output)})
    return Path(paths[len(paths) // 2])


def _only_changed(before: str, after: str, changed: Path) -> str:
    """Whether the findings of every file but ``changed`` are the same in both runs."""
    def others(text: str) -> list[dict[str, object]]:
        return [record for record in json.loads(text) if not changed.match(str(record["path"]))]
    return "only its findings changed" if others(before) == others(after) else "OTHER FILES' FINDINGS CHANGED"


def write_user_facing(text: str) -> None:
    """Replace the user-facing table in bench/RESULTS.md (appended to "Lint speed" the first time)."""
    current = RESULTS.read_text()
    block = f"{USER_SECTION_BEGIN}\n{text}{USER_SECTION_END}\n"
    if USER_SECTION_BEGIN in current and USER_SECTION_END in current:
        before, rest = current.split(USER_SECTION_BEGIN, 1)
        updated = before + block + rest.split(USER_SECTION_END, 1)[1].lstrip("\n")
    else:
        updated = current.replace(f"{SECTION}\n", f"{SECTION}\n\n{block}", 1)
    RESULTS.write_text(updated)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "agentfuse-bench")
    parser.add_argument("--tree", choices=sorted(TREES), action="append")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip", action="append", default=[], help="tool labels to skip (prefix)")
    parser.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    parser.add_argument("--user-facing", action="store_true", help="--version, one file, cold/warm tree (see above)")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds for --version and one file")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    tools_python = prepare_tools(args.cache)
    if args.user_facing:
        text = user_facing(args.cache, args.tree or ["agent"], tools_python, args.jobs, args.rounds)
        sys.stdout.write(text)
        if args.write:
            write_user_facing(text)
        return 0
    measurements: list[Measurement] = []
    stats: dict[str, object] = {}
    for name in args.tree or sorted(TREES, reverse=True):
        root = prepare_tree(args.cache, name)
        files = count_py_files(root)
        stats[name] = prefilter_stats(root)
        print(f"{name}: {files} files, pre-filter {stats[name]}", file=sys.stderr, flush=True)
        for label, command in commands(root, tools_python, args.jobs):
            if any(label.startswith(skip) for skip in args.skip):
                continue
            m = measure(name, label, command, files, args.cache)
            print(f"  {label}: {m.seconds:.1f} s, {m.peak_mb:.0f} MB, exit {m.exit_code}", file=sys.stderr, flush=True)
            measurements.append(m)
    (args.cache / "lint_speed.json").write_text(
        json.dumps({"measurements": [dataclasses.asdict(m) for m in measurements], "prefilter": stats}, indent=2)
    )
    result = table(measurements)
    sys.stdout.write(result)
    if args.write:
        write_table(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
