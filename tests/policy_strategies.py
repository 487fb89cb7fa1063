"""Hypothesis strategies that write policy.yaml text, and the property every text must meet.

Shared by tests/test_policy_fuzz.py (a bounded run in CI) and bench/policy_fuzz.py (a long run).

Three kinds of text: policies of the right shape whose values are drawn from the awkward corners
of YAML (huge, negative and non-finite numbers, ``.inf``/``.nan``, hex and base-60 integers,
booleans spelled ``yes``/``off``, tags including ``!!python/object/apply`` ones that would
touch a marker file if constructed, anchors and aliases, ``${VAR}`` references, unicode);
mutations of the example policies (characters inserted, deleted, replaced); and raw garbage.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

from hypothesis import strategies as st

from agentfuse.runtime.errors import PolicyError
from agentfuse.runtime.money import MAX_AMOUNT_USD, MAX_CAP_USD, MAX_COUNT, MAX_SECONDS
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.policy_loader import load_policy_text, policy_issues
from agentfuse.runtime.policy_validation import REQUIRED_KEYS, SECTION_KEYS

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = [path.read_text(encoding="utf-8") for path in sorted((REPO / "policies").glob("**/*.yaml"))]
UNSET_PREFIX = "AF_FUZZ_"
"""Environment variables the texts refer to are named so; none of them is ever set."""

SPECIAL_NUMBERS = (
    ".inf", "-.inf", "+.inf", ".nan", ".NaN", ".NAN", "1.0e+30", "-1.0e+30", "1e30", "1.0e+308",
    "1.0e+309", "-0.0", "0.0", "0", "-0", "-1", "-0.01", "1_000", "1_000.5", "0x7fffffffffffffff",
    "0xffffffffffffffffffff", "0o777", "0b1010", "190:20:30", "-190:20:30", "1.5e-7", "0.000000001",
    "9007199254740993", "9223372036854775808", "1000000000", "1000000000.000001", "1000000",
    "1000000000000000", "1000000000000001", "'5.00'", "'-5.00'", "'1e3'", '"5"', "5.", ".5",
    "0x" + "f" * 200, "1" * 5000, "0x" + "f" * 4000,
)
BOOLEANS_AND_NULLS = ("yes", "no", "on", "off", "true", "False", "y", "n", "~", "null", "")
TAGGED = (
    "!!str 5", "!!int ten", "!!int 5", "!!float 1", "!!float .nan", "!!bool yes", "!!null ''",
    "!!binary aGVsbG8=", "!!timestamp 2001-12-14", "!!set {a, b}", "!!omap [a: 1]", "!!pairs [a: 1]",
    "!custom x", "!<tag:yaml.org,2002:int> 5", "!!map {a: 1}", "!!seq [1]", "!!int {a: 1}",
    "!!python/name:os.system", "!!python/module:os", "!!python/tuple [1, 2]",
)
ENV_REFS = (
    "${AF_FUZZ_UNSET}", "${AF_FUZZ_UNSET:-5}", "${AF_FUZZ_UNSET:-1.0e+30}", "${AF_FUZZ_UNSET:--1}",
    "${AF_FUZZ_UNSET:-.nan}", "$${AF_FUZZ_UNSET}", "${", "${1BAD}", "${AF_FUZZ_UNSET:-}",
)


def executing_tags(marker: Path) -> tuple[str, ...]:
    """Tags that would create ``marker`` if anything constructed them."""
    return (
        f'!!python/object/apply:os.system ["touch {marker}"]',
        f"!!python/object/apply:subprocess.check_call [[touch, {marker}]]",
        f'!!python/object/new:os.system ["touch {marker}"]',
        f'!!python/object/apply:builtins.exec ["open({str(marker)!r}, \'w\')"]',
    )


def _quoted(text: str) -> str:
    return json.dumps(text)  # a JSON string is a YAML double-quoted scalar


def _mostly(common: st.SearchStrategy[str], *rare: st.SearchStrategy[str], weight: int = 3) -> st.SearchStrategy[str]:
    """``common`` ``weight`` times as often as each of ``rare``: a policy gets past the first
    problem often enough for the deeper checks (bounds, sections) to be exercised too."""
    return st.sampled_from((common,) * weight + rare).flatmap(lambda chosen: chosen)


_MONEY = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2).map(lambda d: f"{d:f}")
_COUNT = st.integers(min_value=1, max_value=1000).map(str)
_SECONDS = st.integers(min_value=1, max_value=3600).map(str)
_NAME = st.sampled_from(("publisher", "login", "gpt-4o-mini", "refuse", "a.b_c-1"))
_TEXT_VALUES = {
    "version": "1", "store": "sqlite:///s.db", "timezone": "UTC", "webhook": "https://ntfy.sh/topic",
    "format": "slack", "store_durability": "normal", "store_unavailable": "deny", "rotate_when": "midnight",
    "path": "events.jsonl", "stop_file": "STOP", "halt_on": "[PermissionError, openai.AuthenticationError]",
    "count": "ConnectionError", "ignore": "ValueError", "at": "0.8",
}


def plausible(key: str) -> st.SearchStrategy[str]:
    """A value of the right kind for ``key``."""
    if key in _TEXT_VALUES:
        return st.just(_TEXT_VALUES[key])
    if key.endswith("_usd") or key in ("input", "output", "cached_input"):
        return _MONEY
    if key.endswith("_s"):
        return _SECONDS
    if key in ("agent", "action", "model"):
        return _NAME
    return _COUNT


@functools.lru_cache(maxsize=None)
def scalars(marker: Path, key: str = "") -> st.SearchStrategy[str]:
    """One value for ``key`` as YAML text (flow context): mostly plausible, else from YAML's
    corners or hostile (tags, anchors, aliases)."""
    corners = st.one_of(
        st.sampled_from(SPECIAL_NUMBERS),
        st.integers(min_value=-(10**40), max_value=10**40).map(str),
        st.floats(allow_nan=False, allow_infinity=False).map(lambda x: repr(x) if "." in repr(x) else f"{x!r}.0"),
        st.decimals(allow_nan=False, allow_infinity=False, places=6).map(lambda d: f"{d:f}"),
        st.sampled_from(BOOLEANS_AND_NULLS),
        st.sampled_from(ENV_REFS).map(_quoted),
        st.text(max_size=20).map(_quoted),
        st.text(alphabet=string.ascii_letters + string.digits + "._-/:@", min_size=1, max_size=20),
        st.sampled_from(("redix://:pw@h/0", "Mars/Olympus", "email", "sometimes")),
    )
    hostile = st.one_of(
        st.sampled_from(TAGGED),
        st.sampled_from(executing_tags(marker)),
        st.tuples(st.sampled_from("abc"), plausible(key)).map(lambda pair: f"&{pair[0]} {pair[1]}"),
        st.sampled_from(("*a", "*b", "*c")),
    )
    return _mostly(plausible(key), corners, hostile, weight=8)


def _flow_mapping(pairs: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """``{key: value, ...}`` from ``key: value`` texts, each key once."""
    return st.lists(pairs, max_size=6, unique_by=lambda pair: pair.split(":")[0]).map(
        lambda items: "{" + ", ".join(items) + "}"
    )


def _section(name: str, marker: Path) -> st.SearchStrategy[str]:
    unknown = ("<<", "unknown_key", "run_us")
    pair_for = {
        key: scalars(marker, key).map(functools.partial("{}: {}".format, key))
        for key in (*SECTION_KEYS[name], *unknown)
    }
    keys = _mostly(st.sampled_from(SECTION_KEYS[name]), st.sampled_from(unknown), weight=8)
    body = _flow_mapping(keys.flatmap(pair_for.__getitem__))
    if name in ("rate_limits", "degrade"):
        return st.lists(body, max_size=3).map(lambda items: "[" + ", ".join(items) + "]")
    if name == "pricing":
        models = st.sampled_from(("gpt-4o", "m", "house-model", "'1'", "\"\""))
        return _flow_mapping(st.tuples(models, body).map(lambda pair: f"{pair[0]}: {pair[1]}"))
    return body


@functools.lru_cache(maxsize=None)
def structured_policies(marker: Path) -> st.SearchStrategy[str]:
    """A policy of the right shape (block style at the top), its values drawn as :func:`scalars`."""

    def entry(key: str) -> st.SearchStrategy[str]:
        if key in SECTION_KEYS:
            value = _mostly(_section(key, marker), scalars(marker), st.just(""), weight=8)
        else:
            value = scalars(marker, key)
        return value.map(lambda text: f"{key}: {text}")

    entries = {key: entry(key) for key in SECTION_KEYS[""]}  # built once: strategies are costly to build
    required = st.tuples(*(entries[key] for key in REQUIRED_KEYS))
    optional = st.lists(
        st.one_of(*(entries[key] for key in SECTION_KEYS[""] if key not in REQUIRED_KEYS)), max_size=5
    )
    lines = ("# a comment", "# another", "---", "...", "%YAML 1.1", "\t", "unknown: 1", "budget: {}")
    extra = st.lists(_mostly(st.just("# a comment"), st.sampled_from(lines)), max_size=2)
    return st.tuples(required, optional, extra, st.integers(min_value=0, max_value=10**6)).map(_joined)


def _joined(parts: tuple[tuple[str, ...], list[str], list[str], int]) -> str:
    """The entries in a drawn order (``seed`` rotates and interleaves them), one per line."""
    required, optional, extra, seed = parts
    lines = [*required, *optional]
    lines = lines[seed % len(lines):] + lines[: seed % len(lines)]
    for number, line in enumerate(extra):
        lines.insert((seed >> (4 * number)) % (len(lines) + 1), line)
    return "\n".join(lines) + "\n"


MUTATIONS = (
    "-", "1e30", ".nan", "!!", "&", "*", "{", "]", ":", "\t", "\x00", "\u202e", "${", "'", '"', "\n", "  ", "#"
)


@st.composite
def mutated_examples(draw: st.DrawFn) -> str:
    """An example policy with a few characters inserted, deleted or replaced."""
    text = draw(st.sampled_from(EXAMPLES))
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        at = draw(st.integers(min_value=0, max_value=len(text)))
        kind = draw(st.sampled_from(("insert", "delete", "replace")))
        piece = draw(st.one_of(st.sampled_from(MUTATIONS), st.text(max_size=3)))
        if kind == "insert":
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + len(piece) + 1:]
        else:
            text = text[:at] + piece + text[at + len(piece):]
    return text


def garbage() -> st.SearchStrategy[str | bytes]:
    """Raw text or bytes, with nothing of a policy about them."""
    return st.one_of(st.text(max_size=300), st.binary(max_size=300))


def check_text(text: str | bytes, scratch: Path, environ: Mapping[str, str]) -> str:
    """The property: the loader returns a bounded Policy or raises PolicyError with located
    issues, never anything else; the file-based checks agree. Returns "valid" or "invalid"."""
    try:
        policy = load_policy_text(text, "fuzz.yaml", environ=environ)
    except PolicyError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert issue.path == "fuzz.yaml" and issue.line >= 1 and issue.col >= 1, issue
            assert issue.message and str(issue).startswith(f"fuzz.yaml:{issue.line}:{issue.col}: ")
        verdict = "invalid"
    else:
        assert isinstance(policy, Policy)
        _assert_bounded(policy)
        verdict = "valid"
    scratch.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    issues = policy_issues(scratch, environ=environ)
    assert (issues == []) == (verdict == "valid"), issues
    policy_issues(scratch, environ=environ, unset_ok=True)  # the linter's mode: no exception either
    return verdict


def _assert_bounded(policy: Policy) -> None:
    budget = policy.budget
    for cap in (budget.run_usd, budget.daily_usd, budget.hourly_usd):
        assert cap is None or 0 < cap <= MAX_CAP_USD
    assert budget.estimate_usd is None or 0 < budget.estimate_usd <= MAX_AMOUNT_USD
    for count in (budget.max_steps, budget.max_retries_total, policy.breaker.failure_threshold):
        assert count is None or 1 <= count <= MAX_COUNT
    for seconds in (budget.timeout_s, policy.breaker.cooldown_s, *(r.window_s for r in policy.rate_limits)):
        assert seconds is None or 0 < seconds <= MAX_SECONDS
    for _, price in policy.pricing:
        for part in (price.input, price.output, price.cached_input):
            assert part is None or Decimal(0) <= part <= MAX_AMOUNT_USD
