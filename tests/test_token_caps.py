"""Token caps: ``budget.run_tokens``, ``daily_tokens``, ``hourly_tokens`` (input + output tokens).

Policy validation, what a step reserves and is charged, refusals (``BudgetExceeded`` with the cap
in its reason) and their events, child runs, the degrade ladder, instrumented OpenAI-SDK calls
against the stand-in provider (one process, and 8 processes on one SQLite file and on a real
redis-server), an older store file migrated in place, and the operator's view (``status``,
``status --json``, the HTML report). The store semantics themselves are in the contract suite
(tests/test_store_contract.py), run on SQLite and Redis alike.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from agentfuse import BudgetExceeded, Halted, RunHalted, enforce
from agentfuse.runtime.guard import Guard
from agentfuse.runtime.money import MAX_CALL_TOKENS, MAX_COUNT
from agentfuse.runtime.policy import Budget, ChildCaps, Events
from agentfuse.runtime.policy_loader import load_policy_text, policy_issues
from agentfuse.runtime.stores.base import RunInfo
from agentfuse.runtime.stores.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.redis_server import RedisServer
from tests.runtime_helpers import REPO, make_policy, store_url

NOW = 1_800_000_000.0
STATUS_SCHEMA = json.loads((REPO / "tests" / "data" / "status.schema.json").read_text(encoding="utf-8"))
BASE = "version: 1\nagent: tokens\nbreaker: {}\nfail_fast: {}\n"


def usage_response(prompt: int, completion: int, model: str = "gpt-4o-mini") -> dict[str, Any]:
    """A chat completion as the OpenAI SDK returns it (as a dict)."""
    return {"model": model, "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}


def books(guard: Guard, run_id: str | None = None) -> RunInfo:
    guard.flush()
    run = guard.store.get_run(run_id or guard.run_id)
    assert run is not None
    return run


def events_of(log: Path, name: str) -> list[dict[str, Any]]:
    return [event for event in map(json.loads, log.read_text().splitlines()) if event["event"] == name]


# -- the policy ---------------------------------------------------------------------------------------


def test_token_caps_load_and_a_budget_of_tokens_alone_caps_the_agent() -> None:
    policy = load_policy_text(
        BASE + "budget: {run_tokens: 200000, daily_tokens: 2000000, hourly_tokens: 500000, estimate_tokens: 4096}\n"
        "children: {researcher: {run_usd: 0.5, run_tokens: 50000}}\n"
    )
    budget = policy.budget
    assert (budget.run_tokens, budget.daily_tokens, budget.hourly_tokens, budget.estimate_tokens) == (
        200_000, 2_000_000, 500_000, 4096,
    )
    assert policy.child_caps("researcher") == ChildCaps(Decimal("0.5"), 50_000)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("run_tokens: -5", "budget.run_tokens must be at least 1"),
        ("daily_tokens: 0", "budget.daily_tokens must be at least 1"),
        ("hourly_tokens: 2.5", "budget.hourly_tokens must be a whole number"),
        ("run_tokens: .nan", "budget.run_tokens"),
        ("run_tokens: true", "budget.run_tokens"),
        ("run_tokens: lots", "budget.run_tokens"),
        (f"run_tokens: {MAX_COUNT + 1}", f"budget.run_tokens must be at most {MAX_COUNT}"),
        (f"run_usd: 1, estimate_tokens: {MAX_CALL_TOKENS + 1}",
         f"budget.estimate_tokens must be at most {MAX_CALL_TOKENS}"),
    ],
)
def test_token_values_are_bounded_like_money(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(BASE + f"budget: {{{line}}}\n")
    issues = policy_issues(path, environ={})
    assert issues and message in str(issues[0]), issues


@pytest.mark.parametrize("value", [-1, 1.5, float("nan"), True, MAX_COUNT + 1])
def test_a_budget_built_in_code_refuses_bad_token_caps(value: object) -> None:
    with pytest.raises(ValueError, match="budget.run_tokens"):
        Budget(run_tokens=value)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="children.run_tokens"):
        ChildCaps(run_tokens=value)  # type: ignore[arg-type]


def test_a_step_refuses_token_figures_that_are_not_counts(tmp_path: Path) -> None:
    guard = enforce(make_policy(budget={"run_tokens": 10_000}), store=store_url(tmp_path / "s.db"))
    for step in (guard.step(estimate_tokens=-1), guard.step(max_tokens=MAX_CALL_TOKENS, input_tokens=1)):
        with pytest.raises(ValueError, match="tokens"):
            with step:
                pass
    with guard.step(estimate_tokens=100) as step, pytest.raises(ValueError, match="tokens must be from 0"):
        step.record(tokens=-3)
    assert books(guard).spent_tokens == 100  # the bad record left the reservation as the charge
    guard.close()


# -- what a step reserves and is charged ---------------------------------------------------------------


def test_a_step_reserves_what_it_declares_and_is_charged_the_usage(tmp_path: Path) -> None:
    policy = make_policy(budget={"run_tokens": 100_000, "estimate_tokens": 700})
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    with guard.step(estimate_tokens=300) as step:
        assert step.reserved_tokens == 300
    with guard.step(model="gpt-4o-mini", input_tokens=1_000, max_tokens=256) as step:
        assert step.reserved_tokens == 1_256
        step.record(usage_response(900, 100))
    with guard.step() as step:
        assert step.reserved_tokens == 700  # the policy's estimate_tokens
        step.record(tokens=50)
    with guard.step() as step:
        step.record({"no": "usage"})  # no usage reported: the reservation is the charge
    run = books(guard)
    assert (run.spent_tokens, run.reserved_tokens, run.token_cap) == (300 + 1_000 + 50 + 700, 0, 100_000)
    guard.close()


def test_a_token_cap_refuses_with_a_budget_exceeded_naming_the_cap_and_halts(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    guard = enforce(
        make_policy(budget={"run_tokens": 1_000, "estimate_tokens": 400}, events=Events(path=str(log))),
        store=store_url(tmp_path / "s.db"),
    )
    for _ in range(2):
        with guard.step() as step:
            step.record(usage_response(300, 100))
    with pytest.raises(BudgetExceeded) as refused:
        with guard.step():
            pass
    assert refused.value.reason == "run_token_budget"
    assert "token cap" in str(refused.value) and "budget.run_tokens" in str(refused.value)
    assert (refused.value.figures["used_tokens"], refused.value.figures["cap_tokens"]) == (800, 1_000)
    with pytest.raises(RunHalted):  # the refusal halted the run durably, as a money cap does
        with guard.step(estimate_tokens=1):
            pass
    guard.close()
    event, then = events_of(log, "refused")  # the cap, then the durable halt it left
    assert event["reason"] == then["reason"] == "run_token_budget" and then["halted_run"] == guard.run_id
    assert (event["estimate_tokens"], event["cap_tokens"], event["used_tokens"]) == (400, 1_000, 800)
    (halt,) = events_of(log, "halt")
    assert halt["reason"] == "run_token_budget" and halt["source"] == "budget"
    assert [event["tokens"] for event in events_of(log, "settled")] == [400, 400]


def test_daily_and_hourly_token_caps_refuse_every_run_of_the_agent(url: str) -> None:
    policy = make_policy(budget={"daily_tokens": 1_000, "hourly_tokens": 800, "estimate_tokens": 300})
    first = enforce(policy, store=url, clock=lambda: NOW)
    with first.step() as step:
        step.record(tokens=600)
    first.close()
    second = enforce(policy, store=url, clock=lambda: NOW + 1)
    with pytest.raises(BudgetExceeded) as hourly:
        with second.step():
            pass
    assert hourly.value.reason == "hourly_token_budget"
    with second.step(estimate_tokens=200):  # 600 + 200 fit the hour
        pass
    later = enforce(policy, store=url, clock=lambda: NOW + 3_700)  # the hour has passed, the day has not
    with pytest.raises(BudgetExceeded) as daily:
        with later.step():
            pass
    assert daily.value.reason == "daily_token_budget" and daily.value.figures["used_tokens"] == 800
    with later.step(estimate_tokens=200):  # a window refusal halts nothing
        pass
    second.close()
    later.close()


def test_a_success_over_its_token_reservation_is_booked_before_the_next_gate(tmp_path: Path) -> None:
    """A plain success is usually settled inside the next gate; one that used more tokens than it
    reserved, under a token cap, is settled at once: other processes never see fewer tokens."""
    url = store_url(tmp_path / "s.db")
    capped = enforce(make_policy(budget={"run_tokens": 10_000}), store=url)
    with capped.step(estimate_tokens=100) as step:
        step.record(tokens=900)
    run = SQLiteStore(tmp_path / "s.db").get_run(capped.run_id)
    assert run is not None and (run.spent_tokens, run.reserved_tokens) == (900, 0)
    with capped.step(estimate_tokens=1_000) as step:
        step.record(tokens=10)  # under its reservation: deferred, counted at 1,000 until then
    run = SQLiteStore(tmp_path / "s.db").get_run(capped.run_id)
    assert run is not None and (run.spent_tokens, run.reserved_tokens) == (900, 1_000)
    assert books(capped).spent_tokens == 910
    capped.close()


def test_child_runs_have_token_caps_and_count_against_their_parent(tmp_path: Path) -> None:
    parent = enforce(make_policy(budget={"run_tokens": 1_000}), store=store_url(tmp_path / "s.db"))
    researcher = parent.child(run_tokens=500)
    with researcher.step(estimate_tokens=400) as step:
        step.record(tokens=450)
    with pytest.raises(BudgetExceeded) as own:
        with researcher.step(estimate_tokens=100):
            pass
    assert own.value.reason == "run_token_budget"
    writer = parent.child()
    with writer.step(estimate_tokens=500):
        pass
    with pytest.raises(BudgetExceeded) as inherited:
        with writer.step(estimate_tokens=100):
            pass
    assert inherited.value.reason == "ancestor_token_budget"
    assert inherited.value.figures["capped_run"] == parent.run_id
    assert books(parent).spent_tokens == 950
    with pytest.raises(ValueError, match="run_tokens"):
        parent.child(run_tokens=-1)
    parent.close()


def test_a_sub_agents_token_cap_comes_from_the_policys_children(tmp_path: Path) -> None:
    from agentfuse.integrations._family import Family

    policy = make_policy(budget={"run_tokens": 5_000}, children=(("researcher", ChildCaps(run_tokens=300)),))
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    child = Family(guard).child("researcher")
    assert books(child).token_cap == 300
    guard.close()


def test_the_degrade_ladder_reacts_to_a_token_cap(tmp_path: Path) -> None:
    policy = make_policy(budget={"run_tokens": 1_000, "run_usd": 100}, degrade=[{"at": 0.5, "model": "cheap"}])
    guard = enforce(policy, store=store_url(tmp_path / "s.db"))
    with guard.step(model="big", estimate_tokens=300) as step:
        assert step.model == "big"
    with guard.step(model="big", estimate_tokens=300) as step:
        assert step.model == "cheap"  # 600 of 1,000 tokens after this reservation
    guard.close()


# -- instrumented calls against the stand-in provider -------------------------------------------------

INPUT_TOKENS, OUTPUT_TOKENS = 400, 20
CALL_TOKENS = INPUT_TOKENS + OUTPUT_TOKENS


def test_a_token_cap_worth_n_calls_lets_exactly_n_requests_reach_the_provider(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    from agentfuse.testing.standin import StandIn

    url = store_url(tmp_path / "s.db")
    budget = {"run_tokens": 3 * CALL_TOKENS, "estimate_tokens": CALL_TOKENS}
    with StandIn(input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS) as provider:
        guard = enforce(make_policy(budget=budget), store=url)
        guard.instrument()
        llm = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
        with pytest.raises(BudgetExceeded) as refused:
            for _ in range(10):
                llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}], max_tokens=20)
        guard.close()
        assert refused.value.reason == "run_token_budget"
        assert provider.requests == provider.served == 3
    run = SQLiteStore(tmp_path / "s.db").get_run(guard.run_id)
    assert run is not None and (run.spent_tokens, run.reserved_tokens) == (3 * CALL_TOKENS, 0)


def test_an_instrumented_request_reserves_its_input_and_max_output_tokens(tmp_path: Path) -> None:
    openai = pytest.importorskip("openai")
    from agentfuse.testing.standin import StandIn

    guard = enforce(make_policy(budget={"run_tokens": 10**6}), store=store_url(tmp_path / "s.db"))
    reserved: list[int] = []

    class Watch:
        def watch(self, step: Any) -> Any:
            return self

        def allowed(self, step: Any) -> None:
            reserved.append(step.reserved_tokens)

        def refused(self, step: Any, error: BaseException) -> None:
            pass

        def finished(self, step: Any, error: BaseException | None) -> None:
            pass

    guard.close()
    guard = enforce(make_policy(budget={"run_tokens": 10**6}), store=store_url(tmp_path / "s.db"), observers=[Watch()])
    with StandIn(input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS) as provider:
        guard.instrument()
        llm = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
        llm.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x" * 400}], max_tokens=77)
    (tokens,) = reserved
    assert 77 + 100 <= tokens <= 77 + 120  # ~100 tokens of text, the message overhead, and max_tokens
    assert books(guard).spent_tokens == CALL_TOKENS
    guard.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_8_processes_never_exceed_a_token_cap_at_the_provider(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    pytest.importorskip("openai")
    from agentfuse.testing.standin import StandIn
    from tests.test_instrument_budget_semantics import WORKER  # ten instrumented calls until refused

    cap_calls = 12
    if backend == "sqlite":
        url = store_url(tmp_path / "s.db")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        url = server.url()
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\nagent: many\n"
        f"budget: {{daily_tokens: {cap_calls * CALL_TOKENS}, run_tokens: {cap_calls * CALL_TOKENS},"
        f" estimate_tokens: {CALL_TOKENS}}}\n"
        "breaker: {failure_threshold: 5, cooldown_s: 60}\nfail_fast: {halt_on: [PermissionError]}\n"
        f"store: {url}\n"
    )
    with StandIn(input_tokens=INPUT_TOKENS, output_tokens=OUTPUT_TOKENS) as provider:
        workers = [
            subprocess.Popen([sys.executable, "-c", WORKER, str(policy), provider.openai_url], cwd=tmp_path)
            for _ in range(8)
        ]
        for process in workers:
            assert process.wait(timeout=180) == 0
        assert provider.requests == cap_calls
    (agent,) = json.loads(_cli("status", "--json", "--policy", str(policy)).stdout)["agents"]
    assert agent["today"]["used_tokens"] == cap_calls * CALL_TOKENS == agent["today"]["cap_tokens"]


# -- a store written before token caps -----------------------------------------------------------------


def test_a_store_written_before_token_caps_migrates_and_keeps_its_books(tmp_path: Path) -> None:
    """tests/data/stores/schema4.db was written by the release before token caps (schema 4): runs,
    settled and open reservations, the agent's windows, a declared cap and the books' identity."""
    path = tmp_path / "state.db"
    shutil.copyfile(REPO / "tests" / "data" / "stores" / "schema4.db", path)
    store = SQLiteStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)] == [(5,)]
    root, child = store.get_run("root"), store.get_run("root/child")
    assert root is not None and child is not None
    assert (root.spent_micros, root.reserved_micros, root.steps, root.cap_micros) == (70_000, 40_000, 3, 5_000_000)
    assert (child.spent_micros, child.reserved_micros, child.spent_tokens, child.token_cap) == (25_000, 40_000, 0, None)
    day = "2027-01-15"
    totals = store.agent_totals("legacy", day_key=day, minute=int(NOW // 60))
    assert (totals.day_micros, totals.day_tokens) == (110_000, 0)
    (declared,) = store.cap_declarations("legacy")
    assert (declared.daily_micros, declared.hourly_micros, declared.daily_tokens) == (20_000_000, 5_000_000, None)
    (open_one,) = store.open_reservations("legacy")
    assert (open_one.reservation_id, open_one.estimate_micros, open_one.estimate_tokens) == ("open", 40_000, 0)
    identity = store.identity("legacy")
    assert identity is not None
    store.close()
    # the books go on under a policy with a daily token cap (a resumed run keeps its row, so no
    # run_tokens for it): the open call settles into the day, then the cap binds
    policy = make_policy(agent="legacy", budget={"run_usd": 5, "daily_tokens": 1_000})
    guard = enforce(policy, run_id="root", store=store_url(path), clock=lambda: NOW + 60)
    from agentfuse.runtime.stores.base import Outcome, Settlement

    assert guard.store.settle(Settlement("open", "legacy", "root/child", "call", 30_000, NOW + 60, Outcome.SUCCESS,
                                         tokens=250)).settled
    with guard.step(estimate_tokens=700):
        pass
    with pytest.raises(BudgetExceeded) as refused:
        with guard.step(estimate_tokens=100):
            pass
    assert refused.value.reason == "daily_token_budget" and refused.value.figures["used_tokens"] == 950
    run = books(guard)
    assert (run.spent_micros, run.spent_tokens, run.token_cap) == (100_000, 250 + 700, None)
    guard.close()


# -- what the operator sees -----------------------------------------------------------------------------


def test_status_shows_tokens_against_their_caps_and_keeps_every_existing_key(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        BASE.replace("agent: tokens", "agent: shown")
        + "budget: {run_usd: 5, daily_usd: 20, run_tokens: 10000, daily_tokens: 40000, hourly_tokens: 20000}\n"
        + f"events: {{path: null}}\nstore: {store_url(tmp_path / 's.db')}\n"
    )
    guard = enforce(str(policy))
    with guard.step(estimate_usd="0.01", estimate_tokens=2_000) as step:
        step.record(tokens=1_500)
    with guard.step(estimate_usd="0.01", estimate_tokens=3_000):
        guard.flush()
        args = ("status", "--policy", str(policy))
        document = json.loads(_cli(*args, "--json").stdout)
        table = _cli(*args).stdout
    guard.close()
    jsonschema.validate(document, STATUS_SCHEMA)
    (agent,) = document["agents"]
    assert agent["today"] == {"day": agent["today"]["day"], "used_usd": 0.02, "cap_usd": 20.0,
                              "used_tokens": 4_500, "cap_tokens": 40_000}
    assert (agent["last_hour"]["used_tokens"], agent["last_hour"]["cap_tokens"]) == (4_500, 20_000)
    (run,) = agent["active_runs"]
    assert (run["spent_tokens"], run["reserved_tokens"], run["cap_tokens"]) == (1_500, 3_000, 10_000)
    assert {"spent_usd", "reserved_usd", "cap_usd", "steps", "unsettled"} <= run.keys()
    assert "tokens today       4,500 tokens of 40,000 tokens (11%)" in table
    assert "4,500/10,000" in table


def test_status_of_an_agent_without_tokens_shows_no_token_lines(tmp_path: Path) -> None:
    guard = enforce(make_policy(budget={"run_usd": 1}), store=store_url(tmp_path / "s.db"))
    with guard.step(estimate_usd="0.01"):
        pass
    guard.close()
    table = _cli("status", "--store", store_url(tmp_path / "s.db")).stdout
    assert "tokens" not in table


def test_the_html_report_charts_tokens_per_day_against_the_daily_token_cap(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    store = store_url(tmp_path / "s.db")
    policy.write_text(BASE + f"budget: {{daily_tokens: 50000}}\nevents: {{path: null}}\nstore: {store}\n")
    guard = enforce(str(policy))
    with guard.step(estimate_tokens=1_000) as step:
        step.record(tokens=1_234)
    guard.close()
    out = tmp_path / "report.html"
    done = _cli("report", "--html", str(out), "--policy", str(policy))
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    assert "Tokens per day against the daily token cap" in text
    assert '<svg class="chart tokens" data-agent="tokens"' in text
    assert "1,234 tokens" in text and "daily cap 50,000 tokens" in text


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", *args], capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )


def test_refusals_stop_unguarded_retry_loops_too(tmp_path: Path) -> None:
    """A token refusal is a Halted (a BaseException): an ``except Exception`` retry loop cannot swallow it."""
    guard = enforce(make_policy(budget={"run_tokens": 100}), store=store_url(tmp_path / "s.db"))
    attempts = 0
    with pytest.raises(Halted):
        while attempts < 50:
            attempts += 1
            try:
                with guard.step(estimate_tokens=60):
                    pass
            except Exception:  # noqa: BLE001 - the point: this does not catch a refusal
                continue
    assert attempts == 2
    guard.close()


def test_the_starter_policys_token_caps_are_valid_once_uncommented(tmp_path: Path) -> None:
    from agentfuse.operator.policy_files import starter_policy

    text = starter_policy("starter", tmp_path / "policy.yaml")
    lines = [line.replace("  # ", "  ", 1) if "_tokens:" in line else line for line in text.splitlines()]
    assert sum("_tokens:" in line for line in lines) == 4
    policy = load_policy_text("\n".join(lines) + "\n", environ={"ALERT_WEBHOOK": "https://example.invalid/hook"})
    assert (policy.budget.run_tokens, policy.budget.daily_tokens, policy.budget.estimate_tokens) == (
        500_000, 2_000_000, 4_000,
    )


def test_store_caps_lists_the_declared_token_caps(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    store = store_url(tmp_path / "s.db")
    policy.write_text(BASE + f"budget: {{daily_usd: 2, daily_tokens: 9000}}\nevents: {{path: null}}\nstore: {store}\n")
    enforce(str(policy)).close()
    listed = json.loads(_cli("store", "caps", "--json", "--policy", str(policy)).stdout)
    (declared,) = listed["declarations"]
    assert (declared["daily_tokens"], declared["hourly_tokens"]) == (9000, None)
    table = _cli("store", "caps", "--policy", str(policy)).stdout
    assert "tokens daily 9000 hourly -" in table
