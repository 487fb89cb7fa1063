"""Price table fixes: Anthropic 1-hour cache writes, long-prompt tiers, output limits, which price
wins (policy, shipped table, the optional genai-prices library, a client-reported cost); and the
``agentfuse prices`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agentfuse import enforce
from agentfuse.runtime.policy import ModelPrice
from agentfuse.runtime.pricing import PriceTable, Usage, extract_usage
from runtime_helpers import make_policy, store_url


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.shipped()


def test_anthropic_one_hour_cache_writes_cost_twice_the_input_price(table: PriceTable) -> None:
    message = {
        "model": "claude-sonnet-4-5",
        "usage": {
            "input_tokens": 10,
            "output_tokens": 0,
            "cache_read_input_tokens": 0,
            "cache_creation_input_tokens": 3000,
            "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
        },
    }
    usage = extract_usage(message)
    assert usage is not None and usage.cache_write_1h_input_tokens == 2000
    # 10 x $3 + 1000 x $3 x 1.25 + 2000 x $3 x 2 per 1M tokens
    assert table.cost_micros(usage) == 30 + 3750 + 12000


def test_gemini_pro_prompt_above_200k_tokens_costs_the_higher_tier(table: PriceTable) -> None:
    short = Usage("gemini-2.5-pro", input_tokens=200_000, output_tokens=1000)
    long = Usage("gemini-2.5-pro", input_tokens=200_001, output_tokens=1000)
    assert table.cost_micros(short) == 200_000 * 1.25 + 1000 * 10
    assert table.cost_micros(long) == 500_003 + 1000 * 15  # 200,001 x $2.50 rounded up
    assert table.estimate_micros("gemini-2.5-pro", 300_000, 100) == 300_000 * 2.5 + 100 * 15


def test_a_policy_price_replaces_the_tier_too(table: PriceTable) -> None:
    flat = table.with_overrides([("gemini-2.5-pro", ModelPrice(Decimal("1"), Decimal("1")))])
    assert flat.cost_micros(Usage("gemini-2.5-pro", input_tokens=300_000, output_tokens=0)) == 300_000


@pytest.mark.parametrize(
    ("model", "above", "short", "long"),
    [
        ("claude-sonnet-4-5-20250929", 200_000, (3, 15), (6, 22.5)),
        ("claude-sonnet-4-20250514", 200_000, (3, 15), (6, 22.5)),
        ("gemini-1.5-flash-002", 128_000, (0.075, 0.3), (0.15, 0.6)),
    ],
)
def test_long_prompts_of_claude_sonnet_4_and_gemini_flash_cost_their_higher_tier(
    table: PriceTable, model: str, above: int, short: tuple[float, float], long: tuple[float, float]
) -> None:
    assert table.cost_micros(Usage(model, above, 1000)) == pytest.approx(above * short[0] + 1000 * short[1], abs=1)
    assert table.cost_micros(Usage(model, above + 1, 1000)) == pytest.approx(
        (above + 1) * long[0] + 1000 * long[1], abs=1
    )


def test_gpt_35_turbo_instruct_has_its_own_higher_price(table: PriceTable) -> None:
    # It would otherwise match gpt-3.5-turbo ($0.50 / $1.50) as a dated snapshot of it.
    assert table.cost_micros(Usage("gpt-3.5-turbo-instruct-0914", 100, 20)) == 100 * 1.5 + 20 * 2
    assert table.cost_micros(Usage("gpt-3.5-turbo-0125", 100, 20)) == 100 * 0.5 + 20 * 1.5


def test_output_limits_come_from_the_table(table: PriceTable) -> None:
    assert table.output_limit("gpt-4o-2024-08-06") == 16384
    assert table.output_limit("claude-sonnet-4-5-20250929") == 64000
    assert table.output_limit("my-local-model") is None


def test_a_reported_cost_prices_only_a_model_no_table_knows(table: PriceTable) -> None:
    known = Usage("gpt-4o", 1000, 0, reported_cost_usd=Decimal("0.5"))
    unknown = Usage("my-local-model", 1000, 0, reported_cost_usd=Decimal("0.5"))
    assert table.cost_micros(known) == 2500
    assert table.cost_micros(unknown) == 500_000


def _prices(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "agentfuse", "prices", *args], capture_output=True, text=True, cwd=cwd, check=False
    )


def test_prices_json_names_the_source_of_one_model() -> None:
    done = _prices("--json", "gpt-4o-2024-08-06")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["as_of"] == PriceTable.default().as_of
    (row,) = data["models"]
    assert row == {
        "model": "gpt-4o-2024-08-06",
        "matched": "gpt-4o",
        "source": "table",
        "input": "2.50",
        "output": "10.00",
        "cached_input": "1.25",
        "max_output": 16384,
        "long_context": None,
    }


def test_prices_with_a_policy_shows_its_override(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        "version: 1\nagent: a\nbudget: {run_usd: 1}\nbreaker: {failure_threshold: 3, cooldown_s: 60}\n"
        "fail_fast: {halt_on: [PermissionError]}\npricing:\n  gpt-4o: {input: 1.00, output: 2.00}\n"
    )
    done = _prices("--json", "--policy", "policy.yaml", "gpt-4o", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)["models"]
    assert (row["source"], row["input"], row["output"]) == ("policy", "1.00", "2.00")


def test_prices_of_an_unknown_model_exits_1_with_a_message() -> None:
    done = _prices("my-local-model")
    assert done.returncode == 1
    assert "my-local-model" in done.stderr and "pricing:" in done.stderr
    assert "Traceback" not in done.stderr


def test_prices_lists_every_model_as_text() -> None:
    done = _prices()
    assert done.returncode == 0, done.stderr
    assert "gpt-4o" in done.stdout and "claude-sonnet-4-5" in done.stdout
    assert "2025-12-01" in done.stdout


# -- the optional price library (agentfuse[prices]: genai-prices) -----------------------------------


@pytest.fixture(scope="module")
def genai_prices() -> object:
    return pytest.importorskip("genai_prices")


@pytest.mark.parametrize(
    "usage",
    [
        Usage("deepseek-chat", 1000, 200, cached_input_tokens=600),
        Usage("openrouter/deepseek/deepseek-chat", 1000, 200),
        Usage("gemini-3-pro-preview", 150_000, 2000, cached_input_tokens=50_000),
        Usage("gemini-3-pro-preview", 250_000, 2000, cached_input_tokens=50_000),  # its higher tier
        Usage("claude-sonnet-5", 5000, 300, cached_input_tokens=1000, cache_write_input_tokens=3000,
              cache_write_1h_input_tokens=1000),
    ],
    ids=["cached", "prefixed", "short-prompt", "long-prompt", "cache-writes"],
)
def test_the_library_prices_a_model_the_table_does_not_know_as_the_library_does(
    genai_prices: object, usage: Usage
) -> None:
    from genai_prices import Usage as LibraryUsage, calc_price

    assert PriceTable.shipped().cost_micros(usage) is None
    expected = calc_price(  # the library's cache_write_tokens are every write, 1-hour ones included
        LibraryUsage(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens,
                     cache_read_tokens=usage.cached_input_tokens, cache_write_tokens=usage.cache_write_input_tokens,
                     cache_write_1h_tokens=usage.cache_write_1h_input_tokens),
        usage.model.rsplit("/", 1)[-1],
    ).total_price
    assert PriceTable.default().cost_micros(usage) == int(-(-expected * 1_000_000 // 1))


def test_a_library_price_never_replaces_a_policy_or_table_price(genai_prices: object) -> None:
    table = PriceTable.default().with_overrides([("deepseek-chat", ModelPrice(Decimal("0.01"), Decimal("0.02")))])
    assert table.cost_micros(Usage("deepseek-chat", 1000, 100)) == 1000 * 0.01 + 100 * 0.02
    assert table.source("deepseek-chat") == "policy"
    assert table.cost_micros(Usage("gpt-4o", 1000, 100)) == 1000 * 2.5 + 100 * 10
    assert table.source("gpt-4o") == "table"
    assert table.source("my-local-model") is None


def test_a_library_price_comes_before_a_client_reported_cost(genai_prices: object) -> None:
    reported = Usage("deepseek-chat", 1000, 0, reported_cost_usd=Decimal("5"))
    assert PriceTable.default().cost_micros(reported) == 135  # 1000 x $0.135 per 1M
    assert PriceTable.shipped().cost_micros(reported) == 5_000_000


def test_a_guard_settles_a_library_priced_call(genai_prices: object, tmp_path: Path) -> None:
    guard = enforce(make_policy(budget={"run_usd": 10}), store=store_url(tmp_path / "state.db"))
    with guard.step(estimate_usd="0.5") as step:
        step.record({"model": "deepseek-chat", "usage": {"prompt_tokens": 1000, "completion_tokens": 100}})
    guard.flush()
    run = guard.store.get_run(guard.run_id)
    guard.close()
    assert run is not None and (run.spent_micros, run.reserved_micros) == (135 + 55, 0)


def test_prices_names_the_library_as_the_source(genai_prices: object) -> None:
    done = _prices("--json", "deepseek-chat")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    version = genai_prices.__version__  # type: ignore[attr-defined]
    assert data["library"] == {"name": "genai-prices", "version": version}
    (row,) = data["models"]
    assert (row["source"], row["matched"], row["input"], row["output"]) == (
        "genai-prices", "deepseek:deepseek-chat", "0.135", "0.55"
    )
    text = _prices("deepseek-chat")
    assert "genai-prices" in text.stdout and "for models not in it" in text.stdout


def test_without_the_library_prices_suggests_it_for_an_unknown_model() -> None:
    hide = ("import sys; sys.modules['genai_prices'] = None;"
            " from agentfuse.cli import main; sys.exit(main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", hide, "prices", "deepseek-chat"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 1, done.stdout
    assert "pip install 'agentfuse[prices]'" in done.stderr and "Traceback" not in done.stderr
