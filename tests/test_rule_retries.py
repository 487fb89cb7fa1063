"""AF201-AF204: retries with no ceiling, their cases, options and autofixes.

Cases live in tests/data/rules/retries/<code>_{positive,negative}.py, one ``# case: <name>``
block each; a positive case marks the lines it expects findings on with ``# expect: AF201``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from agentfuse.lint.checker import check_source
from agentfuse.lint.fixer import fix_source
from agentfuse.lint_rules.base import Rule
from agentfuse.lint_rules.retries import RULES as HELPER_RULES
from agentfuse.lint_rules.retries import UnboundedBackoff, UnboundedRetryHelper, UnboundedTenacityRetry
from agentfuse.lint_rules.retry_loops import RULES as LOOP_RULES
from agentfuse.lint_rules.retry_loops import UnboundedRetryLoop

DATA = Path(__file__).parent / "data" / "rules" / "retries"
CASE = re.compile(r"^# case: (?P<name>[\w-]+)\s*$", re.MULTILINE)
EXPECT = re.compile(r"#\s*expect:\s*([A-Z]+\d+(?:\s*,\s*[A-Z]+\d+)*)")
RULES = (*HELPER_RULES, *LOOP_RULES)
RULE_BY_CODE: dict[str, type[Rule]] = {rule.code: rule for rule in RULES}


def load_cases(code: str, kind: str) -> list[tuple[str, str]]:
    """(name, source) pairs from one case file; each source starts at its own line 1."""
    text = (DATA / f"{code.lower()}_{kind}.py").read_text()
    marks = list(CASE.finditer(text))
    cases = []
    for mark, following in zip(marks, [*marks[1:], None]):
        end = following.start() if following else len(text)
        cases.append((mark.group("name"), text[mark.end() + 1:end]))
    return cases


def all_cases(kind: str) -> list[Any]:
    return [
        pytest.param(code, source, id=f"{code}-{kind}-{name}")
        for code in RULE_BY_CODE
        for name, source in load_cases(code, kind)
    ]


def marked_lines(source: str, code: str) -> set[int]:
    return {
        number
        for number, line in enumerate(source.splitlines(), start=1)
        if (match := EXPECT.search(line)) and code in match.group(1)
    }


def findings_for(code: str, source: str, options: Mapping[str, Any] | None = None) -> list[Any]:
    return [f for f in check_source(source, [RULE_BY_CODE[code]], options=options) if f.code == code]


def apply_fixes(source: str, rule: type[Rule], options: Mapping[str, Any] | None = None) -> str:
    """``source`` after the engine's ``--fix`` for one rule."""
    fixed, _ = fix_source(source, [rule], options=options)
    return fixed


@pytest.mark.parametrize("code", list(RULE_BY_CODE))
@pytest.mark.parametrize("kind", ["positive", "negative"])
def test_each_rule_has_at_least_twenty_cases_of_each_kind(code: str, kind: str) -> None:
    assert len(load_cases(code, kind)) >= 20


@pytest.mark.parametrize(("code", "source"), all_cases("positive"))
def test_positive_case_is_flagged_exactly_where_marked(code: str, source: str) -> None:
    expected = marked_lines(source, code)
    assert expected, "a positive case must mark its expected lines"
    assert {f.line for f in findings_for(code, source)} == expected


@pytest.mark.parametrize(("code", "source"), all_cases("negative"))
def test_negative_case_has_no_finding(code: str, source: str) -> None:
    assert findings_for(code, source) == []


def test_rules_are_registered_in_code_order() -> None:
    assert [rule.code for rule in RULES] == ["AF201", "AF202", "AF203", "AF204"]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.code)
def test_trigger_matches_every_positive_case(rule: type[Rule]) -> None:
    pattern = rule.trigger_pattern()
    assert pattern is not None
    missed = [name for name, source in load_cases(rule.code, "positive") if not pattern.search(source)]
    assert missed == []


LLM_LOOP_CASES = {
    "llm-call-on-module-client",
    "llm-call-on-self-client-async",
    "litellm-module-function",
    "google-genai-model",
    "legacy-openai-module-call",
    "chained-client-construction",
    "failure-selector-leaves-rate-limits-unbounded",
    "only-one-failure-changes-the-request",
}


