"""OpenTelemetry spans and metrics of guarded calls, read back from the SDK's in-memory readers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from agentfuse import BudgetExceeded, DeadlineExceeded, KillSwitchEngaged, enforce
from agentfuse.runtime.clock import ManualClock
from agentfuse.runtime.guard import ObservedStep, Step
from agentfuse.runtime.otel import OtelObserver, provider_of
from agentfuse.testing.standin import StandIn
from tests.runtime_helpers import REPO, FakeClient, TransientError, make_policy, store_url


class Telemetry:
    """A tracer and a meter provider that keep what they get in memory."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = OtelObserver(
            tracer_provider=self.tracer_provider, meter_provider=self.meter_provider, environ=environ or {}
        )

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of the metric ``name``."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found += [(dict(point.attributes), point) for point in metric.data.data_points]
        return found

    def unit(self, name: str) -> str:
        data = self.reader.get_metrics_data()
        return next(
            metric.unit
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == name
        )


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    found = Telemetry()
    yield found
    found.tracer_provider.shutdown()
    found.meter_provider.shutdown()


def test_a_guarded_run_yields_one_client_span_per_call_with_genai_names(tmp_path: Path, telemetry: Telemetry) -> None:
    policy = make_policy(agent="writer", budget={"run_usd": "1.00", "estimate_usd": "0.05"})
    guard = enforce(policy, store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])
    client = FakeClient(prompt_tokens=1200, completion_tokens=300)
    for _ in range(2):
        with guard.step(action="draft", model="gpt-4o") as step:
            step.record(client.chat.completions.create(model="gpt-4o-2024-08-06"))
    guard.close()

    spans = telemetry.finished()
    assert [span.name for span in spans] == ["chat gpt-4o", "chat gpt-4o"]
    span = spans[0]
    assert span.kind is SpanKind.CLIENT and span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o",
        "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.input_tokens": 1200,
        "gen_ai.usage.output_tokens": 300,
        "gen_ai.agent.name": "writer",
        "agentfuse.run.id": guard.run_id,
        "agentfuse.action": "draft",
        "agentfuse.decision": "allowed",
        "agentfuse.estimate_usd": 0.05,
        "agentfuse.breaker.state": "closed",
        "agentfuse.cost_usd": 0.006,  # 1200 x $2.50/M + 300 x $10/M
    }


def test_metrics_count_tokens_cost_and_duration(tmp_path: Path, telemetry: Telemetry) -> None:
    policy = make_policy(agent="writer", budget={"run_usd": "1.00", "estimate_usd": "0.05"})
    store = store_url(tmp_path / "s.db")
    guard = enforce(policy, store=store, observers=[telemetry.observer])
    client = FakeClient(prompt_tokens=1200, completion_tokens=300)
    for _ in range(3):
        with guard.step(model="gpt-4o") as step:
            step.record(client.chat.completions.create(model="gpt-4o"))
    with guard.step() as step:
        step.record(cost_usd="0.25")  # no usage: cost only
    guard.close()

    tokens = {attrs["gen_ai.token.type"]: point for attrs, point in telemetry.points("gen_ai.client.token.usage")}
    assert tokens["input"].sum == 3 * 1200 and tokens["input"].count == 3
    assert tokens["output"].sum == 3 * 300 and tokens["output"].count == 3
    attrs = next(attrs for attrs, _ in telemetry.points("gen_ai.client.token.usage"))
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.request.model"] == "gpt-4o" and attrs["gen_ai.agent.name"] == "writer"
    assert list(tokens["input"].explicit_bounds)[:3] == [1, 4, 16]
    assert telemetry.unit("gen_ai.client.token.usage") == "{token}"

    spent = sum(point.value for _, point in telemetry.points("agentfuse.cost"))
    reopened = enforce(policy, run_id=guard.run_id, store=store, observers=[])
    assert reopened.store.get_run(guard.run_id).spent_micros == 268_000
    reopened.close()
    assert spent == pytest.approx(0.268)  # what the store charged: 3 x $0.006 + $0.25
    durations = telemetry.points("gen_ai.client.operation.duration")
    assert sum(point.count for _, point in durations) == 4
    assert telemetry.unit("gen_ai.client.operation.duration") == "s"
    assert telemetry.points("agentfuse.refusals") == []


