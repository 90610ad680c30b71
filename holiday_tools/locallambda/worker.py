"""One Lambda execution environment: imports a handler, then runs invocations one at a time.

Started by the local Lambda runtime as
`python -m holiday_tools.locallambda.worker MODULE.ATTR FD`. It reads one JSON
invocation per line from the socket FD and answers with one JSON line, calling
the handler on the main thread with an event dict and a context object, as
the AWS Python runtime does. What the handler prints goes to stderr (the
function's log), never into the protocol.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import sys
import time
import traceback
from dataclasses import dataclass
from typing import Any


@dataclass
class LambdaContext:
    """The attributes of the AWS runtime's context object that handlers commonly read."""

    function_name: str
    function_version: str
    invoked_function_arn: str
    memory_limit_in_mb: int
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.time()) * 1000))


def error_payload(err: Exception) -> dict[str, Any]:
    """An unhandled exception, shaped as Lambda reports it."""
    return {
        "errorMessage": str(err),
        "errorType": type(err).__name__,
        "stackTrace": traceback.format_tb(err.__traceback__),
    }


def main(argv: list[str]) -> None:
    handler_path, fd = argv[1], int(argv[2])
    sys.stdout = sys.stderr  # prints are logs, as on Lambda
    # The AWS runtime gives the root logger a handler; so do we, naming the function.
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "?")
    logging.basicConfig(format=f"%(asctime)s %(levelname)-5s [{name}] %(name)s: %(message)s")
    module_name, attr = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), attr)
    channel = socket.socket(fileno=fd)
    reader, writer = channel.makefile("rb"), channel.makefile("wb")
    for line in reader:
        request = json.loads(line)
        context = LambdaContext(**request["context"])
        try:
            reply = {"ok": handler(request["event"], context)}
        except Exception as err:  # noqa: BLE001 -- the function's own failure: reported, and the environment lives on
            reply = {"error": error_payload(err)}
        writer.write(json.dumps(reply).encode() + b"\n")
        writer.flush()


if __name__ == "__main__":
    main(sys.argv)