@pytest.mark.parametrize(("name", "source"), load_cases("AF204", "positive"), ids=lambda v: v if "\n" not in v else "")
def test_loop_message_is_stronger_when_the_loop_calls_an_llm(name: str, source: str) -> None:
    [finding] = findings_for("AF204", source)
    expected = UnboundedRetryLoop.llm_message if name in LLM_LOOP_CASES else UnboundedRetryLoop.message
    assert finding.message == expected


def test_llm_loop_message_names_the_cost() -> None:
    assert "billed" in UnboundedRetryLoop.llm_message
    assert "LLM" not in UnboundedRetryLoop.message


def test_registry_create_in_a_loop_is_not_an_llm_call() -> None:
    source = (
        "from plugins import registry\n"
        "def make():\n"
        "    while True:\n"
        "        try:\n"
        "            return registry.create('writer')\n"
        "        except KeyError:\n"
        "            continue\n"
    )
    [finding] = findings_for("AF204", source)
    assert finding.message == UnboundedRetryLoop.message


def test_unrelated_class_messages_create_is_not_an_llm_call() -> None:
    source = (
        "from chat import Mailbox\n"
        "box = Mailbox()\n"
        "def send(text):\n"
        "    while True:\n"
        "        try:\n"
        "            return box.messages.create(text)\n"
        "        except OSError:\n"
        "            pass\n"
    )
    [finding] = findings_for("AF204", source)
    assert finding.message == UnboundedRetryLoop.message


CLIENT = "from openai import OpenAI\nclient = OpenAI(max_retries=8)\n"


@pytest.mark.parametrize(
    ("options", "flagged"),
    [({}, False), ({"max-client-retries": 5}, True), ({"max-client-retries": 8}, False)],
)
def test_client_retry_threshold_comes_from_options(options: dict[str, Any], flagged: bool) -> None:
    assert bool(findings_for("AF203", CLIENT, options)) is flagged


@pytest.mark.parametrize("bad", ["ten", 0, -3, True, 2.5, None])
def test_malformed_client_retry_threshold_falls_back_to_default(bad: object) -> None:
    assert findings_for("AF203", "from openai import OpenAI\nc = OpenAI(max_retries=11)\n", {"max-client-retries": bad})
    assert not findings_for("AF203", CLIENT, {"max-client-retries": bad})


def test_threshold_is_named_in_the_message() -> None:
    [finding] = findings_for("AF203", CLIENT, {"max-client-retries": 4})
    assert "above 4" in finding.message


def test_messages_are_specific_to_the_library() -> None:
    retrying = findings_for("AF203", "from retrying import retry\n@retry\ndef f(): ...\n")
    urllib3 = findings_for("AF203", "from urllib3 import Retry\nr = Retry(total=None)\n")
    assert "stop_max_attempt_number" in retrying[0].message
    assert "total=5" in urllib3[0].message


def test_finding_spans_the_whole_call() -> None:
    source = "import backoff\nf = backoff.on_exception(\n    backoff.expo, OSError\n)(g)\n"
    [finding] = findings_for("AF202", source)
    assert (finding.line, finding.col, finding.end_line) == (2, 5, 4)


# --- autofix ---------------------------------------------------------------------------

