"""Money that cannot fool the books: no negative, NaN, infinite or unstorable amount gets in.

Every money entry point (``step.record``, estimates, child caps, policies built in code or
loaded from YAML, price overrides, provider usage) is held to the same bounds
(``MAX_CAP_USD``, ``MAX_AMOUNT_USD``, ``MAX_COUNT``, ``MAX_SECONDS``), on a real SQLite file and
on a real redis-server.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfuse import BudgetExceeded, Guard, PolicyError, enforce
from agentfuse.runtime.money import (
    MAX_AMOUNT_MICROS,
    MAX_AMOUNT_USD,
    MAX_CALL_TOKENS,
    MAX_CAP_USD,
    MAX_COUNT,
    MAX_SECONDS,
)
from agentfuse.runtime.policy import (
    Breaker,
    Budget,
    DegradeStep,
    Events,
    ModelPrice,
    RateLimit,
    RestartGuard,
)
from agentfuse.runtime.policy_loader import load_policy, load_policy_text
from agentfuse.runtime.pricing import PriceTable, Usage, extract_usage
from tests.runtime_helpers import FakeClient, make_policy, store_url

MINIMAL = "version: 1\nagent: money\nbreaker: {}\nfail_fast: {}\n"
"""A policy without its budget: each test adds one."""

BAD_AMOUNTS = [
    pytest.param(-1.0, id="minus-one"),
    pytest.param(-0.01, id="minus-a-cent"),
    pytest.param("-0.5", id="negative-text"),
    pytest.param(Decimal("-1"), id="negative-decimal"),
    pytest.param(float("nan"), id="nan"),
    pytest.param(float("inf"), id="inf"),
    pytest.param(float("-inf"), id="minus-inf"),
    pytest.param(Decimal("NaN"), id="decimal-nan"),
    pytest.param(Decimal("sNaN"), id="decimal-signalling-nan"),
    pytest.param(Decimal("Infinity"), id="decimal-infinity"),
    pytest.param("nan", id="nan-text"),
    pytest.param("ten", id="text"),
    pytest.param(True, id="true"),
    pytest.param(False, id="false"),
    pytest.param(1e30, id="1e30"),
    pytest.param(10**400, id="huge-int"),
    pytest.param([1], id="list"),
]


def events_of(path: Path, name: str) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [event for event in map(json.loads, lines) if event["event"] == name]


def books(guard: Guard) -> tuple[int, int]:
    """(spent, reserved) micro-dollars of the guard's run, after its deferred settlements."""
    guard.flush()
    run = guard.store.get_run(guard.run_id)
    assert run is not None
    return run.spent_micros, run.reserved_micros


# -- negative money (issue 11, item 2) --------------------------------------------------------


