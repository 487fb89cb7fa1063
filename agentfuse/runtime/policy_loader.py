"""policy.yaml -> a validated :class:`Policy`, or every problem with its file:line:col.

:func:`load_policy`, :func:`load_policy_text` and :func:`policy_issues` (the linter's entry)
read the file, bounded in size, decode it, and compose its YAML nodes with a bounded
SafeLoader that never constructs tagged objects (never ``yaml.load``); the nodes go to
:mod:`agentfuse.runtime.policy_validation`. Every issue is reported at once, sorted by place.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from typing import Any

import yaml

from agentfuse.runtime.errors import PolicyError, PolicyIssue
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.policy_nodes import child_nodes
from agentfuse.runtime.policy_validation import check_document

MAX_POLICY_BYTES = 256 * 1024
"""Larger files are refused unread: a policy is a few KiB, and parsing is pure Python."""
MAX_EXPANDED_NODES = 10_000
"""Bound on nodes counted with every alias expanded: stops "billion laughs" in linear time."""
MAX_NESTING = 32
MAX_ISSUES = 100


class _LimitExceeded(yaml.YAMLError):
    """The document is too deep, too large once aliases are expanded, or self-referential."""

    def __init__(self, message: str, mark: yaml.Mark, fix: str) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark
        self.fix = fix


class _BoundedLoader(yaml.SafeLoader):
    """A SafeLoader used only to compose nodes, bounding nesting and alias expansion.

    Sizes are counted per node as the node completes (children first), so an alias bomb is
    caught after composing its few real nodes, before anything walks the expanded tree.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._expanded_sizes: dict[int, int] = {}
        self._expanded_total = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        mark: yaml.Mark = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            node = super().compose_node(parent, index)
            if node is None or id(node) not in self._expanded_sizes:
                raise _LimitExceeded(
                    f"alias *{event.anchor} refers to a node that contains it",
                    mark,
                    "remove the alias; a policy cannot contain itself",
                )
            self._count(self._expanded_sizes[id(node)], mark)
            return node
        self._count(1, mark)
        self._depth += 1
        if self._depth > MAX_NESTING:
            raise _LimitExceeded(
                f"values are nested more than {MAX_NESTING} levels deep",
                mark,
                "a policy needs 4 levels at most; flatten this value",
            )
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            children = child_nodes(node)
            self._expanded_sizes[id(node)] = 1 + sum(self._expanded_sizes[id(c)] for c in children)
        return node

    def _count(self, nodes: int, mark: yaml.Mark) -> None:
        """Add to the document's size with aliases expanded; refuse past the bound."""
        self._expanded_total += nodes
        if self._expanded_total > MAX_EXPANDED_NODES:
            raise _LimitExceeded(
                f"the policy has more than {MAX_EXPANDED_NODES} values, counting an alias"
                " each time it is used",
                mark,
                "write the values out plainly; nested aliases that multiply are refused",
            )


