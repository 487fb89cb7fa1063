"""Price table fixes: Anthropic 1-hour cache writes, Gemini Pro's long-prompt tier, output limits,
which price wins; and the ``agentfuse prices`` command."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from agentfuse.runtime.policy import ModelPrice
from agentfuse.runtime.pricing import PriceTable, Usage, extract_usage


@pytest.fixture(scope="module")
def table() -> PriceTable:
    return PriceTable.default()


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
