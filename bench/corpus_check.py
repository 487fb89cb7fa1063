"""Run every agentfuse lint rule over a pinned corpus of open-source agent packages.

Issue 4's real-world check, repeatable: downloads a fixed list of agent packages with
``pip download --no-deps`` into a cache outside the repository (``--cache``, default
``~/.cache/agentfuse-corpus``; wheels already fetched by earlier ad-hoc runs are copied
instead of downloaded), unpacks them, runs ``python -m agentfuse lint --format json
--select AF -j 2`` over the unpacked tree once, and prints the findings per rule and per
package as a Markdown table. ``--sample N --seed S`` also prints N findings with three
lines of context either side (one per rule that has findings, when N allows), for a hand check.

    python bench/corpus_check.py                          # table (several minutes)
    python bench/corpus_check.py --sample 40 --seed 2026  # table and a sample
    python bench/corpus_check.py --reuse --sample 40      # sample from the last run's findings
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path

from agentfuse.lint_rules import all_rules

PACKAGES: tuple[str, ...] = (
    "agno==3.1.10",
    "aider-chat==0.86.2",
    "autogen-agentchat==0.7.5",
    "autogen-ext==0.7.5",
    "browser-use==0.13.14",
    "camel-ai==0.2.90",
    "crewai==1.15.30",
    "dspy==3.4.1",
    "gpt-engineer==0.3.1",
    "instructor==1.17.0",
    "langchain-community==0.4.2",
    "langchain-core==1.8.2",
    "langgraph==1.2.22",
    "litellm==1.109.1",
    "llama-index-core==0.14.25",
    "mem0ai==2.2.1",
    "metagpt==0.8.2",
    "open-interpreter==0.4.3",
    "openai-agents==0.24.0",
    "phidata==2.7.10",
    "praisonaiagents==1.7.17",
    "pydantic-ai-slim==2.68.0",
    "smolagents==1.26.0",
    "swarms==16.0.3",
)
EARLIER_DOWNLOADS: tuple[Path, ...] = (
    Path("/work/cache/llm_corpus/wheels"),
    Path("/tmp/af_retries_corpus/wheels"),
    Path("/tmp/af_retries_corpus/wheels2"),
)
ARCHIVE_SUFFIXES = (".whl", ".tar.gz", ".zip")
CONTEXT_LINES = 3
FINDINGS_FILE = "findings.json"


class CorpusError(Exception):
    """A download, unpack or lint step failed; the message says which."""


def distribution_prefix(requirement: str) -> str:
    """``aider-chat==0.86.2`` -> ``aider_chat-0.86.2``, the start of its archive's file name."""
    name, _, version = requirement.partition("==")
    return f"{name.replace('-', '_').lower()}-{version}"


def find_archive(folder: Path, requirement: str) -> Path | None:
    """The wheel or sdist of ``requirement`` in ``folder``, if there is one."""
    prefix = distribution_prefix(requirement)
    if not folder.is_dir():
        return None
    for candidate in sorted(folder.iterdir()):
        if candidate.name.lower().startswith(prefix + "-") or candidate.name.lower().startswith(prefix + "."):
            if candidate.name.endswith(ARCHIVE_SUFFIXES):
                return candidate
    return None


def fetch(requirement: str, wheels: Path, earlier: Sequence[Path]) -> Path:
    """Return the archive of ``requirement`` in ``wheels``: already there, copied, or downloaded."""
    archive = find_archive(wheels, requirement)
    if archive:
        return archive
    for folder in earlier:
        found = find_archive(folder, requirement)
        if found:
            shutil.copy2(found, wheels / found.name)
            return wheels / found.name
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(wheels), requirement]
    result = subprocess.run(command, capture_output=True, text=True)
    archive = find_archive(wheels, requirement)
    if result.returncode != 0 or archive is None:
        raise CorpusError(f"pip download {requirement} failed: {result.stderr.strip()[-500:]}")
    return archive


