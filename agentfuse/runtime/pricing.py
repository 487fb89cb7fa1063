"""Token usage -> USD: usage extraction from provider responses and a price table.

Money is exact: prices are ``Decimal`` USD per one million tokens, so a call's cost in integer
micro-dollars is simply ``tokens * price`` summed and rounded up (never under-counted).

Token conventions of :class:`Usage` (providers disagree; this is the one agentfuse uses):
``input_tokens`` counts every prompt token, including those read from or written to a cache;
``cached_input_tokens`` and ``cache_write_input_tokens`` are the parts of it billed at the
cache-read price and at the cache-write price (1.25x input for Anthropic's 5-minute cache,
2x for its 1-hour cache: ``cache_write_1h_input_tokens`` is the 1-hour part of the writes).

Which price a cost uses: the policy's ``pricing:`` entry for the model, else the shipped table
(with its higher tier for long prompts, Gemini Pro above 200k tokens), else the optional price
library when it is installed (``agentfuse[prices]``, see :mod:`agentfuse.runtime.price_library`),
else a cost the client library computed itself (LiteLLM's ``response_cost``); else the cost is
unknown (None). The library comes after the policy and the table, so it only prices models they
do not know: it never lowers a policy's price, and installing or upgrading it never changes what
an already-priced model costs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_CEILING, Decimal
from importlib import resources
from typing import TYPE_CHECKING, Any

from agentfuse.runtime.money import MAX_AMOUNT_USD, MAX_COUNT, checked_count, checked_usd, to_micros
from agentfuse.runtime.policy import ModelPrice

if TYPE_CHECKING:
    from agentfuse.runtime.price_library import LibraryPrice, PriceLibrary

CACHE_WRITE_MULTIPLIER = Decimal("1.25")
"""Cache writes (Anthropic ``cache_creation_input_tokens``, 5-minute cache) cost 1.25x the input price."""
CACHE_WRITE_1H_MULTIPLIER = Decimal("2")
"""Anthropic's 1-hour cache writes (``ephemeral_1h_input_tokens``) cost 2x the input price."""

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4
"""Per-message overhead of chat formats (role and separators), as OpenAI documents it."""
TOKENS_PER_INLINE_DATA = 1000
"""A ``data:`` URL (an inline image or file) is counted as this many tokens, not by its length."""

_SNAPSHOT_BOUNDARY = "-:@"
_CLOUD_VENDOR_PREFIX = re.compile(
    r"^(?:[a-z]{2,4}\.)?(?:anthropic|meta|mistral|amazon|cohere|ai21|google|openai)\."
)
_DOTTED_VERSION = re.compile(r"(?<=\d)\.(?=\d)")


@dataclasses.dataclass(frozen=True)
class Usage:
    """Tokens of one model call (see the module docstring for what each count includes)."""

    model: str | None
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = 0
    cache_write_input_tokens: int = 0
    reported_cost_usd: Decimal | None = None
    """A cost the client library computed itself (LiteLLM's ``response_cost``), if any."""
    cache_write_1h_input_tokens: int = 0
    """The part of ``cache_write_input_tokens`` written to Anthropic's 1-hour cache."""
    problem: str | None = None
    """Why the response's usage cannot be trusted (a negative, non-finite or non-numeric count);
    such a call is settled at its reservation, never priced (see :func:`usage_problem`)."""


_COUNT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cache_write_input_tokens",
    "cache_write_1h_input_tokens",
)


def usage_problem(usage: Usage) -> str | None:
    """Why ``usage`` cannot be priced, or None: each count a whole number from 0 to
    ``MAX_COUNT``, a reported cost a finite amount from 0 to ``MAX_AMOUNT_USD``.

    Pricing a negative count would under-count the call (and a negative cost would switch the
    budget off), so such usage is refused here rather than clamped to zero.
    """
    if usage.problem is not None:
        return usage.problem
    try:
        for name in _COUNT_FIELDS:
            checked_count(getattr(usage, name), name)
        if usage.reported_cost_usd is not None:
            checked_usd(usage.reported_cost_usd, "reported_cost_usd", maximum=MAX_AMOUNT_USD)
    except ValueError as exc:
        return str(exc)
    return None


class _BadCount(ValueError):
    """A usage field that is present but not a whole number from 0 to MAX_COUNT."""


