"""Recall and precision of the lint rules on a labelled set of real agent code.

``bench/labelled_set.csv`` lists lines of released PyPI packages, each labelled by reading
the code (before the linter was run on it): ``flag`` (an unguarded LLM request, a retry
with no ceiling, a destructive command, a Playwright arity bug) or ``clean`` (a look-alike:
the same words or shapes, but not the problem). This script downloads each release with
``pip download --no-deps`` into a cache outside the repository, unpacks it, runs
``python -m agentfuse lint --format json`` over each release from its own root (so
cross-module lookups see the release as a project), and prints recall and precision per
rule as a Markdown table, plus the rows it got wrong.

    python bench/labelled_score.py                      # this checkout's agentfuse
    python bench/labelled_score.py --agentfuse /tmp/old  # another copy of the package
    python bench/labelled_score.py --sample 60 --seed 2026  # and 60 findings to hand-check

A ``flag`` row is found when a finding of its code (any AF20x for the retry rules) starts
on its line or at most three lines above it and ends on or after it (a call spread over
lines). Precision counts found ``flag`` rows against found ``clean`` rows: it is the
precision on look-alikes, not on every finding of a release: ``--sample N`` prints N
findings drawn (seeded) from everything the linter reported on the whole releases, with
context, for a hand check of that precision.
"""

from __future__ import annotations

import argparse
import collections
import csv
import dataclasses
import json
import os
import random
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
MANIFEST = REPO / "bench" / "labelled_set.csv"
SELECT = "AF101,AF2,AF301,AF401"


@dataclasses.dataclass(frozen=True)
class Row:
    package: str
    version: str
    path: str
    line: int
    code: str
    expect: str
    note: str

    @property
    def family(self) -> str:
        return "AF2xx" if self.code.startswith("AF20") else self.code


def read_manifest(path: Path) -> list[Row]:
    with path.open(newline="") as fh:
        return [
            Row(r["package"], r["version"], r["path"], int(r["line"]), r["code"], r["expect"], r["note"])
            for r in csv.DictReader(fh)
        ]


def fetch(cache: Path, package: str, version: str) -> Path:
    """The unpacked release (downloaded once into ``cache``)."""
    root = cache / f"{package}-{version}"
    if root.is_dir():
        return root
    downloads = cache / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    spec = f"{package}=={version}"
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads), spec],
        check=True,
        timeout=600,
    )
    prefixes = {package.replace("-", "_").lower(), package.lower()}
    archive = next(
        p for p in sorted(downloads.iterdir())
        if any(p.name.lower().startswith(f"{prefix}-{version}") for prefix in prefixes)
    )
    partial = root.with_suffix(".partial")
    partial.mkdir(parents=True, exist_ok=True)
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as zf:
            zf.extractall(partial, [n for n in zf.namelist() if ".dist-info/" not in n])
    else:
        with tarfile.open(archive) as tf:
            tf.extractall(partial, filter="data")
    partial.rename(root)
    return root


def lint(root: Path, agentfuse: Path | None, jobs: int) -> list[dict[str, object]]:
    env = dict(os.environ)
    if agentfuse is not None:
        env["PYTHONPATH"] = str(agentfuse)
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "lint", "--format", "json", "--select", SELECT, "-j", str(jobs), "."],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode not in (0, 1):
        raise SystemExit(f"agentfuse lint failed in {root}:\n{result.stderr}")
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def found(row: Row, findings: Sequence[dict[str, object]]) -> bool:
    for finding in findings:
        code = str(finding["code"])
        same = code.startswith("AF20") if row.family == "AF2xx" else code == row.code
        start, end = int(finding["line"]), int(finding["end_line"])  # type: ignore[call-overload]
        if same and finding["path"] == row.path and row.line - 3 <= start <= row.line <= end:
            return True
    return False


def score(rows: Sequence[Row], hits: Sequence[bool]) -> str:
    table: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0, 0, 0])  # flags, found, cleans, flagged
    for row, hit in zip(rows, hits):
        for key in (row.family, "all"):
            cell = table[key]
            if row.expect == "flag":
                cell[0] += 1
                cell[1] += hit
            else:
                cell[2] += 1
                cell[3] += hit
    lines = [
        "| rule | flag rows | found | recall | look-alike rows | flagged | precision |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(table, key=lambda k: (k == "all", k)):
        flags, got, cleans, wrong = table[key]
        recall = got / flags if flags else float("nan")
        precision = got / (got + wrong) if got + wrong else float("nan")
        lines.append(f"| {key} | {flags} | {got} | {recall:.2f} | {cleans} | {wrong} | {precision:.2f} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "agentfuse-labelled")
    parser.add_argument("--agentfuse", type=Path, help="folder holding the agentfuse package to measure")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--sample", type=int, default=0, metavar="N", help="print N findings with context")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    rows = read_manifest(args.manifest)
    by_release: dict[tuple[str, str], list[Row]] = collections.defaultdict(list)
    for row in rows:
        by_release[(row.package, row.version)].append(row)
    hits: dict[Row, bool] = {}
    everything: list[tuple[Path, dict[str, object]]] = []
    for (package, version), release_rows in sorted(by_release.items()):
        root = fetch(args.cache, package, version)
        findings = lint(root, args.agentfuse, args.jobs)
        everything.extend((root, finding) for finding in findings)
        for row in release_rows:
            hits[row] = found(row, findings)
    ordered = list(rows)
    print(score(ordered, [hits[row] for row in ordered]))
    print("\nRows the linter got wrong:\n")
    for row in ordered:
        if hits[row] != (row.expect == "flag"):
            kind = "missed" if row.expect == "flag" else "false alarm"
            print(f"- {kind}: {row.package} {row.path}:{row.line} {row.code} ({row.note})")
    if args.sample:
        print_sample(everything, args.sample, args.seed)
    return 0


def print_sample(everything: Sequence[tuple[Path, dict[str, object]]], count: int, seed: int) -> None:
    """``count`` findings of the whole releases, seeded, each with three lines either side."""
    counts = collections.Counter(str(finding["code"]) for _, finding in everything)
    print(f"\n{len(everything)} findings on the whole releases: {dict(sorted(counts.items()))}")
    for number, (root, finding) in enumerate(random.Random(seed).sample(list(everything), count), start=1):
        line = int(finding["line"])  # type: ignore[call-overload]
        print(f"\n#{number} {root.name}/{finding['path']}:{line} {finding['code']} {finding['message']}")
        lines = (root / str(finding["path"])).read_text(errors="replace").splitlines()
        for index in range(max(0, line - 4), min(len(lines), line + 3)):
            print(f"{'>' if index + 1 == line else ' '} {index + 1:5} {lines[index][:140]}")


if __name__ == "__main__":
    raise SystemExit(main())
