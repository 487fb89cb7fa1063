"""``agentfuse prices [--json] [--policy FILE] [MODEL]``: what a model costs and where the price comes from."""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from typing import Any

from agentfuse.runtime import config
from agentfuse.runtime.errors import PolicyError
from agentfuse.runtime.policy import ModelPrice
from agentfuse.runtime.policy_loader import load_policy
from agentfuse.runtime.pricing import PriceTable


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "prices",
        help="show what a model costs (USD per 1M tokens) and where the price comes from",
        description="Show the price agentfuse charges for a model: the policy's `pricing:` entry"
        " (with --policy), else the table shipped with agentfuse (see its date), else genai-prices"
        " when it is installed (pip install 'agentfuse[prices]').",
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="a model id as the SDK sends it (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--policy", metavar="FILE", help="apply this policy's pricing: overrides (default: $AGENTFUSE_POLICY, if set)"
    )
    parser.set_defaults(func=show_prices)


def _usd(value: Decimal | None) -> str | None:
    if value is None:
        return None
    return f"{value:.2f}" if value == value.quantize(Decimal("0.01")) else f"{value.normalize():f}"


def _price_fields(price: ModelPrice) -> dict[str, str | None]:
    return {"input": _usd(price.input), "output": _usd(price.output), "cached_input": _usd(price.cached_input)}


def _row(table: PriceTable, model: str) -> dict[str, Any] | None:
    source = table.source(model)
    price = table.price(model)
    if source is None or price is None:
        return None
    found = table.library_price(model)
    tier = table.tier(model)
    return {
        "model": model,
        "matched": table.key(model) if found is None else f"{found.provider}:{found.model}",
        "source": source,
        **_price_fields(price),
        "max_output": table.output_limit(model),
        "long_context": None if tier is None else {"above": tier.above, **_price_fields(tier.price)},
    }


def _library(table: PriceTable) -> dict[str, Any] | None:
    if table.library is None:
        return None
    from agentfuse.runtime.price_library import NAME

    return {"name": NAME, "version": table.library.version}


def show_prices(args: argparse.Namespace) -> int:
    table = PriceTable.default()
    policy_file = config.policy_path(args.policy)
    if policy_file is not None:
        try:
            table = table.with_overrides(load_policy(policy_file).pricing)
        except PolicyError as exc:
            print(str(exc), file=sys.stderr)
            return 2
    models = [args.model] if args.model else table.models()
    rows = [row for row in (_row(table, model) for model in models) if row is not None]
    library = _library(table)
    if args.model and not rows:
        hint = "" if library else "; or install a maintained price list: pip install 'agentfuse[prices]'"
        print(
            f"agentfuse prices: no price for {args.model!r}; add it to the policy under"
            f" `pricing:` (e.g. `pricing: {{{args.model}: {{input: 1.00, output: 2.00}}}}`, USD per 1M tokens)"
            f"{hint}",
            file=sys.stderr,
        )
        return 1
    if args.json:
        document = {"as_of": table.as_of, "unit": "USD per 1M tokens", "library": library, "models": rows}
        print(json.dumps(document, indent=2, allow_nan=False))
        return 0
    also = f"; then {library['name']} {library['version']} for models not in it" if library else ""
    print(f"USD per 1M tokens; shipped table as of {table.as_of}{also}")
    header = f"{'model':<28} {'input':>8} {'output':>8} {'cached':>8} {'max out':>8}  source"
    print(header)
    for row in rows:
        name = row["model"] if row["model"] == row["matched"] else f"{row['model']} ({row['matched']})"
        extra = ""
        if row["long_context"]:
            tier = row["long_context"]
            extra = f"; above {tier['above']:,} prompt tokens: {tier['input']} / {tier['output']}"
        print(
            f"{name:<28} {row['input']:>8} {row['output']:>8} {row['cached_input'] or '-':>8}"
            f" {row['max_output'] or '-':>8}  {row['source']}{extra}"
        )
    return 0
