"""The saga mechanics: run steps in order (independent ones at once), undo the effects newest first.

A step's undo is registered *before* the step runs. A step that fails
part-way (its row written, its reply lost) is therefore undone too, which is
why every undo must be idempotent and must accept "nothing to undo".

Undo goes round by round, newest round first: the undos of steps that ran
together (a flight and a car held at once) run together too, since neither
depends on the other; a round waits for the round after it to be undone.

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
        self._undo: list[list[Compensation]] = []  # one list per round of steps
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
        undos = [step.undo for step in steps if step.undo is not None]
        if undos:
            self._undo.append(undos)
        for step in steps:
            self._notify_started(step.name, step.ref, compensating=False)
        self._checkpoint()
        errors = await _settle_all([step.action() for step in steps])
        for step, error in zip(steps, errors, strict=True):
            self._notify_finished(step.name, error.message if error else None, compensating=False)
        failure = next(((step, error) for step, error in zip(steps, errors, strict=True) if error), None)
        if failure is not None:
            self.failed_step = failure[0].name
            raise failure[1]

    async def compensate(self) -> list[str]:
        """Run every registered undo, newest round first; return their names, newest first.

        The undos of one round start together, newest first, and all are
        awaited before the next (older) round starts.
        A transient error in an undo propagates, so Restate retries the
        invocation and, on replay, continues with the same round: none is skipped.
        A `TerminalError` from an undo is most likely a cancellation of the
        invocation arriving mid-compensation (Restate raises it once, at the next
        await, and cancels the undo's call with it): the undo is asked again, so
        a cancelled trip is still undone in full. An undo that keeps failing
        terminally is a bug; after `UNDO_ATTEMPTS` its error propagates.
        """
        ran: list[str] = []
        while self._undo:
            undos = self._undo[-1][::-1]
            for undo in undos:
                self._notify_started(undo.name, undo.ref, compensating=True)
            self._checkpoint()
            errors = await _settle_all([undo.action() for undo in undos])
            for undo, error in zip(undos, errors, strict=True):
                if error is not None:
                    await _ask_again(undo)
                self._notify_finished(undo.name, None, compensating=True)
                ran.append(undo.name)
            self._undo.pop()
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


async def _settle_all(running: list[Awaitable[object]]) -> list[TerminalError | None]:
    """Await actions already started, the last started first; return each one's terminal error, if any.

    The last started is the likeliest to answer last, and by the time it has,
    the others mostly have too. That matters in lambda mode: each wait for an
    answer not yet there suspends the function, and that answer invokes it
    again. Awaited in the order started, a round of two cost about 1.75
    invocations; the last started first, about 1.25.
    """
    errors: list[TerminalError | None] = [None] * len(running)
    for index in reversed(range(len(running))):
        try:
            await running[index]
        except TerminalError as err:
            errors[index] = err
    return errors


async def _ask_again(undo: Compensation) -> None:
    """An undo refused terminally once: ask again, up to `UNDO_ATTEMPTS` in all, then let the error through."""
    for attempt in range(2, UNDO_ATTEMPTS + 1):
        try:
            await undo.action()
            return
        except TerminalError:
            if attempt == UNDO_ATTEMPTS:
                raise
