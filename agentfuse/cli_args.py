"""Argument types shared by every ``agentfuse`` command: numbers that are finite and in range.

An option built with :func:`number` or :func:`duration` refuses ``nan``, ``inf``, values out of
range and anything that is not a number with an argparse error (exit 2, one line, no
traceback), so no command ever computes with, stores or prints a non-finite figure.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

DURATION_UNITS_S = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def _shown(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else f"{limit:g}"


def _range_text(minimum: float, maximum: float, above_minimum: bool) -> str:
    low = f"more than {_shown(minimum)}" if above_minimum else f"at least {_shown(minimum)}"
    return f"{low} and at most {_shown(maximum)}"


def number(
    *, minimum: float, maximum: float, integer: bool = False, above_minimum: bool = False, what: str = "a number"
) -> Callable[[str], float]:
    """An argparse ``type``: a finite number in [minimum, maximum] (``above_minimum``: minimum
    excluded); ``integer`` accepts whole numbers only and returns an ``int``."""

    def parse(text: str) -> float:
        try:
            value: float = int(text, 10) if integer else float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise argparse.ArgumentTypeError(f"expected {kind} ({what}), got {text!r}") from None
        if not math.isfinite(value) or value > maximum or value < minimum or (above_minimum and value == minimum):
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: {what} must be {_range_text(minimum, maximum, above_minimum)}"
            )
        return value

    return parse


def duration(*, maximum_s: float, what: str = "a duration") -> Callable[[str], float]:
    """An argparse ``type``: a positive duration in seconds, written ``600``, ``90s``, ``30m``,
    ``12h``, ``7d`` or ``2w``, at most ``maximum_s``."""

    def parse(text: str) -> float:
        cleaned = text.strip().lower()
        scale = DURATION_UNITS_S.get(cleaned[-1:])
        try:
            value = float(cleaned[:-1] if scale else cleaned) * (scale or 1.0)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not a duration ({what}); write e.g. 7d, 12h, 30m, 90s or 600 (seconds)"
            )
        if not 0 < value <= maximum_s:
            raise argparse.ArgumentTypeError(
                f"{text!r} is out of range: {what} must be more than 0 and at most {_shown(maximum_s)}s"
                f" ({_shown(maximum_s / 86400)}d)"
            )
        return value

    return parse
