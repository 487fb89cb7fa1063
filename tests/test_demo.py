"""The README's first command: the demo runs end to end and shows each fuse blowing."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo.py"


@pytest.mark.slow
def test_demo_shows_every_fuse_blowing(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(DEMO)], capture_output=True, text=True, timeout=240, cwd=tmp_path, check=False
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "Traceback" not in out + done.stderr
    for code in ("AF101", "AF201", "AF204", "AF301", "AF401"):
        assert code in out, f"the lint step should show {code}"
    assert "requests that reached the provider: 3 (of up to 10,000 attempts)" in out
    assert "after 25 calls ($0.01 each): BudgetExceeded" in out
    assert "still refused: RunHalted" in out
    assert re.search(r"calls in the run: (24|25) ", out)
    assert "after resume the call went through" in out
    assert "refused before it left: BudgetExceeded" in out
    assert "requests that reached the stand-in provider: 10 (the $0.0045 budget allows 10)" in out
    assert "spent, settled from the reported usage: $0.004500" in out
