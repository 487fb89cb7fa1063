"""OpenTelemetry for guarded calls: one GenAI client span per call, and GenAI and cost metrics.

Install ``agentfuse[otel]`` and configure a tracer and/or meter provider before ``enforce()``;
the guard then watches every call through :class:`OtelObserver` (see
:mod:`agentfuse.runtime.observers`). Without the package, or without a configured provider, the
guard gets no observer and runs exactly as before: the check happens once, in ``enforce()``,
and imports nothing unless the application has imported OpenTelemetry (or names a provider in
``OTEL_PYTHON_TRACER_PROVIDER``/``OTEL_PYTHON_METER_PROVIDER``).

Each guarded call is a span of kind CLIENT named ``{gen_ai.operation.name}
{gen_ai.request.model}``, as the GenAI semantic conventions name an inference call, rather than
an event on the caller's span: a span is current while the call runs, so the provider SDK's own
spans (and HTTP spans) nest inside it, its duration is the call's, and a refused call, which
has no provider span at all, is still one span carrying the reason. The attributes and
instruments are listed in docs/observability.md.

The GenAI conventions are still in development. By default the spans and metrics carry the
current names and, beside ``gen_ai.provider.name``, the ``gen_ai.system`` attribute that
v1.36.0 and older used, so dashboards built on either keep working; with
``OTEL_SEMCONV_STABILITY_OPT_IN`` containing ``gen_ai_latest_experimental`` only the latest
names are emitted.
"""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agentfuse.runtime.events import redact

if TYPE_CHECKING:
    from agentfuse.runtime.guard import Step

OPT_IN_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"
PROVIDER_VARIABLES = ("OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER")
INSTRUMENTATION_SCOPE = "agentfuse"

OPERATION = "chat"
"""``gen_ai.operation.name`` of a guarded call: agentfuse gates model requests, nearly all chats."""
UNKNOWN_PROVIDER = "_OTHER"

TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
"""Bucket boundaries the GenAI metric conventions prescribe."""

_PROVIDERS_BY_PREFIX: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), provider)
    for pattern, provider in (
        (r"^(bedrock/|(?:[a-z]{2,4}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21)\.)", "aws.bedrock"),
        (r"^vertex_ai/", "gcp.vertex_ai"),
        (r"^azure/", "azure.ai.openai"),
        (r"^(openai/)?(gpt-|o\d|chatgpt-|text-embedding-|davinci|babbage|dall-e|whisper|tts-)", "openai"),
        (r"^(anthropic/)?claude", "anthropic"),
        (r"^(gemini/|models/)?gemini", "gcp.gemini"),
        (r"^(mistral/)?(mistral|mixtral|codestral|ministral|magistral|devstral|pixtral)", "mistral_ai"),
        (r"^(cohere/)?(command|embed-)", "cohere"),
        (r"^(deepseek/)?deepseek", "deepseek"),
        (r"^(xai/)?grok", "x_ai"),
        (r"^groq/", "groq"),
        (r"^perplexity/|^sonar", "perplexity"),
    )
)


def provider_of(model: str | None) -> str:
    """``gen_ai.provider.name`` for a model id, by its vendor prefix or family; ``_OTHER`` if unknown."""
    if not model:
        return UNKNOWN_PROVIDER
    name = model.strip().lower()
    for pattern, provider in _PROVIDERS_BY_PREFIX:
        if pattern.search(name):
            return provider
    return UNKNOWN_PROVIDER


