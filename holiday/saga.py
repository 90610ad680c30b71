"""The saga mechanics: run steps in order (independent ones at once), undo the effects newest first.

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
from typing import Protocol

from restate import TerminalError

UNDO_ATTEMPTS = 3


@dataclass(frozen=True)
class Compensation:
    """A named undo action."""

    name: str
    action: Callable[[], Awaitable[object]]
    ref: str | None = None


@dataclass(frozen=True)
class Step:
    """A forward action, with the undo to register before it runs."""

    name: str
    action: Callable[[], Awaitable[object]]
    undo: Compensation | None = None
    ref: str | None = None


class SagaListener(Protocol):
    """Told of every step and compensation, e.g. to keep the trip's record."""

    def started(self, name: str, ref: str | None, compensating: bool) -> None: ...

    def finished(self, name: str, error: str | None, compensating: bool) -> None: ...

    def checkpoint(self) -> None:
        """The saga is about to wait: keep what it has told so far.

        Called once before each round of steps and before each undo, not after
        them: the next checkpoint follows with nothing awaited in between, so
        the news of a settled round or undo is kept with it. After the saga
        returns or raises, keeping the rest is the caller's job.
        """


class Saga:
    """Steps and their compensations for one business transaction."""

    def __init__(self, listener: SagaListener | None = None) -> None:
        self._undo: list[Compensation] = []
        self._listener = listener
        self.failed_step: str | None = None

    async def step(
        self,
        name: str,
        action: Callable[[], Awaitable[object]],
        *,
        undo: Compensation | None = None,
        ref: str | None = None,
    ) -> None:
        """Run `action`; on a terminal error remember `name` as the failed step and re-raise.

        Only `TerminalError` counts as failure: anything else is a transient
        fault that Restate retries, and the SDK's own control-flow exceptions
        must pass through untouched.
        """
        await self.together(Step(name, action, undo, ref))

    async def together(self, *steps: Step) -> None:
        """Run steps that do not depend on each other at once, as one step of the saga.

        Every undo is registered and every action started, in the order given,
        before any is awaited: a Restate call is sent when it is made, so the
        calls run concurrently, while the journal sees them in a fixed order.
        If one fails terminally the others are still awaited, so no undo races
        a step still running; then the first failure (in the order given) is
        raised, and its step is the saga's failed step.
        """
        for step in steps:
            if step.undo is not None:
                self._undo.append(step.undo)
            self._notify_started(step.name, step.ref, compensating=False)
        self._checkpoint()
        running = [step.action() for step in steps]
        failure: TerminalError | None = None
        for step, outcome in zip(steps, running, strict=True):
            try:
                await outcome
            except TerminalError as err:
                if failure is None:
                    failure, self.failed_step = err, step.name
                self._notify_finished(step.name, err.message, compensating=False)
                continue
            self._notify_finished(step.name, None, compensating=False)
        if failure is not None:
            raise failure

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
            self._checkpoint()
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

    def _checkpoint(self) -> None:
        if self._listener is not None:
            self._listener.checkpoint()
