"""One Lambda execution environment: imports a handler, then runs invocations one at a time.

Started by the local Lambda runtime as
`python -m holiday_tools.locallambda.worker MODULE.ATTR FD RUNTIME_PID [CODE_DIR]`.
A version uploaded as a zip runs from CODE_DIR, put first on `sys.path` so that
its modules win over the project's own (installed in editable mode, and on the
path too); nothing here imports the project's `holiday` package before that.
Once the handler is imported it says so with one line on the socket FD, then reads
one JSON invocation per line and answers with one JSON line, calling the
handler on the main thread with an event dict and a context object, as the
AWS Python runtime does. What the handler prints goes to stderr (the
function's log), never into the protocol.

It lives only as long as the runtime: Linux kills it when the runtime dies,
and where that is not available, it ends quietly as soon as it finds its
socket closed.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from holiday_tools.processes import exit_with_parent

READY = b'{"ready": true}\n'


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


def serve(handler: Callable[[Any, LambdaContext], Any], channel: socket.socket) -> None:
    """Say ready, then answer invocations until the runtime closes the socket."""
    channel.sendall(READY)
    for line in channel.makefile("rb"):
        request = json.loads(line)
        context = LambdaContext(**request["context"])
        try:
            reply = {"ok": handler(request["event"], context)}
        except Exception as err:  # noqa: BLE001 -- the function's own failure: reported, and the environment lives on
            reply = {"error": error_payload(err)}
        # Unbuffered: a buffered writer would try again to flush at exit, and complain.
        channel.sendall(json.dumps(reply).encode() + b"\n")


def main(argv: list[str]) -> None:
    handler_path, fd, runtime_pid, code_dirs = argv[1], int(argv[2]), int(argv[3]), argv[4:]
    exit_with_parent()
    if os.getppid() != runtime_pid:
        return  # the runtime died before we asked to die with it
    # Ctrl-C reaches the runtime's whole process group; stopping workers is the runtime's job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout = sys.stderr  # prints are logs, as on Lambda
    # The AWS runtime gives the root logger a handler; so do we, naming the function.
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "?")
    logging.basicConfig(format=f"%(asctime)s %(levelname)-5s [{name}] %(name)s: %(message)s")
    sys.path[:0] = code_dirs
    module_name, attr = handler_path.rsplit(".", 1)
    handler = getattr(importlib.import_module(module_name), attr)
    # A broken socket means the runtime is gone: there is nobody to answer, so no traceback either.
    with contextlib.suppress(OSError), socket.socket(fileno=fd) as channel:
        serve(handler, channel)


if __name__ == "__main__":
    main(sys.argv)
