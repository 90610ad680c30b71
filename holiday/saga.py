"""The saga mechanics: run steps in order, undo the effects newest first.

A step's undo is registered *before* the step runs. A step that fails
part-way (its row written, its reply lost) is therefore undone too, which is
why every undo must be idempotent and must accept "nothing to undo".

Durability is not handled here: inside a Restate handler each action and
undo is a durable call or `ctx.run`, so after a crash Restate replays this
same code against its journal and the saga resumes where it stopped, with
no completed undo run twice and none skipped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from restate import TerminalError

T = TypeVar("T")
UNDO_ATTEMPTS = 3


@dataclass(frozen=True)
class Compensation:
    """A named undo action."""

    name: str
    action: Callable[[], Awaitable[object]]
    ref: str | None = None


class SagaListener(Protocol):
    """Told of every step and compensation, e.g. to keep the trip's record."""

    def started(self, name: str, ref: str | None, compensating: bool) -> None: ...

    def finished(self, name: str, error: str | None, compensating: bool) -> None: ...


class Saga:
    """Steps and their compensations for one business transaction."""

    def __init__(self, listener: SagaListener | None = None) -> None:
        self._undo: list[Compensation] = []
        self._listener = listener
        self.failed_step: str | None = None

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[T]],
        *,
        undo: Compensation | None = None,
        ref: str | None = None,
    ) -> T:
        """Run `action`; on a terminal error remember `name` as the failed step and re-raise.

        Only `TerminalError` counts as failure: anything else is a transient
        fault that Restate retries, and the SDK's own control-flow exceptions
        must pass through untouched.
        """
        if undo is not None:
            self._undo.append(undo)
        self._notify_started(name, ref, compensating=False)
        try:
            result = await action()
        except TerminalError as err:
            self.failed_step = name
            self._notify_finished(name, err.message, compensating=False)
            raise
        self._notify_finished(name, None, compensating=False)
        return result

    async def compensate(self) -> list[str]:
        """Run every registered undo, newest first; return their names in the order run.

        A transient error in an undo propagates, so Restate retries the
        invocation and, on replay, continues with the same undo: none is skipped.
        A `TerminalError` from an undo is most likely a cancellation of the
        invocation arriving mid-compensation (Restate raises it once, at the next
        await, and cancels the undo's call with it): the undo is asked again, so
        a cancelled trip is still undone in full. An undo that keeps failing
        terminally is a bug; after `UNDO_ATTEMPTS` its error propagates.
        """
        ran: list[str] = []
        while self._undo:
            undo = self._undo[-1]
            self._notify_started(undo.name, undo.ref, compensating=True)
            for attempt in range(1, UNDO_ATTEMPTS + 1):
                try:
                    await undo.action()
                    break
                except TerminalError:
                    if attempt == UNDO_ATTEMPTS:
                        raise
            self._undo.pop()
            self._notify_finished(undo.name, None, compensating=True)
            ran.append(undo.name)
        return ran

    def _notify_started(self, name: str, ref: str | None, compensating: bool) -> None:
        if self._listener is not None:
            self._listener.started(name, ref, compensating)

    def _notify_finished(self, name: str, error: str | None, compensating: bool) -> None:
        if self._listener is not None:
            self._listener.finished(name, error, compensating)