def _line_col(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index in ``text``."""
    line_start = text.rfind("\n", 0, index) + 1
    return text.count("\n", 0, index) + 1, index - line_start + 1


def _file_issue(
    path: str, message: str, fix: str, line: int = 1, col: int = 1
) -> list[PolicyIssue]:
    return [PolicyIssue(path, line, col, message, fix)]


def _decode(data: bytes | str, path: str) -> str | list[PolicyIssue]:
    if len(data) > MAX_POLICY_BYTES:
        return _file_issue(
            path,
            f"file is larger than {MAX_POLICY_BYTES // 1024} KiB, the limit for a policy",
            "a policy is a few KiB; check that this is the right file",
        )
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = exc.start
        line_start = data.rfind(b"\n", 0, bad) + 1
        line, col = data.count(b"\n", 0, bad) + 1, len(data[line_start:bad].decode("utf-8")) + 1
        return _file_issue(
            path, f"byte 0x{data[bad]:02x} is not UTF-8", "save it as UTF-8", line, col
        )


def _compose(text: str, path: str) -> yaml.Node | None | list[PolicyIssue]:
    """The document's root node (None if empty), or the parse issue."""
    loader: _BoundedLoader | None = None
    try:
        loader = _BoundedLoader(text)
        return loader.get_single_node()
    except _LimitExceeded as exc:
        return _file_issue(path, exc.message, exc.fix, exc.mark.line + 1, exc.mark.column + 1)
    except yaml.reader.ReaderError as exc:
        line, col = _line_col(text, exc.position)
        return _file_issue(
            path,
            f"character #x{exc.character:04x} is not allowed in YAML",
            "remove it (control characters cannot appear in a policy)",
            line,
            col,
        )
    except yaml.MarkedYAMLError as exc:
        return _syntax_issues(text, path, exc)
    except yaml.YAMLError as exc:
        return _file_issue(path, f"YAML error: {exc}", "check the file's syntax")
    finally:
        if loader is not None:
            loader.dispose()


def _syntax_issues(text: str, path: str, exc: yaml.MarkedYAMLError) -> list[PolicyIssue]:
    """The parser's error in plain words; tabs in indentation, its usual cause, named as such."""
    tabs = [
        PolicyIssue(
            path,
            number,
            line.index("\t") + 1,
            "tab character in the indentation",
            "indent with spaces; YAML does not allow tabs there",
        )
        for number, line in enumerate(text.splitlines(), start=1)
        if "\t" in line[: len(line) - len(line.lstrip(" \t"))] and line.strip()
    ]
    mark = exc.problem_mark or exc.context_mark or yaml.Mark(path, 0, 0, 0, "", 0)
    if tabs and ("\\t" in (exc.problem or "") or any(t.line == mark.line + 1 for t in tabs)):
        return tabs  # the error is the tab itself: PyYAML's words for it would only confuse
    what = ", ".join(part for part in (exc.context, exc.problem) if part)
    fix = "check the quotes, brackets and indentation around this line"
    if exc.problem and "another document" in exc.problem:
        fix = "a policy is one YAML document: remove the second ---"
    opened: tuple[str, int] | None = None
    if exc.context and exc.context_mark and ("flow sequence" in exc.context or "flow mapping" in exc.context):
        opened = ("{" if "mapping" in exc.context else "[", exc.context_mark.line + 1)
    elif exc.context and "flow node" in exc.context:  # a value was due inside [ ] or { }
        opened = _innermost_unclosed(text, mark.index)
        what = exc.problem or what
    if opened is not None:
        opener, opened_at = opened
        closer = "}" if opener == "{" else "]"
        what = f"{exc.problem} (while reading the {opener} opened at line {opened_at})"
        fix = f"close the {opener} opened at line {opened_at} with {closer}"
    line, col = mark.line + 1, mark.column + 1
    lines = text.splitlines()
    if mark.line < len(lines) and "${" in lines[mark.line]:
        fix = 'quote it: "${NAME}" (inside { } or [ ], a bare ${ starts a mapping)'
    return [PolicyIssue(path, line, col, f"YAML syntax error: {what}", fix)]


def _innermost_unclosed(text: str, end: int) -> tuple[str, int] | None:
    """The innermost ``[`` or ``{`` still open at ``end`` and its line, outside quotes and
    comments (PyYAML names only the value it was waiting for, not the bracket)."""
    stack: list[tuple[str, int]] = []
    line, quote, comment, previous = 1, "", False, "\n"
    for char in text[:end]:
        if char == "\n":  # quoted scalars may span lines: a quote stays open
            line, comment = line + 1, False
        elif comment:
            pass
        elif quote:
            if char == quote:
                quote = ""
        elif char in "'\"":
            quote = char
        elif char == "#" and previous in " \t\n":
            comment = True
        elif char in "[{":
            stack.append((char, line))
        elif char in "]}" and stack:
            stack.pop()
        previous = char
    return stack[-1] if stack else None


def _finish(issues: list[PolicyIssue]) -> list[PolicyIssue]:
    """Sorted by place, without repeats (an alias reused reports once), capped."""
    unique = sorted(set(issues), key=lambda i: (i.line, i.col, i.message))
    if len(unique) <= MAX_ISSUES:
        return unique
    last = unique[MAX_ISSUES - 1]
    return [
        *unique[: MAX_ISSUES - 1],
        PolicyIssue(
            last.path,
            last.line,
            last.col,
            f"{len(unique) - MAX_ISSUES + 1} more problems not shown",
            "fix the ones above first",
        ),
    ]


def _check_text(
    data: bytes | str, path: str, environ: Mapping[str, str] | None, *, unset_ok: bool = False
) -> tuple[list[PolicyIssue], Policy | None]:
    text = _decode(data, path)
    if isinstance(text, list):
        return text, None
    root = _compose(text, path)
    if isinstance(root, list):
        return root, None
    issues, policy = check_document(
        root, path, os.environ if environ is None else environ, unset_ok=unset_ok
    )
    return _finish(issues), policy


def _read(path: str) -> bytes | list[PolicyIssue]:
    try:
        status = os.stat(path)
        if stat.S_ISDIR(status.st_mode):
            return _file_issue(path, "is a directory, not a policy file", "name a policy.yaml file")
        if not stat.S_ISREG(status.st_mode):
            return _file_issue(path, "is not a regular file", "name a policy.yaml file")
        with open(path, "rb") as stream:
            return stream.read(MAX_POLICY_BYTES + 1)  # one byte over: _decode reports the size
    except FileNotFoundError:
        return _file_issue(path, "file not found", f"create it with `agentfuse init --path {path}`")
    except OSError as exc:
        return _file_issue(
            path, f"cannot be read: {exc.strerror or exc}", "check the path and its permissions"
        )


def policy_issues(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    unset_ok: bool = False,
) -> list[PolicyIssue]:
    """Every problem in the policy file at ``path``; empty when it is valid.

    ``unset_ok`` (the linter's mode) treats ``${VAR}`` with VAR unset as a placeholder to be
    filled at run time, so a CI job without the agent's secrets does not fail the policy;
    ``enforce()`` and ``check-policy`` report it.
    """
    shown = os.fspath(path)
    data = _read(shown)
    if isinstance(data, list):
        return data
    return _check_text(data, shown, environ, unset_ok=unset_ok)[0]


def load_policy_text(
    text_or_bytes: str | bytes,
    path: str | os.PathLike[str] = "<policy>",
    *,
    environ: Mapping[str, str] | None = None,
) -> Policy:
    """Validate policy text; ``path`` names it in messages and becomes ``Policy.source``."""
    issues, policy = _check_text(text_or_bytes, os.fspath(path), environ)
    if issues or policy is None:
        raise PolicyError(issues)
    return policy


def load_policy(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> Policy:
    """Read and validate a policy file; raises PolicyError listing every problem."""
    shown = os.fspath(path)
    data = _read(shown)
    if isinstance(data, list):
        raise PolicyError(data)
    return load_policy_text(data, shown, environ=environ)
