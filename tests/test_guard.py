"""enforce()/Guard in one process: every gate, settlement, cost, decorators, children, deadlines.

The tests taking ``url`` run on SQLite and on a real redis-server (the fixture is in conftest.py).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from agentfuse import (
    AttemptsExhausted,
    BudgetExceeded,
    CircuitOpen,
    DeadlineExceeded,
    Guard,
    Halted,
    KillSwitchEngaged,
    RateLimited,
    RetryLimitExceeded,
    RunHalted,
    StepLimitExceeded,
    enforce,
)
from agentfuse.runtime.clock import ManualClock
from agentfuse.runtime.step import exception_matches
from agentfuse.runtime.money import from_micros
from agentfuse.runtime.policy import Policy
from agentfuse.runtime.settlements import DeferredSettlements
from agentfuse.runtime.stores.base import BreakerState, Outcome, Settlement
from agentfuse.runtime.stores.sqlite import SQLiteStore
from tests.runtime_helpers import FakeClient, TransientError, make_policy, store_url


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1_800_000_000.0)


def guarded_call(guard: Guard, client: FakeClient, *, action: str | None = None, cost: str = "0.01") -> None:
    with guard.step(action=action) as step:
        client.chat.completions.create(messages=[{"role": "user", "content": "hi"}])
        step.record(cost_usd=cost)


def spend_until_refused(guard: Guard, client: FakeClient, **kwargs: Any) -> Halted:
    for _ in range(10_000):
        try:
            guarded_call(guard, client, **kwargs)
        except Halted as exc:
            return exc
    raise AssertionError("never refused")


def test_hundred_cent_calls_under_a_dollar_make_exactly_100_calls(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "1.00", "estimate_usd": "0.01"}), store=url)
    client = FakeClient()
    refusal = spend_until_refused(guard, client)
    assert client.calls == 100
    assert isinstance(refusal, BudgetExceeded) and refusal.reason == "run_budget"
    run = guard.store.get_run(guard.run_id)
    assert run is not None and from_micros(run.spent_micros) == Decimal("1.00") and run.reserved_micros == 0


# -- each gate refuses without calling the client -------------------------------------------------


def _open_breaker(guard: Guard, client: FakeClient) -> None:
    for _ in range(3):
        with pytest.raises(TransientError):
            with guard.step():
                client.chat.completions.create()


def _fail_action(guard: Guard, client: FakeClient, times: int) -> None:
    for _ in range(times):
        with pytest.raises(TransientError):
            with guard.step(action="publish"):
                client.chat.completions.create()


GATES: dict[str, tuple[dict[str, Any], Any, type[Halted], str]] = {
    # name: (policy kwargs, setup(guard, client, clock, tmp_path), expected exception, reason)
    "operator_halt": ({}, lambda g, c, k, t: g.halt("maintenance", scope_agent=True), RunHalted, "maintenance"),
    "breaker_open": (
        {"breaker": {"failure_threshold": 3, "cooldown_s": 60}},
        lambda g, c, k, t: (c.failures.extend([TransientError()] * 3), _open_breaker(g, c)),
        CircuitOpen,
        "circuit_open",
    ),
    "run_budget": ({"budget": {"run_usd": "0.005"}}, None, BudgetExceeded, "run_budget"),
    "daily_budget": ({"budget": {"daily_usd": "0.005"}}, None, BudgetExceeded, "daily_budget"),
    "hourly_budget": ({"budget": {"hourly_usd": "0.005"}}, None, BudgetExceeded, "hourly_budget"),
    "max_steps": ({"budget": {"max_steps": 0}}, None, StepLimitExceeded, "max_steps"),
    "max_retries_total": (
        {"budget": {"max_retries_total": 1}},
        lambda g, c, k, t: (c.failures.extend([TransientError()] * 2), _fail_action(g, c, 2)),
        RetryLimitExceeded,
        "max_retries_total",
    ),
    "timeout": ({"budget": {"timeout_s": 60}}, lambda g, c, k, t: k.advance(61), DeadlineExceeded, "timeout"),
    "max_attempts": (
        {"fail_fast": {"max_attempts": 1}},
        lambda g, c, k, t: (c.failures.append(TransientError()), _fail_action(g, c, 1)),
        AttemptsExhausted,
        "max_attempts",
    ),
}


@pytest.mark.parametrize("gate", sorted(GATES))
def test_each_gate_refuses_without_calling_the_client(gate: str, url: str, clock: ManualClock, tmp_path: Path) -> None:
    policy_kwargs, setup, expected, reason = GATES[gate]
    base: dict[str, Any] = {"budget": {"estimate_usd": "0.01"}}
    for section, values in policy_kwargs.items():
        base[section] = {**base.get(section, {}), **values}
    guard = enforce(make_policy(**base), store=url, clock=clock)
    client = FakeClient()
    if setup is not None:
        setup(guard, client, clock, tmp_path)
    calls_before = client.calls
    with pytest.raises(expected) as refused:
        with guard.step(action="publish"):
            client.chat.completions.create()
    assert client.calls == calls_before
    assert refused.value.reason == reason
    assert refused.value.agent == "tester" and refused.value.run_id == guard.run_id


def test_rate_limit_refuses_without_calling_then_cools_down(url: str, clock: ManualClock) -> None:
    policy = make_policy(rate_limits=[{"action": "login", "max": 2, "window_s": 900, "cooldown_s": 1800}])
    guard = enforce(policy, store=url, clock=clock)
    client = FakeClient()
    guarded_call(guard, client, action="login")
    clock.advance(10)
    guarded_call(guard, client, action="login")
    with pytest.raises(RateLimited) as refused:
        guarded_call(guard, client, action="login")
    assert client.calls == 2 and refused.value.figures["action"] == "login"
    guarded_call(guard, client, action="draft")  # other actions are not limited
    clock.advance(1000)  # the window has passed but the cooldown has not
    with pytest.raises(RateLimited):
        guarded_call(guard, client, action="login")
    clock.advance(800)
    guarded_call(guard, client, action="login")
    assert client.calls == 4


def test_rate_limit_survives_a_new_guard_on_the_same_store(url: str, clock: ManualClock) -> None:
    policy = make_policy(rate_limits=[{"action": "login", "max": 1, "window_s": 900}])
    client = FakeClient()
    guarded_call(enforce(policy, store=url, clock=clock), client, action="login")
    with pytest.raises(RateLimited):
        guarded_call(enforce(policy, store=url, clock=clock), client, action="login")
    assert client.calls == 1


def test_stop_file_halts_durably_until_resume(url: str, clock: ManualClock, tmp_path: Path) -> None:
    policy = make_policy(stop_file="STOP", source=str(tmp_path / "policy.yaml"))
    guard = enforce(policy, store=url, clock=clock)
    client = FakeClient()
    guarded_call(guard, client)
    (tmp_path / "STOP").touch()
    with pytest.raises(KillSwitchEngaged):
        guarded_call(guard, client)
    (tmp_path / "STOP").unlink()
    restarted = enforce(policy, store=url, clock=clock)
    with pytest.raises(RunHalted) as still:
        guarded_call(restarted, client)
    assert still.value.reason == "kill_switch" and client.calls == 1
    assert restarted.store.resume("tester") == 1
    guarded_call(restarted, client)
    assert client.calls == 2


def test_budget_halt_is_recorded_with_figures_and_survives_restart(url: str) -> None:
    policy = make_policy(budget={"run_usd": "0.02", "estimate_usd": "0.01"})
    guard = enforce(policy, store=url)
    client = FakeClient()
    spend_until_refused(guard, client)
    halts = guard.store.halts("tester")
    assert [(h.run_id, h.reason, h.source) for h in halts] == [(guard.run_id, "run_budget", "budget")]
    assert halts[0].figures["cap_usd"] == "0.02"
    resumed = enforce(policy, run_id=guard.run_id, store=url)
    with pytest.raises(RunHalted):
        guarded_call(resumed, client)
    assert client.calls == 2


def test_daily_cap_counts_every_run_of_the_agent_and_resets_next_local_day(url: str) -> None:
    clock = ManualClock(1_800_000_000.0)  # 2027-01-15 08:00 UTC
    policy = make_policy(budget={"daily_usd": "0.03", "estimate_usd": "0.01"}, timezone="America/New_York")
    client = FakeClient()
    first, second = enforce(policy, store=url, clock=clock), enforce(policy, store=url, clock=clock)
    guarded_call(first, client)
    guarded_call(second, client)
    guarded_call(first, client)
    with pytest.raises(BudgetExceeded) as refused:
        guarded_call(second, client)
    assert refused.value.reason == "daily_budget"
    clock.advance(10 * 3600)  # 18:00 UTC = 13:00 in New York: the same local day
    with pytest.raises(BudgetExceeded):
        guarded_call(first, client)
    clock.advance(12 * 3600)  # 06:00 UTC next day = 01:00 in New York: a new local day
    guarded_call(first, client)
    assert client.calls == 4


def test_hourly_cap_is_a_rolling_sixty_minutes(url: str, clock: ManualClock) -> None:
    guard = enforce(make_policy(budget={"hourly_usd": "0.02", "estimate_usd": "0.01"}), store=url, clock=clock)
    client = FakeClient()
    guarded_call(guard, client)
    clock.advance(30 * 60)
    guarded_call(guard, client)
    clock.advance(29 * 60)
    with pytest.raises(BudgetExceeded):
        guarded_call(guard, client)
    clock.advance(2 * 60)  # the first call is now more than 60 minutes old
    guarded_call(guard, client)
    assert client.calls == 3


# -- settlement and cost -----------------------------------------------------------------------------


def test_record_response_settles_the_priced_cost(url: str) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.50"}), store=url)
    client = FakeClient(prompt_tokens=1_000_000, completion_tokens=0)
    table = guard.price_table()
    price = table.price("gpt-4o-mini")
    with guard.step() as step:
        response = client.chat.completions.create(model="gpt-4o-mini")
        step.record(response)
    guard.flush()
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.reserved_micros == 0
    assert from_micros(run.spent_micros) == price.input


def test_unknown_model_settles_the_estimate(url: str) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.03"}), store=url)
    with guard.step() as step:
        step.record(FakeClient().chat.completions.create(model="no-such-model-anywhere"))
    guard.close()
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.spent_micros == 30_000


def test_estimate_from_model_and_max_tokens(url: str) -> None:
    guard = enforce(make_policy(), store=url)
    with guard.step(model="gpt-4o-mini", input_tokens=1000, max_tokens=1000) as step:
        expected = guard.price_table().estimate_micros("gpt-4o-mini", 1000, 1000)
        assert step.estimate_micros == expected > 0


def test_failed_call_settles_estimate_counts_and_reraises(url: str) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.02"}), store=url)
    client = FakeClient(failures=[TransientError("503")])
    with pytest.raises(TransientError, match="503"):
        guarded_call(guard, client, action="draft")
    run = guard.store.get_run(guard.run_id)
    assert run is not None and (run.spent_micros, run.reserved_micros, run.failures) == (20_000, 0, 1)
    assert guard.store.get_breaker("tester").consecutive_failures == 1


class PermissionDeniedByProvider(PermissionError):
    """A subclass: halt_on names its base class."""


@pytest.mark.parametrize("halt_on", ["PermissionError", "builtins.PermissionError", "OSError"])
def test_fail_fast_halts_the_run_on_a_match_over_the_mro(url: str, halt_on: str) -> None:
    guard = enforce(make_policy(fail_fast={"halt_on": [halt_on]}), store=url)
    client = FakeClient(failures=[PermissionDeniedByProvider("no")])
    with pytest.raises(PermissionDeniedByProvider):
        guarded_call(guard, client)
    with pytest.raises(RunHalted) as refused:
        guarded_call(guard, client)
    assert refused.value.reason == "fail_fast" and client.calls == 1
    (halt,) = guard.store.halts("tester")
    assert halt.source == "fail_fast" and halt.figures["exception"].endswith("PermissionDeniedByProvider")


def test_deferred_settlements_forget_exactly_what_the_store_applied() -> None:
    """In order (the usual case), and out of order (another thread of the family applied some)."""
    first, second, third = (Settlement(f"r{i}", "a", "run", "call", i, 0.0, Outcome.SUCCESS) for i in range(3))
    deferred = DeferredSettlements()
    for item in (first, second, third):
        deferred.add(item)
    deferred.discard(deferred.peek()[:1])
    assert deferred.peek() == (second, third)
    deferred.discard((third,))
    assert deferred.peek() == (second,) and deferred.peek()[0] is second
    deferred.discard((Settlement("r1", "a", "run", "call", 1, 0.0, Outcome.SUCCESS),))  # equal, not the same
    assert deferred.peek() == (second,)
    deferred.discard((second,))
    assert deferred.peek() == ()


def test_exception_matches_dotted_names_of_reexported_classes() -> None:
    fake_openai_error = type("AuthenticationError", (Exception,), {"__module__": "openai._exceptions"})
    assert exception_matches(fake_openai_error, ["openai.AuthenticationError"]) == "openai.AuthenticationError"
    assert exception_matches(fake_openai_error, ["anthropic.AuthenticationError"]) is None
    assert exception_matches(fake_openai_error, ["Exception"]) == "Exception"
    assert exception_matches(ValueError, ["KeyError", "TypeError"]) is None


def test_halted_inside_a_step_is_not_a_failure(url: str) -> None:
    guard = enforce(make_policy(breaker={"failure_threshold": 1}), store=url)
    with pytest.raises(RunHalted):
        with guard.step():
            raise RunHalted("deeper refusal")
    assert guard.store.get_breaker("tester").state is BreakerState.CLOSED
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.failures == 0


def test_breaker_ignore_list_does_not_count(url: str) -> None:
    guard = enforce(make_policy(breaker={"failure_threshold": 1, "ignore": ["ValueError"]}), store=url)
    with pytest.raises(ValueError):
        with guard.step():
            raise ValueError("the agent's own bug")
    assert guard.store.get_breaker("tester").state is BreakerState.CLOSED


def test_breaker_half_open_probe_success_closes(url: str, clock: ManualClock) -> None:
    guard = enforce(make_policy(breaker={"failure_threshold": 2, "cooldown_s": 60}), store=url, clock=clock)
    client = FakeClient(failures=[TransientError()] * 3)
    for _ in range(2):
        with pytest.raises(TransientError):
            guarded_call(guard, client)
    with pytest.raises(CircuitOpen):
        guarded_call(guard, client)
    clock.advance(61)
    with pytest.raises(TransientError):  # the probe fails: open again for a full cooldown
        guarded_call(guard, client)
    assert guard.store.get_breaker("tester").state is BreakerState.OPEN
    clock.advance(30)
    with pytest.raises(CircuitOpen):
        guarded_call(guard, client)
    clock.advance(31)
    guarded_call(guard, client)
    assert guard.store.get_breaker("tester").state is BreakerState.CLOSED
    assert client.calls == 4


# -- decorators and guard.call -----------------------------------------------------------------------


def test_decorators_and_call_guard_sync_functions(url: str) -> None:
    policy = make_policy(rate_limits=[{"action": "login", "max": 1, "window_s": 900}])
    guard = enforce(policy, store=url)
    client = FakeClient()

    @guard
    def draft(topic: str) -> str:
        return str(client.chat.completions.create(messages=[{"content": topic}])["id"])

    @guard.step(estimate_usd="0.02", action="login")
    def login() -> str:
        client.chat.completions.create()
        return "in"

    assert draft("x").startswith("chatcmpl-") and draft.__name__ == "draft"
    assert login() == "in"
    with pytest.raises(RateLimited):
        login()
    assert guard.call(lambda a, b=0: a + b, 1, b=2) == 3
    assert client.calls == 2
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.steps == 3  # a refused call is not a step


def test_decorator_default_action_is_the_qualified_name(url: str) -> None:
    guard = enforce(make_policy(fail_fast={"max_attempts": 1}), store=url)

    class Publisher:
        @guard
        def publish(self) -> None:
            raise TransientError("boom")

    with pytest.raises(TransientError):
        Publisher().publish()
    with pytest.raises(AttemptsExhausted) as refused:
        Publisher().publish()
    assert refused.value.figures["action"].endswith("Publisher.publish")


def test_async_decorators_and_async_with(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "0.03", "estimate_usd": "0.01"}), store=url)
    client = FakeClient()

    @guard
    async def ask() -> dict[str, Any]:
        return client.chat.completions.create()

    @guard.step(estimate_usd="0.01", action="fetch")
    async def fetch() -> str:
        return "page"

    async def main() -> None:
        assert (await ask())["object"] == "chat.completion"
        assert await guard.call(asyncio.sleep, 0, "slept") == "slept"
        async with guard.step() as step:
            step.record(cost_usd="0.005")
        with pytest.raises(BudgetExceeded):
            await fetch()

    asyncio.run(main())
    assert client.calls == 1
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.steps == 3


# -- deadlines ---------------------------------------------------------------------------------------


def test_sync_step_gets_remaining_seconds_and_nothing_starts_after_the_deadline(url: str, clock: ManualClock) -> None:
    guard = enforce(make_policy(budget={"timeout_s": 100}), store=url, clock=clock)
    client = FakeClient()
    clock.advance(40)
    with guard.step() as step:
        assert step.remaining_s == pytest.approx(60)
        clock.advance(70)  # the call overran the deadline
        assert step.remaining_s == 0.0
        client.chat.completions.create(timeout=step.remaining_s)
    with pytest.raises(DeadlineExceeded):
        guarded_call(guard, client)
    assert client.calls == 1


def test_deadline_is_measured_from_the_durable_start_of_the_run(url: str, clock: ManualClock) -> None:
    policy = make_policy(budget={"timeout_s": 100})
    first = enforce(policy, store=url, clock=clock)
    clock.advance(101)
    with pytest.raises(DeadlineExceeded):
        guarded_call(enforce(policy, run_id=first.run_id, store=url, clock=clock), FakeClient())
    guarded_call(enforce(policy, store=url, clock=clock), FakeClient())  # a new run starts afresh


def test_async_step_is_cancelled_at_the_deadline(url: str, clock: ManualClock) -> None:
    guard = enforce(make_policy(budget={"timeout_s": 100, "estimate_usd": "0.01"}), store=url, clock=clock)
    clock.advance(99.95)  # 50 ms left on the run's deadline
    finished = []

    @guard
    async def slow_call() -> None:
        await asyncio.sleep(30)
        finished.append(True)

    async def main() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(DeadlineExceeded):
            await slow_call()
        return loop.time() - started

    elapsed = asyncio.run(main())
    assert not finished and elapsed < 5
    run = guard.store.get_run(guard.run_id)
    assert run is not None and run.spent_micros == 10_000 and run.reserved_micros == 0


def test_outer_cancellation_is_not_turned_into_a_deadline(url: str) -> None:
    guard = enforce(make_policy(budget={"timeout_s": 3600}), store=url)

    async def main() -> None:
        async def body() -> None:
            async with guard.step():
                await asyncio.sleep(30)

        task = asyncio.create_task(body())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert guard.store.unsettled(guard.run_id) == 0


# -- scopes: resume and children -----------------------------------------------------------------------


def test_resume_by_run_id_keeps_spend_and_counters(url: str) -> None:
    policy = make_policy(budget={"run_usd": "0.05", "estimate_usd": "0.01", "max_steps": 100})
    client = FakeClient()
    first = enforce(policy, store=url)
    for _ in range(3):
        guarded_call(first, client)
    first.close()
    resumed = enforce(policy, run_id=first.run_id, store=url)
    assert resumed.run_id == first.run_id
    spend_until_refused(resumed, client)
    assert client.calls == 5


def test_children_spend_counts_against_every_ancestor(url: str) -> None:
    parent = enforce(make_policy(budget={"run_usd": "1.00", "estimate_usd": "0.01"}), store=url)
    client = FakeClient()
    child_a = parent.child(run_usd="0.50")
    spend_until_refused(child_a, client)
    assert client.calls == 50
    child_b = parent.child(run_usd="0.80")
    refusal = spend_until_refused(child_b, client)
    assert client.calls == 100 and refusal.reason == "ancestor_budget"
    with pytest.raises(BudgetExceeded):
        guarded_call(parent, client)
    assert client.calls == 100
    grandchild = child_b.child()
    with pytest.raises(Halted):
        guarded_call(grandchild, client)
    run = parent.store.get_run(parent.run_id)
    assert run is not None and from_micros(run.spent_micros) == Decimal("1.00")


def test_child_of_unknown_parent_is_an_error(url: str) -> None:
    with pytest.raises(ValueError, match="parent run"):
        enforce(make_policy(), parent="no-such-run", store=url)


def test_halting_a_parent_halts_its_children(url: str) -> None:
    parent = enforce(make_policy(), store=url)
    child = parent.child(run_usd="0.10")
    parent.halt("operator says stop")
    with pytest.raises(RunHalted):
        guarded_call(child, FakeClient())


# -- degrade ladder and defaults ------------------------------------------------------------------------


def test_degrade_ladder_hands_a_cheaper_model_and_an_interval(url: str) -> None:
    policy = make_policy(
        budget={"run_usd": "1.00", "estimate_usd": "0.10"},
        degrade=[{"at": 0.5, "model": "gpt-4o-mini"}, {"at": 0.8, "min_interval_s": 5}],
    )
    guard = enforce(policy, store=url)
    seen = []
    for _ in range(9):
        with guard.step(model="gpt-4o") as step:
            seen.append((step.model, step.min_interval_s))
    assert seen[0] == ("gpt-4o", None)
    assert seen[4] == ("gpt-4o-mini", None)
    assert seen[8] == ("gpt-4o-mini", 5)


def test_default_store_is_under_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    guard = enforce(make_policy())
    guarded_call(guard, FakeClient())
    guard.close()
    assert (tmp_path / ".agentfuse" / "state.db").exists()
    assert isinstance(guard.store, SQLiteStore)


def test_a_policy_store_url_is_used(tmp_path: Path) -> None:
    policy: Policy = make_policy(store=store_url(tmp_path / "from-policy.db"))
    enforce(policy).close()
    assert (tmp_path / "from-policy.db").exists()


def test_a_step_cannot_be_entered_twice(url: str) -> None:
    guard = enforce(make_policy(), store=url)
    step = guard.step()
    with step:
        pass
    with pytest.raises(RuntimeError, match="entered once"):
        with step:
            pass


def test_a_halt_whose_figures_reuse_field_names_still_refuses_cleanly(url: str) -> None:
    from agentfuse.runtime.stores.base import HaltRecord

    guard = enforce(make_policy(), store=url)
    guard.store.halt(HaltRecord("tester", guard.run_id, "ops", "operator", 0.0, {"reason": "x", "halt": 1, "kind": 2}))
    with pytest.raises(RunHalted) as refused:
        guarded_call(guard, FakeClient())
    assert refused.value.reason == "ops" and refused.value.figures["kind"] == 2


# -- deferred settlement -----------------------------------------------------------------------------


def test_a_plain_success_is_settled_by_the_next_gate_or_close(url: str) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.05"}), store=url)
    with guard.step() as step:
        step.record(cost_usd="0.01")
    run = guard.store.get_run(guard.run_id)
    assert run is not None and (run.spent_micros, run.reserved_micros) == (0, 50_000)  # counted high
    with guard.step():
        run = guard.store.get_run(guard.run_id)
        assert run is not None and (run.spent_micros, run.reserved_micros) == (10_000, 50_000)
    guard.close()
    run = guard.store.get_run(guard.run_id)
    assert run is not None and (run.spent_micros, run.reserved_micros) == (60_000, 0)
    assert guard.store.unsettled() == 0


def test_a_success_costing_more_than_its_estimate_is_settled_at_once(url: str) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.01"}), store=url)
    with guard.step() as step:
        step.record(cost_usd="0.02")
    run = guard.store.get_run(guard.run_id)
    assert run is not None and (run.spent_micros, run.reserved_micros) == (20_000, 0)


def test_a_deferred_success_never_resets_failures_counted_after_it(url: str) -> None:
    policy = make_policy(breaker={"failure_threshold": 3, "cooldown_s": 60})
    slow, failing = enforce(policy, store=url), enforce(policy, store=url)
    with slow.step():
        for _ in range(2):  # another worker fails while this call is in flight
            with pytest.raises(TransientError):
                with failing.step():
                    raise TransientError()
    slow.close()
    assert failing.store.get_breaker("tester").consecutive_failures == 2


def test_without_deferral_every_call_settles_at_once(url: str) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.05"}), store=url, defer_settlement=False)
    with guard.step() as step:
        step.record(cost_usd="0.01")
    run = guard.store.get_run(guard.run_id)
    assert run is not None and (run.spent_micros, run.reserved_micros) == (10_000, 0)


def test_a_breaker_key_gives_calls_their_own_breaker(url: str) -> None:
    guard = enforce(make_policy(breaker={"failure_threshold": 1, "cooldown_s": 60}), store=url)
    with pytest.raises(TransientError):
        with guard.step(breaker_key="provider-a"):
            raise TransientError()
    with pytest.raises(CircuitOpen):
        with guard.step(breaker_key="provider-a"):
            pass
    with guard.step(breaker_key="provider-b"):
        pass
    with guard.step():
        pass
    assert guard.store.get_breaker("tester", "provider-a").state is BreakerState.OPEN
    assert guard.store.get_breaker("tester").state is BreakerState.CLOSED


POLICY_FILE = """\
version: 1
agent: from-yaml
budget: {run_usd: 0.02, estimate_usd: 0.01}
breaker: {failure_threshold: 3, cooldown_s: 60}
fail_fast: {max_attempts: 2}
"""


def test_enforce_takes_a_policy_path_with_the_default_store_next_to_the_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "agent").mkdir()
    policy_file = tmp_path / "agent" / "policy.yaml"
    policy_file.write_text(POLICY_FILE)
    monkeypatch.chdir(tmp_path)
    guard = enforce(str(policy_file))
    client = FakeClient()
    spend_until_refused(guard, client)
    guard.close()
    assert guard.agent == "from-yaml" and client.calls == 2
    assert (tmp_path / "agent" / ".agentfuse" / "state.db").exists()  # the store sits by the policy
    assert not (tmp_path / ".agentfuse").exists()  # not in the current directory
    assert (tmp_path / "agent" / ".agentfuse" / "events.jsonl").exists()  # events too


def test_enforce_with_an_invalid_policy_raises_policy_error(tmp_path: Path) -> None:
    from agentfuse import PolicyError

    bad = tmp_path / "policy.yaml"
    bad.write_text(POLICY_FILE.replace("run_usd: 0.02", "run_usd: lots"))
    with pytest.raises(PolicyError, match="policy.yaml:3"):
        enforce(bad, store=store_url(tmp_path / "s.db"))


def test_a_deferred_settlement_is_applied_when_the_process_exits(tmp_path: Path) -> None:
    import subprocess
    import sys

    from tests.runtime_helpers import REPO

    db = tmp_path / "s.db"
    script = (
        "from tests.runtime_helpers import make_policy\n"
        "from agentfuse import enforce\n"
        f"guard = enforce(make_policy(budget={{'estimate_usd': '0.05'}}), run_id='r1', store={store_url(db)!r})\n"
        "with guard.step() as step:\n"
        "    step.record(cost_usd='0.01')\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=REPO, check=True, timeout=60)
    run = SQLiteStore(db).get_run("r1")
    assert run is not None and (run.spent_micros, run.reserved_micros) == (10_000, 0)


def test_without_an_estimate_a_spent_cap_still_refuses(url: str) -> None:
    guard = enforce(make_policy(budget={"run_usd": "0.02"}), store=url)
    client = FakeClient()
    refusal = spend_until_refused(guard, client)
    assert client.calls == 2 and refusal.reason == "run_budget"