def unpack(archive: Path, src: Path) -> Path:
    """Unpack a wheel or sdist into ``src/<archive stem>`` once; return that folder."""
    stem = archive.name
    for suffix in ARCHIVE_SUFFIXES:
        stem = stem.removesuffix(suffix)
    target = src / stem
    if target.is_dir():
        return target
    partial = src / (stem + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if archive.name.endswith(".tar.gz"):
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
    else:
        with zipfile.ZipFile(archive) as wheel:
            wheel.extractall(partial)
    partial.rename(target)
    return target


def run_lint(src: Path, packages: Sequence[Path], jobs: int) -> tuple[list[dict[str, object]], float]:
    """Lint the unpacked packages in one run; return its findings and wall seconds.

    The working directory is the corpus, so the repository's own ``[tool.agentfuse]`` config
    does not apply to it.
    """
    folders = [package.name for package in packages]
    command = [sys.executable, "-m", "agentfuse", "lint", "--format", "json", "--select", "AF", "-j", str(jobs)]
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    start = time.perf_counter()
    result = subprocess.run([*command, *folders], cwd=src, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if result.returncode not in (0, 1):
        raise CorpusError(f"agentfuse lint exited {result.returncode}: {result.stderr.strip()[-1000:]}")
    try:
        findings = json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise CorpusError(f"agentfuse lint printed no JSON ({error}): {result.stdout[:300]!r}") from error
    for finding in findings:
        finding["path"] = str((src / str(finding["path"])).resolve())
    return findings, seconds


def package_of(path: str, src: Path) -> str:
    """The unpacked package folder a finding's path lies in."""
    relative = Path(path).relative_to(src.resolve())
    return relative.parts[0]


def count_files(folder: Path) -> int:
    return sum(1 for _ in folder.rglob("*.py"))


def markdown_table(findings: Sequence[dict[str, object]], src: Path, packages: Sequence[Path]) -> str:
    """Findings per package (rows) and per rule (columns, every registered rule), with totals."""
    codes = sorted({rule.code for rule in all_rules()} | {str(f["code"]) for f in findings})
    per_package: dict[str, collections.Counter[str]] = {p.name: collections.Counter() for p in packages}
    for finding in findings:
        per_package.setdefault(package_of(str(finding["path"]), src), collections.Counter())[str(finding["code"])] += 1
    lines = [
        "| package | .py files | " + " | ".join(codes) + " | total |",
        "|---|---:|" + "---:|" * (len(codes) + 1),
    ]
    totals: collections.Counter[str] = collections.Counter()
    total_files = 0
    for package in packages:
        counts = per_package[package.name]
        files = count_files(package)
        total_files += files
        totals.update(counts)
        cells = " | ".join(str(counts[code]) for code in codes)
        lines.append(f"| {package.name} | {files} | {cells} | {sum(counts.values())} |")
    cells = " | ".join(f"**{totals[code]}**" for code in codes)
    lines.append(f"| **all {len(packages)}** | {total_files} | {cells} | **{sum(totals.values())}** |")
    return "\n".join(lines) + "\n"


def spread_sample(findings: Sequence[dict[str, object]], size: int, seed: int) -> list[dict[str, object]]:
    """One finding of each rule that has any, then the rest drawn at random from all findings.

    Rare rules are then always sampled, while the common ones keep their weight.
    """
    rng = random.Random(seed)
    by_code: dict[str, list[dict[str, object]]] = collections.defaultdict(list)
    for finding in findings:
        by_code[str(finding["code"])].append(finding)
    picked = [rng.choice(by_code[code]) for code in sorted(by_code)][:size]
    rest = [finding for finding in findings if finding not in picked]
    picked += rng.sample(rest, min(len(rest), size - len(picked)))
    return picked


def show_finding(number: int, finding: dict[str, object], src: Path) -> str:
    """One sampled finding with ``CONTEXT_LINES`` lines either side, the flagged line marked."""
    path = Path(str(finding["path"]))
    line = int(str(finding["line"]))
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    first = max(1, line - CONTEXT_LINES)
    last = min(len(text), line + CONTEXT_LINES)
    where = path.relative_to(src.resolve())
    out = [f"#{number} {finding['code']} {where}:{line}: {finding['message']}"]
    for index in range(first, last + 1):
        marker = ">>" if index == line else "  "
        out.append(f"{marker}{index:6d} {text[index - 1]}")
    return "\n".join(out) + "\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "agentfuse-corpus")
    parser.add_argument("-j", "--jobs", type=int, default=2)
    parser.add_argument("--sample", type=int, default=0, metavar="N", help="print N findings with context")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--reuse", action="store_true", help="use the last run's findings, do not lint again")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.sample < 0 or args.jobs < 1:
        print("corpus_check: --sample must be >= 0 and --jobs >= 1", file=sys.stderr)
        return 2
    wheels, src = args.cache / "wheels", args.cache / "src"
    saved = args.cache / FINDINGS_FILE
    if args.reuse and not saved.is_file():
        print(f"corpus_check: --reuse: no saved findings at {saved}; run without --reuse first", file=sys.stderr)
        return 1
    try:
        wheels.mkdir(parents=True, exist_ok=True)
        src.mkdir(parents=True, exist_ok=True)
        packages = [unpack(fetch(requirement, wheels, EARLIER_DOWNLOADS), src) for requirement in PACKAGES]
        if args.reuse:
            findings = json.loads(saved.read_text(encoding="utf-8"))
            print(f"findings from {saved} (not linted again)\n")
        else:
            findings, seconds = run_lint(src, packages, args.jobs)
            saved.write_text(json.dumps(findings), encoding="utf-8")
            print(f"agentfuse lint over {src}: {len(findings)} findings in {seconds:.0f} s\n")
    except (CorpusError, OSError, zipfile.BadZipFile, tarfile.TarError) as error:
        print(f"corpus_check: {error}", file=sys.stderr)
        return 1
    print(markdown_table(findings, src, packages))
    for number, finding in enumerate(spread_sample(findings, args.sample, args.seed)):
        print(show_finding(number, finding, src))
    return 0


if __name__ == "__main__":
    sys.exit(main())