def _field(obj: Any, name: str) -> Any:
    """``obj[name]`` for mappings, ``obj.name`` for SDK objects; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(obj: Any, name: str) -> int:
    """A token count from ``obj``: missing or None -> 0; anything but a count -> ``_BadCount``."""
    value = _field(obj, name)
    if value is None:
        return 0
    if isinstance(value, float) and math.isfinite(value) and 0 <= value <= MAX_COUNT:
        return math.ceil(value)  # a fraction of a token is billed as one
    try:
        return checked_count(value, f"usage {name}")
    except ValueError as exc:
        raise _BadCount(str(exc)) from None


def _present(obj: Any, *names: str) -> bool:
    return any(_field(obj, name) is not None for name in names)


def _reported_cost(response: Any) -> Decimal | None:
    hidden = _field(response, "_hidden_params")
    cost = _field(hidden, "response_cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float, str, Decimal)):
        return None
    try:
        value = Decimal(str(cost))
    except ArithmeticError:
        return None
    return value if value.is_finite() and value >= 0 else None


def _model_name(response: Any) -> str | None:
    model = _field(response, "model") or _field(response, "model_version")
    return model if isinstance(model, str) and model else None


def extract_usage(response: Any) -> Usage | None:
    """Token usage of a provider response, or None when it carries none we recognise.

    Understands OpenAI chat completions and Responses API objects, Anthropic messages, LiteLLM
    ``ModelResponse`` (plus its ``_hidden_params["response_cost"]``), Gemini
    ``usage_metadata``, and plain dicts shaped like any of them. A count that is present but
    negative, NaN, infinite or not a number gives a Usage whose ``problem`` says so.
    """
    if isinstance(response, Usage):
        return response
    try:
        return _extract(response)
    except _BadCount as exc:
        return Usage(model=_model_name(response), input_tokens=0, output_tokens=0, problem=str(exc))


def _extract(response: Any) -> Usage | None:
    model = _model_name(response)
    cost = _reported_cost(response)
    usage = _field(response, "usage")
    if usage is not None and _present(usage, "prompt_tokens", "completion_tokens"):
        # OpenAI chat completions and LiteLLM: prompt_tokens includes the cached tokens.
        return Usage(
            model=model,
            input_tokens=_count(usage, "prompt_tokens"),
            output_tokens=_count(usage, "completion_tokens"),
            cached_input_tokens=_count(_field(usage, "prompt_tokens_details"), "cached_tokens"),
            cache_write_input_tokens=_count(usage, "cache_creation_input_tokens"),
            reported_cost_usd=cost,
        )
    if usage is not None and _present(usage, "cache_read_input_tokens", "cache_creation_input_tokens"):
        # Anthropic: input_tokens excludes cache reads and writes.
        cache_read = _count(usage, "cache_read_input_tokens")
        cache_write = _count(usage, "cache_creation_input_tokens")
        return Usage(
            model=model,
            input_tokens=_count(usage, "input_tokens") + cache_read + cache_write,
            output_tokens=_count(usage, "output_tokens"),
            cached_input_tokens=cache_read,
            cache_write_input_tokens=cache_write,
            reported_cost_usd=cost,
            cache_write_1h_input_tokens=min(
                _count(_field(usage, "cache_creation"), "ephemeral_1h_input_tokens"), cache_write
            ),
        )
    if usage is not None and _present(usage, "input_tokens", "output_tokens"):
        # OpenAI Responses API (and Anthropic without cache fields): input includes cached.
        return Usage(
            model=model,
            input_tokens=_count(usage, "input_tokens"),
            output_tokens=_count(usage, "output_tokens"),
            cached_input_tokens=_count(_field(usage, "input_tokens_details"), "cached_tokens"),
            reported_cost_usd=cost,
        )
    metadata = _field(response, "usage_metadata")
    if metadata is not None and _present(metadata, "prompt_token_count", "candidates_token_count"):
        # Gemini: thinking tokens are billed as output.
        return Usage(
            model=model,
            input_tokens=_count(metadata, "prompt_token_count"),
            output_tokens=_count(metadata, "candidates_token_count")
            + _count(metadata, "thoughts_token_count"),
            cached_input_tokens=_count(metadata, "cached_content_token_count"),
            reported_cost_usd=cost,
        )
    if cost is not None:
        return Usage(model=model, input_tokens=0, output_tokens=0, reported_cost_usd=cost)
    return None


def name_candidates(model: str, *, keep_original: bool = False) -> list[str]:
    """Spellings of ``model`` to look up: provider prefixes and cloud vendor prefixes removed.

    ``openai/gpt-4o``, ``bedrock/us.anthropic.claude-3-5-sonnet-20241022-v2:0`` and
    ``models/gemini-1.5-pro`` all reduce to the bare model id; OpenRouter's
    ``claude-3.5-sonnet`` is also tried as ``claude-3-5-sonnet``. ``keep_original`` tries the
    whole name (lower-cased) first.
    """
    whole = model.strip().lower()
    name = _CLOUD_VENDOR_PREFIX.sub("", whole.rsplit("/", 1)[-1])
    candidates = [whole] if keep_original and whole != name else []
    candidates.append(name)
    if name.startswith("claude") and "." in name:
        candidates.append(_DOTTED_VERSION.sub("-", name))
    return candidates


def _matches(name: str, key: str) -> bool:
    """``key`` is ``name`` or a prefix of it ending at a snapshot boundary (``-``, ``:``, ``@``)."""
    return name == key or (name.startswith(key) and name[len(key)] in _SNAPSHOT_BOUNDARY)


@dataclasses.dataclass(frozen=True)
class Rates:
    """What one token of each kind costs a call, USD per 1M tokens (prices with their multipliers applied)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal
    cache_write: Decimal
    cache_write_1h: Decimal

    @classmethod
    def of(cls, price: ModelPrice) -> Rates:
        """A table or policy price: cache reads at ``cached_input`` (else input), writes 1.25x / 2x input."""
        return cls(
            input=price.input,
            output=price.output,
            cached_input=price.input if price.cached_input is None else price.cached_input,
            cache_write=price.input * CACHE_WRITE_MULTIPLIER,
            cache_write_1h=price.input * CACHE_WRITE_1H_MULTIPLIER,
        )

    def checked(self) -> Rates:
        """These rates, if each is a price from 0 to ``MAX_AMOUNT_USD`` (else ``ValueError``)."""
        for field in dataclasses.fields(self):
            checked_usd(getattr(self, field.name), field.name)
        return self

    def model_price(self) -> ModelPrice:
        return ModelPrice(input=self.input, output=self.output, cached_input=self.cached_input)