def latest_conventions(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the latest GenAI conventions only."""
    values = environ.get(OPT_IN_VARIABLE, "").split(",")
    return LATEST_EXPERIMENTAL in (value.strip().lower() for value in values)


def configured_observer(environ: Mapping[str, str] = os.environ) -> OtelObserver | None:
    """An observer for the application's global tracer and meter providers, or None.

    None when OpenTelemetry is not installed, or neither provider is configured (the API's
    proxy and no-op providers do not count). An application that has not imported
    OpenTelemetry cannot have configured it, so then nothing is imported.
    """
    if "opentelemetry" not in sys.modules and not any(environ.get(name) for name in PROVIDER_VARIABLES):
        return None
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    tracer_provider: Any = trace.get_tracer_provider()
    if isinstance(tracer_provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
        tracer_provider = None
    meter_provider: Any = metrics.get_meter_provider()
    if isinstance(meter_provider, metrics.NoOpMeterProvider) or type(meter_provider).__name__ == "_ProxyMeterProvider":
        meter_provider = None
    if tracer_provider is None and meter_provider is None:
        return None
    return OtelObserver(tracer_provider=tracer_provider, meter_provider=meter_provider, environ=environ)


def _error_type(error: BaseException) -> str:
    """``error.type``: the exception's class, as ``agentfuse.BudgetExceeded`` for ours."""
    cls = type(error)
    if cls.__module__ == "agentfuse.runtime.errors":
        return f"agentfuse.{cls.__qualname__}"
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


class OtelObserver:
    """Spans and metrics for guarded calls (a :class:`~agentfuse.runtime.observers.CallObserver`).

    Either provider may be None (traces only, or metrics only). Instruments are created once,
    here; a call costs its span and a few measurements.
    """

    def __init__(
        self,
        *,
        tracer_provider: Any = None,
        meter_provider: Any = None,
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        from agentfuse import __version__

        self.latest = latest_conventions(environ)
        self._context = context
        self._in_context = trace.set_span_in_context
        self._current_span = trace.get_current_span
        self._client = SpanKind.CLIENT
        self._error_status = Status
        self._error_code = StatusCode.ERROR
        self.tracer = (
            tracer_provider.get_tracer(INSTRUMENTATION_SCOPE, __version__) if tracer_provider is not None else None
        )
        self.metrics_on = meter_provider is not None
        if meter_provider is not None:
            meter = meter_provider.get_meter(INSTRUMENTATION_SCOPE, __version__)
            self.token_usage = meter.create_histogram(
                "gen_ai.client.token.usage",
                unit="{token}",
                description="Number of input and output tokens used.",
                explicit_bucket_boundaries_advisory=list(TOKEN_BUCKETS),
            )
            self.duration = meter.create_histogram(
                "gen_ai.client.operation.duration",
                unit="s",
                description="GenAI operation duration.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS),
            )
            self.cost = meter.create_counter(
                "agentfuse.cost",
                unit="USD",
                description="Money guarded calls cost (the estimate when the actual cost is unknown).",
            )
            self.refusals = meter.create_counter(
                "agentfuse.refusals", unit="{refusal}", description="Calls the guard refused, by reason."
            )

    def watch(self, step: Step) -> _CallTelemetry:
        """Start watching one guarded call (see :class:`CallWatch`)."""
        return _CallTelemetry(self, step)

    def provider_attributes(self, provider: str) -> dict[str, str]:
        """``gen_ai.provider.name``, and ``gen_ai.system`` unless only the latest names are wanted."""
        if self.latest:
            return {"gen_ai.provider.name": provider}
        return {"gen_ai.provider.name": provider, "gen_ai.system": provider}


class _CallTelemetry:
    """The span and measurements of one guarded call."""

    __slots__ = ("observer", "span", "token", "started", "request_model")

    def __init__(self, observer: OtelObserver, step: Step) -> None:
        self.observer = observer
        self.started = time.perf_counter()
        self.token: object | None = None
        self.request_model: str | None = None
        self.span: Any = None
        if observer.tracer is not None:
            guard = step.guard
            attributes: dict[str, Any] = {
                "gen_ai.operation.name": OPERATION,
                "gen_ai.agent.name": guard.agent,
                "agentfuse.run.id": guard.run_id,
                "agentfuse.action": step.action or "call",
            }
            if guard.parent_id is not None:
                attributes["agentfuse.parent_run.id"] = guard.parent_id
            self.span = observer.tracer.start_span(
                OPERATION, kind=observer._client, attributes=attributes
            )

    def _name_model(self, step: Step) -> None:
        """The requested model (after the degrade ladder) names the span."""
        model = None if step.model is None else str(step.model)
        self.request_model = model
        if self.span is not None and model:
            self.span.set_attribute("gen_ai.request.model", model)
            self.span.update_name(f"{OPERATION} {model}")

    def allowed(self, step: Step) -> None:
        self._name_model(step)
        span = self.span
        if span is None:
            return
        result = step.result
        span.set_attribute("agentfuse.decision", "allowed")
        span.set_attribute("agentfuse.estimate_usd", step.estimate_micros / 1_000_000)
        if result is None:
            span.set_attribute("agentfuse.failed_open", True)  # store unavailable, policy allows
        else:
            span.set_attribute("agentfuse.breaker.state", "half_open" if result.probe else "closed")
        observer = self.observer
        self.token = observer._context.attach(observer._in_context(span))

    def refused(self, step: Step, error: BaseException) -> None:
        self._name_model(step)
        observer = self.observer
        reason = getattr(error, "reason", None)
        reason = redact(str(reason)) if reason is not None else _error_type(error)
        if observer.metrics_on:
            observer.refusals.add(1, {"gen_ai.agent.name": step.guard.agent, "agentfuse.refusal.reason": reason})
        span = self.span
        if span is None:
            return
        span.set_attribute("agentfuse.decision", "refused")
        span.set_attribute("agentfuse.refusal.reason", reason)
        span.set_attribute("error.type", _error_type(error))
        if reason == "circuit_open":
            span.set_attribute("agentfuse.breaker.state", "open")
        span.set_attributes(observer.provider_attributes(provider_of(self.request_model)))
        span.set_status(observer._error_status(observer._error_code, redact(str(error))))
        span.end()

    def finished(self, step: Step, error: BaseException | None) -> None:
        observer = self.observer
        usage = step.usage
        response_model = getattr(usage, "model", None)
        provider = provider_of(response_model or self.request_model)
        cost_micros = step.cost_micros if step.cost_micros is not None else step.estimate_micros
        if observer.metrics_on:
            self._measure(step, usage, response_model, provider, cost_micros, error)
        span = self.span
        if span is None:
            return
        span.set_attributes(observer.provider_attributes(provider))
        span.set_attribute("agentfuse.cost_usd", cost_micros / 1_000_000)
        if usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", int(usage.input_tokens))
            span.set_attribute("gen_ai.usage.output_tokens", int(usage.output_tokens))
        if response_model:
            span.set_attribute("gen_ai.response.model", str(response_model))
        if error is not None:
            span.set_attribute("error.type", _error_type(error))
            span.set_status(observer._error_status(observer._error_code, redact(str(error))))
        if self.token is not None and observer._current_span() is span:
            # Only where it was made current: an instrumented stream may end in another thread.
            observer._context.detach(self.token)
        span.end()

    def _measure(
        self,
        step: Step,
        usage: Any,
        response_model: str | None,
        provider: str,
        cost_micros: int,
        error: BaseException | None,
    ) -> None:
        observer = self.observer
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": OPERATION,
            "gen_ai.agent.name": step.guard.agent,
            **observer.provider_attributes(provider),
        }
        if self.request_model:
            attributes["gen_ai.request.model"] = self.request_model
        if response_model:
            attributes["gen_ai.response.model"] = str(response_model)
        observer.cost.add(cost_micros / 1_000_000, attributes)
        if usage is not None:
            observer.token_usage.record(int(usage.input_tokens), {**attributes, "gen_ai.token.type": "input"})
            observer.token_usage.record(int(usage.output_tokens), {**attributes, "gen_ai.token.type": "output"})
        if error is not None:
            attributes["error.type"] = _error_type(error)
        observer.duration.record(time.perf_counter() - self.started, attributes)
