"""What a guard tells observers about each guarded call: allowed or refused, then finished.

An observer (the OpenTelemetry emitter in :mod:`agentfuse.runtime.otel`, or your own) is asked
to :meth:`~CallObserver.watch` each call as it enters the gate and gets back a
:class:`CallWatch` for that one call, so it keeps per-call state (a span, a start time) without
writing into the guard's objects. The guard picks its step class once, when it is built
(:class:`ObservedStep` only when it has observers): a guard without observers runs exactly the
code it runs with none of this.

The JSONL event log is not an observer: its lines follow the store's transactions (a deferred
success is logged when the store applies it, batched with the next gate), while an observer
follows the caller's call, from the gate to the end of the ``with`` block.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import TracebackType
from typing import Protocol

from agentfuse.runtime.step import Step


class CallWatch(Protocol):
    """One guarded call being watched. Its methods must not raise into the agent."""

    def allowed(self, step: Step) -> None:
        """The gate let the call through (``step.model`` is the model the degrade ladder chose)."""

    def refused(self, step: Step, error: BaseException) -> None:
        """The gate raised ``error`` (a :class:`~agentfuse.Halted`, usually); the call is not made."""

    def finished(self, step: Step, error: BaseException | None) -> None:
        """The call's block ended (``error`` is what it raised); ``step.cost_micros`` and
        ``step.usage`` hold what :meth:`Step.record` recorded, if anything."""


class CallObserver(Protocol):
    """Watches every guarded call of the guards it is given to (``enforce(observers=...)``)."""

    def watch(self, step: Step) -> CallWatch:
        """Start watching ``step``, which is about to enter the gate."""


class ObservedStep(Step):
    """A :class:`Step` that tells its guard's observers."""

    _watches: tuple[CallWatch, ...] = ()

    @contextlib.contextmanager
    def _watching_gate(self) -> Iterator[None]:
        """Start the observers' watches, then tell them what the gate inside decided."""
        self._watches = tuple(observer.watch(self) for observer in self.guard.observers)
        try:
            yield
        except BaseException as error:
            for watch in self._watches:
                watch.refused(self, error)
            raise
        for watch in self._watches:
            watch.allowed(self)

    def _finished(self, error: BaseException | None) -> None:
        for watch in self._watches:
            watch.finished(self, error)

    def __enter__(self) -> Step:
        with self._watching_gate():
            super().__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            super().__exit__(exc_type, exc, tb)
        finally:
            self._finished(exc)

    async def __aenter__(self) -> Step:
        with self._watching_gate():
            await super().__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        error = exc
        try:
            await super().__aexit__(exc_type, exc, tb)
        except BaseException as raised:  # the deadline turns a cancellation into DeadlineExceeded
            error = raised
            raise
        finally:
            self._finished(error)