@dataclasses.dataclass(frozen=True)
class LongContextTier:
    """A higher price for calls whose prompt is longer than ``above`` tokens (Gemini Pro)."""

    above: int
    price: ModelPrice


def _parse_price(model: str, entry: Any) -> ModelPrice:
    if not isinstance(entry, Mapping):
        raise ValueError(f"price of {model!r} must be a mapping, got {type(entry).__name__}")
    try:
        cached = entry.get("cached_input")
        return ModelPrice(
            input=Decimal(str(entry["input"])),
            output=Decimal(str(entry["output"])),
            cached_input=None if cached is None else Decimal(str(cached)),
        )
    except (KeyError, ArithmeticError) as exc:
        raise ValueError(f"price of {model!r} needs numeric input and output: {exc}") from exc
    except ValueError as exc:  # negative, NaN or too large (ModelPrice checks its numbers)
        raise ValueError(f"price of {model!r}: {exc}") from exc


class PriceTable:
    """Prices per model id (USD per 1M tokens); look-ups match dated snapshots and prefixes."""

    def __init__(
        self,
        prices: Mapping[str, ModelPrice],
        *,
        overridden: Iterable[str] = (),
        as_of: str | None = None,
        tiers: Mapping[str, LongContextTier] | None = None,
        output_limits: Mapping[str, int] | None = None,
        library: PriceLibrary | None = None,
    ) -> None:
        self._prices = {key.strip().lower(): price for key, price in prices.items()}
        self._rates: dict[str, tuple[Rates, LongContextTier | None, Rates | None]] = {}
        self.library = library
        """The optional price library, for models neither the policy nor the table knows."""
        self._tiers = {key.strip().lower(): tier for key, tier in (tiers or {}).items()}
        self._limits = {key.strip().lower(): limit for key, limit in (output_limits or {}).items()}
        self._keys_longest_first = sorted(self._prices, key=len, reverse=True)
        self._overridden = frozenset(key.strip().lower() for key in overridden)
        self._lookups: dict[str, str | None] = {}
        self.as_of = as_of

    @classmethod
    def from_json(cls, text: str) -> PriceTable:
        """A table from the JSON shape of the shipped ``prices.json``."""
        data = json.loads(text)
        models = data.get("models") if isinstance(data, Mapping) else None
        if not isinstance(models, Mapping):
            raise ValueError("price table needs a 'models' mapping")
        prices = {model: _parse_price(model, entry) for model, entry in models.items()}
        tiers = {}
        limits = {}
        for model, entry in models.items():
            tier = entry.get("long_context")
            if isinstance(tier, Mapping):
                tiers[model] = LongContextTier(int(tier["above"]), _parse_price(model, tier))
            if isinstance(entry.get("max_output"), int):
                limits[model] = entry["max_output"]
        return cls(prices, as_of=data.get("as_of"), tiers=tiers, output_limits=limits)

    @classmethod
    def shipped(cls) -> PriceTable:
        """The table shipped with agentfuse (``runtime/data/prices.json``; see its ``as_of``)."""
        text = resources.files("agentfuse.runtime").joinpath("data/prices.json").read_text("utf-8")
        return cls.from_json(text)

    @classmethod
    def default(cls) -> PriceTable:
        """The shipped table, backed by the price library when it is installed."""
        from agentfuse.runtime.price_library import PriceLibrary

        table = cls.shipped()
        table.library = PriceLibrary.installed()
        return table

    def with_overrides(self, pairs: Iterable[tuple[str, ModelPrice]]) -> PriceTable:
        """A new table where the policy's ``pricing:`` entries replace or add models."""
        overrides = {model.strip().lower(): price for model, price in pairs}
        for model, price in overrides.items():
            if not isinstance(price, ModelPrice):
                raise ValueError(f"price of {model!r} must be a ModelPrice, got {type(price).__name__}")
        merged = {**self._prices, **overrides}
        return PriceTable(
            merged,
            overridden=self._overridden | overrides.keys(),
            as_of=self.as_of,
            tiers={key: tier for key, tier in self._tiers.items() if key not in overrides},
            output_limits=self._limits,
            library=self.library,
        )

    def _key_for(self, model: str) -> str | None:
        if model not in self._lookups:
            found = [
                key
                for name in name_candidates(model)
                for key in self._keys_longest_first
                if _matches(name, key)
            ]
            self._lookups[model] = max(found, key=len) if found else None
        return self._lookups[model]

    def price(self, model: str | None) -> ModelPrice | None:
        """The price of ``model`` (longest matching id wins; else the library's), or None when unknown."""
        key = self._key_for(model) if model else None
        if key is not None:
            return self._prices[key]
        found = self.library_price(model)
        return None if found is None else found.base.model_price()

    def library_price(self, model: str | None) -> LibraryPrice | None:
        """The price library's price of ``model`` when neither the policy nor the table knows it."""
        if self.library is None or not model or self._key_for(model) is not None:
            return None
        return self.library.price(model)

    def source(self, model: str | None) -> str | None:
        """Where ``model``'s price comes from: ``policy``, ``table``, ``genai-prices``, or None."""
        key = self.key(model)
        if key is not None:
            return "policy" if key in self._overridden else "table"
        if self.library_price(model) is not None:
            from agentfuse.runtime.price_library import NAME

            return NAME
        return None

    def models(self) -> list[str]:
        """Every model id in the table, sorted."""
        return sorted(self._prices)

    def key(self, model: str | None) -> str | None:
        """The table entry ``model`` matches (longest id wins), or None."""
        return self._key_for(model) if model else None

    def is_override(self, key: str) -> bool:
        """Whether ``key``'s price comes from the policy's ``pricing:``."""
        return key in self._overridden

    def tier(self, model: str | None) -> LongContextTier | None:
        """The (first) long-prompt tier of ``model``'s price, if it has one."""
        key = self.key(model)
        if key is not None:
            return self._tiers.get(key)
        found = self.library_price(model)
        if found is None or len(found.tiers) < 2:
            return None
        above, rates = found.tiers[1]
        return LongContextTier(above, rates.model_price())

    def _rates_for(self, model: str | None, input_tokens: int) -> Rates | None:
        """The rates a call of ``model`` with an ``input_tokens`` prompt pays, or None when unknown."""
        key = self._key_for(model) if model else None
        if key is None:
            found = self.library_price(model)
            return None if found is None else found.rates(input_tokens)
        cached = self._rates.get(key)
        if cached is None:
            tier = self._tiers.get(key)
            cached = self._rates[key] = (
                Rates.of(self._prices[key]), tier, None if tier is None else Rates.of(tier.price)
            )
        rates, tier, tier_rates = cached
        if tier is not None and input_tokens > tier.above:
            assert tier_rates is not None
            return tier_rates
        return rates

    def output_limit(self, model: str | None) -> int | None:
        """The most output tokens ``model`` can produce in one call (the table's ``max_output``)."""
        key = self.key(model)
        return None if key is None else self._limits.get(key)

    def cost_micros(self, usage: Usage) -> int | None:
        """Exact cost of ``usage`` in micro-dollars (rounded up), or None when unknown.

        A price from the policy's ``pricing:`` wins, then the shipped table (its long-prompt
        tier when the prompt is longer), then the price library, then a cost the client
        reported (LiteLLM). Usage with a :func:`usage_problem` raises ``ValueError``: it has no
        trustworthy cost.
        """
        problem = usage_problem(usage)
        if problem is not None:
            raise ValueError(f"usage cannot be priced: {problem}")
        rates = self._rates_for(usage.model, usage.input_tokens)
        if rates is not None:
            return _micros(rates, usage)
        if usage.reported_cost_usd is not None:
            return to_micros(usage.reported_cost_usd)
        return None

    def estimate_micros(self, model: str | None, input_tokens: int, max_tokens: int | None) -> int | None:
        """Worst-case cost of a call: every input token uncached, ``max_tokens`` of output.

        None when the model is unknown or ``max_tokens`` is not given (the output is unbounded).
        A token count that is not a whole number from 0 to ``MAX_COUNT`` raises ``ValueError``.
        """
        input_tokens = checked_count(input_tokens, "input_tokens")
        max_tokens = None if max_tokens is None else checked_count(max_tokens, "max_tokens")
        if max_tokens is None:
            return None
        rates = self._rates_for(model, input_tokens)
        if rates is None:
            return None
        return _ceil(input_tokens * rates.input + max_tokens * rates.output)


