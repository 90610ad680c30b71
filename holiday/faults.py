"""Failure injection: the `run_type` a caller sends makes one named step fail.

Each service checks for its own failure before it touches storage, so an
injected failure behaves like a real rejection by that dependency.
"""

from __future__ import annotations

from restate import TerminalError

from holiday.models import RunType


class InjectedFailure(TerminalError):
    """A failure the caller asked for; terminal, so Restate does not retry it."""


def fail_if(run_type: RunType | None, failure: RunType, what: str) -> None:
    """Raise `InjectedFailure` when the caller asked for `failure`."""
    if run_type is failure:
        raise InjectedFailure(f"{what} failed (injected by run_type {failure.value})", status_code=409)
