"""How fast is ``agentfuse lint`` next to ast, libcst, flake8 (pyflakes only) and bandit?

Builds two trees of real code outside the repository (``--cache``, default
``~/.cache/agentfuse-bench``) by installing packages with pip, then times each tool over
each tree in a fresh process: wall seconds, CPU seconds (user + system of the process and
the workers it waited for), files per second and peak resident memory of the largest
process. Writes a Markdown table to stdout and, with ``--write``, into the "Lint speed"
section of bench/RESULTS.md.

``--user-facing`` measures instead what a pre-commit hook and a CI re-run feel, side by side
with bandit and ruff in one run: ``--version``; one small file (median of alternating runs);
and per tree a cold run (empty result cache), a warm re-run, and a warm re-run after one file
changed (agentfuse's findings of the warm runs are checked against the cold run's).

``--stages`` says where agentfuse's time goes: CPU seconds per stage of the engine over
every ``--sample``-th file of each tree, in one process. ``--plain-engine`` runs the same
cold lint with the engine's fast paths swapped for the plain libcst ones and checks that
the JSON output is byte-identical.

On a machine shared with other work, wall seconds follow the load; CPU seconds much less.

    python bench/lint_speed.py --write            # everything (several minutes)
    python bench/lint_speed.py --tree agent       # one tree
    python bench/lint_speed.py --user-facing --tree agent --tree general --write
    python bench/lint_speed.py --stages --tree agent --tree general --write
    python bench/lint_speed.py --plain-engine --tree agent --tree general
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
import venv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
TREES: dict[str, tuple[str, ...]] = {
    "general": ("django", "sqlalchemy", "sympy", "langchain-core", "openai", "anthropic", "playwright"),
    "agent": ("langchain-community", "crewai", "camel-ai", "autogen-ext", "autogen-agentchat"),
}
TOOLS = ("flake8", "bandit", "ruff")
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
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print("PEAK_KB", usage.ru_maxrss, "EXIT", code, "CPU", usage.ru_utime + usage.ru_stime, file=sys.stderr)
"""


@dataclasses.dataclass(frozen=True)
class Measurement:
    tree: str
    tool: str
    command: str
    files: int
    seconds: float
    cpu_seconds: float
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
    _, peak_kb, _, code, _, cpu = report[-1].split()
    shown = " ".join(Path(part).name if part.startswith(str(cwd.parent)) else part for part in command)
    return Measurement(tree, tool, shown, files, seconds, float(cpu), int(peak_kb) / 1024, int(code))


def commands(root: Path, tools_python: Path, jobs: int) -> list[tuple[str, list[str]]]:
    python = sys.executable
    agentfuse = [python, "-m", "agentfuse", "lint", "--no-cache", "--format", "json"]  # cold: both runs parse
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
        "| tree | tool | files | wall s | CPU s | files/s | peak RSS MB | exit |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in measurements:
        lines.append(
            f"| {m.tree} | {m.tool} | {m.files} | {m.seconds:.1f} | {m.cpu_seconds:.1f} | {m.files_per_second:.0f} "
            f"| {m.peak_mb:.0f} | {m.exit_code} |"
        )
    return "\n".join(lines) + "\n"


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


@dataclasses.dataclass(frozen=True)
class Timing:
    """One run (or the medians of several): wall seconds and CPU seconds (user + system of
    the process and of the workers it waited for)."""

    wall: float
    cpu: float


