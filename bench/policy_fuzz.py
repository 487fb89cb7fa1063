"""The long run of the policy loader fuzz (tests/test_policy_fuzz.py runs a few hundred examples).

    .venv/bin/python bench/policy_fuzz.py                         # the run in bench/RESULTS.md
    .venv/bin/python bench/policy_fuzz.py --examples 500 --cli-batches 2 --seed 7

Draws ``--examples`` texts of each kind (policies of the right shape with values from YAML's
awkward corners, mutated example policies, raw garbage) from the strategies in
tests/policy_strategies.py and holds each to the same property as the test: a Policy within the
stores' bounds, or a PolicyError whose issues carry file:line:col, the file-based checks agreeing,
and no tag constructed. Then ``--cli-batches`` real ``agentfuse check-policy`` runs over
``--batch`` generated files each. Prints counts, valid/invalid, the most frequent issue messages
and the time taken; exits 1 on the first failure (Hypothesis prints the shrunk example).
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from agentfuse.runtime.errors import PolicyError  # noqa: E402
from agentfuse.runtime.policy_loader import load_policy_text, policy_issues  # noqa: E402
from tests.policy_strategies import (  # noqa: E402
    UNSET_PREFIX,
    check_text,
    garbage,
    mutated_examples,
    structured_policies,
)

_NUMBERS = re.compile(r"-?\d[\d.e+:_x]*|'[^']*'|\"[^\"]*\"")


def _kind_of(text: str | bytes) -> str:
    """An issue message with its values blanked, to count kinds of problems."""
    try:
        load_policy_text(text, "f.yaml", environ={})
    except PolicyError as exc:
        return _NUMBERS.sub("N", exc.issues[0].message)[:70]
    return "(valid)"


def run_kind(name: str, strategy: st.SearchStrategy[str] | st.SearchStrategy[str | bytes], examples: int,
             scratch: Path, marker: Path, run_seed: int) -> collections.Counter[str]:
    verdicts: collections.Counter[str] = collections.Counter()
    kinds: collections.Counter[str] = collections.Counter()

    @seed(run_seed)
    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(text=strategy)
    def prop(text: str | bytes) -> None:
        verdicts[check_text(text, scratch, {})] += 1
        kinds[_kind_of(text)] += 1
        assert not marker.exists(), "a tag was executed"

    started = time.perf_counter()
    prop()
    elapsed = time.perf_counter() - started
    total = sum(verdicts.values())
    print(f"{name}: {total} texts ({verdicts['valid']} valid, {verdicts['invalid']} invalid) in {elapsed:.0f} s")
    for kind, count in kinds.most_common(6):
        print(f"    {count:6d}  {kind}")
    return verdicts


def run_cli(batches: int, batch: int, marker: Path, workdir: Path, run_seed: int) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTFUSE_", UNSET_PREFIX))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    files_checked = [0]
    texts = st.lists(st.one_of(structured_policies(marker), mutated_examples(), garbage()),
                     min_size=batch, max_size=batch)

    @seed(run_seed)
    @settings(max_examples=batches, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(texts=texts)
    def prop(texts: list[str | bytes]) -> None:
        folder = Path(tempfile.mkdtemp(dir=workdir))
        files, valid = [], []
        for number, text in enumerate(texts):
            path = folder / f"p{number}.yaml"
            path.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
            valid.append(policy_issues(path, environ={}) == [])
            files.append(path)
        result = subprocess.run([sys.executable, "-m", "agentfuse", "check-policy", *map(str, files)],
                                capture_output=True, text=True, timeout=600, env=env, cwd=folder)
        assert "Traceback" not in result.stdout + result.stderr, result.stderr[-2000:]
        assert result.stderr == "" and result.returncode == (0 if all(valid) else 2), result
        oks = {line for line in result.stdout.splitlines() if line.endswith(": ok")}
        assert oks == {f"{p}: ok" for p, good in zip(files, valid) if good}
        files_checked[0] += len(files)

    started = time.perf_counter()
    prop()
    print(f"check-policy CLI: {batches} runs, {files_checked[0]} files, in {time.perf_counter() - started:.0f} s")
    return files_checked[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=5000, help="texts of each kind (default 5000)")
    parser.add_argument("--cli-batches", type=int, default=5, help="check-policy runs (default 5)")
    parser.add_argument("--batch", type=int, default=100, help="files per check-policy run (default 100)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        marker = workdir / "tag-was-executed"
        scratch = workdir / "policy.yaml"
        started = time.perf_counter()
        try:
            for name, strategy in (
                ("structured", structured_policies(marker)),
                ("mutated examples", mutated_examples()),
                ("garbage", garbage()),
            ):
                run_kind(name, strategy, args.examples, scratch, marker, args.seed)
            if args.cli_batches:
                run_cli(args.cli_batches, args.batch, marker, workdir, args.seed)
        except Exception:  # an assertion, or the loader's own exception: Hypothesis shrank it above
            traceback.print_exc()
            print("FAILED", file=sys.stderr)
            return 1
        assert not marker.exists()
        print(f"no traceback, no tag executed; {time.perf_counter() - started:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
