"""guard.instrument() over the real ``openai`` SDK, against the stand-in provider on loopback."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

openai = pytest.importorskip("openai")

import instrument_helpers  # noqa: E402
from agentfuse import (  # noqa: E402
    BudgetExceeded,
    CircuitOpen,
    Halted,
    RetryLimitExceeded,
    RunHalted,
    StepLimitExceeded,
)
from agentfuse.testing.standin import StandIn  # noqa: E402
from instrument_helpers import GPT4O_CALL_MICROS, Guards, books  # noqa: E402

standin = instrument_helpers.standin
guards = instrument_helpers.guards

MESSAGES = [{"role": "user", "content": "hi"}]


def client(provider: StandIn, **options: Any) -> Any:
    return openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=options.pop("max_retries", 0),
                         **options)


def aclient(provider: StandIn) -> Any:
    return openai.AsyncOpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)


def test_sync_calls_are_gated_and_settled_at_the_usage_price(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    llm = client(standin)
    for _ in range(3):
        answer = llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
        assert answer.choices[0].message.content == standin.text
    run = books(guard)
    assert standin.requests == 3
    assert (run.steps, run.spent_micros, run.reserved_micros) == (3, 3 * GPT4O_CALL_MICROS, 0)


def test_async_calls_are_gated_and_settled(standin: StandIn, guards: Guards) -> None:
    guard = guards()

    async def agent() -> None:
        llm = aclient(standin)
        await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
        await llm.responses.create(model="gpt-4o", input="hi", max_output_tokens=20)
        stream = await llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20, stream=True)
        assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == standin.text

    asyncio.run(agent())
    run = books(guard)
    assert standin.requests == 3
    assert (run.steps, run.spent_micros, run.reserved_micros) == (3, 3 * GPT4O_CALL_MICROS, 0)


def test_stream_settles_from_usage_it_asked_for_and_hides_that_chunk(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    chunks = list(client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert standin.replies[-1].body["stream_options"] == {"include_usage": True}
    assert all(chunk.choices for chunk in chunks), "the usage chunk the caller did not ask for is dropped"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == standin.text
    assert books(guard).spent_micros == GPT4O_CALL_MICROS


def test_stream_keeps_the_usage_chunk_the_caller_asked_for(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    chunks = list(
        client(standin).chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20
    assert books(guard).spent_micros == GPT4O_CALL_MICROS


def test_every_openai_entry_point_is_one_settled_step(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    llm = client(standin)
    llm.chat.completions.parse(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    llm.responses.create(model="gpt-4o", input="hi")
    llm.responses.parse(model="gpt-4o", input="hi")
    with llm.responses.stream(model="gpt-4o", input="hi") as events:
        assert events.get_final_response().output_text == standin.text
    with llm.chat.completions.stream(model="gpt-4o", messages=MESSAGES) as events:
        assert events.get_final_completion().choices[0].message.content == standin.text
    raw = llm.chat.completions.with_raw_response.create(model="gpt-4o", messages=MESSAGES)
    assert raw.parse().usage.prompt_tokens == 100
    with llm.chat.completions.with_streaming_response.create(model="gpt-4o", messages=MESSAGES) as response:
        assert response.parse().usage.completion_tokens == 20
    llm.completions.create(model="gpt-4o", prompt="hi")
    run = books(guard)
    assert standin.requests == 8
    assert (run.steps, run.spent_micros, run.reserved_micros) == (8, 8 * GPT4O_CALL_MICROS, 0)


def test_embeddings_are_settled_from_their_input_tokens(standin: StandIn, guards: Guards) -> None:
    guard = guards(pricing=(("text-embedding-3-small", _price("0.02", "0")),))
    client(standin).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert books(guard).spent_micros == 2  # 100 tokens x $0.02 per 1M


def _price(input_usd: str, output_usd: str) -> Any:
    from decimal import Decimal

    from agentfuse.runtime.policy import ModelPrice

    return ModelPrice(Decimal(input_usd), Decimal(output_usd))


def test_a_refused_request_sends_no_byte(standin: StandIn, guards: Guards) -> None:
    guards({"run_usd": 10, "max_steps": 2})
    llm = client(standin)
    llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(StepLimitExceeded):
        llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(Halted):
        llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert standin.requests == 2


def test_a_dollar_budget_worth_three_calls_lets_exactly_three_through(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 3 * GPT4O_CALL_MICROS / 1e6, "estimate_usd": GPT4O_CALL_MICROS / 1e6})
    llm = client(standin)
    with pytest.raises(BudgetExceeded):
        for _ in range(10):
            llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert standin.requests == 3
    assert books(guard).spent_micros == 3 * GPT4O_CALL_MICROS


def test_the_request_estimate_uses_the_model_output_limit(standin: StandIn, guards: Guards) -> None:
    # No max_tokens: gpt-4o may write 16,384 tokens ($0.16384), more than this run has.
    guards({"run_usd": 0.10, "estimate_usd": 0.0001})
    with pytest.raises(BudgetExceeded):
        client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert standin.requests == 0


def test_sdk_retries_count_against_max_retries_total(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "max_retries_total": 1}, breaker={"failure_threshold": 100, "cooldown_s": 60})
    standin.fail(500, times=5)
    with pytest.raises(RetryLimitExceeded):
        client(standin, max_retries=5).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert standin.requests == 2
    assert books(guard).failures == 2


def test_provider_errors_open_the_breaker(standin: StandIn, guards: Guards) -> None:
    guards(breaker={"failure_threshold": 2, "cooldown_s": 600})
    standin.fail(500, times=None)
    llm = client(standin)
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(CircuitOpen):
        llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert standin.requests == 2


def test_fail_fast_matches_the_sdk_exception_type(standin: StandIn, guards: Guards) -> None:
    guard = guards(fail_fast={"halt_on": ["openai.AuthenticationError"]})
    standin.fail(401)
    llm = client(standin)
    with pytest.raises(openai.AuthenticationError):
        llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    with pytest.raises(RunHalted):
        llm.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert standin.requests == 1
    assert books(guard).spent_micros == 0  # an error answer is not billed


def test_a_stream_closed_early_settles_at_least_what_was_received(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "estimate_usd": 0.5})
    stream = client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=20)
    next(iter(stream))
    stream.close()
    run = books(guard)
    assert run.reserved_micros == 0
    assert 0 < run.spent_micros < 500_000  # settled from the tokens seen, not left at the estimate


def test_a_stream_never_iterated_settles_when_collected(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "estimate_usd": 0.001})
    stream = client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True, max_tokens=20)
    del stream
    run = books(guard)
    assert run.reserved_micros == 0 and run.spent_micros >= 1000  # nothing read: the estimate is the charge


def test_a_broken_stream_settles_what_was_reported_so_far(standin: StandIn, guards: Guards) -> None:
    guard = guards({"run_usd": 10, "estimate_usd": 0.5})
    standin.break_streams_after(3)
    chunks = list(client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert len(chunks) == 3
    run = books(guard)
    assert run.reserved_micros == 0 and 0 < run.spent_micros < 500_000


def test_the_degrade_ladder_replaces_the_model(standin: StandIn, guards: Guards) -> None:
    guards({"run_usd": 0.001, "estimate_usd": 0.0001}, degrade=[{"at": 0.4, "model": "gpt-4o-mini"}])
    llm = client(standin)
    llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)  # spends 45% of the run
    llm.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert [reply.model for reply in standin.replies] == ["gpt-4o", "gpt-4o-mini"]
    assert standin.replies[-1].body["messages"] == MESSAGES and standin.replies[-1].body["max_tokens"] == 20


def test_a_cap_given_in_extra_body_bounds_the_estimate(standin: StandIn, guards: Guards) -> None:
    # Without the extra body's max_tokens, gpt-4o's output limit ($0.16384) is more than the run has.
    guards({"run_usd": 0.10, "estimate_usd": 0.0001})
    client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_body={"max_tokens": 20})
    assert standin.requests == 1


def test_instrumenting_one_client_leaves_the_others_alone(standin: StandIn, guards: Guards) -> None:
    guard = guards(instrument=False)
    mine = guard.instrument(client(standin))
    other = client(standin)
    mine.with_options(timeout=30).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    other.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert standin.requests == 2
    assert books(guard).steps == 1


def test_uninstrument_restores_the_sdk_exactly(standin: StandIn, guards: Guards) -> None:
    from openai import _base_client

    classes = _base_client.BaseClient, _base_client.SyncAPIClient, _base_client.AsyncAPIClient
    before = [dict(cls.__dict__) for cls in classes]
    guard = guards()
    guard.instrument()  # twice: a no-op
    assert _base_client.SyncAPIClient.__dict__["_send_request"] is not before[1]["_send_request"]
    guard.uninstrument()
    assert [dict(cls.__dict__) for cls in classes] == before
    client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert books(guard).steps == 0


def test_a_guard_instrumented_in_a_thread_keeps_its_own_books(standin: StandIn, guards: Guards) -> None:
    first = guards()
    second = guards(instrument=False, agent="other")

    def other_agent() -> None:
        second.instrument()
        client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)

    worker = threading.Thread(target=other_agent)
    worker.start()
    worker.join()
    client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    client(standin).chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert (books(first).steps, books(second).steps) == (2, 1)


def test_azure_clients_are_gated_too(standin: StandIn, guards: Guards) -> None:
    guard = guards()
    azure = openai.AzureOpenAI(azure_endpoint=standin.url, api_version="2024-10-21", api_key="none", max_retries=0)
    azure.chat.completions.create(model="gpt-4o", messages=MESSAGES, max_tokens=20)
    assert standin.requests == 1
    assert books(guard).spent_micros == GPT4O_CALL_MICROS


def test_an_sdk_imported_after_instrument_is_patched_on_import(tmp_path: Any) -> None:
    import subprocess
    import sys
    from pathlib import Path

    script = f"""
import sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from runtime_helpers import make_policy
from agentfuse import enforce
from agentfuse.testing.standin import StandIn
guard = enforce(make_policy(budget={{"run_usd": 1}}), store="sqlite:///{tmp_path}/s.db")
guard.instrument()
assert "openai" not in sys.modules, "instrument() must not import an SDK"
import openai
with StandIn() as provider:
    client = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
    client.chat.completions.create(model="gpt-4o", messages=[], max_tokens=20)
    guard.flush()
    print(guard.store.get_run(guard.run_id).steps)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1"