def test_negative_cost_is_refused_and_a_dollar_cap_still_stops_the_run(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    client = FakeClient()
    calls = 0
    with pytest.raises(BudgetExceeded):
        for _ in range(500):
            with guard.step(estimate_usd="0.01") as step:
                client.chat.completions.create()
                calls += 1
                with pytest.raises(ValueError, match=r"cost_usd must not be negative, got -1\.0"):
                    step.record(cost_usd=-1.0)
    assert calls == 100  # each call counted at its estimate, never at -$1
    spent, reserved = books(guard)
    assert (spent, reserved) == (1_000_000, 0)
    guard.close()


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_record_refuses_every_amount_that_is_not_a_finite_storable_number(url: str, amount: Any) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with guard.step(estimate_usd="0.02") as step:
        with pytest.raises(ValueError, match="cost_usd") as raised:
            step.record(cost_usd=amount)
        assert step.cost_micros is None
    assert "got" in str(raised.value)
    assert books(guard) == (20_000, 0)  # settled at the estimate
    guard.close()


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_estimate_refuses_bad_amounts_before_anything_is_reserved(url: str, amount: Any) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with pytest.raises(ValueError, match="estimate_usd"):
        with guard.step(estimate_usd=amount):
            raise AssertionError("the call must not run")
    run = guard.store.get_run(guard.run_id)
    assert run is not None and (run.spent_micros, run.reserved_micros, run.steps) == (0, 0, 0)
    guard.close()


@pytest.mark.parametrize("amount", BAD_AMOUNTS)
def test_child_cap_refuses_bad_amounts(url: str, amount: Any) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with pytest.raises(ValueError, match="run_usd"):
        guard.child(run_usd=amount)
    guard.close()


def test_largest_amounts_are_accepted_and_kept_exactly(url: str) -> None:
    guard = enforce(make_policy(budget={"daily_usd": MAX_CAP_USD}), store=url)
    child = guard.child(run_usd=MAX_CAP_USD)
    for _ in range(3):
        with child.step(estimate_usd=MAX_AMOUNT_USD) as step:
            step.record(cost_usd=str(MAX_AMOUNT_USD - Decimal("0.000001")))
    assert books(child) == (3 * MAX_AMOUNT_MICROS - 3, 0)
    assert books(guard) == (3 * MAX_AMOUNT_MICROS - 3, 0)  # the parent's total, to the micro-dollar
    guard.close()


def test_a_tiny_positive_amount_rounds_up_to_one_micro_dollar(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with guard.step(estimate_usd=0) as step:
        assert step.record(cost_usd="1e-999999999") == 1
    with guard.step(estimate_usd=0) as step:
        assert step.record(cost_usd="1.0000000000000000000000000000001") == 1_000_001
    assert books(guard) == (1_000_002, 0)
    guard.close()


# -- usage reported by the provider -----------------------------------------------------------


def chat_response(**usage: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "choices": [], "usage": usage}


@pytest.mark.parametrize(
    "usage",
    [
        pytest.param({"prompt_tokens": -1000, "completion_tokens": 10}, id="negative-prompt"),
        pytest.param({"prompt_tokens": 1000, "completion_tokens": -10}, id="negative-completion"),
        pytest.param({"prompt_tokens": float("nan"), "completion_tokens": 10}, id="nan-prompt"),
        pytest.param({"prompt_tokens": 1000, "completion_tokens": float("inf")}, id="inf-completion"),
        pytest.param({"prompt_tokens": 1000, "completion_tokens": True}, id="boolean"),
        pytest.param({"prompt_tokens": "1000", "completion_tokens": 10}, id="text"),
        pytest.param(
            {"prompt_tokens": 1000, "completion_tokens": 10, "prompt_tokens_details": {"cached_tokens": -900}},
            id="negative-cached",
        ),
        pytest.param({"prompt_tokens": 10**30, "completion_tokens": 10}, id="beyond-max-count"),
    ],
)
def test_untrusted_provider_usage_settles_at_the_reservation_with_an_event(
    url: str, tmp_path: Path, usage: dict[str, Any]
) -> None:
    log = tmp_path / "events.jsonl"
    guard = enforce(make_policy(budget={"run_usd": "1.00"}, events=Events(path=str(log))), store=url)
    with guard.step(estimate_usd="0.05", action="summarise") as step:
        assert step.record(chat_response(**usage)) is None
    assert books(guard) == (50_000, 0)
    guard.close()
    [event] = events_of(log, "usage_invalid")
    assert event["reason"] == "invalid_usage" and event["action"] == "summarise"
    assert event["model"] == "gpt-4o-mini" and "usage" in event["problem"]


def test_anthropic_stream_style_usage_with_a_negative_count_is_not_priced(url: str, tmp_path: Path) -> None:
    """A Usage built by code (a stream's running counts) is checked like a response's."""
    log = tmp_path / "events.jsonl"
    guard = enforce(make_policy(budget={"run_usd": "1.00"}, events=Events(path=str(log))), store=url)
    with guard.step(estimate_usd="0.05") as step:
        assert step.record(Usage("claude-sonnet-4", input_tokens=-5000, output_tokens=100)) is None
    assert books(guard) == (50_000, 0)
    guard.close()
    [event] = events_of(log, "usage_invalid")
    assert "input_tokens must be from 0" in event["problem"] and "-5000" in event["problem"]


def test_a_cost_beyond_the_maximum_is_counted_at_the_maximum(url: str, tmp_path: Path) -> None:
    """10^15 output tokens at $10^6 per million would be 10^21 micro-dollars: past SQLite's
    64-bit integers and far past what Redis adds exactly. It counts as the largest amount."""
    log = tmp_path / "events.jsonl"
    price = ModelPrice(input=Decimal(1), output=MAX_AMOUNT_USD)
    policy = make_policy(budget={"run_usd": "1.00"}, events=Events(path=str(log)), pricing=(("house-model", price),))
    guard = enforce(policy, store=url)
    with guard.step(estimate_usd="0.05") as step:
        assert step.record({"model": "house-model", "usage": {"prompt_tokens": 1, "completion_tokens": MAX_COUNT}}) == (
            MAX_AMOUNT_MICROS
        )
    assert books(guard) == (MAX_AMOUNT_MICROS, 0)
    guard.close()
    tokens, cost = events_of(log, "usage_invalid")  # the tokens are past what one call may count too
    assert tokens["reason"] == "tokens_above_maximum" and tokens["counted_tokens"] == MAX_CALL_TOKENS
    assert cost["reason"] == "cost_above_maximum" and cost["counted_micros"] == MAX_AMOUNT_MICROS


def test_valid_usage_is_still_priced_exactly(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with guard.step(estimate_usd="0.05") as step:
        # gpt-4o-mini: $0.15 in, $0.60 out per million; a float count is billed whole tokens up
        assert step.record(chat_response(prompt_tokens=1000, completion_tokens=99.5)) == 150 + 60
    assert books(guard) == (210, 0)
    guard.close()


def test_extract_usage_marks_bad_counts_instead_of_clamping_them() -> None:
    usage = extract_usage(chat_response(prompt_tokens=-7, completion_tokens=3))
    assert usage is not None and usage.problem == f"usage prompt_tokens must be from 0 to {MAX_COUNT}, got -7"
    with pytest.raises(ValueError, match="cannot be priced"):
        PriceTable.default().cost_micros(usage)


# -- token counts and prices given in code -----------------------------------------------------


@pytest.mark.parametrize(
    ("input_tokens", "max_tokens", "named"),
    [
        (-5, 100, "input_tokens"),
        (100, -1, "max_tokens"),
        (float("nan"), 100, "input_tokens"),
        (100, float("inf"), "max_tokens"),
        (True, 100, "input_tokens"),
        (100, 10**30, "max_tokens"),
    ],
)
def test_step_token_counts_are_checked(url: str, input_tokens: Any, max_tokens: Any, named: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with pytest.raises(ValueError, match=named):
        with guard.step(model="gpt-4o-mini", input_tokens=input_tokens, max_tokens=max_tokens):
            raise AssertionError("the call must not run")
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.reserved_micros == 0
    guard.close()


def test_an_estimate_from_the_price_table_above_the_maximum_is_refused(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with pytest.raises(ValueError, match="lower max_tokens"):
        with guard.step(model="gpt-4o-mini", input_tokens=0, max_tokens=MAX_COUNT):
            raise AssertionError("the call must not run")
    guard.close()


@pytest.mark.parametrize("bad", [Decimal(-1), Decimal("NaN"), float("inf"), MAX_AMOUNT_USD + 1, True])
def test_price_overrides_in_code_are_checked(bad: Any) -> None:
    with pytest.raises(ValueError, match="pricing.output"):
        ModelPrice(input=Decimal(1), output=bad)
    with pytest.raises(ValueError, match="must be a ModelPrice"):
        PriceTable.default().with_overrides([("m", {"input": -1, "output": 1})])  # type: ignore[list-item]
    bad_json = json.dumps({"models": {"m": {"input": 1, "output": str(bad) if not isinstance(bad, bool) else bad}}})
    with pytest.raises(ValueError, match="price of 'm'"):
        PriceTable.from_json(bad_json)


# -- numbers the stores cannot hold (issue 11, item 4) -------------------------------------------


def write_policy(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(MINIMAL + extra)
    return path


HUGE_VALUES = [
    pytest.param("budget: {run_usd: 1.0e+30}\n", "budget.run_usd must be at most 1000000000 (USD)", id="run_usd"),
    pytest.param(
        "budget: {daily_usd: '5000000000.00'}\n", "budget.daily_usd must be at most 1000000000", id="daily_text"
    ),
    pytest.param(
        "budget: {hourly_usd: 1000000000000000000000000}\n", "budget.hourly_usd must be at most", id="hourly_int"
    ),
    pytest.param("budget: {run_usd: 1, estimate_usd: 2000000}\n", "budget.estimate_usd must be at most 1000000",
                 id="estimate"),
    pytest.param("budget: {max_steps: 1.0e+30}\n", "budget.max_steps must be at most 1000000000000000", id="steps"),
    pytest.param("budget: {timeout_s: 1.0e+308}\n", "budget.timeout_s must be at most 1000000000 seconds",
                 id="timeout"),
    pytest.param(
        "budget: {run_usd: 1}\nrate_limits: [{action: login, max: 2, window_s: 1.0e+300}]\n",
        "rate_limits[0].window_s must be at most 1000000000 seconds",
        id="window",
    ),
    pytest.param("budget: {run_usd: 1}\npricing: {m: {input: 1, output: 1.0e+7}}\n",
                 "pricing.m.output must be at most 1000000 (USD per million tokens)", id="price"),
    pytest.param("budget: {run_usd: 1}\nevents: {backup_count: 100000}\n", "events.backup_count must be at most 1000",
                 id="backups"),
    pytest.param("budget: {max_steps: 0x" + "f" * 4000 + "}\n", "got a whole number of about 4816 digits",
                 id="4000-hex-digits"),
]


@pytest.mark.parametrize(("extra", "message"), HUGE_VALUES)
def test_loader_refuses_numbers_past_the_bounds_with_line_and_column(
    tmp_path: Path, extra: str, message: str
) -> None:
    path = write_policy(tmp_path, extra)
    with pytest.raises(PolicyError) as raised:
        load_policy(path, environ={})
    [issue] = raised.value.issues
    assert message in issue.message and issue.fix
    line = MINIMAL.count("\n") + extra.count("\n")  # each case's bad value is on its last line
    assert (issue.path, issue.line) == (str(path), line) and issue.col > 1


def test_check_policy_exits_2_on_a_huge_cap_and_enforce_raises_a_policy_error(tmp_path: Path) -> None:
    path = write_policy(tmp_path, "budget: {run_usd: 1.0e+30}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFUSE_")}
    result = subprocess.run(
        [sys.executable, "-m", "agentfuse", "check-policy", str(path)],
        capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
    )
    line = MINIMAL.count("\n") + 1
    assert (result.returncode, result.stderr) == (2, "")
    expected = f"{path}:{line}:19: budget.run_usd must be at most 1000000000 (USD), got 1e+30. Fix: "
    assert result.stdout.startswith(expected)
    with pytest.raises(PolicyError, match="budget.run_usd must be at most"):
        enforce(path, store=store_url(tmp_path / "state.db"))


def test_the_largest_allowed_policy_loads_and_runs(url: str, tmp_path: Path) -> None:
    text = MINIMAL + (
        "budget: {run_usd: 1000000000, daily_usd: '1000000000.00', hourly_usd: 1000000000,"
        f" estimate_usd: 1000000, max_steps: {MAX_COUNT}, max_retries_total: {MAX_COUNT},"
        " timeout_s: 1000000000}\n"
        "rate_limits: [{action: a, max: 1000000000000000, window_s: 1000000000, cooldown_s: 1000000000}]\n"
        "degrade: [{at: 1, min_interval_s: 1000000000}]\n"
        "pricing: {m: {input: 1000000, output: 1000000, cached_input: 0}}\n"
    )
    policy = load_policy_text(text, tmp_path / "policy.yaml", environ={})
    guard = enforce(policy, store=url)
    with guard.step(action="a") as step:
        assert step.remaining_s is not None and 0 < step.remaining_s <= MAX_SECONDS
        with socket.socket() as sock:
            sock.settimeout(step.remaining_s)  # a deadline the client's timeout= can take
    assert books(guard) == (MAX_AMOUNT_MICROS, 0)
    guard.close()


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: Budget(run_usd=Decimal("1e30")), id="budget-run"),
        pytest.param(lambda: Budget(daily_usd=Decimal("-1")), id="budget-negative"),
        pytest.param(lambda: Budget(estimate_usd=Decimal("Infinity")), id="budget-estimate-inf"),
        pytest.param(lambda: Budget(max_steps=True), id="budget-steps-bool"),
        pytest.param(lambda: Budget(timeout_s=1e308), id="budget-timeout"),
        pytest.param(lambda: Breaker(cooldown_s=math.nan), id="breaker-nan"),
        pytest.param(lambda: RateLimit("a", max=2, window_s=1e308), id="rate-window"),
        pytest.param(lambda: RateLimit("a", max=-1, window_s=1), id="rate-max"),
        pytest.param(lambda: RestartGuard(window_s=1e308), id="restart-window"),
        pytest.param(lambda: Events(backup_count=10**15), id="events-backups"),
        pytest.param(lambda: DegradeStep(at=Decimal("NaN"), model="m"), id="degrade-at-nan"),
        pytest.param(lambda: DegradeStep(at=0.5, min_interval_s=math.inf), id="degrade-interval"),
    ],
)
def test_policy_values_built_in_code_are_bounded_too(build: Any) -> None:
    with pytest.raises(ValueError, match=r"\w+\.\w+ must"):
        build()


def test_policy_built_in_code_with_a_huge_cap_never_reaches_the_store(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"budget.run_usd must be at most 1000000000 \(USD\)"):
        make_policy(budget={"run_usd": 1e30})


@pytest.mark.parametrize("ttl", [math.nan, math.inf, 1e300, -1.0, True])
def test_claim_ttl_is_a_bounded_number_of_seconds(url: str, ttl: Any) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00"}), store=url)
    with pytest.raises(ValueError, match="ttl_s"):
        with guard.claim("message-1", ttl_s=ttl):
            raise AssertionError("not claimed")
    guard.close()


# -- reconcile ------------------------------------------------------------------------------------

LEGACY_WRITER = """
import sys
from agentfuse.runtime.stores import open_store
from agentfuse.runtime.stores.base import GateRequest
store = open_store(sys.argv[1])
store.open_run("legacy", agent="money", parent_id=None, cap_micros=1_000_000, now=1_800_000_000.0)
for rid, estimate in (("r-negative", -10_000), ("r-plain", 20_000)):
    request = GateRequest(rid, "money", "legacy", "call", estimate, 1_800_000_000.0, "2027-01-15", 30_000_000)
    result = store.gate(request)
    assert result.allowed, result
store.close()
"""


def test_reconcile_never_settles_a_negative_reservation_as_reserved(url: str, tmp_path: Path) -> None:
    """Books written before amounts were checked may hold a negative estimate; settling it as
    reserved would take money off the books, so reconcile refuses and says what to do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFUSE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent.parent),
                                                      env.get("PYTHONPATH")]))
    writer = subprocess.run([sys.executable, "-c", LEGACY_WRITER, url], capture_output=True, text=True,
                            timeout=60, env=env)
    assert writer.returncode == 0, writer.stderr  # its process is gone: both reservations are stale

    def reconcile(settle_as: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "agentfuse", "reconcile", "legacy", "--settle-as", settle_as,
             "--reason", "checked", "--store", url],
            capture_output=True, text=True, timeout=60, env=env, cwd=tmp_path,
        )

    refused = reconcile("reserved")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "r-negative" in refused.stderr and "negative estimate (-10000 micro-dollars)" in refused.stderr
    assert "--settle-as zero" in refused.stderr
    settled = reconcile("zero")
    assert settled.returncode == 0, settled.stderr
    assert settled.stdout.count("reconciled r-") == 2


# -- through guard.instrument(): the openai SDK against the stand-in provider ------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["response", "stream"])
def test_instrumented_call_reporting_negative_usage_settles_at_its_reservation(
    url: str, tmp_path: Path, stream: bool
) -> None:
    openai = pytest.importorskip("openai")
    from agentfuse.testing.standin import StandIn

    log = tmp_path / "events.jsonl"
    guard = enforce(make_policy(budget={"run_usd": "1.00"}, events=Events(path=str(log))), store=url)
    guard.instrument()
    try:
        with StandIn(input_tokens=-1000, output_tokens=20) as provider:
            client = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
            answer = client.chat.completions.create(  # noqa: AF101 (gated by guard.instrument() above)
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], max_tokens=20, stream=stream
            )
            if stream:
                list(answer)
        spent, reserved = books(guard)
    finally:
        guard.uninstrument()
        guard.close()
    [allowed] = events_of(log, "allowed")
    assert (spent, reserved) == (allowed["estimate_micros"], 0) and spent > 0
    [event] = events_of(log, "usage_invalid")
    assert "prompt_tokens must be from 0" in event["problem"]


@pytest.mark.parametrize("tokens", [-1000, math.nan, math.inf], ids=["negative", "nan", "infinity"])
def test_cohere_billed_units_that_are_not_counts_settle_at_the_reservation(
    url: str, tmp_path: Path, tokens: Any
) -> None:
    """Through the real cohere SDK (an httpx transport answers): NaN arrives as a JSON NaN."""
    cohere = pytest.importorskip("cohere")
    httpx = pytest.importorskip("httpx")

    def answer(request: Any) -> Any:
        units = {"input_tokens": tokens, "output_tokens": 20}
        body = {
            "id": "c1", "finish_reason": "COMPLETE", "usage": {"billed_units": units},
            "message": {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        }
        return httpx.Response(200, content=json.dumps(body).encode(), headers={"content-type": "application/json"})

    log = tmp_path / "events.jsonl"
    price = (("command-r", ModelPrice(input=Decimal(1), output=Decimal(2))),)
    policy = make_policy(
        budget={"run_usd": "1.00", "estimate_usd": "0.05"}, events=Events(path=str(log)), pricing=price
    )
    guard = enforce(policy, store=url)
    guard.instrument()
    try:
        client = cohere.ClientV2(api_key="none", base_url="http://cohere.test",
                                 httpx_client=httpx.Client(transport=httpx.MockTransport(answer)))
        client.chat(model="command-r", messages=[{"role": "user", "content": "hi"}])  # noqa: AF101
        spent, reserved = books(guard)
    finally:
        guard.uninstrument()
        guard.close()
    assert (spent, reserved) == (50_000, 0)
    [event] = events_of(log, "usage_invalid")
    assert "input_tokens" in event["problem"]


def test_a_whole_cap_of_the_largest_calls_adds_up_exactly_and_the_cap_holds(url: str) -> None:
    """1000 calls of about $10^6 fill a $10^9 cap: every micro-dollar is kept (Redis included,
    whose scripts add in doubles), and the next call is refused."""
    guard = enforce(make_policy(budget={"run_usd": MAX_CAP_USD}), store=url)
    expected = 0
    for number in range(1000):
        with guard.step(estimate_usd=MAX_AMOUNT_USD) as step:
            expected += step.record(cost_usd=MAX_AMOUNT_USD - Decimal(number % 7) / 1_000_000)
    with pytest.raises(BudgetExceeded):
        with guard.step(estimate_usd=MAX_AMOUNT_USD):
            raise AssertionError("the cap must refuse")
    assert books(guard) == (expected, 0)
    assert expected == 1000 * MAX_AMOUNT_MICROS - sum(n % 7 for n in range(1000))
    guard.close()
