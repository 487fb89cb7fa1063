"""The long run of the linter fuzz (tests/test_lint_fuzz.py runs a few dozen examples).

    .venv/bin/python bench/lint_fuzz.py                              # the run in bench/RESULTS.md
    .venv/bin/python bench/lint_fuzz.py --deep 300 --grammar 100 --cli-trees 1 --seed 7
    .venv/bin/python bench/lint_fuzz.py --thresholds                 # libcst's crash depths, times
    .venv/bin/python bench/lint_fuzz.py --estimate-cost ~/.cache/agentfuse-bench/agent

Draws ``--deep`` deliberately deep programs (every nesting kind of tests/lint_strategies.py,
segments up to ``--shallow`` levels or far past the engine's limit) and ``--grammar``
hypothesmith programs, lints each through the CLI's entry point in this process and holds
it to the test's property (tests/lint_strategies.py ``outcome``). Then ``--cli-trees`` real
``agentfuse lint -j 2`` runs over ``--tree-size`` generated files each: exit 0 or 1, no
traceback, one record list. Prints the outcomes and the time taken; exits 1 on the first
failure (Hypothesis prints the shrunk example).

``--thresholds`` measures, per nesting kind, the depth at which libcst's native parser
kills a process in a thread with a 1 MB and an 8 MB stack (each probe in a subprocess), the
stack each level takes, and the seconds a lint takes at 100, 500 and 950 levels: what the
engine's limits keep clear of. ``--estimate-cost TREE`` times the depth estimate against
``ast.parse`` and libcst's parse over every file of a tree.
"""

from __future__ import annotations

import argparse
import ast
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import libcst  # noqa: E402
from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from agentfuse.lint import limits  # noqa: E402
from tests.lint_strategies import (  # noqa: E402
    Segment,
    deep_programs,
    deep_source,
    grammar_programs,
    lint_in_process,
    outcome,
)

PROBE = """
import sys, threading, libcst
source = sys.stdin.read()
threading.stack_size(int(sys.argv[1]))
worker = threading.Thread(target=libcst.parse_module, args=(source,))
worker.start()
worker.join()
"""
THRESHOLD_KINDS = ("and", "lambda", "unary", "attribute", "call", "plus", "ifexp", "elif")
PROBE_TIMEOUT_S = 300
TIMED_DEPTHS = (100, 500, 950)
"""Levels of each kind timed through a whole lint (just below the engine's limit at most)."""


def run_property(name: str, strategy: st.SearchStrategy[str], examples: int, run_seed: int) -> collections.Counter[str]:
    outcomes: collections.Counter[str] = collections.Counter()

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def check(source: str) -> None:
        outcomes[outcome(source, *lint_in_process(source))] += 1

    started = time.perf_counter()
    check()
    print(f"{name}: {sum(outcomes.values())} programs in {time.perf_counter() - started:.0f} s: {dict(outcomes)}")
    return outcomes


