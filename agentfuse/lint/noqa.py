"""``# noqa`` comments, read exactly as flake8 reads them, so the CLI and flake8 agree.

flake8 looks for its noqa pattern in the text of the token group a finding's first line
belongs to: the physical line, extended over every line of a multi-line token (a
triple-quoted string) or a backslash continuation. Lines inside brackets stay separate.
"""

from __future__ import annotations

import io
import re
import tokenize
from collections.abc import Sequence

from agentfuse.lint.finding import Finding

NOQA_INLINE = re.compile(
    r"# noqa(?::[\s]?(?P<codes>([A-Z]+[0-9]+(?:[,\s]+)?)+))?",
    re.IGNORECASE,
)
"""flake8's ``defaults.NOQA_INLINE_REGEXP``."""

NOQA_FILE = re.compile(r"\s*# flake8[:=]\s*noqa", re.IGNORECASE)
"""flake8's ``defaults.NOQA_FILE``: such a line on its own skips the whole file."""

_CODE_SEPARATOR = re.compile(r"[,\s]")
_PHYSICAL_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def filter_noqa(findings: Sequence[Finding], source: str) -> list[Finding]:
    """The findings that no ``# noqa`` comment suppresses."""
    if not findings or "noqa" not in source.lower():
        return list(findings)
    lines = physical_lines(source)
    if any(NOQA_FILE.match(line) for line in lines):
        return []
    groups = noqa_line_mapping(source, lines)
    kept = []
    for finding in findings:
        text = groups.get(finding.line)
        if text is None and 0 < finding.line <= len(lines):
            text = lines[finding.line - 1]
        if text is None or not is_suppressed(finding.code, text):
            kept.append(finding)
    return kept


def is_suppressed(code: str, text: str) -> bool:
    """flake8's ``Violation.is_inline_ignored`` for one code and the noqa text of its line."""
    match = NOQA_INLINE.search(text)
    if match is None:
        return False
    codes_text = match.group("codes")
    if codes_text is None:
        return True
    codes = tuple(code for code in (c.strip() for c in _CODE_SEPARATOR.split(codes_text)) if code)
    return code in codes or code.startswith(codes)


def noqa_line_mapping(source: str, lines: Sequence[str]) -> dict[int, str]:
    """Line number -> the joined text of its token group (flake8's ``_noqa_line_mapping``)."""
    mapping: dict[int, str] = {}
    first = len(lines) + 2
    last = -1
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in (tokenize.ENDMARKER, tokenize.DEDENT):
                continue
            first = min(first, token.start[0])
            last = max(last, token.end[0])
            if token.type in (tokenize.NL, tokenize.NEWLINE):
                joined = "".join(lines[first - 1:last])
                mapping.update(dict.fromkeys(range(first, last + 1), joined))
                first, last = len(lines) + 2, -1
    except (tokenize.TokenError, SyntaxError):
        return {}
    return mapping


def physical_lines(source: str) -> list[str]:
    """Lines as Python's tokenizer counts them (``\\n``, ``\\r\\n`` or ``\\r``), with their ends."""
    return _PHYSICAL_LINE.findall(source)
