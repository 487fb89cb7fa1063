"""A composed policy document -> a :class:`Policy`, or every issue with its file:line:col.

:class:`PolicyChecker` reads each section by a table of its fields (the keys below are the
whole vocabulary of policy.yaml; ``policies/policy.schema.json`` mirrors them), gives unknown
keys a did-you-mean, and builds the frozen values of :mod:`agentfuse.runtime.policy`.
"""

from __future__ import annotations

import difflib
import zoneinfo
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import yaml

from agentfuse.runtime.errors import PolicyIssue
from agentfuse.runtime.money import MAX_CALL_TOKENS
from agentfuse.runtime.policy import (
    AGENT_NAME,
    MAX_BACKUPS,
    Alerts,
    Breaker,
    Budget,
    ChildCaps,
    DegradeStep,
    Events,
    FailFast,
    KillSwitch,
    ModelPrice,
    Policy,
    RateLimit,
    RestartGuard,
)
from agentfuse.runtime.policy_nodes import INVALID, Invalid, NodeReader, Parse, dotted, is_blank, shown_value

BUDGET_CAPS = (
    "run_usd",
    "daily_usd",
    "hourly_usd",
    "max_steps",
    "max_retries_total",
    "timeout_s",
    "run_tokens",
    "daily_tokens",
    "hourly_tokens",
)
"""The budget keys that cap something (a budget needs one of them)."""

SECTION_KEYS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "": (
            "version",
            "agent",
            "budget",
            "breaker",
            "fail_fast",
            "rate_limits",
            "kill_switch",
            "degrade",
            "alerts",
            "events",
            "store",
            "store_durability",
            "store_unavailable",
            "timezone",
            "pricing",
            "restart_guard",
            "children",
        ),
        "budget": (*BUDGET_CAPS, "estimate_usd", "estimate_tokens"),
        "breaker": ("failure_threshold", "cooldown_s", "count", "ignore"),
        "fail_fast": ("max_attempts", "halt_on"),
        "rate_limits": ("action", "max", "window_s", "cooldown_s"),
        "kill_switch": ("stop_file",),
        "degrade": ("at", "model", "min_interval_s"),
        "alerts": ("webhook", "format", "timeout_s", "dedupe_window_s"),
        "events": ("path", "max_bytes", "backup_count", "rotate_when"),
        "pricing": ("input", "output", "cached_input"),
        "restart_guard": ("max_starts", "window_s", "cooldown_s", "action"),
        "children": ("run_usd", "run_tokens"),
    }
)
"""Every key the loader accepts, per section ("" is the top level); the JSON Schema mirrors it."""

REQUIRED_KEYS = ("version", "agent", "budget", "breaker", "fail_fast")

_REQUIRED_EXAMPLES = MappingProxyType(
    {
        "version": "version: 1",
        "agent": "agent: my-agent",
        "budget": "budget: {run_usd: 5.0, daily_usd: 20.0}",
        "breaker": "breaker: {failure_threshold: 5, cooldown_s: 300}",
        "fail_fast": "fail_fast: {max_attempts: 3, halt_on: [PermissionError]}",
    }
)

_ROTATE_WHEN = ("S", "M", "H", "D", "MIDNIGHT", "W0", "W1", "W2", "W3", "W4", "W5", "W6")


