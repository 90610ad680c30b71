"""How Restate retries this project's handlers, and how storage runs durably.

A dependency that fails (a table unreachable, a throttled call) is retried by
Restate with backoff, for days if need be; after that the invocation is
paused, not dropped, and can be resumed from the admin API. Only a
`TerminalError` (bad input, an injected failure, a refused state change)
ends a step for good.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import restate
from restate import InvocationRetryPolicy, TerminalError

from holiday.storage import RowConflict

T = TypeVar("T")

RETRY_POLICY = InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    exponentiation_factor=2.0,
    max_interval=timedelta(seconds=10),
    # At the 10 s cap this is about four days of retrying before a pause.
    max_attempts=35_000,
    on_max_attempts="pause",
)


async def stored(ctx: restate.Context, name: str, write: Callable[..., T], *args: object) -> T:
    """Run a storage call once, durably: its result is journaled, a crash retries it.

    A `RowConflict` (the row is in a state that forbids the change) is a
    business answer, not an outage, so it becomes a `TerminalError`.
    """

    def attempt() -> T:
        try:
            return write(*args)
        except RowConflict as conflict:
            raise TerminalError(str(conflict), status_code=409) from conflict

    return await ctx.run_typed(name, attempt)
