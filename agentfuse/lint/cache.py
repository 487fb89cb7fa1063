"""Per-file lint results kept between runs, so a re-run over unchanged files parses nothing.

An entry is one JSON file named by a digest of the run key (agentfuse's version and own
source, Python's version, the enabled rules, the ``[tool.agentfuse]`` options, the size
limit, the working folder) with the file's reported path and a digest of its bytes. It
also lists what the findings were derived from besides the file itself, each with a digest
of its state when read: the policies AF102/AF103 looked for or read, and the project
modules (and the places where one was looked for) that cross-module resolution used. An
entry is used only while every one of those is still as it was.

Writes go to a temporary file renamed into place, so concurrent runs (pre-commit starts
several) never read half an entry and never wait for a lock; the last writer of the same
entry wins, and both wrote the same thing. Anything unreadable, truncated or foreign is a
miss, never an error; a cache that cannot be written is simply not used. The folder is
pruned (oldest entries first) when it holds more than ``MAX_ENTRIES``.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from agentfuse import __version__
from agentfuse.lint.config import ConfigError, LintConfig
from agentfuse.lint.finding import Finding
from agentfuse.lint.project_index import project_index

DEFAULT_DIR_NAME = ".agentfuse_cache"
ENV_VAR = "AGENTFUSE_CACHE_DIR"
CONFIG_KEY = "cache-dir"
FORMAT = 1
MAX_ENTRIES = 20_000
"""Above this many entries the oldest are removed, down to ``KEEP_AFTER_PRUNE``."""
KEEP_AFTER_PRUNE = 15_000
STALE_TEMP_S = 3600
CACHEDIR_TAG = (
    "Signature: 8a477f597d28d172789f06886806bc55\n"
    "# This file is a cache directory tag created by agentfuse.\n"
    "# For information about cache directory tags see https://bford.info/cachedir/\n"
)
_ENV_REFERENCE = re.compile(r"\$\{(\w+)")
_POLICY_SUFFIXES = (".yaml", ".yml")
_PACKAGE = Path(__file__).resolve().parent.parent


def cache_directory(config: LintConfig, cwd: Path, environ: Mapping[str, str] | None = None) -> Path:
    """Where the cache lives: ``AGENTFUSE_CACHE_DIR``, else ``[tool.agentfuse] cache-dir``
    (relative to the pyproject.toml), else ``.agentfuse_cache`` next to the nearest
    pyproject.toml, else in the working folder."""
    environ = os.environ if environ is None else environ
    if environ.get(ENV_VAR):
        return Path(environ[ENV_VAR])
    configured = config.options.get(CONFIG_KEY)
    if configured is not None:
        if not isinstance(configured, str) or not configured.strip():
            where = f"{config.source}: [tool.agentfuse]"
            raise ConfigError(f"{where} {CONFIG_KEY} must be a folder name, got {configured!r}")
        return config.root / configured
    return (config.root if config.source is not None else cwd) / DEFAULT_DIR_NAME


def run_key(config: LintConfig, rule_codes: Sequence[str], cwd: Path) -> str:
    """What every result of a run depends on besides the files themselves."""
    options = {key: value for key, value in config.options.items() if key != CONFIG_KEY}
    document = {
        "format": FORMAT,
        "agentfuse": __version__,
        "source": _own_source_stamp(),
        "python": list(sys.version_info[:2]),
        "rules": sorted(rule_codes),
        "options": options,
        "max_file_bytes": config.max_file_bytes,
        "cwd": str(cwd),
    }
    text = json.dumps(document, sort_keys=True, default=repr)
    import hashlib  # here and below: a run without the cache (--no-cache, flake8) never loads OpenSSL

    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _own_source_stamp() -> list[tuple[str, int, int]]:
    """Size and modification time of the linter's own modules: an edited rule (an editable
    install, a development tree) is a new version even when ``__version__`` is not."""
    stamp = []
    for folder in ("lint", "lint_rules"):
        for path in sorted((_PACKAGE / folder).glob("*.py")):
            try:
                info = path.stat()
            except OSError:
                continue
            stamp.append((f"{folder}/{path.name}", info.st_size, info.st_mtime_ns))
    return stamp


class ResultCache:
    """The cache of one run: a folder and the run key. Picklable (sent to worker processes)."""

    def __init__(self, directory: Path, key: str) -> None:
        self.directory = Path(directory)
        self.key = key
        self.entries = self.directory / f"v{FORMAT}"

    @classmethod
    def open(cls, directory: Path, key: str) -> ResultCache | None:
        """The cache in ``directory`` (created with its CACHEDIR.TAG and .gitignore), or None
        when the folder cannot be created or written."""
        cache = cls(directory, key)
        try:
            cache.entries.mkdir(parents=True, exist_ok=True)
            for name, text in (("CACHEDIR.TAG", CACHEDIR_TAG), (".gitignore", "# created by agentfuse\n*\n")):
                if not (cache.directory / name).is_file():
                    _write_atomically(cache.directory / name, text.encode())
        except OSError:
            return None
        return cache

    def lint(
        self, display: str, data: bytes, options: Mapping[str, Any], compute: Callable[[], list[Finding]]
    ) -> list[Finding]:
        """:meth:`findings`, with what the run's project index records this file read
        (other modules, policies) as its dependencies."""
        index = project_index(options)
        if index is None:
            return self.findings(display, data, compute)
        return self.findings(display, data, compute, lambda: index.dependencies(display))

    def findings(
        self,
        display: str,
        data: bytes,
        compute: Callable[[], list[Finding]],
        dependencies: Callable[[], Iterable[str]] = tuple,
    ) -> list[Finding]:
        """The file's findings from the cache, else ``compute()``'s, stored with the states
        of ``dependencies()`` (called after ``compute``)."""
        entry = self.entries / self._entry_name(display, data)
        cached = _load(entry, display)
        if cached is not None:
            return cached
        findings = compute()
        states = {path: dependency_state(path) for path in sorted(set(dependencies()))}
        record = {
            "format": FORMAT,
            "path": display,
            "dependencies": states,
            "findings": [[f.line, f.col, f.end_line, f.end_col, f.code, f.message] for f in findings],
        }
        try:
            _write_atomically(entry, json.dumps(record).encode())
        except OSError:
            pass  # a full disk or a read-only folder: the result stands, it is just not kept
        return findings

    def _entry_name(self, display: str, data: bytes) -> str:
        import hashlib

        sha = hashlib.sha256(self.key.encode())
        sha.update(b"\0" + display.encode("utf-8", "surrogateescape") + b"\0")
        sha.update(hashlib.sha256(data).digest())
        return sha.hexdigest()

    def prune(self, max_entries: int = MAX_ENTRIES, keep: int = KEEP_AFTER_PRUNE) -> None:
        """Remove the oldest entries when there are more than ``max_entries``, and temporary
        files that a killed run left behind."""
        try:
            with os.scandir(self.entries) as scan:
                found = list(scan)
        except OSError:
            return
        now = time.time()
        for item in found:
            if item.name.startswith(".tmp-") and _age(item, now) > STALE_TEMP_S:
                _remove(item.path)
        entries = [item for item in found if not item.name.startswith(".")]
        if len(entries) <= max_entries:
            return
        entries.sort(key=lambda item: _age(item, now), reverse=True)
        for item in entries[: len(entries) - keep]:
            _remove(item.path)


def dependency_state(path: str) -> str:
    """A digest of what a finding read at ``path``: its bytes (and, for a policy, the
    environment variables it names), or that it was a folder or was not there."""
    try:
        info = os.stat(path)
    except OSError:
        return "missing"
    if stat.S_ISDIR(info.st_mode):
        return "folder"
    try:
        data = Path(path).read_bytes()
    except OSError:
        return "unreadable"
    import hashlib

    sha = hashlib.sha256(data)
    if path.endswith(_POLICY_SUFFIXES):
        for name in sorted(set(_ENV_REFERENCE.findall(data.decode("utf-8", "replace")))):
            value = os.environ.get(name)
            sha.update(f"\0{name}={'' if value is None else value}\0{value is None}".encode("utf-8", "surrogateescape"))
    return sha.hexdigest()


def _load(entry: Path, display: str) -> list[Finding] | None:
    """The entry's findings when it is whole, ours, and its dependencies are unchanged."""
    try:
        record = json.loads(entry.read_bytes())
        if not isinstance(record, dict) or record.get("format") != FORMAT or record.get("path") != display:
            return None
        states = record["dependencies"]
        rows = record["findings"]
        if not isinstance(states, dict) or not isinstance(rows, list):
            return None
        if any(dependency_state(path) != state for path, state in states.items()):
            return None
        return [_finding(display, row) for row in rows]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _finding(display: str, row: Any) -> Finding:
    line, col, end_line, end_col, code, message = row
    numbers = (line, col, end_line, end_col)
    if not all(type(n) is int for n in numbers) or not isinstance(code, str) or not isinstance(message, str):
        raise TypeError("not a finding")
    return Finding(display, line, col, end_line, end_col, code, message)


def _write_atomically(path: Path, data: bytes) -> None:
    import tempfile  # here: a run that writes nothing (a warm one, --no-cache) never needs it

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.replace(temporary, path)
    except BaseException:
        _remove(temporary)
        raise


def _age(item: os.DirEntry[str], now: float) -> float:
    try:
        return now - item.stat().st_mtime
    except OSError:
        return 0.0


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
