"""The policy loader: values, interpolation, safety limits and message shape."""

from __future__ import annotations

import dataclasses
import random
import time
from decimal import Decimal
from pathlib import Path

import pytest

from agentfuse.runtime.errors import PolicyError, PolicyIssue
from agentfuse.runtime.policy import (
    Alerts,
    Breaker,
    Budget,
    DegradeStep,
    Events,
    FailFast,
    KillSwitch,
    ModelPrice,
    Policy,
    RateLimit,
    RestartGuard,
)
from agentfuse.runtime.policy_loader import MAX_ISSUES, MAX_POLICY_BYTES, load_policy, load_policy_text, policy_issues
from agentfuse.runtime.policy_validation import SECTION_KEYS
from tests.test_policy_cases import DATA, EXAMPLE_POLICIES, NO_ENVIRONMENT, REPO

MINIMAL = """\
version: 1
agent: test-agent
budget: {run_usd: 5.0}
breaker: {failure_threshold: 5, cooldown_s: 300}
fail_fast: {max_attempts: 3}
"""


def issues_of(text: str | bytes, environ: dict[str, str] | None = None) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as raised:
        load_policy_text(
            text, "policy.yaml", environ=NO_ENVIRONMENT if environ is None else environ
        )
    return list(raised.value.issues)


def messages_of(text: str | bytes, environ: dict[str, str] | None = None) -> str:
    return "\n".join(str(issue) for issue in issues_of(text, environ))


# -- values ------------------------------------------------------------------------------------


def test_strict_example_loads_into_exact_values() -> None:
    policy = load_policy(REPO / "policies" / "strict.yaml", environ=NO_ENVIRONMENT)
    assert policy.budget == Budget(
        run_usd=Decimal("1.00"),
        daily_usd=Decimal("5.00"),
        hourly_usd=Decimal("1.00"),
        max_steps=50,
        max_retries_total=3,
        timeout_s=900.0,
        estimate_usd=Decimal("0.05"),
    )
    assert policy.breaker == Breaker(failure_threshold=3, cooldown_s=1800.0, ignore=("ValueError",))
    assert policy.fail_fast.max_attempts == 1
    assert "openai.AuthenticationError" in policy.fail_fast.halt_on
    assert policy.rate_limit_for("login") == RateLimit("login", 2, 900.0, 1800.0)
    assert policy.rate_limit_for("publish") == RateLimit("publish", 10, 86400.0, 0.0)
    assert policy.degrade == (
        DegradeStep(at=0.5, model="gpt-4o-mini"),
        DegradeStep(at=0.8, min_interval_s=30.0),
    )
    assert policy.alerts == Alerts(webhook=None, timeout_s=2.0, dedupe_window_s=600.0)
    assert policy.events == Events(rotate_when="midnight", backup_count=30)
    assert policy.kill_switch == KillSwitch("STOP")
    assert (policy.store_durability, policy.store_unavailable) == ("full", "deny")
    assert policy.restart_guard == RestartGuard(max_starts=3, window_s=300.0, cooldown_s=3600.0)


def test_money_is_exact_decimal_from_floats_ints_and_strings() -> None:
    text = MINIMAL.replace(
        "{run_usd: 5.0}", '{run_usd: 0.1, daily_usd: 3, hourly_usd: "0.30", estimate_usd: 1e-2}'
    )
    issues = issues_of(text)  # YAML 1.1 reads 1e-2 (no dot) as a string, which is not a decimal
    assert [i.message for i in issues] == ["budget.estimate_usd must be a number, got '1e-2'"]
    policy = load_policy_text(text.replace("1e-2", "0.01"), "p.yaml", environ={})
    assert policy.budget.run_usd == Decimal("0.1")
    assert policy.budget.daily_usd == Decimal("3")
    assert policy.budget.hourly_usd == Decimal("0.30")
    assert policy.budget.estimate_usd == Decimal("0.01")


def test_minimal_policy_takes_documented_defaults() -> None:
    policy = load_policy_text(MINIMAL, "policy.yaml", environ={})
    assert policy == Policy(
        agent="test-agent",
        budget=Budget(run_usd=Decimal("5.0")),
        breaker=Breaker(failure_threshold=5, cooldown_s=300.0),
        fail_fast=FailFast(max_attempts=3),
        source=Path("policy.yaml").resolve(),
    )


def test_pricing_keeps_models_in_order_with_exact_prices() -> None:
    text = MINIMAL + (
        "pricing:\n"
        "  b-model: {input: 0, output: 1.5}\n"
        "  a-model: {input: '2.50', output: 10, cached_input: 1.25}\n"
    )
    policy = load_policy_text(text, "p.yaml", environ={})
    assert policy.pricing == (
        ("b-model", ModelPrice(Decimal("0"), Decimal("1.5"))),
        ("a-model", ModelPrice(Decimal("2.50"), Decimal("10"), Decimal("1.25"))),
    )


def test_merge_keys_apply_and_explicit_keys_win() -> None:
    policy = load_policy(DATA / "valid" / "anchors_and_merges.yaml", environ={})
    assert policy.breaker == Breaker(failure_threshold=5, cooldown_s=60.0)
    assert [limit.action for limit in policy.rate_limits] == ["login", "login-retry"]
    assert policy.rate_limits[1].cooldown_s == 1800.0


