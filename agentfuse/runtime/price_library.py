"""The optional price library (``pip install 'agentfuse[prices]'``: genai-prices).

It is consulted for a model that neither the policy's ``pricing:`` nor the shipped table
knows, so a price from it never replaces (and never lowers) one of theirs, and upgrading it
never changes what an already-priced model costs. Its token prices (input, output, cache
reads, cache writes, each with its long-prompt tiers) are read once per model and applied
with agentfuse's own exact arithmetic (:mod:`agentfuse.runtime.pricing`); prices per request,
per search or per second of audio are not, since the usage agentfuse reads has no such
counts. The library is imported on the first model it is asked about, never by ``import
agentfuse`` (it takes about a second to import).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from agentfuse.runtime.pricing import CACHE_WRITE_1H_MULTIPLIER, CACHE_WRITE_MULTIPLIER, Rates, name_candidates

NAME = "genai-prices"
MODULE = "genai_prices"
_UNITS = {
    "input": "input_mtok",
    "output": "output_mtok",
    "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "cache_write_1h": "cache_write_1h_mtok",
}
"""Our rate -> the library's price key (USD per 1M tokens)."""


@dataclasses.dataclass(frozen=True)
class LibraryPrice:
    """A model's token prices from the library: the base rates, then higher ones for long prompts."""

    provider: str
    model: str
    tiers: tuple[tuple[int, Rates], ...]
    """(above, rates) by ``above`` ascending, the first ``(0, base)``: a prompt longer than
    ``above`` tokens costs ``rates`` (the library's threshold pricing, as the table's tiers)."""

    @property
    def base(self) -> Rates:
        return self.tiers[0][1]

    def rates(self, input_tokens: int) -> Rates:
        """The rates of a call whose prompt has ``input_tokens`` tokens."""
        chosen = self.tiers[0][1]
        for above, rates in self.tiers[1:]:
            if input_tokens > above:
                chosen = rates
        return chosen


class PriceLibrary:
    """Look-ups in the installed library, cached per model name."""

    def __init__(self) -> None:
        self._found: dict[str, LibraryPrice | None] = {}
        self._lock = threading.Lock()

    @staticmethod
    def installed() -> PriceLibrary | None:
        """The library when it is installed (found without importing it), else None."""
        try:
            found = importlib.util.find_spec(MODULE) is not None
        except (ImportError, ValueError):
            found = False
        return PriceLibrary() if found else None

    @property
    def version(self) -> str | None:
        from importlib import metadata

        try:
            return metadata.version(NAME)
        except metadata.PackageNotFoundError:
            return None

    def price(self, model: str) -> LibraryPrice | None:
        """The library's price of ``model`` (provider and cloud prefixes tried off), or None."""
        if model in self._found:
            return self._found[model]
        with self._lock:
            try:
                found = _look_up(name_candidates(model, keep_original=True))
            except Exception:  # a broken library prices nothing: the call settles at its reservation
                found = None
            self._found[model] = found
        return found


def _look_up(names: Iterable[str]) -> LibraryPrice | None:
    from genai_prices import data_snapshot

    snapshot = data_snapshot.get_snapshot()
    for name in names:
        try:
            provider, model = snapshot.find_provider_model(name, None, None, None)
        except LookupError:
            continue
        return _convert(provider.id, model.id, model.get_prices(datetime.now(tz=timezone.utc)))
    return None


def _convert(provider: str, model: str, prices: Any) -> LibraryPrice | None:
    values = {rate: getattr(prices, key, None) for rate, key in _UNITS.items()}
    if values["input"] is None:
        return None  # not priced per token
    starts = sorted({tier.start for value in values.values() for tier in getattr(value, "tiers", ())})
    tiers = [(0, _rates(values, 0))] + [(start, _rates(values, start + 1)) for start in starts]
    return LibraryPrice(provider, model, tuple(tiers))


def _at(value: Any, input_tokens: int) -> Decimal | None:
    """A price at a prompt length: a flat price, or a tiered one's tier for that length."""
    if value is None:
        return None
    tiers = getattr(value, "tiers", None)
    if tiers is None:
        return _checked(value)
    price = value.base
    for tier in sorted(tiers, key=lambda tier: tier.start):
        if input_tokens > tier.start:
            price = tier.price
    return _checked(price)


def _checked(value: Any) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
        raise ValueError(f"not a price: {value!r}")
    return value


def _rates(values: dict[str, Any], input_tokens: int) -> Rates:
    price = _at(values["input"], input_tokens)
    assert price is not None
    cached = _at(values["cached_input"], input_tokens)
    write = _at(values["cache_write"], input_tokens)
    write_1h = _at(values["cache_write_1h"], input_tokens)
    return Rates(
        input=price,
        output=_at(values["output"], input_tokens) or Decimal(0),
        cached_input=price if cached is None else cached,
        cache_write=price * CACHE_WRITE_MULTIPLIER if write is None else write,
        cache_write_1h=price * CACHE_WRITE_1H_MULTIPLIER if write_1h is None else write_1h,
    ).checked()
