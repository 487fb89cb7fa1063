"""Cross-module lookups for one lint run: which project file defines an imported name.

A rule that meets a name imported from the project (``from .clients import client``,
``from myapp.llm import make_client``) asks :meth:`ProjectIndex.locate` for the file that
defines it. The file is found on disk next to the importer (relative imports from the
importer's package; absolute ones from the top of its package tree or its own folder),
read once per process, and what a rule derives from it is kept once per process too, so
the cost is paid per imported module, not per importing file. Each read is recorded
against the importing file: :meth:`ProjectIndex.dependencies` and :meth:`digest` say what
a file's findings depend on besides its own text (for a result cache).

The CLI puts an index in the options it hands to the rules (``PROJECT_INDEX_KEY``); the
flake8 plugin does not, so under flake8 each file is checked alone, as flake8 sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

PROJECT_INDEX_KEY = "agentfuse.project-index"
"""The options entry holding the run's :class:`ProjectIndex` (not a configuration key)."""
MAX_MODULE_BYTES = 1_000_000
"""Larger modules are not read for cross-module lookups (generated code, data)."""

T = TypeVar("T")


class ProjectIndex:
    """Finds, reads and remembers project modules; records who read what."""

    def __init__(self, cwd: Path | None = None) -> None:
        self.cwd = cwd or Path.cwd()
        """What relative importer paths (the paths reports show) are relative to."""
        self._texts: dict[Path, str | None] = {}
        self._derived: dict[tuple[str, Path], Any] = {}
        self._reads: dict[str, set[Path]] = {}
        self._building: set[tuple[str, Path]] = set()

    def __getstate__(self) -> dict[str, Any]:
        """A copy sent to a worker process starts empty (it reads what it needs itself)."""
        return {"cwd": self.cwd}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state.get("cwd"))  # type: ignore[misc]

    def locate(self, importer: str, qualified: str) -> tuple[Path, str] | None:
        """The project file defining ``qualified``'s module part and the name left in it.

        ``qualified`` is an import-resolved dotted name as the rules see it: ``.clients.client``
        (relative, from ``importer``'s package) or ``myapp.llm.make_client``.
        """
        here = (self.cwd / importer).parent
        dots = len(qualified) - len(qualified.lstrip("."))
        parts = [part for part in qualified[dots:].split(".") if part]
        if not parts:
            return None
        probed: list[Path] = []  # what was looked for, found or not: a new file there changes the answer
        try:
            if dots:
                base = here
                for _ in range(dots - 1):
                    base = base.parent
                bases = [base]
            else:
                bases = _absolute_bases(here, probed)
            for base in bases:
                for cut in range(len(parts) - 1, -1 if dots else 0, -1):
                    found = _module_file(base, parts[:cut], probed)
                    if found is not None:
                        return found, ".".join(parts[cut:])
            return None
        finally:
            for path in probed:
                self.note(importer, path)

    def text(self, importer: str, path: Path) -> str | None:
        """The module's text (read once per process), recorded as read by ``importer``."""
        self._reads.setdefault(importer, set()).add(path)
        if path not in self._texts:
            self._texts[path] = _read(path)
        return self._texts[path]

    def note(self, importer: str, path: Path) -> None:
        """Record that ``importer``'s findings depend on ``path``: its bytes, or that it is
        not there (a policy looked for, a module that would shadow the one found)."""
        self._reads.setdefault(importer, set()).add(path)

    def derived(self, kind: str, path: Path, build: Callable[[], T | None]) -> T | None:
        """What ``build`` derives from ``path``, built once per process per ``kind``.

        A module still being built (an import cycle) answers None.
        """
        key = (kind, path)
        if key in self._derived:
            return self._derived[key]  # type: ignore[no-any-return]
        if key in self._building:
            return None
        self._building.add(key)
        try:
            value = build()
        finally:
            self._building.discard(key)
        self._derived[key] = value
        return value

    def dependencies(self, importer: str) -> frozenset[str]:
        """The other files ``importer``'s findings were derived from, in this process: the
        modules it read and, transitively, those they read to answer it."""
        seen: set[str] = set()
        pending = [importer]
        while pending:
            for path in self._reads.get(pending.pop(), ()):
                name = str(path)
                if name not in seen:
                    seen.add(name)
                    pending.append(name)
        seen.discard(importer)
        seen.discard(str(self.cwd / importer))
        return frozenset(seen)

    def digest(self, importer: str) -> str:
        """A digest of the paths and current bytes of :meth:`dependencies`."""
        import hashlib  # only a run with the result cache asks

        sha = hashlib.sha256()
        for name in sorted(self.dependencies(importer)):
            sha.update(name.encode() + b"\0")
            try:
                sha.update(hashlib.sha256(Path(name).read_bytes()).digest())
            except OSError:
                sha.update(b"missing")
        return sha.hexdigest()


def with_project_index(options: Mapping[str, Any], cwd: Path) -> dict[str, Any]:
    """``options`` plus a fresh index for one run over files reported relative to ``cwd``."""
    return {**options, PROJECT_INDEX_KEY: ProjectIndex(cwd)}


def project_index(options: Mapping[str, Any]) -> ProjectIndex | None:
    """The run's index, when the caller provided one (the CLI does; flake8 does not)."""
    found = options.get(PROJECT_INDEX_KEY)
    return found if isinstance(found, ProjectIndex) else None


def _absolute_bases(here: Path, probed: list[Path]) -> list[Path]:
    """Folders an absolute import may start from: above the package tree, and ``here``."""
    top = here
    while _probe(top / "__init__.py", probed) and top.parent != top:
        top = top.parent
    return [top] if top == here else [top, here]


def _module_file(base: Path, parts: list[str], probed: list[Path]) -> Path | None:
    folder = base.joinpath(*parts)
    if parts:
        module = folder.with_name(folder.name + ".py")
        if _probe(module, probed):
            return module
    package = folder / "__init__.py"
    return package if _probe(package, probed) else None


def _probe(path: Path, probed: list[Path]) -> bool:
    probed.append(path)
    return path.is_file()


def _read(path: Path) -> str | None:
    try:
        if path.stat().st_size > MAX_MODULE_BYTES:
            return None
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError, ValueError):
        return None