def test_every_value_type_field_has_a_policy_key() -> None:
    """The key table, the value types and so the guard's view of a policy cannot drift apart."""
    tables = {
        "budget": Budget,
        "breaker": Breaker,
        "fail_fast": FailFast,
        "rate_limits": RateLimit,
        "kill_switch": KillSwitch,
        "degrade": DegradeStep,
        "alerts": Alerts,
        "events": Events,
        "pricing": ModelPrice,
        "restart_guard": RestartGuard,
    }
    for section, value_type in tables.items():
        assert set(SECTION_KEYS[section]) == {f.name for f in dataclasses.fields(value_type)}
    top_level = {f.name for f in dataclasses.fields(Policy)} - {"source"}
    assert set(SECTION_KEYS[""]) == top_level


# -- interpolation ------------------------------------------------------------------------------


def test_interpolated_values_are_typed_by_what_they_become() -> None:
    environ = {
        "AGENTFUSE_TEST_RUN_USD": "2.50",
        "AGENTFUSE_TEST_STEPS": "7",
        "AGENTFUSE_TEST_AGENT": "123",
    }
    policy = load_policy(DATA / "valid" / "environment.yaml", environ=environ)
    assert policy.budget.run_usd == Decimal("2.50")
    assert policy.budget.max_steps == 7
    assert policy.agent == "123"  # a name stays text even when it looks like a number
    assert policy.budget.timeout_s == 60.5  # unset: the default
    assert policy.kill_switch.stop_file == "${NOT_A_VARIABLE}"  # $${ escapes


def test_default_applies_when_the_variable_is_empty() -> None:
    policy = load_policy(DATA / "valid" / "environment.yaml", environ={"AGENTFUSE_TEST_STEPS": ""})
    assert policy.budget.max_steps == 100


def test_a_variable_holding_a_bad_value_is_reported_at_its_node() -> None:
    text = MINIMAL.replace("{run_usd: 5.0}", "\n  run_usd: ${CAP}")
    assert load_policy_text(text, "p.yaml", environ={"CAP": "5"}).budget.run_usd == Decimal("5")
    [issue] = issues_of(text, {"CAP": "-1"})
    assert (issue.line, issue.col, issue.message) == (
        4,
        12,
        "budget.run_usd must be greater than 0, got -1",
    )


def test_unset_variables_are_all_reported() -> None:
    text = MINIMAL.replace("{run_usd: 5.0}", "\n  run_usd: ${A}\n  daily_usd: ${B:-x}${C}")
    assert [(i.line, i.message) for i in issues_of(text)] == [
        (4, "budget.run_usd uses ${A}, which is not set"),
        (5, "budget.daily_usd uses ${C}, which is not set"),
    ]


def test_interpolation_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFUSE_TEST_CAP", "4.25")
    text = MINIMAL.replace("{run_usd: 5.0}", "\n  run_usd: ${AGENTFUSE_TEST_CAP}")
    assert load_policy_text(text, "p.yaml").budget.run_usd == Decimal("4.25")


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        "alerts: {webhook: 'ftp://me:hunter2@hooks.example.com/x'}",
        "alerts: {webhook: 'https://'}",
        "alerts: {webhook: 12}",
        "store: 'mysql://root:hunter2@db/x'",
        "store: 'redis://:hunter2@/0'",
        "alerts: {webhook: '${HOOK}'}",
    ],
)
def test_webhooks_and_passwords_never_appear_in_messages(line: str) -> None:
    environ = {"HOOK": "smtp://hooks.example.com/hunter2"}
    shown = messages_of(MINIMAL + line + "\n", environ)
    assert shown
    assert "hunter2" not in shown and "hooks.example.com" not in shown


# -- safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system",
        "!!python/object/apply:subprocess.call",
        "!!python/object/new:os.system",
    ],
)
def test_object_tags_are_refused_and_never_executed(tmp_path: Path, tag: str) -> None:
    marker = tmp_path / "executed"
    command = f"touch {marker}" if tag.endswith("system") else ["touch", str(marker)]
    args = f'["{command}"]' if isinstance(command, str) else f"[{command!r}]".replace("'", '"')
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(MINIMAL + f"store: {tag} {args}\n")
    issues = policy_issues(policy_file, environ={})
    assert [(i.line, i.message.split(":")[0]) for i in issues] == [(6, f"tag {tag.split(':')[0]}")]
    with pytest.raises(PolicyError):
        load_policy(policy_file, environ={})
    assert not marker.exists()


def test_nested_alias_bomb_is_refused_in_bounded_time() -> None:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * 10) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 12)]
    started = time.perf_counter()
    [issue] = issues_of(MINIMAL + "\n".join(lines) + "\n")
    assert time.perf_counter() - started < 2.0  # 10^12 values if expanded; refused after ~10^4
    assert "counting an alias each time it is used" in issue.message
    assert issue.line == 9  # a3: the first level past the bound


