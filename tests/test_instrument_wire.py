"""The instrumentation's wire formats: reading usage straight from an answer's keys agrees with extract_usage."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from agentfuse.runtime.instrument.wire import OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS
from agentfuse.runtime.pricing import Usage, extract_usage

ODD = st.one_of(
    st.none(), st.booleans(), st.floats(allow_nan=True), st.text(max_size=3), st.just([]), st.just({}),
    st.integers(min_value=-5, max_value=5), st.just(10**15), st.just(10**15 + 1),
)
"""Values a count may be: whole numbers at the edges and everything that is not one."""
COUNT = st.one_of(st.integers(min_value=0, max_value=10**6), ODD)
DETAILS = st.one_of(st.none(), st.just("x"), st.dictionaries(st.sampled_from(["cached_tokens", "audio_tokens"]), COUNT))
USAGE = st.dictionaries(
    st.sampled_from(["prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details",
                     "cache_creation_input_tokens", "input_tokens", "output_tokens"]),
    COUNT,
).flatmap(lambda usage: st.fixed_dictionaries({"prompt_tokens_details": DETAILS}).map(lambda d: {**usage, **d})
          if "prompt_tokens_details" in usage else st.just(usage))
ANSWER = st.fixed_dictionaries(
    {"usage": st.one_of(USAGE, ODD)},
    optional={
        "model": st.one_of(st.sampled_from(["gpt-4o", "", "openai/gpt-4o-mini"]), ODD),
        "model_version": st.just("gemini-1.5-pro"),
        "_hidden_params": st.just({"response_cost": 0.25}),
        "choices": st.just([]),
    },
)


@given(ANSWER)
@example({"model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": 20,
                                       "prompt_tokens_details": {"cached_tokens": 30}}})
@example({"model": "text-embedding-3-small", "usage": {"prompt_tokens": 8, "total_tokens": 8}})
@example({"model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": True}})
@example({"model": "claude-3-5-sonnet", "usage": {"prompt_tokens": 100, "cache_creation_input_tokens": 40}})
@example({"model": "gpt-4o", "usage": {"prompt_tokens": 100}, "_hidden_params": {"response_cost": 0.25}})
@example({"model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": 2.5}})
def test_openai_usage_read_from_the_keys_equals_extract_usage(answer: dict[str, Any]) -> None:
    for fmt in (OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_EMBEDDINGS):
        assert fmt.read_usage(answer) == extract_usage(answer)


def test_the_plain_answer_is_read_with_its_cached_tokens() -> None:
    answer = {"model": "gpt-4o", "usage": {"prompt_tokens": 100, "completion_tokens": 20,
                                           "prompt_tokens_details": {"cached_tokens": 30}}}
    assert OPENAI_CHAT.read_usage(answer) == Usage("gpt-4o", 100, 20, cached_input_tokens=30)
