"""Tiny Lambda handlers for testing the local Lambda runtime itself."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def echo(event: Any, context: Any) -> dict[str, Any]:
    return {
        "event": event,
        "function": context.function_name,
        "arn": context.invoked_function_arn,
        "time_left": context.get_remaining_time_in_millis() > 0,
        "main_thread": threading.current_thread() is threading.main_thread(),
        "pid": os.getpid(),
    }


def boom(event: Any, context: Any) -> None:
    raise ValueError("boom")


def slow(event: Any, context: Any) -> int:
    time.sleep(event["seconds"])
    return os.getpid()


def die(event: Any, context: Any) -> None:
    os._exit(3)


def version(event: Any, context: Any) -> dict[str, Any]:
    """Which code answered, as which version: the zips of tests/tools/test_locallambda_versions.py replace it."""
    return {
        "code": "project",
        "version": context.function_version,
        "env": os.environ["AWS_LAMBDA_FUNCTION_VERSION"],
        "arn": context.invoked_function_arn,
    }