class PolicyChecker(NodeReader):
    """Validates a composed document into a Policy, collecting every issue on the way."""

    # -- a mapping read by its field table --------------------------------------------------

    def section(
        self,
        node: yaml.Node,
        name: str,
        fields: Mapping[str, Parse],
        *,
        required: tuple[str, ...] = (),
        example: str,
    ) -> tuple[dict[str, Any], set[str]] | Invalid:
        """Parse a mapping by its field table; returns (valid values, keys present)."""
        items = self.mapping(node, name, f"write it as a mapping, such as {example}")
        if items is INVALID:
            return INVALID
        values: dict[str, Any] = {}
        for key, (key_node, value_node) in items.items():
            full = dotted(name, key)
            parse = fields.get(key)
            if parse is None:
                self.unknown_key(key_node, key, name, tuple(fields))
                continue
            value = parse(value_node, full)
            if value is not INVALID:
                values[key] = value
        for key in required:
            if key not in items:
                where = f"{name} needs" if name else "the policy needs"
                self.add(
                    node,
                    f"{where} {dotted(name, key)}",
                    f"add it, such as {_REQUIRED_EXAMPLES.get(key, f'{key}: ...')}",
                )
        return values, set(items)

    def unknown_key(
        self, key_node: yaml.Node, key: str, section: str, allowed: tuple[str, ...]
    ) -> None:
        full = dotted(section, key)
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        close = close or [k for k in allowed if k.lower() == key.lower()]
        homes = [
            s for s, keys in SECTION_KEYS.items() if key in keys and s != _section_kind(section)
        ]
        if close:
            fix = f"did you mean {dotted(section, close[0])}?"
        elif homes:
            fix = f"it belongs in {homes[0] or 'the top level'}: write {dotted(homes[0], key)}"
        else:
            fix = f"use one of: {', '.join(allowed)}"
        self.add(key_node, f"unknown key {full}", fix)

    # -- the sections -----------------------------------------------------------------------

    def policy(self, root: yaml.Node, source: Path) -> Policy | None:
        fields: dict[str, Parse] = {
            "version": self.version,
            "agent": partial(
                self.text,
                pattern=AGENT_NAME,
                fix="use letters, digits, '_', '.' and '-' only, such as agent: \"publisher\"",
            ),
            "budget": self.budget,
            "breaker": self.breaker,
            "fail_fast": self.fail_fast,
            "rate_limits": self.rate_limits,
            "kill_switch": self.kill_switch,
            "degrade": self.degrade,
            "alerts": self.alerts,
            "events": self.events,
            "store": self.store,
            "store_durability": partial(
                self.text,
                choices=("normal", "full"),
                fix="write normal (survives a process kill) or full (also a power loss)",
            ),
            "store_unavailable": partial(
                self.text,
                choices=("deny", "allow"),
                fix="write deny (refuse calls when the store is down) or allow (fail open)",
            ),
            "timezone": self.timezone,
            "pricing": self.pricing,
            "restart_guard": self.restart_guard,
            "children": self.children,
        }
        example = "the one `agentfuse init` writes (version: 1, agent: ..., budget: ...)"
        parsed = self.section(root, "", fields, required=REQUIRED_KEYS, example=example)
        if parsed is INVALID:
            return None
        values, _ = parsed
        if self.issues or not {"agent", "budget", "breaker", "fail_fast"} <= values.keys():
            return None  # a required value is a ${VAR} placeholder (unset_ok): valid, but no Policy
        return Policy(**values, source=source)

    def version(self, node: yaml.Node, name: str) -> int | Invalid:
        read = self.scalar(node, name, "1", "write version: 1")
        if read is INVALID:
            return INVALID
        if read[0] != 1 or isinstance(read[0], bool):
            self.add(
                node,
                f"version {shown_value(read[0])} is not supported (this agentfuse reads 1)",
                "write version: 1",
            )
            return INVALID
        return 1

    def budget(self, node: yaml.Node, name: str) -> Budget | Invalid:
        fields: dict[str, Parse] = {
            "run_usd": self.money,
            "daily_usd": self.money,
            "hourly_usd": self.money,
            "max_steps": self.count,
            "max_retries_total": self.count,
            "timeout_s": self.seconds,
            "estimate_usd": self.amount,
            "run_tokens": self.count,
            "daily_tokens": self.count,
            "hourly_tokens": self.count,
            "estimate_tokens": partial(self.count, maximum=MAX_CALL_TOKENS),
        }
        parsed = self.section(node, name, fields, example="{run_usd: 5.0, daily_usd: 20.0}")
        if parsed is INVALID:
            return INVALID
        values, present = parsed
        if not present & set(BUDGET_CAPS):
            self.add(
                node,
                "budget sets no cap, so nothing would stop the spending",
                f"set at least one of {', '.join(BUDGET_CAPS)}, such as run_usd: 5.0",
            )
            return INVALID
        return Budget(**values)

    def breaker(self, node: yaml.Node, name: str) -> Breaker | Invalid:
        fields: dict[str, Parse] = {
            "failure_threshold": self.count,
            "cooldown_s": self.seconds,
            "count": self.class_names,
            "ignore": self.class_names,
        }
        parsed = self.section(node, name, fields, example="{failure_threshold: 5, cooldown_s: 300}")
        return parsed if parsed is INVALID else Breaker(**parsed[0])

    def fail_fast(self, node: yaml.Node, name: str) -> FailFast | Invalid:
        fields: dict[str, Parse] = {"max_attempts": self.count, "halt_on": self.class_names}
        parsed = self.section(
            node, name, fields, example="{max_attempts: 3, halt_on: [PermissionError]}"
        )
        return parsed if parsed is INVALID else FailFast(**parsed[0])

    def rate_limits(self, node: yaml.Node, name: str) -> tuple[RateLimit, ...] | Invalid:
        example = "{action: login, max: 2, window_s: 900, cooldown_s: 1800}"
        fields: dict[str, Parse] = {
            "action": partial(self.text, fix="name the action, such as action: login"),
            "max": self.count,
            "window_s": self.seconds,
            "cooldown_s": partial(self.seconds, allow_zero=True),
        }

        def parse_item(item: yaml.Node, item_name: str) -> RateLimit | Invalid:
            parsed = self.section(
                item, item_name, fields, required=("action", "max", "window_s"), example=example
            )
            if parsed is INVALID or not {"action", "max", "window_s"} <= set(parsed[0]):
                return INVALID
            return RateLimit(**parsed[0])

        limits = self.items_list(node, name, parse_item, f"[{example}]")
        if limits is INVALID:
            return INVALID
        first_line: dict[str, int] = {}
        for item, limit in limits:
            if limit.action in first_line:
                self.add(
                    item,
                    f"{name} has a second limit for action {limit.action!r} (first at"
                    f" line {first_line[limit.action]})",
                    "merge them into one entry",
                )
            first_line.setdefault(limit.action, item.start_mark.line + 1)
        return tuple(limit for _, limit in limits)

    def kill_switch(self, node: yaml.Node, name: str) -> KillSwitch | Invalid:
        fields: dict[str, Parse] = {
            "stop_file": partial(self.text, fix="name a file, such as stop_file: STOP")
        }
        parsed = self.section(node, name, fields, example="{stop_file: STOP}")
        return parsed if parsed is INVALID else KillSwitch(**parsed[0])

    def degrade(self, node: yaml.Node, name: str) -> tuple[DegradeStep, ...] | Invalid:
        example = "{at: 0.8, model: gpt-4o-mini}"
        fields: dict[str, Parse] = {
            "at": self.fraction,
            "model": partial(self.text, fix="name a model, such as model: gpt-4o-mini"),
            "min_interval_s": self.seconds,
        }

        def parse_item(item: yaml.Node, item_name: str) -> DegradeStep | Invalid:
            parsed = self.section(item, item_name, fields, required=("at",), example=example)
            if parsed is INVALID:
                return INVALID
            values, present = parsed
            if not present & {"model", "min_interval_s"}:
                self.add(
                    item,
                    f"{item_name} says neither which model to use nor how long to wait",
                    "add model: <cheaper model> or min_interval_s: <seconds>",
                )
                return INVALID
            return DegradeStep(**values) if "at" in values else INVALID

        steps = self.items_list(node, name, parse_item, f"[{example}]")
        return steps if steps is INVALID else tuple(step for _, step in steps)

    def alerts(self, node: yaml.Node, name: str) -> Alerts | Invalid:
        fields: dict[str, Parse] = {
            "webhook": self.webhook,
            "format": partial(
                self.text,
                choices=("ntfy", "slack", "discord", "json"),
                fix="write ntfy, slack, discord or json, or remove it to guess from the URL",
            ),
            "timeout_s": self.seconds,
            "dedupe_window_s": partial(self.seconds, allow_zero=True),
        }
        parsed = self.section(node, name, fields, example="{webhook: ${ALERT_WEBHOOK}}")
        return parsed if parsed is INVALID else Alerts(**parsed[0])

    def webhook(self, node: yaml.Node, name: str) -> str | None | Invalid:
        fix = (
            "write an http:// or https:// URL, such as ${ALERT_WEBHOOK} to keep it out of the file"
        )
        url = self.text(node, name, fix=fix, nullable=True, secret=True)
        if url is INVALID or url is None:
            return url
        scheme, host = _url_parts(url)
        if scheme not in ("http", "https") or not host:
            self.add(node, f"{name} must be an http:// or https:// URL (value hidden)", fix)
            return INVALID
        return url

    def events(self, node: yaml.Node, name: str) -> Events | Invalid:
        fields: dict[str, Parse] = {
            "path": partial(
                self.text,
                nullable=True,
                fix="name a file, such as path: .agentfuse/events.jsonl, or null for none",
            ),
            "max_bytes": self.count,
            "backup_count": partial(self.count, minimum=0, maximum=MAX_BACKUPS),
            "rotate_when": self.rotate_when,
        }
        parsed = self.section(node, name, fields, example="{path: .agentfuse/events.jsonl}")
        return parsed if parsed is INVALID else Events(**parsed[0])

    def rotate_when(self, node: yaml.Node, name: str) -> str | None | Invalid:
        fix = "write one of S, M, H, D, midnight, W0 (Monday) ... W6, or null"
        value = self.text(node, name, fix=fix, nullable=True)
        if value is INVALID or value is None:
            return value
        if value.upper() not in _ROTATE_WHEN:
            self.add(node, f"{name} must be a rotation interval, got {shown_value(value)}", fix)
            return INVALID
        return value

    def store(self, node: yaml.Node, name: str) -> str | Invalid:
        fix = (
            "write sqlite:///relative/path.db, sqlite:////absolute/path.db or"
            " redis://host:6379/0"
        )
        url = self.text(node, name, fix=fix, secret=True)
        if url is INVALID or url is None:
            return INVALID
        scheme, host = _url_parts(url)
        if scheme == "sqlite":
            good = len(url) > len("sqlite:///") and url[6:10] == ":///"
            problem = "needs three slashes then a file path"
        elif scheme in ("redis", "rediss"):
            good = bool(host)
            problem = "needs a host and a valid port, such as redis://localhost:6379/0"
        else:
            good, problem = (
                False,
                f"has scheme {scheme or 'none'}; only sqlite, redis and rediss are known",
            )
        if not good:
            self.add(node, f"{name} {problem} (URL hidden)", fix)
            return INVALID
        return url

    def timezone(self, node: yaml.Node, name: str) -> str | Invalid:
        fix = "write an IANA time zone name, such as Europe/Paris or UTC"
        value = self.text(node, name, fix=fix)
        if value is INVALID or value is None:
            return INVALID
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
            self.add(node, f"{name} {shown_value(value)} is not a known time zone", fix)
            return INVALID
        return value

    def pricing(self, node: yaml.Node, name: str) -> tuple[tuple[str, ModelPrice], ...] | Invalid:
        example = "{gpt-4o: {input: 2.50, output: 10.00, cached_input: 1.25}}"
        models = self.mapping(
            node, name, f"write it as a mapping of model names, such as {example}"
        )
        if models is INVALID:
            return INVALID
        fields: dict[str, Parse] = {
            "input": self.price,
            "output": self.price,
            "cached_input": self.price,
        }
        prices = []
        for model, (_, value) in models.items():
            parsed = self.section(
                value,
                dotted(name, model),
                fields,
                required=("input", "output"),
                example="{input: 2.50, output: 10.00}",
            )
            if parsed is not INVALID and {"input", "output"} <= set(parsed[0]):
                prices.append((model, ModelPrice(**parsed[0])))
        return tuple(prices)

    def children(self, node: yaml.Node, name: str) -> tuple[tuple[str, ChildCaps], ...] | Invalid:
        example = "{researcher: {run_usd: 0.50}}"
        agents = self.mapping(node, name, f"write it as a mapping of sub-agent names, such as {example}")
        if agents is INVALID:
            return INVALID
        fields: dict[str, Parse] = {"run_usd": self.money, "run_tokens": self.count}
        caps = []
        for child, (_, value) in agents.items():
            parsed = self.section(value, dotted(name, child), fields, example="{run_usd: 0.50}")
            if parsed is not INVALID:
                caps.append((child, ChildCaps(**parsed[0])))
        return tuple(caps)

    def restart_guard(self, node: yaml.Node, name: str) -> RestartGuard | Invalid:
        fields: dict[str, Parse] = {
            "max_starts": self.count,
            "window_s": self.seconds,
            "cooldown_s": self.seconds,
            "action": partial(
                self.text,
                choices=("refuse", "sleep"),
                fix="write refuse (refuse calls until the cooldown ends) or sleep (wait it out once at start)",
            ),
        }
        parsed = self.section(node, name, fields, example="{max_starts: 4, window_s: 60}")
        return parsed if parsed is INVALID else RestartGuard(**parsed[0])


def _url_parts(url: str) -> tuple[str, str | None]:
    """(lower-case scheme, host) of a URL; host is None when missing or malformed (bad port)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        return scheme, None
    return scheme, parts.hostname if port_ok else None


def _section_kind(section: str) -> str:
    """``rate_limits[2]`` -> ``rate_limits``; ``pricing.gpt-4o`` -> ``pricing``."""
    return section.split("[")[0].split(".")[0]


def check_document(
    root: yaml.Node | None, path: str, environ: Mapping[str, str], *, unset_ok: bool = False
) -> tuple[list[PolicyIssue], Policy | None]:
    """Every issue of a composed document, in the order found, and its Policy if it has one.

    ``unset_ok`` (the linter's mode) takes ``${VAR}`` with VAR unset as a placeholder: no issue,
    and no Policy either when a required value is one.
    """
    if root is None or is_blank(root):
        return [PolicyIssue(path, 1, 1, "policy file is empty", "run `agentfuse init` to write a starter policy")], None
    checker = PolicyChecker(path, environ, unset_ok=unset_ok)
    checker.check_tags(root)
    return checker.issues, checker.policy(root, Path(path).resolve())
