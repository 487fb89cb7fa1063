"""Which files a lint run reads: ``.py`` files under the given paths, minus excludes.

Exclude patterns work like flake8's: a pattern matches a file or folder by its name, or,
when it holds a ``/``, by its path (``fnmatch``). A file named explicitly on the command line is always linted, as
pre-commit passes exactly the files it wants checked.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from pathlib import Path


def normalize_patterns(patterns: Sequence[str], base: Path) -> tuple[str, ...]:
    """Patterns holding a ``/`` are paths relative to ``base``; others match names."""
    return tuple(
        str((base / p.rstrip("/")).absolute()) if "/" in p.rstrip("/") else p.rstrip("/")
        for p in patterns
    )


def is_excluded(path: Path, patterns: Sequence[str]) -> bool:
    """True if ``path``'s name or its absolute path matches an exclude pattern."""
    name = path.name
    absolute = str(path.absolute())
    return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(absolute, p) for p in patterns)


def discover(paths: Sequence[Path], exclude: Sequence[str]) -> Iterator[Path]:
    """Python files under ``paths`` (explicit files as given), in a stable order, once each."""
    seen: set[Path] = set()
    for path in paths:
        if path.is_dir():
            candidates: Iterator[Path] = _walk(path, exclude)
        else:
            candidates = iter((path,))
        for candidate in candidates:
            key = candidate.absolute()
            if key not in seen:
                seen.add(key)
                yield candidate


def _walk(root: Path, exclude: Sequence[str]) -> Iterator[Path]:
    if is_excluded(root, exclude):
        return
    for folder, dirnames, filenames in os.walk(root):
        base = Path(folder)
        dirnames[:] = sorted(d for d in dirnames if not is_excluded(base / d, exclude))
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                candidate = base / filename
                if not is_excluded(candidate, exclude):
                    yield candidate