def test_a_budget_refusal_is_a_span_with_the_reason_and_counts_by_reason(tmp_path: Path, telemetry: Telemetry) -> None:
    policy = make_policy(agent="writer", budget={"run_usd": "0.02", "estimate_usd": "0.01"})
    guard = enforce(policy, store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])
    for _ in range(2):
        with guard.step(model="claude-sonnet-4") as step:
            step.record(cost_usd="0.01")
    with pytest.raises(BudgetExceeded):
        with guard.step(model="claude-sonnet-4"):
            pytest.fail("a refused call must not run")
    guard.close()

    refused = telemetry.finished()[-1]
    attributes = dict(refused.attributes or {})
    assert refused.name == "chat claude-sonnet-4"
    assert attributes["agentfuse.decision"] == "refused"
    assert attributes["agentfuse.refusal.reason"] == "run_budget"
    assert attributes["error.type"] == "agentfuse.BudgetExceeded"
    assert attributes["gen_ai.provider.name"] == "anthropic"
    assert "agentfuse.cost_usd" not in attributes
    assert refused.status.status_code is StatusCode.ERROR and "exceed its cap" in (refused.status.description or "")
    assert [(attrs, point.value) for attrs, point in telemetry.points("agentfuse.refusals")] == [
        ({"gen_ai.agent.name": "writer", "agentfuse.refusal.reason": "run_budget"}, 1)
    ]


def test_a_kill_switch_refusal_carries_its_reason(tmp_path: Path, telemetry: Telemetry) -> None:
    (tmp_path / "STOP").write_text("")
    policy = make_policy(stop_file=str(tmp_path / "STOP"), budget={"estimate_usd": "0.01"})
    guard = enforce(policy, store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])
    with pytest.raises(KillSwitchEngaged):
        with guard.step():
            pass
    guard.close()
    (span,) = telemetry.finished()
    assert span.name == "chat"  # no model named
    assert span.attributes["agentfuse.refusal.reason"] == "kill_switch"
    assert span.attributes["gen_ai.provider.name"] == "_OTHER"


def test_a_failed_call_records_its_error_type(tmp_path: Path, telemetry: Telemetry) -> None:
    guard = enforce(make_policy(budget={"estimate_usd": "0.01"}), store=store_url(tmp_path / "s.db"),
                    observers=[telemetry.observer])
    with pytest.raises(TransientError):
        with guard.step(model="gpt-4o-mini"):
            raise TransientError("503")
    guard.close()
    (span,) = telemetry.finished()
    assert span.attributes["error.type"] == "tests.runtime_helpers.TransientError"
    assert span.attributes["agentfuse.decision"] == "allowed"
    assert span.attributes["agentfuse.cost_usd"] == 0.01  # the estimate stays charged
    assert span.status.status_code is StatusCode.ERROR
    (attrs, _), = telemetry.points("gen_ai.client.operation.duration")
    assert attrs["error.type"] == "tests.runtime_helpers.TransientError"


def test_the_call_span_is_current_inside_the_block(tmp_path: Path, telemetry: Telemetry) -> None:
    guard = enforce(make_policy(), store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])
    tracer = telemetry.tracer_provider.get_tracer("provider-sdk")
    with tracer.start_as_current_span("agent loop"):
        with guard.step(model="gpt-4o"):
            with tracer.start_as_current_span("POST /v1/chat/completions"):
                pass
        after = trace.get_current_span()
    guard.close()
    inner, call, outer = telemetry.finished()
    assert inner.parent is not None and inner.parent.span_id == call.context.span_id
    assert call.parent is not None and call.parent.span_id == outer.context.span_id
    assert after.get_span_context().span_id == outer.context.span_id  # restored after the call


