"""Argument types shared by every ``agentfuse`` command: numbers that are finite and in range.

An option typed with :func:`number` or :func:`duration` refuses ``nan``, ``inf``, values out of
range and anything that is not a number with an argparse error (exit 2, one line, no
traceback), so no command ever computes with, stores or prints a non-finite figure. Options
never use ``type=int`` or ``type=float`` directly (a test walks every command's options).
"""

from __future__ import annotations

import argparse
import dataclasses
import math

DURATION_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _shown(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else f"{limit:g}"


@dataclasses.dataclass(frozen=True)
class Number:
    """An argparse ``type``: a finite number in [minimum, maximum] (``above_minimum``: the minimum
    itself excluded); ``integer`` takes whole numbers only and returns an ``int``."""

    minimum: float
    maximum: float
    integer: bool = False
    above_minimum: bool = False
    what: str = "the value"

    def __call__(self, text: str) -> float:
        try:
            value: float = int(text.strip(), 10) if self.integer else float(text)
        except ValueError:
            kind = "a whole number" if self.integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind} for {self.what}, got {text!r}") from None
        if not math.isfinite(value) or not self.minimum <= value <= self.maximum or (
            self.above_minimum and value == self.minimum
        ):
            low = "more than" if self.above_minimum else "at least"
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: {self.what} must be {low} {_shown(self.minimum)}"
                f" and at most {_shown(self.maximum)}"
            )
        return value


@dataclasses.dataclass(frozen=True)
class Duration:
    """An argparse ``type``: a positive duration in seconds, written ``600``, ``90s``, ``30m``,
    ``12h``, ``7d`` or ``2w``, at most ``maximum_s``."""

    maximum_s: float
    what: str = "the duration"

    def __call__(self, text: str) -> float:
        cleaned = text.strip().lower()
        scale = DURATION_UNITS_S.get(cleaned[-1:])
        try:
            value = float(cleaned[:-1] if scale else cleaned) * (scale or 1.0)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration for {self.what}; write e.g. 7d, 12h, 30m, 90s or 600 (seconds)"
            )
        if not 0 < value <= self.maximum_s:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: {self.what} must be more than 0 and at most"
                f" {_shown(self.maximum_s)}s ({_shown(self.maximum_s / 86400)}d)"
            )
        return value


def number(
    *, minimum: float, maximum: float, integer: bool = False, above_minimum: bool = False, what: str = "the value"
) -> Number:
    """See :class:`Number`."""
    return Number(minimum, maximum, integer, above_minimum, what)


def duration(*, maximum_s: float, what: str = "the duration") -> Duration:
    """See :class:`Duration`."""
    return Duration(maximum_s, what)
