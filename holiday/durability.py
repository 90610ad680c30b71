"""How Restate retries this project's handlers, and how their storage writes stay safe.

A dependency that fails (a table unreachable, a throttled call) is retried by
Restate with backoff, for days if need be; after that the invocation is
paused, not dropped, and can be resumed from the admin API. Only a
`TerminalError` (bad input, an injected failure, a refused state change)
ends a step for good.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel
from restate import InvocationRetryPolicy, RestateLoggingFilter, TerminalError
from restate.serde import PydanticJsonSerde

from holiday.aws import off_loop
from holiday.storage import RowConflict

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

RETRY_POLICY = InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    exponentiation_factor=2.0,
    max_interval=timedelta(seconds=10),
    # At the 10 s cap this is about four days of retrying before a pause.
    max_attempts=35_000,
    on_max_attempts="pause",
)


def replay_safe_logger(name: str) -> logging.Logger:
    """A logger that stays quiet while Restate replays a handler, so each step logs once."""
    logger = logging.getLogger(name)
    logger.addFilter(RestateLoggingFilter())
    return logger


def pydantic_serde(model: type[M]) -> PydanticJsonSerde[M]:
    """The SDK's serde for `model`, for where the handler's annotation cannot name it."""
    return PydanticJsonSerde(model)  # type: ignore[no-untyped-call]


async def stored(write: Callable[..., T], *args: object) -> T:
    """Run one storage write for a handler whose only effect it is; the handler is the durable step.

    Restate journals the handler's answer and retries the whole handler until
    it has one, so the write may run again after a crash or a lost reply. Every
    write of the ledger is made to be repeated (insert: the row is absent or
    already so; advance: the target state is allowed; close: overwrite), so no
    `ctx.run` journals it: that would cost a round trip to restate-server per
    step and buy nothing.

    A `RowConflict` (the row is in a state that forbids the change) is a
    business answer, not an outage, so it becomes a `TerminalError`.
    """
    try:
        return await off_loop(write, *args)
    except RowConflict as conflict:
        raise TerminalError(str(conflict), status_code=409) from conflict
