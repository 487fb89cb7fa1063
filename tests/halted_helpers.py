"""Shared set-up of the refusal tests: instrumented guards (``instrument_helpers.Guards``) that
write their events to one JSONL file, so a test can count the ``refused`` lines."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from agentfuse.runtime.guard import Guard
from agentfuse.runtime.policy import Events
from instrument_helpers import Guards, standin  # noqa: F401 - re-exported fixture


class Fuses(Guards):
    """Instrumented guards on one SQLite file whose events go to one JSONL file."""

    def __init__(self, tmp_path: Path) -> None:
        super().__init__(tmp_path)
        self.events = tmp_path / "events.jsonl"

    def __call__(self, budget: Mapping[str, Any] | None = None, *, instrument: bool = True, **policy: Any) -> Guard:
        policy.setdefault("events", Events(path=str(self.events)))
        return super().__call__(budget, instrument=instrument, **policy)

    def lines(self, event: str | None = None) -> list[dict[str, Any]]:
        """The event log's lines (of one ``event`` kind)."""
        if not self.events.exists():
            return []
        found = [json.loads(line) for line in self.events.read_text().splitlines() if line.strip()]
        return [line for line in found if event is None or line["event"] == event]

    def refused(self) -> int:
        return len(self.lines("refused"))


@pytest.fixture()
def fuses(tmp_path: Path) -> Iterator[Fuses]:
    made = Fuses(tmp_path)
    yield made
    made.close()
