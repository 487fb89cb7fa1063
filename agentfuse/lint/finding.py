"""The engine's output record, kept free of libcst so that what handles findings (the
runner, the cache, the reporters) loads without the parser."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True, order=True)
class Finding:
    """One problem in one file: a plain, picklable record.

    ``line``/``end_line`` are 1-based; ``col``/``end_col`` are 1-based and ``end_col`` is
    exclusive (the SARIF convention), so ``col`` is what flake8 prints.
    """

    path: str
    line: int
    col: int
    end_line: int
    end_col: int
    code: str
    message: str
