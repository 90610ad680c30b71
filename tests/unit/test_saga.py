"""Unit tests of the saga mechanics, on plain coroutines (no Restate needed for these rules)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from restate import TerminalError

from holiday.saga import Compensation, Saga, Step


class Journal:
    """Records what ran, in order, and what the saga told its listener."""

    def __init__(self) -> None:
        self.effects: list[str] = []
        self.events: list[tuple[str, str, str | None]] = []
        self.checkpoints: list[int] = []  # how many events had been told at each checkpoint

    def act(self, name: str, fail: Exception | None = None) -> Callable[[], Awaitable[str]]:
        async def action() -> str:
            self.effects.append(name)
            if fail is not None:
                raise fail
            return name

        return action

    def started(self, name: str, ref: str | None, compensating: bool) -> None:
        self.events.append(("undo" if compensating else "step", name, "started"))

    def finished(self, name: str, error: str | None, compensating: bool) -> None:
        self.events.append(("undo" if compensating else "step", name, error or "done"))

    def checkpoint(self) -> None:
        self.checkpoints.append(len(self.events))

    def call(self, name: str, fail: Exception | None = None) -> Callable[[], Awaitable[str]]:
        """Like a Restate call: the work starts when the call is made, its answer comes when awaited."""

        def start() -> Awaitable[str]:
            self.effects.append(f"start {name}")

            async def answer() -> str:
                self.effects.append(f"answer {name}")
                if fail is not None:
                    raise fail
                return name

            return answer()

        return start


async def three_steps(saga: Saga, j: Journal, failing: str | None) -> None:
    for name in ("a", "b", "c"):
        await saga.step(
            name,
            j.act(name, TerminalError(f"{name} broke") if name == failing else None),
            undo=Compensation(f"undo {name}", j.act(f"undo {name}")),
        )


def test_undo_runs_newest_first_and_includes_the_failed_step() -> None:
    j = Journal()
    saga = Saga(j)
    with pytest.raises(TerminalError, match="b broke"):
        asyncio.run(three_steps(saga, j, failing="b"))
    assert saga.failed_step == "b"
    # The failed step may have had an effect (a row written, the reply lost): it is undone too.
    assert asyncio.run(saga.compensate()) == ["undo b", "undo a"]
    assert j.effects == ["a", "b", "undo b", "undo a"]


def test_undo_is_registered_before_the_step_runs() -> None:
    j = Journal()
    saga = Saga(j)

    async def step_that_dies_half_way() -> None:
        j.effects.append("half of c")
        raise TerminalError("c lost its reply")

    async def scenario() -> None:
        await saga.step("c", step_that_dies_half_way, undo=Compensation("undo c", j.act("undo c")))

    with pytest.raises(TerminalError):
        asyncio.run(scenario())
    assert asyncio.run(saga.compensate()) == ["undo c"]


def test_nothing_to_undo_when_nothing_ran_and_success_keeps_no_failed_step() -> None:
    j = Journal()
    saga = Saga(j)
    asyncio.run(three_steps(saga, j, failing=None))
    assert saga.failed_step is None
    assert j.effects == ["a", "b", "c"]
    assert asyncio.run(Saga().compensate()) == []


def test_only_terminal_errors_fail_a_step_others_propagate_for_restate_to_retry() -> None:
    j = Journal()
    saga = Saga(j)
    with pytest.raises(ConnectionError):
        asyncio.run(saga.step("a", j.act("a", ConnectionError("table unreachable"))))
    assert saga.failed_step is None  # not a business failure: Restate retries the invocation
    assert ("step", "a", "started") in j.events
    assert not [e for e in j.events if e[2] not in ("started",)]


def test_an_undo_that_fails_stops_compensation_and_stays_pending_for_the_retry() -> None:
    """On a retry Restate replays the handler; the undo that failed must still be there to run."""
    j = Journal()
    saga = Saga(j)
    attempts = {"undo b": 0}

    async def flaky_undo_b() -> None:
        attempts["undo b"] += 1
        if attempts["undo b"] == 1:
            raise ConnectionError("table unreachable")
        j.effects.append("undo b")

    async def scenario() -> None:
        await saga.step("a", j.act("a"), undo=Compensation("undo a", j.act("undo a")))
        await saga.step("b", j.act("b", TerminalError("b broke")), undo=Compensation("undo b", flaky_undo_b))

    with pytest.raises(TerminalError):
        asyncio.run(scenario())
    with pytest.raises(ConnectionError):
        asyncio.run(saga.compensate())
    assert j.effects == ["a", "b"]  # undo a was not run past the failing undo b
    # Resumption: compensating again continues with the same undo, and none is skipped.
    assert asyncio.run(saga.compensate()) == ["undo b", "undo a"]
    assert j.effects == ["a", "b", "undo b", "undo a"]


def test_listener_sees_every_step_and_undo_in_order() -> None:
    j = Journal()
    saga = Saga(j)
    with pytest.raises(TerminalError):
        asyncio.run(three_steps(saga, j, failing="b"))
    asyncio.run(saga.compensate())
    assert j.events == [
        ("step", "a", "started"),
        ("step", "a", "done"),
        ("step", "b", "started"),
        ("step", "b", "b broke"),
        ("undo", "undo b", "started"),
        ("undo", "undo b", "done"),
        ("undo", "undo a", "started"),
        ("undo", "undo a", "done"),
    ]


def test_an_undo_interrupted_by_a_cancellation_is_asked_again() -> None:
    """Restate raises a cancellation once, at the next await: the undo must still happen."""
    j = Journal()
    saga = Saga(j)
    calls = {"undo a": 0}

    async def undo_a() -> None:
        calls["undo a"] += 1
        if calls["undo a"] == 1:
            raise TerminalError("cancelled", status_code=409)
        j.effects.append("undo a")

    async def scenario() -> None:
        await saga.step("a", j.act("a"), undo=Compensation("undo a", undo_a))
        await saga.step("b", j.act("b", TerminalError("b broke")), undo=Compensation("undo b", j.act("undo b")))

    with pytest.raises(TerminalError):
        asyncio.run(scenario())
    assert asyncio.run(saga.compensate()) == ["undo b", "undo a"]
    assert j.effects == ["a", "b", "undo b", "undo a"]


def test_an_undo_that_always_fails_terminally_is_not_hidden() -> None:
    j = Journal()
    saga = Saga(j)

    async def scenario() -> None:
        await saga.step("a", j.act("a"), undo=Compensation("undo a", j.act("undo a", TerminalError("bug"))))
        await saga.step("b", j.act("b", TerminalError("b broke")))

    with pytest.raises(TerminalError, match="b broke"):
        asyncio.run(scenario())
    with pytest.raises(TerminalError, match="bug"):
        asyncio.run(saga.compensate())
    assert j.effects == ["a", "b", "undo a", "undo a", "undo a"]


def test_steps_together_all_start_before_any_is_awaited() -> None:
    j = Journal()
    saga = Saga(j)
    asyncio.run(saga.together(Step("a", j.call("a")), Step("b", j.call("b"))))
    # The last started is awaited first: it is the likeliest to answer last (see `_settle_all`).
    assert j.effects == ["start a", "start b", "answer b", "answer a"]
    assert saga.failed_step is None


def test_a_failure_together_waits_for_the_others_then_undoes_all_newest_first() -> None:
    j = Journal()
    saga = Saga(j)

    async def trip() -> None:
        await saga.step("x", j.act("x"), undo=Compensation("undo x", j.act("undo x")))
        await saga.together(
            Step("a", j.call("a", TerminalError("a broke")), Compensation("undo a", j.act("undo a"))),
            Step("b", j.call("b", TerminalError("b broke")), Compensation("undo b", j.act("undo b"))),
            Step("c", j.call("c"), Compensation("undo c", j.act("undo c"))),
        )

    with pytest.raises(TerminalError, match="a broke"):
        asyncio.run(trip())
    # Every step of the group was answered (the last started first) before the failure was raised;
    # the first failure in the order given names the step.
    assert j.effects[-3:] == ["answer c", "answer b", "answer a"]
    assert saga.failed_step == "a"
    assert [e for e in j.events if e[0] == "step" and e[2] != "started"] == [
        ("step", "x", "done"),
        ("step", "a", "a broke"),
        ("step", "b", "b broke"),
        ("step", "c", "done"),
    ]
    assert asyncio.run(saga.compensate()) == ["undo c", "undo b", "undo a", "undo x"]


def test_the_listener_is_asked_to_keep_the_record_before_each_wait() -> None:
    j = Journal()
    saga = Saga(j)

    async def trip() -> None:
        await saga.together(
            Step("a", j.call("a"), Compensation("undo a", j.act("undo a"))),
            Step("b", j.call("b"), Compensation("undo b", j.act("undo b"))),
        )
        await saga.step("c", j.act("c", TerminalError("c broke")))

    with pytest.raises(TerminalError):
        asyncio.run(trip())
    asyncio.run(saga.compensate())
    # Before the round a+b (2 starts told), before c (a, b done; c started), before the round of undos
    # (c failed; undo b and undo a started together).
    assert j.checkpoints == [2, 5, 8]
    assert len(j.events) == 10  # the last round's end is the caller's to keep


def test_undos_of_a_round_start_together_and_the_older_round_waits_for_them() -> None:
    j = Journal()
    saga = Saga(j)

    async def trip() -> None:
        await saga.step("x", j.act("x"), undo=Compensation("undo x", j.call("undo x")))
        await saga.together(
            Step("a", j.call("a"), Compensation("undo a", j.call("undo a"))),
            Step("b", j.call("b", TerminalError("b broke")), Compensation("undo b", j.call("undo b"))),
        )

    with pytest.raises(TerminalError, match="b broke"):
        asyncio.run(trip())
    del j.effects[:]
    assert asyncio.run(saga.compensate()) == ["undo b", "undo a", "undo x"]
    # Both undos of the round a+b were sent before either was awaited; undo x only after both answered.
    assert j.effects == [
        "start undo b",
        "start undo a",
        "answer undo a",
        "answer undo b",
        "start undo x",
        "answer undo x",
    ]


def test_an_undo_refused_terminally_is_asked_again_without_holding_back_its_round() -> None:
    j = Journal()
    saga = Saga(j)
    refusals = iter([TerminalError("cancelled", 409)])

    def flaky() -> Awaitable[str]:
        j.effects.append("start undo a")

        async def answer() -> str:
            if (refusal := next(refusals, None)) is not None:
                raise refusal
            j.effects.append("answer undo a")
            return "undo a"

        return answer()

    async def trip() -> None:
        await saga.together(
            Step("a", j.call("a"), Compensation("undo a", flaky)),
            Step("b", j.call("b", TerminalError("b broke")), Compensation("undo b", j.call("undo b"))),
        )

    with pytest.raises(TerminalError):
        asyncio.run(trip())
    del j.effects[:]
    assert asyncio.run(saga.compensate()) == ["undo b", "undo a"]
    assert j.effects == ["start undo b", "start undo a", "answer undo b", "start undo a", "answer undo a"]
