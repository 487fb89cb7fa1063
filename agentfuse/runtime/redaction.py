"""Secrets out of everything agentfuse prints: the one place every printer, repr and error uses.

:func:`redact` removes what can be recognised in any text: URL passwords
(``redis://:secret@host``), ``password=``/``token=``/``key=``-style pairs (query strings
included), bearer tokens, API keys and the token part of Slack, Discord, ntfy.sh and Telegram
webhook URLs. :func:`redact_url` reduces a configured webhook to its scheme and host, since the
token of a self-hosted endpoint cannot be recognised by its shape.
"""

from __future__ import annotations

import re
import urllib.parse

REDACTED = "***"

_SCHEME = r"\b[a-zA-Z][a-zA-Z0-9+.-]*://"
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # scheme://user:password@host: up to the last @ of the authority (a password may hold an @)
    (re.compile(rf"({_SCHEME}[^\s:/@?#]*:)[^\s/?#]*@"), r"\1***@"),
    # ... and a password holding a / (not valid in a URL, but seen): up to the next @
    (re.compile(rf"({_SCHEME}[^\s:/@]*:)[^\s@]+@"), r"\1***@"),
    (re.compile(r"(hooks\.slack\.com/(?:services|workflows|triggers)/)[^\s\"'<>]+"), r"\1***"),
    (re.compile(r"((?:discord|discordapp)\.com/api/webhooks/)[^\s\"'<>]+"), r"\1***"),
    (re.compile(r"(ntfy\.sh/)[^\s\"'<>?#]+"), r"\1***"),
    (re.compile(r"(api\.telegram\.org/bot)[^\s/\"'<>]+"), r"\1***"),
    (
        re.compile(
            r"(?i)\b([\w.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|auth|sig|signature"
            r"|key|credentials?)=)[^\s&;,\"'<>]+"
        ),
        r"\1***",
    ),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"), r"\1***"),
    (re.compile(r"\b(sk-(?:ant-|proj-)?)[A-Za-z0-9_-]{16,}"), r"\1***"),
    (re.compile(r"\b(xox[abprs]-)[A-Za-z0-9-]+"), r"\1***"),
)

_MAYBE_SECRET = re.compile(
    r"://|=|(?i:bearer|sk-|xox[abprs]-|ntfy\.sh|hooks\.slack|discord|telegram)"
)
"""Every pattern above needs one of these, so most strings skip the substitutions."""


def redact(text: str) -> str:
    """``text`` with credentials removed: URL passwords, webhook tokens, ``password=``-style
    pairs, bearer tokens and API keys. Cheap enough to run on every string of every event."""
    if not _MAYBE_SECRET.search(text):
        return text
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def redact_url(url: str) -> str:
    """A webhook URL reduced to scheme and host: its path and query are the secret.

    Used for the configured webhook, whose token cannot be recognised by pattern when it is a
    self-hosted ntfy server or any other endpoint.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return redact(url)
    if not parts.scheme or not host:
        return redact(url)
    hidden = "/" + REDACTED if (parts.path.strip("/") or parts.query) else ""
    return f"{parts.scheme}://{host}{port}{hidden}"