def timed(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[Timing, str]:
    """One run of ``command`` (a fresh process): its timing and its standard output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return Timing(seconds, cpu), result.stdout


def alternating(commands: dict[str, list[str]], cwd: Path, rounds: int) -> dict[str, Timing]:
    """Median wall and CPU seconds of each command, the commands run in turn ``rounds`` times."""
    runs: dict[str, list[Timing]] = {label: [] for label in commands}
    for _ in range(rounds):
        for label, command in commands.items():
            runs[label].append(timed(command, cwd)[0])
    return {
        label: Timing(statistics.median(t.wall for t in values), statistics.median(t.cpu for t in values))
        for label, values in runs.items()
    }


USER_HEADER = (
    "| what | agentfuse s | bandit s | ruff s | agentfuse / bandit | agentfuse CPU s | bandit CPU s "
    "| agentfuse / bandit, CPU |\n|---|---:|---:|---:|---:|---:|---:|---:|"
)


def user_facing(cache: Path, trees: Sequence[str], tools_python: Path, jobs: int, rounds: int) -> str:
    """The user-facing figures as Markdown (see the module docstring)."""
    tools = tools_python.parent
    agentfuse = [sys.executable, "-m", "agentfuse"]
    work = cache / "user-facing"
    work.mkdir(exist_ok=True)
    (work / "f.py").write_text(SMALL_FILE)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "agentfuse")], check=True)
    lines = [USER_HEADER]
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
        cold, cold_out = timed(lint, cache, env)
        warm, warm_out = timed(lint, cache, env)
        changed_file = cache / _file_with_findings(cold_out)
        original = changed_file.read_bytes()
        try:
            changed_file.write_bytes(original + b"\n# touched by lint_speed.py\n")
            one_changed, changed_out = timed(lint, cache, env)
        finally:
            changed_file.write_bytes(original)
        ruff_cache = cache / f"ruff-cache-{name}"
        shutil.rmtree(ruff_cache, ignore_errors=True)
        ruff = [str(tools / "ruff"), "check", "--isolated", "--exit-zero", "--cache-dir", str(ruff_cache), str(root)]
        ruff_cold, _ = timed(ruff, cache)
        ruff_warm, _ = timed(ruff, cache)
        bandit, _ = timed([str(tools / "bandit"), "-r", "-q", "-f", "json", str(root)], cache)
        same = "same findings" if warm_out == cold_out else "FINDINGS DIFFER"
        only = _only_changed(cold_out, changed_out, changed_file)
        rows = (
            (f"{name} tree, {files} files: cold, `-j{jobs}`", cold, ruff_cold),
            (f"{name} tree: warm re-run ({same})", warm, ruff_warm),
            (f"{name} tree: warm, one file changed ({only})", one_changed, ruff_warm),
        )
        for label, ours, theirs in rows:
            lines.append(_row(label, {"agentfuse": ours, "bandit": bandit, "ruff": theirs}))
        print(f"{name}: cold {cold}, warm {warm}, one changed {one_changed}, bandit {bandit},"
              f" ruff {ruff_cold}/{ruff_warm}; {same}; {only}", file=sys.stderr, flush=True)
    return "\n".join(lines) + "\n"


def _row(what: str, timings: dict[str, Timing]) -> str:
    ours, bandit = timings["agentfuse"], timings["bandit"]
    shown = {tool: f"{timings[tool].wall:.2f}" if tool in timings else "-" for tool in ("agentfuse", "bandit", "ruff")}
    return (
        f"| {what} | {shown['agentfuse']} | {shown['bandit']} | {shown['ruff']} | **{ours.wall / bandit.wall:.2f}** "
        f"| {ours.cpu:.2f} | {bandit.cpu:.2f} | **{ours.cpu / bandit.cpu:.2f}** |"
    )


def _file_with_findings(output: str) -> Path:
    paths = sorted({record["path"] for record in json.loads(output)})
    return Path(paths[len(paths) // 2])


def _only_changed(before: str, after: str, changed: Path) -> str:
    """Whether the findings of every file but ``changed`` are the same in both runs."""
    def others(text: str) -> list[dict[str, object]]:
        return [record for record in json.loads(text) if not changed.match(str(record["path"]))]
    return "only its findings changed" if others(before) == others(after) else "OTHER FILES' FINDINGS CHANGED"


STAGES = (
    ("agentfuse.lint.checker", "RuleSet.matching", "trigger pre-filter (on the text, then on the code)"),
    ("agentfuse.lint.checker", "without_prose", "blanking docstrings and comments (candidate stage)"),
    ("agentfuse.lint.limits", "python_tree", "CPython `ast.parse`"),
    ("agentfuse.lint.limits", "checked_depth", "nesting-depth estimate"),
    ("agentfuse.lint.limits", "libcst_parse", "libcst parse"),
    ("agentfuse.lint.traversal", "walk_module", "one traversal with the rules (and the project index)"),
    ("agentfuse.lint.traversal", "positions_of", "positions of the reported nodes"),
)
PLAIN_ENGINE = """
import sys
from libcst.metadata import MetadataWrapper, PositionProvider
import agentfuse.lint.checker as checker
import agentfuse.lint.traversal as traversal
from agentfuse.lint_rules._triggers import required_pattern, trigger_pattern

def positions_of(module, nodes):
    everything = MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
    return {node: everything[node] for node in nodes}

def walk_module(module, visitors):
    module.visit(traversal._BatchedVisitor(traversal._collect_methods(visitors), traversal.node_child_fields()))

def matching(self, text, indexes, options):
    specs = [self.specs[i] for i in indexes]
    patterns = [(trigger_pattern(s.triggers), required_pattern(s.required_triggers, s.trigger_word_options, options))
                for s in specs]
    return [i for i, groups in zip(indexes, patterns) if all(p is None or p.search(text) for p in groups)]

traversal.positions_of, traversal.walk_module, checker.RuleSet.matching = positions_of, walk_module, matching
from agentfuse.cli import main
sys.exit(main(sys.argv[1:]))
"""
"""``agentfuse`` with the engine's fast paths replaced by the plain libcst ones: positions
from ``PositionProvider``, libcst's own traversal, ``re.search`` for the triggers."""


def plain_engine_check(cache: Path, trees: Sequence[str], jobs: int) -> str:
    """Cold runs of the engine and of :data:`PLAIN_ENGINE` on each tree: CPU seconds, and
    whether their JSON output is the same byte for byte."""
    lines = ["| tree | agentfuse CPU s | plain libcst paths CPU s | JSON output |", "|---|---:|---:|---|"]
    for name in trees:
        root = prepare_tree(cache, name)
        arguments = ["lint", "--no-cache", "--format", "json", "-j", str(jobs), str(root)]
        ours, our_output = timed([sys.executable, "-m", "agentfuse", *arguments], cache)
        plain, plain_output = timed([sys.executable, "-c", PLAIN_ENGINE, *arguments], cache)
        same = "byte-identical" if our_output == plain_output else "DIFFERENT"
        if not our_output.strip():
            same = "NO OUTPUT"
        lines.append(f"| {name} | {ours.cpu:.1f} | {plain.cpu:.1f} | {same} |")
        print(lines[-1], file=sys.stderr, flush=True)
    return "\n".join(lines) + "\n"


PLAIN_BEGIN = "<!-- lint_speed.py plain-engine: begin -->"
PLAIN_END = "<!-- lint_speed.py plain-engine: end -->"
STAGES_BEGIN = "<!-- lint_speed.py stages: begin -->"
STAGES_END = "<!-- lint_speed.py stages: end -->"


def stage_seconds(root: Path, sample: int) -> tuple[int, float, dict[str, float]]:
    """CPU seconds per engine stage linting every ``sample``-th file of ``root`` in this
    process (no result cache, with the project index): each stage function is wrapped with
    a timer; a stage called inside another counts for the outer one."""
    import importlib

    from agentfuse.lint.checker import RuleSet
    from agentfuse.lint.command import enabled_rules
    from agentfuse.lint.config import load_config
    from agentfuse.lint.discovery import discover
    from agentfuse.lint.runner import lint_files

    spent: dict[str, float] = collections.defaultdict(float)
    active: list[str] = []

    def wrap(function: Any, label: str) -> Any:
        @functools.wraps(function)
        def timed_stage(*args: Any, **kwargs: Any) -> Any:
            if active:
                return function(*args, **kwargs)
            active.append(label)
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[label] += time.process_time() - started
                active.pop()
        return timed_stage

    originals = []
    for module_name, attribute, label in STAGES:
        owner: Any = importlib.import_module(module_name)
        *path, name = attribute.split(".")
        for part in path:
            owner = getattr(owner, part)
        originals.append((owner, name, getattr(owner, name)))
        setattr(owner, name, wrap(getattr(owner, name), label))
    try:
        config = load_config(root)
        files = sorted(discover([root], config.exclude))[::sample]
        started = time.process_time()
        lint_files(files, RuleSet.of(enabled_rules(config.selection)), config, jobs=1)
        total = time.process_time() - started
    finally:
        for owner, name, function in originals:
            setattr(owner, name, function)
    return len(files), total, dict(spent)


def stages_table(cache: Path, trees: Sequence[str], sample: int) -> str:
    lines = ["| stage | " + " | ".join(f"{name} tree" for name in trees) + " |", "|---|" + "---:|" * len(trees)]
    columns = []
    for name in trees:
        files, total, spent = stage_seconds(prepare_tree(cache, name), sample)
        print(f"{name}: {files} files, {total:.1f} s, {spent}", file=sys.stderr, flush=True)
        columns.append((files, total, spent))
    for _, _, label in STAGES:
        cells = [
            f"{spent.get(label, 0.0):.1f} s ({100 * spent.get(label, 0.0) / total:.0f}%)" for _, total, spent in columns
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    rest = [f"{total - sum(spent.values()):.1f} s ({100 * (total - sum(spent.values())) / total:.0f}%)"
            for _, total, spent in columns]
    lines.append("| the rest (reading, decoding, noqa, process start of the rules) | " + " | ".join(rest) + " |")
    totals = [f"**{total:.1f} s** ({files} files)" for files, total, _ in columns]
    lines.append("| total | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


def write_between(begin: str, end: str, text: str) -> None:
    """Replace what lies between the markers ``begin`` and ``end`` in bench/RESULTS.md."""
    current = RESULTS.read_text()
    if begin not in current or end not in current:
        raise SystemExit(f"bench/RESULTS.md has no {begin} ... {end} markers in its Lint speed section")
    before, rest = current.split(begin, 1)
    RESULTS.write_text(before + f"{begin}\n{text}{end}\n" + rest.split(end, 1)[1].lstrip("\n"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "agentfuse-bench")
    parser.add_argument("--tree", choices=sorted(TREES), action="append")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip", action="append", default=[], help="tool labels to skip (prefix)")
    parser.add_argument("--write", action="store_true", help="write the table into bench/RESULTS.md")
    parser.add_argument("--user-facing", action="store_true", help="--version, one file, cold/warm tree (see above)")
    parser.add_argument("--rounds", type=int, default=9, help="alternating rounds for --version and one file")
    parser.add_argument("--stages", action="store_true", help="CPU seconds per engine stage (see above)")
    parser.add_argument("--sample", type=int, default=3, help="--stages: every Nth file of each tree")
    parser.add_argument("--plain-engine", action="store_true", help="cold runs against the plain libcst paths")
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.plain_engine:
        text = plain_engine_check(args.cache, args.tree or ["agent"], args.jobs)
        sys.stdout.write(text)
        if args.write:
            write_between(PLAIN_BEGIN, PLAIN_END, text)
        return 0
    if args.stages:
        text = stages_table(args.cache, args.tree or ["agent"], args.sample)
        sys.stdout.write(text)
        if args.write:
            write_between(STAGES_BEGIN, STAGES_END, text)
        return 0
    tools_python = prepare_tools(args.cache)
    if args.user_facing:
        text = user_facing(args.cache, args.tree or ["agent"], tools_python, args.jobs, args.rounds)
        sys.stdout.write(text)
        if args.write:
            write_between(USER_SECTION_BEGIN, USER_SECTION_END, text)
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
        write_between(TABLE_BEGIN, TABLE_END, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