def _ceil(micros: Decimal) -> int:
    return int(micros.to_integral_value(rounding=ROUND_CEILING))


def _micros(rates: Rates, usage: Usage) -> int:
    """tokens x (USD per 1M tokens) is already micro-dollars."""
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_input_tokens, usage.input_tokens - cached)
    written_1h = min(usage.cache_write_1h_input_tokens, written)
    uncached = usage.input_tokens - cached - written
    total = (
        uncached * rates.input
        + cached * rates.cached_input
        + (written - written_1h) * rates.cache_write
        + written_1h * rates.cache_write_1h
        + usage.output_tokens * rates.output
    )
    return _ceil(total)


def _chars(value: Any, depth: int = 0) -> tuple[int, int]:
    """(characters, extra tokens) of the text inside messages, strings, dicts and lists."""
    kind = type(value)
    if (kind is list or kind is dict) and depth <= 20:  # the usual message shapes: no checks below
        return _container_chars(value, kind is dict, depth)
    if isinstance(value, str):
        if value.startswith("data:"):
            return 0, TOKENS_PER_INLINE_DATA
        return len(value), 0
    if depth > 20 or value is None or isinstance(value, (bool, int, float)):
        return 0, 0
    if isinstance(value, (bytes, bytearray)):
        return len(value), 0
    is_mapping = isinstance(value, Mapping)
    if is_mapping or isinstance(value, (list, tuple)):
        return _container_chars(value, is_mapping, depth)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return _chars(dump(), depth + 1)
    return len(str(value)), 0


def _container_chars(value: Any, is_mapping: bool, depth: int) -> tuple[int, int]:
    chars, extra = 0, TOKENS_PER_MESSAGE if is_mapping else 0
    for item in value.values() if is_mapping else value:
        if type(item) is str and not item.startswith("data:"):  # most leaves: no call per string
            chars += len(item)
        elif item is not None:
            more, more_extra = _chars(item, depth + 1)
            chars += more
            extra += more_extra
    return chars, extra


def estimate_input_tokens(messages_or_text: Any) -> int:
    """A cheap upper-ish estimate of prompt tokens: characters / 4, rounded up.

    English text averages about four characters per token with OpenAI's and Anthropic's
    tokenizers. Each message (a mapping) adds 4 tokens of chat-format overhead; an inline
    ``data:`` URL counts as 1000 tokens instead of its base64 length. No tokenizer is loaded
    so this costs microseconds; pass ``estimate_usd`` when you need better.
    """
    chars, extra = _chars(messages_or_text)
    return math.ceil(chars / CHARS_PER_TOKEN) + extra
