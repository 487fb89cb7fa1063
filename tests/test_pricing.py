"""Usage extraction from provider-shaped responses, the price table and exact costs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from importlib import resources
from types import SimpleNamespace
from typing import Any

import pytest

from agentfuse.runtime.policy import ModelPrice
from agentfuse.runtime.pricing import (
    PriceTable,
    Usage,
    estimate_input_tokens,
    extract_usage,
)


def openai_chat_completion(model: str, prompt: int, completion: int, cached: int) -> Any:
    """Shaped like ``openai.types.chat.ChatCompletion``."""
    return SimpleNamespace(
        id="chatcmpl-1",
        object="chat.completion",
        created=1_700_000_000,
        model=model,
        choices=[SimpleNamespace(index=0, finish_reason="stop",
                                 message=SimpleNamespace(role="assistant", content="hi"))],
        usage=SimpleNamespace(
            prompt_tokens=prompt,
            completion_tokens=completion,
            total_tokens=prompt + completion,
            prompt_tokens_details=SimpleNamespace(cached_tokens=cached, audio_tokens=0),
            completion_tokens_details=SimpleNamespace(reasoning_tokens=0, audio_tokens=0),
        ),
    )


def openai_response(model: str, input_tokens: int, output_tokens: int, cached: int) -> Any:
    """Shaped like ``openai.types.responses.Response``."""
    return SimpleNamespace(
        id="resp_1",
        object="response",
        model=model,
        output=[],
        usage=SimpleNamespace(
            input_tokens=input_tokens,
            input_tokens_details=SimpleNamespace(cached_tokens=cached),
            output_tokens=output_tokens,
            output_tokens_details=SimpleNamespace(reasoning_tokens=0),
            total_tokens=input_tokens + output_tokens,
        ),
    )


def anthropic_message(model: str, input_tokens: int, output_tokens: int,
                      cache_read: int | None, cache_write: int | None) -> Any:
    """Shaped like ``anthropic.types.Message`` (cache fields may be None)."""
    return SimpleNamespace(
        id="msg_1",
        type="message",
        role="assistant",
        model=model,
        content=[SimpleNamespace(type="text", text="hi")],
        stop_reason="end_turn",
        usage=SimpleNamespace(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cache_read_input_tokens=cache_read,
            cache_creation_input_tokens=cache_write,
            server_tool_use=None,
            service_tier="standard",
        ),
    )


def litellm_model_response(model: str, prompt: int, completion: int, cost: float | None) -> Any:
    """Shaped like ``litellm.ModelResponse``: OpenAI-like, plus ``_hidden_params``."""
    response = openai_chat_completion(model, prompt, completion, cached=0)
    response._hidden_params = {"custom_llm_provider": "openai", "response_cost": cost}
    return response


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.shipped()


def test_openai_chat_completion_usage_counts_cached_tokens_inside_the_prompt() -> None:
    usage = extract_usage(openai_chat_completion("gpt-4o-2024-08-06", 1200, 300, 1000))
    assert usage == Usage(model="gpt-4o-2024-08-06", input_tokens=1200, output_tokens=300,
                          cached_input_tokens=1000)


def test_openai_responses_api_usage() -> None:
    usage = extract_usage(openai_response("gpt-4.1-mini-2025-04-14", 800, 40, 512))
    assert usage == Usage(model="gpt-4.1-mini-2025-04-14", input_tokens=800, output_tokens=40,
                          cached_input_tokens=512)


def test_anthropic_usage_adds_cache_reads_and_writes_to_the_input() -> None:
    usage = extract_usage(anthropic_message("claude-sonnet-4-20250514", 100, 50, 3000, 2000))
    assert usage == Usage(model="claude-sonnet-4-20250514", input_tokens=5100, output_tokens=50,
                          cached_input_tokens=3000, cache_write_input_tokens=2000)


def test_anthropic_usage_with_cache_fields_none() -> None:
    usage = extract_usage(anthropic_message("claude-3-5-haiku-20241022", 10, 5, None, None))
    assert usage == Usage(model="claude-3-5-haiku-20241022", input_tokens=10, output_tokens=5)


def test_litellm_response_carries_its_reported_cost() -> None:
    usage = extract_usage(litellm_model_response("gpt-4o-mini", 10, 5, 0.0000045))
    assert usage is not None
    assert (usage.input_tokens, usage.output_tokens) == (10, 5)
    assert usage.reported_cost_usd == Decimal("0.0000045")


@pytest.mark.parametrize(
    "response, expected",
    [
        ({"model": "gpt-4o", "usage": {"prompt_tokens": 7, "completion_tokens": 3,
                                       "prompt_tokens_details": {"cached_tokens": 2}}},
         Usage("gpt-4o", 7, 3, 2)),
        ({"model": "claude-3-haiku-20240307",
          "usage": {"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 4}},
         Usage("claude-3-haiku-20240307", 11, 3, 4)),
        ({"usage": {"input_tokens": 7, "output_tokens": 3}}, Usage(None, 7, 3)),
        ({"model": "gpt-4o", "usage": {"prompt_tokens": 7}}, Usage("gpt-4o", 7, 0)),
        ({"model": "gpt-4o", "usage": {"prompt_tokens": 7, "completion_tokens": None}},
         Usage("gpt-4o", 7, 0)),
    ],
    ids=["openai-dict", "anthropic-dict", "no-model", "missing-field", "none-field"],
)
def test_dicts_with_a_usage_mapping(response: dict[str, Any], expected: Usage) -> None:
    assert extract_usage(response) == expected


def test_dict_from_a_real_json_body() -> None:
    body = json.loads(
        '{"id":"chatcmpl-9","object":"chat.completion","model":"gpt-4o-mini-2024-07-18",'
        '"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,'
        '"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}}}'
    )
    assert extract_usage(body) == Usage("gpt-4o-mini-2024-07-18", 19, 10, 0)


def test_gemini_usage_metadata_counts_thinking_as_output() -> None:
    response = SimpleNamespace(
        model_version="gemini-2.5-flash",
        usage_metadata=SimpleNamespace(prompt_token_count=100, candidates_token_count=20,
                                       thoughts_token_count=30, cached_content_token_count=None),
    )
    assert extract_usage(response) == Usage("gemini-2.5-flash", 100, 50, 0)


@pytest.mark.parametrize(
    "response",
    [None, "plain text", 42, object(), {}, {"usage": {}}, {"choices": []},
     SimpleNamespace(usage=None), {"usage": {"prompt_tokens": None}}],
    ids=["none", "str", "int", "object", "empty-dict", "empty-usage", "no-usage", "usage-none",
         "all-none"],
)
def test_unrecognisable_responses_give_none(response: Any) -> None:
    assert extract_usage(response) is None


def test_every_shipped_price_is_positive_with_cheaper_cache_reads(table: PriceTable) -> None:
    shipped = json.loads(
        resources.files("agentfuse.runtime").joinpath("data/prices.json").read_text("utf-8"))
    assert "change" in shipped["note"] and shipped["unit"] == "USD per 1,000,000 tokens"
    assert len(shipped["models"]) >= 40
    for model in shipped["models"]:
        price = table.price(model)
        assert price is not None and price.input > 0 and price.output >= price.input, model
        assert price.cached_input is None or price.cached_input < price.input, model


def test_shipped_table_covers_the_major_models(table: PriceTable) -> None:
    assert table.as_of and dt.date.fromisoformat(table.as_of).year >= 2025
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4.1", "o3", "o4-mini", "gpt-5",
                  "claude-sonnet-4", "claude-3-5-haiku", "claude-opus-4",
                  "gemini-2.5-pro", "gemini-2.0-flash", "gemini-1.5-flash",
                  "mistral-large", "mistral-small"):
        price = table.price(model)
        assert price is not None, model
        assert price.input > 0 and price.output > 0
        assert price.cached_input is None or price.cached_input <= price.input


@pytest.mark.parametrize(
    "model, canonical",
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("GPT-4o", "gpt-4o"),
        ("gpt-4.1-nano-2025-04-14", "gpt-4.1-nano"),
        ("o3-mini-2025-01-31", "o3-mini"),
        ("claude-3-5-sonnet-20241022", "claude-3-5-sonnet"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("openai/gpt-4o", "gpt-4o"),
        ("azure/gpt-4o-mini", "gpt-4o-mini"),
        ("anthropic/claude-3-5-haiku-20241022", "claude-3-5-haiku"),
        ("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet"),
        ("bedrock/us.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet"),
        ("vertex_ai/claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("openrouter/anthropic/claude-3.5-sonnet", "claude-3-5-sonnet"),
        ("gemini/gemini-2.5-flash-lite", "gemini-2.5-flash-lite"),
        ("models/gemini-1.5-pro-002", "gemini-1.5-pro"),
        ("mistral/mistral-large-latest", "mistral-large"),
        ("groq/llama-3.3-70b-versatile", "llama-3.3-70b-versatile"),
    ],
)
def test_snapshot_and_prefixed_names_match_the_longest_model(
    table: PriceTable, model: str, canonical: str
) -> None:
    assert table.price(model) == table.price(canonical)
    assert table.price(model) is not None


def test_longest_match_wins_between_a_model_and_its_mini(table: PriceTable) -> None:
    assert table.price("gpt-4o-mini-2024-07-18") != table.price("gpt-4o-2024-08-06")
    assert table.price("claude-opus-4-1-20250805") == table.price("claude-opus-4-1")


@pytest.mark.parametrize(
    "model", ["gpt-4.5-preview", "gpt-4oo", "ft:gpt-4o-mini:org::abc", "my-local-model", "", None]
)
def test_unknown_models_have_no_price(table: PriceTable, model: str | None) -> None:
    assert table.price(model) is None


def test_cost_of_openai_call_bills_cached_tokens_at_the_cached_price(table: PriceTable) -> None:
    usage = extract_usage(openai_chat_completion("gpt-4o-2024-08-06", 1200, 300, 1000))
    assert usage is not None
    # 200 x $2.50 + 1000 x $1.25 + 300 x $10.00 per 1M tokens = 4750 micro-dollars
    assert table.cost_micros(usage) == 200 * 2.5 + 1000 * 1.25 + 300 * 10 == 4750


def test_cost_of_anthropic_call_bills_cache_writes_at_one_and_a_quarter(table: PriceTable) -> None:
    usage = extract_usage(anthropic_message("claude-sonnet-4-20250514", 100, 50, 3000, 2000))
    assert usage is not None
    # 100 x 3 + 3000 x 0.30 + 2000 x 3 x 1.25 + 50 x 15
    assert table.cost_micros(usage) == 300 + 900 + 7500 + 750


def test_cost_is_rounded_up_never_down(table: PriceTable) -> None:
    assert table.cost_micros(Usage("gpt-5-nano", input_tokens=7, output_tokens=0)) == 1  # 0.35
    assert table.cost_micros(Usage("gpt-4o-mini", input_tokens=0, output_tokens=0)) == 0


def test_costs_add_up_exactly_over_many_calls(table: PriceTable) -> None:
    usage = Usage("gpt-4o-mini", input_tokens=1000, output_tokens=500)  # 150 + 300 micro-dollars
    assert sum(table.cost_micros(usage) or 0 for _ in range(10_000)) == 4_500_000


def test_model_without_cached_price_bills_cached_tokens_as_input(table: PriceTable) -> None:
    usage = Usage("gpt-4-turbo", input_tokens=100, output_tokens=0, cached_input_tokens=100)
    assert table.cost_micros(usage) == 1000


def test_unknown_model_cost_is_none_unless_the_client_reported_one(table: PriceTable) -> None:
    assert table.cost_micros(Usage("my-local-model", 100, 100)) is None
    assert table.cost_micros(Usage(None, 100, 100)) is None
    reported = Usage("my-local-model", 100, 100, reported_cost_usd=Decimal("0.0123451"))
    assert table.cost_micros(reported) == 12346


def test_shipped_table_and_policy_override_beat_a_reported_cost(table: PriceTable) -> None:
    response = litellm_model_response("gpt-4o", 1000, 0, cost=0.01)
    usage = extract_usage(response)
    assert usage is not None
    assert table.cost_micros(usage) == 2500  # 1000 x $2.50 per 1M, not LiteLLM's $0.01
    overridden = table.with_overrides([("gpt-4o", ModelPrice(Decimal("1"), Decimal("1")))])
    assert overridden.cost_micros(usage) == 1000


def test_overrides_replace_and_add_models_without_changing_the_original(table: PriceTable) -> None:
    cheaper = ModelPrice(input=Decimal("5"), output=Decimal("15"))
    local = ModelPrice(input=Decimal("0"), output=Decimal("0.01"))
    new = table.with_overrides([("GPT-4o-2024-05-13", cheaper), ("my-local-model", local)])
    assert new.price("gpt-4o-2024-05-13") == cheaper
    assert new.price("gpt-4o-2024-08-06") == table.price("gpt-4o")
    assert new.price("my-local-model:latest") == local
    assert table.price("my-local-model") is None
    assert new.as_of == table.as_of


def test_estimate_is_all_input_uncached_plus_max_tokens_of_output(table: PriceTable) -> None:
    assert table.estimate_micros("gpt-4o", 1000, 500) == 1000 * 2.5 + 500 * 10 == 7500
    assert table.estimate_micros("gpt-4o", 1000, None) is None
    assert table.estimate_micros("my-local-model", 1000, 500) is None


def test_estimate_input_tokens_of_text_is_chars_over_four_rounded_up() -> None:
    assert estimate_input_tokens("") == 0
    assert estimate_input_tokens("abcd" * 10) == 10
    assert estimate_input_tokens("abcde") == 2


def test_estimate_input_tokens_of_messages_adds_overhead_per_message() -> None:
    messages = [{"role": "system", "content": "x" * 40}, {"role": "user", "content": "y" * 36}]
    # characters: "system" 6 + 40 + "user" 4 + 36 = 86 -> 22 tokens, plus 4 per message
    assert estimate_input_tokens(messages) == 22 + 8


def test_estimate_input_tokens_counts_inline_images_as_a_fixed_amount() -> None:
    image = "data:image/png;base64," + "A" * 400_000
    messages = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": image}}]}]
    assert estimate_input_tokens(messages) < 1100


def test_estimate_input_tokens_reads_sdk_objects_through_model_dump() -> None:
    class Message:
        def model_dump(self) -> dict[str, str]:
            return {"role": "user", "content": "z" * 80}

    assert estimate_input_tokens([Message()]) == estimate_input_tokens([Message().model_dump()])


def test_price_table_from_bad_json_says_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="models"):
        PriceTable.from_json('{"as_of": "2025-01-01"}')
    with pytest.raises(ValueError, match="x-model"):
        PriceTable.from_json('{"models": {"x-model": {"input": "1"}}}')