def test_modest_alias_use_is_fine() -> None:
    text = MINIMAL + "x: &x [1, 2, 3]\n"
    assert "unknown key x" in messages_of(text + "y: [*x, *x, *x]\n")


def test_file_over_the_size_limit_is_one_issue_and_not_parsed(tmp_path: Path) -> None:
    huge = tmp_path / "huge.yaml"
    huge.write_bytes((MINIMAL + "# " + "x" * 5_000_000 + "\n").encode())
    started = time.perf_counter()
    issues = policy_issues(huge, environ={})
    assert time.perf_counter() - started < 1.0
    assert [(i.line, i.col) for i in issues] == [(1, 1)]
    assert f"larger than {MAX_POLICY_BYTES // 1024} KiB" in issues[0].message
    assert len(issues_of(huge.read_bytes())) == 1  # the same from memory


def test_non_utf8_byte_is_located() -> None:
    [issue] = issues_of(MINIMAL.encode() + b"agent_note: caf\xe9 au lait\n")
    assert (issue.line, issue.col, issue.message) == (6, 16, "byte 0xe9 is not UTF-8")


def test_utf8_text_and_byte_order_mark_are_accepted() -> None:
    text = "\ufeff" + MINIMAL.replace("test-agent", "agent-é")
    assert "agent is not valid: 'agent-é'" in messages_of(text.encode("utf-8"))
    assert (
        load_policy_text(("\ufeff" + MINIMAL).encode(), "p.yaml", environ={}).agent == "test-agent"
    )


def test_tabs_are_blamed_only_where_they_break_the_parse() -> None:
    quoted = load_policy_text(MINIMAL + 'kill_switch: {stop_file: "a\tb"}\n', "p", environ={})
    assert quoted.kill_switch.stop_file == "a\tb"
    [indent] = issues_of(MINIMAL.replace("\nbreaker", "\n\tbreaker"))
    assert (indent.line, indent.col, indent.message) == (4, 1, "tab character in the indentation")
    unrelated = MINIMAL + "notes: |\n  text\n  \tindented text\nextra: {a: 1\n"
    [issue] = issues_of(unrelated)
    assert issue.line == 10 and issue.message.startswith("YAML syntax error: expected ',' or '}'")


@pytest.mark.parametrize("content", [b"", b"\n\n", b"# nothing\n", b"---\n...\n"])
def test_empty_policy_is_one_issue(content: bytes) -> None:
    assert [(i.line, i.message) for i in issues_of(content)] == [(1, "policy file is empty")]


def test_missing_file_and_directory_are_issues(tmp_path: Path) -> None:
    [missing] = policy_issues(tmp_path / "nope.yaml")
    assert str(missing) == (
        f"{tmp_path / 'nope.yaml'}:1:1: file not found."
        f" Fix: create it with `agentfuse init --path {tmp_path / 'nope.yaml'}`"
    )
    [directory] = policy_issues(tmp_path)
    assert directory.message == "is a directory, not a policy file"
    with pytest.raises(PolicyError):
        load_policy(tmp_path / "nope.yaml")


def test_issues_past_the_cap_are_summarised() -> None:
    text = MINIMAL + "".join(f"unknown_{n}: 1\n" for n in range(MAX_ISSUES + 50))
    issues = issues_of(text)
    assert len(issues) == MAX_ISSUES
    assert issues[-1].message == "51 more problems not shown"


def test_issue_text_is_path_line_col_message_fix() -> None:
    [issue] = issues_of(MINIMAL.replace("max_attempts: 3", "max_attempts: three"))
    assert str(issue) == (
        "policy.yaml:5:27: fail_fast.max_attempts must be a whole number, got 'three'."
        " Fix: write a whole number such as 100"
    )


def test_issues_come_sorted_by_place() -> None:
    text = "version: 3\nagent: ''\nbudget: {}\nbreaker: 1\nfail_fast: []\n"
    places = [(i.line, i.col) for i in issues_of(text)]
    assert places == sorted(places) and len(places) == 5


# -- robustness ---------------------------------------------------------------------------------


def test_mutated_policies_give_a_policy_or_policy_error_never_a_crash() -> None:
    """Seeded mutations of the examples: every outcome is a Policy or a PolicyError."""
    rng = random.Random(20261123)
    alphabet = list(":{}[],&*!|>-?#'\"%@`\t\n ${}<=") + [
        "!!python/name:x ",
        "<<: ",
        "${X}",
        "\x00",
        "é",
    ]
    sources = [path.read_text() for path in EXAMPLE_POLICIES]
    outcomes = {"policy": 0, "error": 0}
    for _ in range(200):
        text = list(rng.choice(sources))
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(text))
            if rng.random() < 0.5:
                end = at + rng.randint(1, 3)
                del text[at:end]
            else:
                text.insert(at, rng.choice(alphabet))
        try:
            load_policy_text("".join(text), "fuzz.yaml", environ={})
            outcomes["policy"] += 1
        except PolicyError as exc:
            assert exc.issues and all(issue.line >= 1 and issue.col >= 1 for issue in exc.issues)
            outcomes["error"] += 1
    assert outcomes["policy"] > 0 and outcomes["error"] > 0
