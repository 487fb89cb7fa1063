"""A virtualenv of its own for the CrewAI tests, built once per requirement set and reused.

CrewAI pins ``openai<3``, ``httpx~=0.28`` and ``pydantic<2.13``, older than what the other
frameworks' tests need, so it cannot share the test environment: the CrewAI scenarios run as
subprocesses in this venv (agentfuse installed editable, so they run the working tree's code).

The venv lives in ``$AGENTFUSE_TEST_CACHE`` (default ``~/.cache/agentfuse-test``) under a name
keyed by a hash of what goes into it (the requirements below, agentfuse's own dependencies and
``crewai`` extra, the repository's path, the Python version). It is built under a file lock
(concurrent test runs build it once) and counts as built only once its marker file is written,
last: a build that was killed half-way is removed and started again. Packages come from PyPI
through ``uv`` (installed by pip into the new venv first; about 8x faster than pip resolving
CrewAI's ~250 dependencies), or through pip when uv cannot be had.

``python tests/crewai_venv.py`` builds it (or finds it) and prints its Python and the time taken
(``--name probe --requirement six``: a small venv built the same way).
"""

from __future__ import annotations

import argparse
import dataclasses
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - agentfuse's own dependency there
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
CREWAI_REQUIREMENTS = ("crewai==1.15.30",)
"""Pinned so that every machine tests the same CrewAI; raise it on purpose, with the tests."""
MARKER = "agentfuse-venv-complete.json"
BUILD_TIMEOUT_S = 1800


class VenvBuildError(RuntimeError):
    """The venv could not be built (no network, a package that does not resolve...)."""


def cache_root() -> Path:
    return Path(os.environ.get("AGENTFUSE_TEST_CACHE") or Path.home() / ".cache" / "agentfuse-test")


@dataclasses.dataclass(frozen=True)
class CachedVenv:
    """A venv named ``name`` holding ``requirements`` and agentfuse (editable, with ``extra``)."""

    name: str
    requirements: tuple[str, ...]
    extra: str | None = None

    @property
    def folder(self) -> Path:
        return cache_root() / f"{self.name}-{self._key()}"

    def _key(self) -> str:
        project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
        what = {
            "requirements": list(self.requirements),
            "dependencies": project.get("dependencies", []),
            "extra": project.get("optional-dependencies", {}).get(self.extra, []) if self.extra else None,
            "repo": str(REPO),
            "python": list(sys.version_info[:3]),
            "base": sys.base_prefix,
        }
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]

    def python(self) -> Path:
        """Its Python, the venv built first if there is none; raises :class:`VenvBuildError`."""
        venv = self.folder
        if (venv / MARKER).is_file():
            return venv / "bin" / "python"
        venv.parent.mkdir(parents=True, exist_ok=True)
        with open(venv.parent / f"{venv.name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another test run may be building it: wait for it
            if not (venv / MARKER).is_file():
                self._build(venv)
        return venv / "bin" / "python"

    def _build(self, venv: Path) -> None:
        if venv.exists():
            shutil.rmtree(venv)  # a build that did not finish
        started = time.monotonic()
        _run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        packages = [*self.requirements, "-e", f"{REPO}[{self.extra}]" if self.extra else str(REPO)]
        try:
            _run([python, "-m", "pip", "install", "--quiet", "uv"])
            _run([python, "-m", "uv", "pip", "install", "--quiet", "--python", python, *packages])
        except VenvBuildError:
            _run([python, "-m", "pip", "install", "--quiet", *packages])
        marker = {"requirements": list(self.requirements), "build_s": round(time.monotonic() - started, 1)}
        partial = venv / f"{MARKER}.partial"
        partial.write_text(json.dumps(marker))
        partial.replace(venv / MARKER)


CREWAI = CachedVenv("crewai", CREWAI_REQUIREMENTS, extra="crewai")


def crewai_python() -> Path:
    """The Python of the CrewAI venv, built first if there is none; raises :class:`VenvBuildError`."""
    return CREWAI.python()


def _run(command: list[str]) -> None:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired as exc:
        raise VenvBuildError(f"{' '.join(command[:5])}... took more than {BUILD_TIMEOUT_S} s") from exc
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-20:])
        raise VenvBuildError(f"{' '.join(command[:5])}... exited {done.returncode}:\n{tail}")


@pytest.fixture(scope="session", name="crewai_python")
def crewai_python_fixture() -> Path:
    """The CrewAI venv's Python for a test; a venv that cannot be built fails the test, with pip's words.

    ``AGENTFUSE_SKIP_CREWAI=1`` skips instead (a machine with no way to PyPI).
    """
    if os.environ.get("AGENTFUSE_SKIP_CREWAI"):
        pytest.skip("AGENTFUSE_SKIP_CREWAI is set")
    try:
        return crewai_python()
    except VenvBuildError as exc:
        pytest.fail(f"could not build the CrewAI test venv in {CREWAI.folder}: {exc}", pytrace=False)


def main(argv: list[str] | None = None) -> int:
    """Build (or find) the CrewAI venv, or ``--name``'s with ``--requirement``s; print its Python and the time."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--name")
    parser.add_argument("--requirement", action="append", default=[])
    args = parser.parse_args(argv)
    venv = CachedVenv(args.name, tuple(args.requirement)) if args.name else CREWAI
    began = time.monotonic()
    print(venv.python())
    print(f"{time.monotonic() - began:.1f} s; build record: {(venv.folder / MARKER).read_text()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