def test_a_child_run_names_its_parent_and_shares_the_observer(tmp_path: Path, telemetry: Telemetry) -> None:
    guard = enforce(make_policy(), store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])
    child = guard.child(run_usd="0.50")
    with child.step():
        pass
    child.close()
    guard.close()
    (span,) = telemetry.finished()
    assert span.attributes["agentfuse.run.id"] == child.run_id
    assert span.attributes["agentfuse.parent_run.id"] == guard.run_id


def test_async_steps_and_decorated_functions_are_spans(tmp_path: Path, telemetry: Telemetry) -> None:
    guard = enforce(make_policy(), store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])

    @guard
    def summarise() -> str:
        return "ok"

    async def ask() -> None:
        async with guard.step(action="ask", model="gemini-2.5-flash"):
            await asyncio.sleep(0)

    summarise()
    asyncio.run(ask())
    guard.close()
    first, second = telemetry.finished()
    assert first.attributes["agentfuse.action"].endswith("summarise")
    assert second.attributes["gen_ai.provider.name"] == "gcp.gemini" and second.end_time is not None


def test_an_async_call_cut_at_the_deadline_ends_its_span(tmp_path: Path, telemetry: Telemetry) -> None:
    clock = ManualClock(1_000_000.0)
    policy = make_policy(budget={"timeout_s": 100, "estimate_usd": "0.01"})
    guard = enforce(policy, store=store_url(tmp_path / "s.db"), clock=clock, observers=[telemetry.observer])
    clock.advance(99.95)  # 50 ms left on the run's deadline

    async def slow_call() -> None:
        async with guard.step(model="gpt-4o"):
            await asyncio.sleep(30)

    async def main() -> None:
        with pytest.raises(DeadlineExceeded):
            await slow_call()

    asyncio.run(main())
    guard.close()
    (span,) = telemetry.finished()
    assert span.attributes["error.type"] == "agentfuse.DeadlineExceeded"
    assert span.attributes["agentfuse.decision"] == "allowed" and span.attributes["agentfuse.cost_usd"] == 0.01


def test_instrumented_sdk_requests_are_spans_with_their_usage(tmp_path: Path, telemetry: Telemetry) -> None:
    openai = pytest.importorskip("openai")
    guard = enforce(make_policy(budget={"run_usd": 10}), store=store_url(tmp_path / "s.db"),
                    observers=[telemetry.observer])
    guard.instrument()
    try:
        with StandIn() as provider:
            client = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            assert list(stream)
    finally:
        guard.uninstrument()
        guard.close()
    spans = telemetry.finished()
    assert len(spans) == 2 and all(span.name == "chat gpt-4o" for span in spans)
    for span in spans:
        assert span.attributes["gen_ai.usage.input_tokens"] == 100
        assert span.attributes["gen_ai.usage.output_tokens"] == 20
        assert span.attributes["gen_ai.provider.name"] == "openai"
        assert span.attributes["agentfuse.cost_usd"] == 0.00045


def test_a_stream_finished_in_another_thread_ends_its_span_quietly(
    tmp_path: Path, telemetry: Telemetry, caplog: pytest.LogCaptureFixture
) -> None:
    openai = pytest.importorskip("openai")
    guard = enforce(make_policy(budget={"run_usd": 10}), store=store_url(tmp_path / "s.db"),
                    observers=[telemetry.observer])
    guard.instrument()
    try:
        with StandIn() as provider:
            client = openai.OpenAI(base_url=provider.openai_url, api_key="none", max_retries=0)
            stream = client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            reader = threading.Thread(target=lambda: list(stream))
            reader.start()
            reader.join(timeout=60)
    finally:
        guard.uninstrument()
        guard.close()
    (span,) = telemetry.finished()
    assert span.attributes["gen_ai.usage.output_tokens"] == 20
    assert not [record for record in caplog.records if "detach" in record.getMessage()]


