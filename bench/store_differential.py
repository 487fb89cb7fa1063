"""SQLite and Redis on fresh random histories, compared operation by operation, for as long as one likes.

    .venv/bin/python bench/store_differential.py                  # 500 histories
    .venv/bin/python bench/store_differential.py --examples 5000 --no-shrink

The histories, the comparison and what they cover are tests/test_store_differential.py's; the
test runs a fixed set of them, this runs new ones each time (Hypothesis, not derandomized) and
prints what they exercised. A divergence fails with the shortest history Hypothesis finds (or, with
``--no-shrink``, the history as drawn). A throwaway ``redis-server`` (loopback, free port, no
persistence) is started and stopped.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.redis_server import running_server  # noqa: E402
from tests.test_store_differential import EXPECTED, run_histories  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=500, help="random histories to run")
    parser.add_argument("--no-shrink", action="store_true", help="report a divergence as drawn, unshrunk")
    args = parser.parse_args(argv)
    if shutil.which("redis-server") is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 2
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as folder, contextlib.contextmanager(running_server)(Path(folder)) as server:
        coverage = run_histories(server, args.examples, derandomize=False, shrink=not args.no_shrink)
    print(f"{args.examples} histories in {time.monotonic() - started:.0f} s: SQLite and Redis agree")
    for what, count in sorted(coverage.items()):
        print(f"  {count:7,}  {what}")
    missing = sorted(EXPECTED - set(coverage))
    if missing:
        print(f"not reached this time: {', '.join(missing)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
