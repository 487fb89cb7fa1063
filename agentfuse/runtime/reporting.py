"""Where a guard's decisions go: one JSONL event per decision, an alert for what needs a person.

:class:`EventSink` and :class:`AlertSink` are what a guard needs of an event log and an alerter
(:class:`~agentfuse.runtime.events.EventLog` and :class:`~agentfuse.runtime.alerts.Alerter` are
the implementations); :class:`Reporter` binds them to one run, for the guard and its gate alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

EVENT_FIELDS = frozenset({"ts", "agent", "run", "event", "reason"})
"""Names an event's own fields take; a figure with one of them is renamed ``figure_<name>``."""


class EventSink(Protocol):
    """A structured event log: lines made now, written later in one go, or emitted at once."""

    @property
    def path(self) -> Path | None:
        """Where the lines go; ``None``: nowhere (a guard then makes none)."""

    def line(
        self, event: str, *, agent: str, run: str | None, reason: str | None = None, **figures: Any
    ) -> dict[str, Any]:
        """One event, timestamped now, not yet written."""

    def write(self, records: list[dict[str, Any]], *, now: float | None = None) -> None:
        """Append lines made by :meth:`line`, in order, whole lines only; never raises."""

    def emit(
        self, event: str, *, agent: str, run: str | None, reason: str | None = None, **figures: Any
    ) -> dict[str, Any]:
        """Write one event line now and return it as written."""

    def close(self) -> None:
        """Flush and close; later lines are not written."""


class AlertSink(Protocol):
    """Sends alerts to a person (a webhook), without waiting and without raising."""

    def send(self, kind: str, title: str, body: str, *, dedupe_key: str | None = None, run: str | None = None) -> None:
        """Queue one alert; the same ``dedupe_key`` is sent once per de-duplication window."""

    def close(self, timeout: float = 2.0) -> None:
        """Deliver what is queued (for at most ``timeout`` seconds) and stop."""


class Reporter:
    """One run's events and alerts: the agent and run are filled in, reserved names renamed.

    ``log`` is the event log when it writes somewhere, else ``None`` (events are then skipped
    before they are built).
    """

    def __init__(self, agent: str, run_id: str, events: EventSink | None, alerter: AlertSink | None) -> None:
        self.agent = agent
        self.run_id = run_id
        self.log = events if events is not None and events.path is not None else None
        self.alerter = alerter

    def emit(self, event: str, *, reason: str | None = None, **figures: Any) -> None:
        """One event line of this run, written now."""
        if self.log is not None:
            safe = {(f"figure_{key}" if key in EVENT_FIELDS else key): value for key, value in figures.items()}
            self.log.emit(event, agent=self.agent, run=self.run_id, reason=reason, **safe)

    def alert(self, kind: str, title: str, body: str, *, dedupe_key: str | None = None) -> None:
        """One alert of this run's agent (de-duplicated per agent by ``dedupe_key``, else ``kind``)."""
        if self.alerter is not None:
            self.alerter.send(kind, title, body, dedupe_key=f"{self.agent}:{dedupe_key or kind}", run=self.run_id)
