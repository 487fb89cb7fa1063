"""``[tool.agentfuse]`` from the nearest ``pyproject.toml``, and code selection.

Engine keys (``select``, ``ignore``, ``per-file-ignores``, ``exclude``, ``extend-exclude``,
``max-file-bytes``) are validated here; every other key is a rule option, handed to rules untouched as
``FileContext.options`` (the whole raw table).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".git", ".venv", "venv", "build", "dist", "node_modules", "__pycache__", ".tox",
)
CODE_PREFIX = re.compile(r"AF\d{0,3}")
ENGINE_KEYS = frozenset({"select", "ignore", "per-file-ignores", "exclude", "extend-exclude", "max-file-bytes"})
DEFAULT_MAX_FILE_BYTES = 4_000_000
"""Larger files get AF001 "too large to lint" (libcst needs about 300 bytes of memory per
byte of source); 0 turns the limit off."""
MAX_FILE_BYTES_CEILING = 2**53


class ConfigError(Exception):
    """A bad ``[tool.agentfuse]`` table or a bad command-line value (exit status 2)."""


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which codes are reported: flake8's rule, the longer matching prefix wins.

    With no explicit ``select``, every code whose rule is on by default is selected;
    a rule with ``default_enabled = False`` runs only when a ``select`` prefix names it.
    """

    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()

    def enabled(self, code: str, *, default_enabled: bool = True) -> bool:
        chosen = _longest_prefix(code, self.select)
        ignored = _longest_prefix(code, self.ignore)
        if not self.select:
            return default_enabled and ignored == 0
        return chosen > ignored

    def without(self, codes: Iterable[str]) -> Selection:
        """This selection with ``codes`` ignored too (per-file ignores)."""
        return dataclasses.replace(self, ignore=(*self.ignore, *codes))


def _longest_prefix(code: str, prefixes: Sequence[str]) -> int:
    return max((len(p) for p in prefixes if code.startswith(p)), default=0)


@dataclasses.dataclass(frozen=True)
class LintConfig:
    """The effective configuration of one lint run."""

    root: Path
    source: Path | None = None
    selection: Selection = Selection()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES
    """Files larger than this many bytes are not parsed (AF001); 0 means no limit."""

    def ignored_for(self, relative_path: str) -> tuple[str, ...]:
        """Codes that ``per-file-ignores`` switches off for a path relative to ``root``."""
        name = relative_path.rsplit("/", 1)[-1]
        codes: list[str] = []
        for pattern, pattern_codes in self.per_file_ignores:
            if fnmatch.fnmatch(relative_path, pattern) or fnmatch.fnmatch(name, pattern):
                codes.extend(pattern_codes)
        return tuple(codes)


def find_pyproject(start: Path) -> Path | None:
    """The nearest ``pyproject.toml`` at or above ``start``."""
    start = start.resolve()
    for folder in (start, *start.parents) if start.is_dir() else start.parents:
        candidate = folder / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def load_config(start: Path) -> LintConfig:
    """Read ``[tool.agentfuse]`` from the nearest pyproject.toml; defaults if there is none."""
    pyproject = find_pyproject(start)
    if pyproject is None:
        return LintConfig(root=start.resolve() if start.is_dir() else start.resolve().parent)
    if sys.version_info >= (3, 11):  # imported here: a folder without pyproject.toml never needs it
        import tomllib
    else:  # pragma: no cover - Python 3.10 needs the tomli backport
        import tomli as tomllib
    try:
        document = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{pyproject}: cannot read: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject}: invalid TOML: {exc}") from exc
    table = document.get("tool", {}).get("agentfuse", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{pyproject}: [tool.agentfuse] must be a table")
    return config_from_table(table, root=pyproject.parent, source=pyproject)


def config_from_table(table: Mapping[str, Any], *, root: Path, source: Path | None = None) -> LintConfig:
    """Validate the engine keys of a ``[tool.agentfuse]`` table."""
    where = f"{source}: [tool.agentfuse]" if source else "[tool.agentfuse]"
    for key in table:
        snake = key.replace("_", "-")
        if snake in ENGINE_KEYS and snake != key:
            raise ConfigError(f"{where}: write {key!r} as {snake!r}")
    select = parse_codes(table.get("select", ()), f"{where} select")
    ignore = parse_codes(table.get("ignore", ()), f"{where} ignore")
    exclude = _string_list(table.get("exclude", DEFAULT_EXCLUDES), f"{where} exclude")
    extend = _string_list(table.get("extend-exclude", ()), f"{where} extend-exclude")
    per_file = table.get("per-file-ignores", {})
    if not isinstance(per_file, dict):
        raise ConfigError(f"{where} per-file-ignores must be a table of glob = [codes]")
    per_file_ignores = tuple(
        (pattern, parse_codes(codes, f"{where} per-file-ignores {pattern!r}"))
        for pattern, codes in per_file.items()
    )
    return LintConfig(
        root=root,
        source=source,
        selection=Selection(select, ignore),
        per_file_ignores=per_file_ignores,
        exclude=(*exclude, *extend),
        options=dict(table),
        max_file_bytes=_byte_count(table.get("max-file-bytes", DEFAULT_MAX_FILE_BYTES), f"{where} max-file-bytes"),
    )


def _byte_count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_FILE_BYTES_CEILING:
        raise ConfigError(f"{what} must be a whole number of bytes such as 4000000 (0 for no limit), got {value!r}")
    return value


def parse_codes(value: object, what: str) -> tuple[str, ...]:
    """A list (or comma-separated string) of code prefixes such as ``AF3`` or ``AF401``."""
    if isinstance(value, str):
        items = [item.strip() for item in value.split(",")]
    elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        items = [item.strip() for item in value]
    else:
        raise ConfigError(f"{what} must be a list of code prefixes such as ['AF3', 'AF401'], got {value!r}")
    codes = tuple(item for item in items if item)
    bad = [code for code in codes if not CODE_PREFIX.fullmatch(code)]
    if bad:
        raise ConfigError(f"{what}: {', '.join(map(repr, bad))} is not a code prefix (AF, AF3, AF401, ...)")
    return codes


def _string_list(value: object, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    if isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        return tuple(value)
    raise ConfigError(f"{what} must be a list of strings, got {value!r}")
