"""Amounts: USD as exact ``Decimal``, integer micro-dollars, and the bounds both stores keep exactly.

The stores count integer micro-dollars (:func:`to_micros` rounds up, so spend is never
under-counted). Every cap, amount, count and duration a policy or a call may carry is bounded
here, and the ``checked_*`` functions hold a value to those bounds or raise ``ValueError``.
"""

from __future__ import annotations

import math
from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, ROUND_CEILING, Context, Decimal

MICROS_PER_USD = 1_000_000

MAX_CAP_USD = Decimal(1_000_000_000)
"""The largest cap (run, daily, hourly, a child run's): $10^9, i.e. 10^15 micro-dollars.

Both stores must hold every total exactly: SQLite keeps signed 64-bit integers (9.2 * 10^18
micro-dollars), but the Redis scripts compute in Lua doubles, exact for integers only up to
2^53 (about 9.0 * 10^15 micro-dollars, $9.0 * 10^9). A cap stops its total near itself, so a
capped total stays far inside that range (policies/README.md has the whole argument).
"""
MAX_AMOUNT_USD = Decimal(1_000_000)
"""The largest amount of one call (estimate, cost) and price (USD per million tokens): $10^6.

Far below :data:`MAX_CAP_USD`, so a total that no cap watches (a day without a daily cap)
stays exact on Redis for thousands of calls at this maximum.
"""
MAX_AMOUNT_MICROS = int(MAX_AMOUNT_USD) * MICROS_PER_USD
MAX_COUNT = 10**15
"""The largest count (max_steps, thresholds, token counts, token caps): exact in a Redis double."""
MAX_CALL_TOKENS = 10**12
"""The most tokens one call may reserve or be charged (``estimate_tokens``, a call's usage): far
below :data:`MAX_COUNT`, so a token total no cap watches stays exact on Redis for thousands of
calls at this maximum (the argument of :data:`MAX_AMOUNT_USD`, in tokens)."""
MAX_SECONDS = 1_000_000_000.0
"""The longest duration, about 31.7 years: Python's timeouts (``socket``, ``threading``) take at
most about 9.2 * 10^9 s, and Redis ``EXPIRE`` needs whole seconds that fit its clock."""

_EXACT = Context(prec=MAX_PREC, Emin=MIN_EMIN, Emax=MAX_EMAX)
"""Scaling to micro-dollars in this context never rounds or underflows (1e-30 USD -> 1 micro)."""


def to_micros(usd: Decimal | int | float | str) -> int:
    """USD -> integer micro-dollars, rounded up so spend is never under-counted."""
    amount = usd if isinstance(usd, Decimal) else Decimal(str(usd))
    return int(amount.scaleb(6, _EXACT).to_integral_value(ROUND_CEILING, _EXACT))


def from_micros(micros: int) -> Decimal:
    """Integer micro-dollars -> USD as an exact ``Decimal``."""
    return Decimal(micros).scaleb(-6)


def checked_usd(value: object, name: str, *, maximum: Decimal = MAX_AMOUNT_USD) -> Decimal:
    """``value`` (a number or decimal text, never a boolean) as exact USD from 0 to ``maximum``.

    Anything else raises ``ValueError`` naming ``name`` and the value: a negative amount would
    let later calls run free, NaN compares as nothing, and a larger one cannot be kept exactly.
    """
    amount: Decimal | None = None
    if isinstance(value, Decimal):
        amount = value
    elif isinstance(value, int) and not isinstance(value, bool):
        amount = Decimal(value)
    elif isinstance(value, (float, str)):
        try:
            amount = Decimal(value if isinstance(value, str) else str(value))
        except ArithmeticError:
            amount = None
    if amount is None or not amount.is_finite():
        raise ValueError(f"{name} must be a finite number of USD, got {short_repr(value)}")
    if amount < 0:
        raise ValueError(f"{name} must not be negative, got {short_repr(value)}")
    if amount > maximum:
        raise ValueError(f"{name} must be at most {maximum} (USD), got {short_repr(value)}")
    return amount


def usd_micros(value: object, name: str, *, maximum: Decimal = MAX_AMOUNT_USD) -> int:
    """:func:`checked_usd` in integer micro-dollars, rounded up."""
    return to_micros(checked_usd(value, name, maximum=maximum))


def checked_count(value: object, name: str, *, maximum: int = MAX_COUNT) -> int:
    """A whole number (an int, or an integral float) from 0 to ``maximum``; else ``ValueError``."""
    count: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        count = value
    elif isinstance(value, float) and math.isfinite(value) and value.is_integer():
        count = int(value)
    elif isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        count = int(value)
    if count is None:
        raise ValueError(f"{name} must be a whole number, got {short_repr(value)}")
    if not 0 <= count <= maximum:
        raise ValueError(f"{name} must be from 0 to {maximum}, got {short_repr(value)}")
    return count


def checked_seconds(value: object, name: str) -> float:
    """A number of seconds from 0 to :data:`MAX_SECONDS` (as a float); else ``ValueError``."""
    number = None
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        number = float(value) if not isinstance(value, int) or value.bit_length() < 64 else math.inf
    if number is None or not 0 <= number <= MAX_SECONDS:  # NaN fails the comparison too
        raise ValueError(
            f"{name} must be a number of seconds from 0 to {MAX_SECONDS:.0f}, got {short_repr(value)}"
        )
    return number


def short_repr(value: object) -> str:
    """A value for a message: its repr, kept short (a huge int is described, not printed)."""
    if isinstance(value, int) and value.bit_length() > 256:
        return f"a whole number of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