def test_latest_conventions_opt_in_drops_the_old_system_attribute(tmp_path: Path) -> None:
    latest = Telemetry(environ={"OTEL_SEMCONV_STABILITY_OPT_IN": "http, gen_ai_latest_experimental"})
    guard = enforce(make_policy(), store=store_url(tmp_path / "s.db"), observers=[latest.observer])
    with guard.step(model="gpt-4o") as step:
        step.record(FakeClient().chat.completions.create(model="gpt-4o"))
    guard.close()
    (span,) = latest.finished()
    assert span.attributes["gen_ai.provider.name"] == "openai" and "gen_ai.system" not in span.attributes
    assert all("gen_ai.system" not in attrs for attrs, _ in latest.points("gen_ai.client.token.usage"))


def test_without_observers_the_guard_uses_the_plain_step(tmp_path: Path, telemetry: Telemetry) -> None:
    plain = enforce(make_policy(), store=store_url(tmp_path / "s.db"), observers=[])
    observed = enforce(make_policy(), store=store_url(tmp_path / "s.db"), observers=[telemetry.observer])
    assert type(plain.step()) is Step and type(observed.step()) is ObservedStep
    assert type(plain.child().step()) is Step and type(observed.child().step()) is ObservedStep
    plain.close()
    observed.close()


@pytest.mark.parametrize(
    ("model", "provider"),
    [
        ("gpt-4o-mini", "openai"),
        ("o3-mini", "openai"),
        ("openai/gpt-4.1", "openai"),
        ("claude-3-5-sonnet-20241022", "anthropic"),
        ("us.anthropic.claude-3-5-sonnet-20241022-v2:0", "aws.bedrock"),
        ("bedrock/anthropic.claude-3-haiku", "aws.bedrock"),
        ("gemini-2.5-pro", "gcp.gemini"),
        ("vertex_ai/gemini-2.5-pro", "gcp.vertex_ai"),
        ("mistral-large-latest", "mistral_ai"),
        ("command-r-plus", "cohere"),
        ("deepseek-chat", "deepseek"),
        ("grok-4", "x_ai"),
        ("llama3.1:8b", "_OTHER"),
        (None, "_OTHER"),
    ],
)
def test_provider_name_from_the_model(model: str | None, provider: str) -> None:
    assert provider_of(model) == provider


def _run(code: str, tmp_path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_enforce_imports_no_opentelemetry_when_the_application_did_not(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nagent: quiet\nbudget: {run_usd: 1, estimate_usd: 0.01}\nbreaker: {failure_threshold: 3}\n"
        "fail_fast: {max_attempts: 2}\nevents: {path: null}\nstore: sqlite:///state.db\n"
    )
    found = _run(
        """
        import json, sys
        from agentfuse import enforce
        guard = enforce("policy.yaml")
        with guard.step():
            pass
        print(json.dumps({"observers": len(guard.observers),
                          "imported": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}))
        """,
        tmp_path,
    )
    assert found == {"observers": 0, "imported": []}


def test_enforce_uses_the_global_providers_the_application_configured(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nagent: traced\nbudget: {run_usd: 0.015, estimate_usd: 0.01}\nbreaker: {failure_threshold: 3}\n"
        "fail_fast: {max_attempts: 2}\nevents: {path: null}\nstore: sqlite:///state.db\n"
    )
    found = _run(
        """
        import json
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from agentfuse import Halted, enforce

        spans = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(spans))
        trace.set_tracer_provider(provider)
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
        guard = enforce("policy.yaml")
        with guard.step(model="gpt-4o"):
            pass
        try:
            with guard.step(model="gpt-4o"):
                pass
        except Halted:
            pass
        names = [m.name for r in reader.get_metrics_data().resource_metrics
                 for s in r.scope_metrics for m in s.metrics]
        print(json.dumps({"spans": [(s.name, s.attributes["agentfuse.decision"]) for s in spans.get_finished_spans()],
                          "metrics": sorted(names)}))
        """,
        tmp_path,
    )
    assert found["spans"] == [["chat gpt-4o", "allowed"], ["chat gpt-4o", "refused"]]
    assert found["metrics"] == ["agentfuse.cost", "agentfuse.refusals", "gen_ai.client.operation.duration"]
