"""Output formats: text (like flake8), JSON, SARIF 2.1.0 and GitHub workflow annotations.

File names are bytes on POSIX; one that is not valid UTF-8 reaches here with its odd bytes
as lone surrogates (Python's ``surrogateescape``). Text and GitHub output write those bytes
back as they are (:func:`write_output`), JSON and SARIF escape them (``\\udcff``, which
``os.fsencode`` turns back into the byte), and a SARIF URI percent-encodes the bytes.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO
from pathlib import Path
from urllib.parse import quote

from agentfuse import __version__
from agentfuse.lint.checker import PARSE_ERROR
from agentfuse.lint.finding import Finding

if TYPE_CHECKING:
    from agentfuse.lint_rules.base import Rule

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/agentfuse/agentfuse"
JSON_KEYS = ("path", "line", "col", "end_line", "end_col", "code", "message")
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclasses.dataclass(frozen=True)
class RuleInfo:
    """What a report says about a rule: code, name, one-line message, help text."""

    code: str
    name: str
    message: str
    help: str

    @classmethod
    def of(cls, rule: type[Rule]) -> RuleInfo:
        doc = inspect.cleandoc(rule.__doc__ or rule.message)
        return cls(rule.code, rule.__name__, rule.message, doc)


PARSE_ERROR_INFO = RuleInfo(
    code=PARSE_ERROR,
    name="UnparsableFile",
    message="the file cannot be read, decoded or parsed, so no rule could check it",
    help=(
        "agentfuse could not read, decode or parse this file, so none of its rules ran on it.\n\n"
        "Fix the syntax or encoding error the message names (the file would fail to import too),\n"
        "or exclude the file if it is not Python."
    ),
)


def sort_key(finding: Finding) -> tuple[str, int, int, str, int, int, str]:
    """Deterministic report order: path, line, column, code."""
    return (finding.path, finding.line, finding.col, finding.code, finding.end_line, finding.end_col, finding.message)


def format_text(findings: Sequence[Finding], rules: Sequence[RuleInfo]) -> str:
    return "".join(f"{f.path}:{f.line}:{f.col}: {f.code} {f.message}\n" for f in findings)


def format_json(findings: Sequence[Finding], rules: Sequence[RuleInfo]) -> str:
    records = [{key: getattr(f, key) for key in JSON_KEYS} for f in findings]
    return _json_text(records)


def _json_text(document: object) -> str:
    """JSON with non-ASCII text as is, but lone surrogates escaped (valid UTF-8 output)."""
    text = json.dumps(document, indent=2, ensure_ascii=False)
    return _SURROGATE.sub(lambda match: f"\\u{ord(match.group()):04x}", text) + "\n"


def format_github(findings: Sequence[Finding], rules: Sequence[RuleInfo]) -> str:
    lines = []
    for f in findings:
        level = "error" if f.code == PARSE_ERROR else "warning"
        properties = (
            f"file={_gh_property(f.path)},line={f.line},col={f.col},"
            f"endLine={f.end_line},endColumn={f.end_col},title={_gh_property(f.code)}"
        )
        lines.append(f"::{level} {properties}::{_gh_data(f.message)}\n")
    return "".join(lines)


def _gh_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _gh_property(text: str) -> str:
    return _gh_data(text).replace(":", "%3A").replace(",", "%2C")


def format_sarif(findings: Sequence[Finding], rules: Sequence[RuleInfo]) -> str:
    infos = {info.code: info for info in (PARSE_ERROR_INFO, *rules)}
    for f in findings:  # a finding from a code outside the run's rules still needs metadata
        infos.setdefault(f.code, RuleInfo(f.code, f.code, f.message, f.message))
    ordered = sorted(infos.values(), key=lambda info: info.code)
    index = {info.code: i for i, info in enumerate(ordered)}
    document = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "agentfuse",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "informationUri": INFORMATION_URI,
                        "rules": [_sarif_rule(info) for info in ordered],
                    }
                },
                "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
                "results": [_sarif_result(f, index[f.code]) for f in findings],
            }
        ],
    }
    return _json_text(document)


def _sarif_rule(info: RuleInfo) -> dict[str, object]:
    level = "error" if info.code == PARSE_ERROR else "warning"
    return {
        "id": info.code,
        "name": info.name,
        "shortDescription": {"text": info.message},
        "fullDescription": {"text": info.help.split("\n\n", 1)[0].replace("\n", " ")},
        "help": {"text": info.help, "markdown": info.help},
        "defaultConfiguration": {"level": level},
    }


def _sarif_result(finding: Finding, rule_index: int) -> dict[str, object]:
    return {
        "ruleId": finding.code,
        "ruleIndex": rule_index,
        "level": "error" if finding.code == PARSE_ERROR else "warning",
        "message": {"text": finding.message},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": _uri(finding.path), "uriBaseId": "%SRCROOT%"},
                    "region": {
                        "startLine": finding.line,
                        "startColumn": finding.col,
                        "endLine": finding.end_line,
                        "endColumn": finding.end_col,
                    },
                }
            }
        ],
    }


def _uri(path: str) -> str:
    """A relative URI reference for a path: its bytes, percent-encoded where needed."""
    return quote(path.replace("\\", "/").encode("utf-8", "surrogateescape"))


def write_output(text: str, stream: TextIO | None = None) -> None:
    """Write a report to stdout; a file name's undecodable bytes go out as those bytes."""
    stream = stream or sys.stdout
    buffer = getattr(stream, "buffer", None)
    if buffer is None:
        stream.write(text)
        return
    encoding = stream.encoding or "utf-8"
    try:
        data = text.encode(encoding, "surrogateescape")
    except UnicodeEncodeError:  # a character the terminal's encoding lacks
        data = text.encode(encoding, "backslashreplace")
    stream.flush()
    buffer.write(data)
    buffer.flush()


FORMATTERS: dict[str, Callable[[Sequence[Finding], Sequence[RuleInfo]], str]] = {
    "text": format_text,
    "json": format_json,
    "sarif": format_sarif,
    "github": format_github,
}