FIXES = [
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry\n\n@retry\ndef f(): ...\n",
        "from tenacity import retry, stop_after_attempt\n\n@retry(stop=stop_after_attempt(5))\ndef f(): ...\n",
        id="bare-decorator-gets-stop-and-import",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry\n\n@retry()\ndef f(): ...\n",
        "from tenacity import retry, stop_after_attempt\n\n@retry(stop=stop_after_attempt(5))\ndef f(): ...\n",
        id="empty-call",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry, wait_fixed\n\n@retry(wait=wait_fixed(2))  # slow API\ndef f(): ...\n",
        "from tenacity import retry, wait_fixed, stop_after_attempt\n\n"
        "@retry(wait=wait_fixed(2), stop=stop_after_attempt(5))  # slow API\ndef f(): ...\n",
        id="appended-after-keywords-comment-kept",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry, stop_never\n\n@retry(reraise=True, stop=stop_never)\ndef f(): ...\n",
        "from tenacity import retry, stop_never, stop_after_attempt\n\n"
        "@retry(reraise=True, stop=stop_after_attempt(5))\ndef f(): ...\n",
        id="stop-never-replaced",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "import tenacity\n\n@tenacity.retry\ndef f(): ...\n",
        "import tenacity\n\n@tenacity.retry(stop=tenacity.stop_after_attempt(5))\ndef f(): ...\n",
        id="module-alias-used-no-import",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "import tenacity as t\n\nfor attempt in t.Retrying(reraise=True):\n    pass\n",
        "import tenacity as t\n\nfor attempt in t.Retrying(reraise=True, stop=t.stop_after_attempt(5)):\n    pass\n",
        id="short-module-alias",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry, stop_after_attempt as attempts\n\n@retry\ndef f(): ...\n",
        "from tenacity import retry, stop_after_attempt as attempts\n\n@retry(stop=attempts(5))\ndef f(): ...\n",
        id="existing-alias-reused",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry\n\n@retry(\n    reraise=True,  # keep\n    wait=w,\n)\ndef f(): ...\n",
        "from tenacity import retry, stop_after_attempt\n\n"
        "@retry(\n    reraise=True,  # keep\n    wait=w,\n    stop=stop_after_attempt(5),\n)\ndef f(): ...\n",
        id="one-per-line-with-trailing-comma",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry\n\n@retry(\n    reraise=True,\n    wait=w  # last\n)\ndef f(): ...\n",
        "from tenacity import retry, stop_after_attempt\n\n"
        "@retry(\n    reraise=True,\n    wait=w, stop=stop_after_attempt(5)  # last\n)\ndef f(): ...\n",
        id="one-per-line-without-trailing-comma",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry\n\nfetch = retry(download)\n",
        "from tenacity import retry, stop_after_attempt\n\nfetch = retry(stop=stop_after_attempt(5))(download)\n",
        id="bare-call-form-wrapped",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry, stop_never\n\ng = f.retry_with(stop=stop_never)\n",
        "from tenacity import retry, stop_never, stop_after_attempt\n\ng = f.retry_with(stop=stop_after_attempt(5))\n",
        id="retry-with",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "import time\nfrom tenacity import Retrying, stop_never\n\nr = Retrying(time.sleep, stop_never)\n",
        "import time\nfrom tenacity import Retrying, stop_never, stop_after_attempt\n\n"
        "r = Retrying(time.sleep, stop_after_attempt(5))\n",
        id="positional-stop-replaced-in-place",
    ),
    pytest.param(
        UnboundedTenacityRetry,
        "from tenacity import retry\n\n@retry(reraise=True,\n       wait=w,\n)\ndef f(): ...\n",
        "from tenacity import retry, stop_after_attempt\n\n"
        "@retry(reraise=True,\n       wait=w,\n       stop=stop_after_attempt(5),\n)\ndef f(): ...\n",
        id="hanging-indent-aligned-with-the-paren",
    ),
    pytest.param(
        UnboundedBackoff,
        "import backoff\n\n@backoff.on_exception(backoff.expo, OSError)\ndef f(): ...\n",
        "import backoff\n\n@backoff.on_exception(backoff.expo, OSError, max_tries=5)\ndef f(): ...\n",
        id="backoff-max-tries-added",
    ),
    pytest.param(
        UnboundedBackoff,
        "import backoff\n\n@backoff.on_predicate(backoff.fibo, max_tries=None, jitter=None)\ndef f(): ...\n",
        "import backoff\n\n@backoff.on_predicate(backoff.fibo, max_tries=5, jitter=None)\ndef f(): ...\n",
        id="backoff-none-replaced",
    ),
    pytest.param(
        UnboundedBackoff,
        "import backoff\n\n@backoff.on_exception(\n    backoff.expo,\n    OSError,\n)\ndef f(): ...\n",
        "import backoff\n\n"
        "@backoff.on_exception(\n    backoff.expo,\n    OSError,\n    max_tries=5,\n)\ndef f(): ...\n",
        id="backoff-one-per-line",
    ),
]


def _split_imports(code: str) -> tuple[set[str], str]:
    """(imported names as ``module.name``, the code without its import lines).

    Where a new name lands inside an import statement is the import adder's business.
    """
    imported: set[str] = set()
    body = []
    for line in code.splitlines(keepends=True):
        if match := re.fullmatch(r"from (\S+) import (.+)\n", line):
            imported.update(f"{match[1]}.{name.strip()}" for name in match[2].split(","))
        elif line.startswith("import "):
            imported.add(line.split()[1])
        else:
            body.append(line)
    return imported, "".join(body)


@pytest.mark.parametrize(("rule", "before", "after"), FIXES)
def test_fix_rewrites_only_the_call(rule: type[Rule], before: str, after: str) -> None:
    assert _split_imports(apply_fixes(before, rule)) == _split_imports(after)


def test_fix_max_attempts_comes_from_options() -> None:
    options = {"fix-max-attempts": 3}
    tenacity_fixed = apply_fixes("from tenacity import retry\n@retry\ndef f(): ...\n", UnboundedTenacityRetry, options)
    backoff_source = "import backoff\nd = backoff.on_exception(backoff.expo, OSError)\n"
    backoff_fixed = apply_fixes(backoff_source, UnboundedBackoff, options)
    assert "stop=stop_after_attempt(3)" in tenacity_fixed
    assert "max_tries=3)" in backoff_fixed


def _fixable_cases() -> list[Any]:
    return [
        pytest.param(RULE_BY_CODE[code], source, id=f"{code}-{name}")
        for code in ("AF201", "AF202")
        for name, source in load_cases(code, "positive")
    ]


@pytest.mark.parametrize(("rule", "source"), _fixable_cases())
def test_every_finding_is_fixed_and_the_fix_is_idempotent(rule: type[Rule], source: str) -> None:
    found = findings_for(rule.code, source)
    once, fixed = fix_source(source, [rule])
    assert sorted(fixed) == sorted(found)
    assert findings_for(rule.code, once) == []
    assert fix_source(once, [rule]) == (once, [])


@pytest.mark.parametrize("rule", [UnboundedRetryHelper, UnboundedRetryLoop], ids=lambda r: r.code)
def test_rules_without_a_safe_fix_change_nothing(rule: type[Rule]) -> None:
    for _, source in load_cases(rule.code, "positive"):
        assert findings_for(rule.code, source)
        assert fix_source(source, [rule]) == (source, [])


@pytest.mark.parametrize(
    "value",
    ["10**10000", "(-8) ** 0.5", "0 ** -1", "1e400", "float('nan')", "-(10**9)", "10**9 * 0", "2 ** 3 ** 4"],
)
def test_odd_numeric_arguments_never_crash(value: str) -> None:
    source = (
        f"import backoff, openai\nfrom retry import retry\n"
        f"c = openai.OpenAI(max_retries={value})\n"
        f"d = backoff.on_exception(backoff.expo, OSError, max_tries={value})\n"
        f"@retry(tries={value})\ndef f(): ...\n"
    )
    for code in ("AF202", "AF203"):
        findings_for(code, source)


@pytest.mark.parametrize(
    ("value", "flagged"), [("10**10000", True), ("1e400", True), ("-(10**9)", False), ("10**9 * 0", False)]
)
def test_huge_client_retry_counts_are_flagged(value: str, flagged: bool) -> None:
    assert bool(findings_for("AF203", f"import openai\nc = openai.OpenAI(max_retries={value})\n")) is flagged


@pytest.mark.timeout(30)
def test_loop_guard_check_is_linear_in_chained_assignments() -> None:
    chain = "".join(f"x{i} = x{i - 1} + x{i - 1}\nx{i} = x{i - 1} * 2\n" for i in range(1, 60))
    source = (
        f"x0 = 1\n{chain}"
        "while True:\n"
        "    if x59:\n"
        "        break\n"
        "    try:\n"
        "        result = fetch()\n"
        "        break\n"
        "    except OSError:\n"
        "        pass\n"
    )
    [finding] = findings_for("AF204", source)
    assert finding.line == 120


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("code", "call"),
    [
        ("AF201", "from tenacity import Retrying\nr = Retrying(stop=x59)\n"),
        ("AF202", "import backoff\nd = backoff.on_exception(backoff.expo, OSError, max_tries=x59)\n"),
        ("AF203", "import openai\nc = openai.OpenAI(max_retries=x59)\n"),
    ],
)
def test_argument_values_are_followed_through_names_in_linear_time(code: str, call: str) -> None:
    chain = "".join(f"x{i} = x{i - 1} | x{i - 1}\nx{i} = x{i - 1} * x{i - 1}\n" for i in range(1, 60))
    assert findings_for(code, f"x0 = None\n{chain}{call}") == []