def run_cli_trees(trees: int, size: int, run_seed: int) -> None:
    strategy = st.one_of(deep_programs(), grammar_programs())
    for tree in range(trees):
        sources: list[str] = []

        @seed(run_seed + tree)
        @settings(max_examples=size, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(source: str) -> None:
            sources.append(source)

        collect()
        with tempfile.TemporaryDirectory() as folder:
            for index, source in enumerate(sources):
                Path(folder, f"g{index}.py").write_text(source, encoding="utf-8", errors="surrogatepass")
            started = time.perf_counter()
            result = subprocess.run(
                [sys.executable, "-m", "agentfuse", "lint", "--format", "json", "-j", "2", "--no-cache",
                 "--max-file-bytes", "0"],
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=3600,
            )
            elapsed = time.perf_counter() - started
        records = json.loads(result.stdout) if result.stdout else None
        ok = result.returncode in (0, 1) and "Traceback" not in result.stderr and records is not None
        codes = collections.Counter(record["code"] for record in records or [])
        print(f"cli tree {tree}: {len(sources)} files, exit {result.returncode}, {elapsed:.0f} s, {dict(codes)}")
        if not ok:
            print(result.stderr[-3000:])
            raise SystemExit(1)


def crashes(kind: str, depth: int, stack: int) -> bool | None:
    """Does libcst's parse of ``depth`` levels of ``kind`` kill a process (thread stack
    ``stack``)? None when it takes longer than ``PROBE_TIMEOUT_S``."""
    source = deep_source([Segment(kind, depth)])
    try:
        result = subprocess.run(
            [sys.executable, "-c", PROBE, str(stack)], input=source, capture_output=True, text=True,
            timeout=PROBE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        return None
    return result.returncode < 0


def crash_depth(kind: str, stack: int, limit: int) -> tuple[int | None, str]:
    """The smallest crashing depth (to within 3%), doubling from 64 levels up to ``limit``;
    (None, why) when none crashed."""
    low, high = 0, 64
    while True:
        crashed = crashes(kind, high, stack)
        if crashed is None:
            return None, f"no crash up to {low:,} ({high:,} took over {PROBE_TIMEOUT_S} s)"
        if crashed:
            break
        if high >= limit:
            return None, f"no crash up to {limit:,}"
        low, high = high, min(high * 2, limit)
    while high - low > max(low // 33, 4):
        middle = (low + high) // 2
        if crashes(kind, middle, stack):
            high = middle
        else:
            low = middle
    return high, f"{high:,}"


def lint_seconds(kind: str, depth: int) -> float:
    source = deep_source([Segment(kind, depth)])
    started = time.perf_counter()
    lint_in_process(source)
    return time.perf_counter() - started


def run_thresholds() -> None:
    print("| kind | crash depth, 1 MB stack | crash depth, 8 MB stack | stack per level | levels 512 MB hold "
          "| lint s at 100 / 500 / 950 levels |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in THRESHOLD_KINDS:
        small, small_text = crash_depth(kind, 1024 * 1024, 20_000)
        large, large_text = crash_depth(kind, 8 * 1024 * 1024, 8_000)
        per_level = max([stack / depth for stack, depth in ((1 << 20, small), (8 << 20, large)) if depth], default=0)
        holds = f"{limits.DEEP_STACK_BYTES / per_level:,.0f}" if per_level else "-"
        per_level_text = f"{per_level / 1024:.1f} KB" if per_level else "-"
        seconds = " / ".join(f"{lint_seconds(kind, depth):.1f}" for depth in TIMED_DEPTHS)
        print(f"| {kind} | {small_text} | {large_text} | {per_level_text} | {holds} | {seconds} |", flush=True)


def run_estimate_cost(tree: Path) -> None:
    """What the depth estimate adds: ``ast.parse``, the estimate and libcst's parse, summed."""
    totals = collections.Counter[str]()
    deepest = (0, "")
    for path in sorted(tree.rglob("*.py")):
        try:
            source = path.read_text(encoding="utf-8")
            started = time.perf_counter()
            parsed = ast.parse(source)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        middle = time.perf_counter()
        depth, _ = limits.nesting_depth(parsed)
        estimated = time.perf_counter()
        try:
            libcst.parse_module(source)
        except Exception:  # noqa: BLE001 - only the time matters here
            pass
        totals["files"] += 1
        totals["ast.parse"] += middle - started  # type: ignore[assignment]
        totals["estimate"] += estimated - middle  # type: ignore[assignment]
        totals["libcst"] += time.perf_counter() - estimated  # type: ignore[assignment]
        deepest = max(deepest, (depth, str(path.relative_to(tree))))
    print(f"{totals['files']} files: ast.parse {totals['ast.parse']:.1f} s, depth estimate {totals['estimate']:.1f} s, "
          f"libcst.parse_module {totals['libcst']:.1f} s; deepest {deepest[0]} levels ({deepest[1]})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deep", type=int, default=1000, help="deep programs to draw")
    parser.add_argument("--grammar", type=int, default=300, help="hypothesmith programs to draw")
    parser.add_argument("--shallow", type=int, default=300, help="most levels of a segment below the limit")
    parser.add_argument("--cli-trees", type=int, default=2, help="CLI subprocess runs over generated trees")
    parser.add_argument("--tree-size", type=int, default=150, help="files per CLI tree")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--thresholds", action="store_true", help="measure libcst's crash depths and times instead")
    parser.add_argument("--estimate-cost", type=Path, metavar="TREE", help="time the depth estimate on a tree instead")
    args = parser.parse_args()
    if args.thresholds:
        run_thresholds()
        return 0
    if args.estimate_cost:
        run_estimate_cost(args.estimate_cost)
        return 0
    started = time.perf_counter()
    deep = deep_programs(shallow=args.shallow, deep=(1200, 3000, 9000))
    run_property("deep programs", deep, args.deep, args.seed)
    run_property("grammar programs", grammar_programs(), args.grammar, args.seed)
    run_cli_trees(args.cli_trees, args.tree_size, args.seed)
    print(f"total {time.perf_counter() - started:.0f} s, limits: in-thread up to {limits.FAST_DEPTH}, "
          f"parsed up to {limits.MAX_DEPTH} levels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
