"""How Restate retries this project's handlers: every service and the trip object use `RETRY_POLICY`.

A dependency that fails (a table unreachable, a throttled call) is retried by
Restate with backoff, for days if need be; after that the invocation is
paused, not dropped, and can be resumed from the admin API. Only a
`TerminalError` (bad input, an injected failure, a refused state change)
ends a step for good.
"""

from __future__ import annotations

from datetime import timedelta

from restate import InvocationRetryPolicy

RETRY_POLICY = InvocationRetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    exponentiation_factor=2.0,
    max_interval=timedelta(seconds=10),
    # At the 10 s cap this is about four days of retrying before a pause.
    max_attempts=35_000,
    on_max_attempts="pause",
)
