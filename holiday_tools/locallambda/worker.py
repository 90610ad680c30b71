"""One Lambda execution environment: imports a handler, then runs invocations one at a time.

Started by the local Lambda runtime as
`python -m holiday_tools.locallambda.worker MODULE.ATTR FD RUNTIME_PID [CODE_DIR] [OPTION ...]`.
A version uploaded as a zip runs from CODE_DIR, put first on `sys.path` so that
its modules win over the project's own (installed in editable mode, and on the
path too); nothing here imports the project's `holiday` package before that.
Once the handler is imported it says so with one JSON line on the socket FD,
`{"ready": true, "init_ms": ...}` (the import's duration, Lambda's Init Duration),
then reads one JSON invocation per line and answers with one JSON line, calling the
handler on the main thread with an event dict and a context object, as the
AWS Python runtime does. What the handler prints goes to stderr (the
function's log), never into the protocol. A handler module that cannot be
imported is reported in that line as Lambda reports it (`Runtime.ImportModuleError`),
and the worker exits.

Options, each `--name=value`:
- `--cgroup=PATH`: join that cgroup first of all, so the import runs within the
  function's share of CPU (see `cgroups`);
- `--asset=MODULE,...`: the top-level modules the function's Lambda asset ships;
  anything else is refused (see `asset`);
- `--snapstart`: become the version's zygote instead (see `zygote`).

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
from dataclasses import dataclass, field
from typing import Any

from holiday_tools.locallambda import asset, cgroups
from holiday_tools.processes import exit_with_parent

Handler = Callable[[Any, "LambdaContext"], Any]


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


@dataclass
class Options:
    """The worker's command line."""

    handler: str
    fd: int
    runtime_pid: int
    code_dirs: list[str] = field(default_factory=list)
    cgroup: str | None = None
    asset: frozenset[str] | None = None  # None: every installed module may be imported
    snapstart: bool = False

    @classmethod
    def parse(cls, argv: list[str]) -> Options:
        positional = [arg for arg in argv[1:] if not arg.startswith("--")]
        named = dict(arg[2:].partition("=")[::2] for arg in argv[1:] if arg.startswith("--"))
        handler, fd, runtime_pid, *code_dirs = positional
        modules = named.get("asset")
        return cls(
            handler,
            int(fd),
            int(runtime_pid),
            code_dirs,
            named.get("cgroup") or None,
            None if modules is None else frozenset(filter(None, modules.split(","))),
            "snapstart" in named,
        )


def error_payload(err: BaseException) -> dict[str, Any]:
    """An unhandled exception, shaped as Lambda reports it."""
    return {
        "errorMessage": str(err),
        "errorType": type(err).__name__,
        "stackTrace": traceback.format_tb(err.__traceback__),
    }


def send(channel: socket.socket, message: dict[str, Any]) -> None:
    # Unbuffered: a buffered writer would try again to flush at exit, and complain.
    channel.sendall(json.dumps(message).encode() + b"\n")


def log_error(payload: dict[str, Any]) -> None:
    """An init or restore failure in the function's log, as the Lambda runtime writes it."""
    print(f"[ERROR] {payload['errorType']}: {payload['errorMessage']}", file=sys.stderr, flush=True)


def serve(handler: Handler, channel: socket.socket, ready: dict[str, Any]) -> None:
    """Say ready, then answer invocations until the runtime closes the socket."""
    send(channel, {"ready": True, **ready})
    for line in channel.makefile("rb"):
        request = json.loads(line)
        context = LambdaContext(**request["context"])
        try:
            reply = {"ok": handler(request["event"], context)}
        except Exception as err:  # noqa: BLE001 -- the function's own failure: reported, and the environment lives on
            reply = {"error": error_payload(err)}
        send(channel, reply)


def load(handler_path: str) -> Handler:
    """Import the handler; an ImportError as Lambda's Python runtime reports it (other failures propagate)."""
    module_name, attr = handler_path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ImportModuleError(module_name, err) from err
    handler: Handler = getattr(module, attr)
    return handler


class ImportModuleError(Exception):
    """The handler's module could not be imported: Lambda answers the invocation with this payload."""

    def __init__(self, module_name: str, cause: ImportError) -> None:
        super().__init__(f"Unable to import module '{module_name}': {cause}")
        self.payload = {"errorMessage": str(self), "errorType": "Runtime.ImportModuleError", "stackTrace": []}


def main(argv: list[str]) -> None:
    options = Options.parse(argv)
    exit_with_parent()
    if os.getppid() != options.runtime_pid:
        return  # the runtime died before we asked to die with it
    if options.cgroup:
        cgroups.join(options.cgroup)
    # Ctrl-C reaches the runtime's whole process group; stopping workers is the runtime's job.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdout = sys.stderr  # prints are logs, as on Lambda
    # The AWS runtime gives the root logger a handler; so do we, naming the function.
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "?")
    logging.basicConfig(format=f"%(asctime)s %(levelname)-5s [{name}] %(name)s: %(message)s")
    sys.path[:0] = options.code_dirs
    if options.asset is not None:
        asset.guard(options.asset | {options.handler.partition(".")[0]}, options.code_dirs)
    # Not closed if the import fails otherwise: the socket ends with the process, once the traceback is out.
    channel = socket.socket(fileno=options.fd)
    started = time.perf_counter()
    try:
        handler = load(options.handler)
    except ImportModuleError as err:
        log_error(err.payload)
        with contextlib.suppress(OSError):
            send(channel, {"ready": False, "error": err.payload})
        sys.exit(1)
    init_ms = (time.perf_counter() - started) * 1000
    # A broken socket means the runtime is gone: there is nobody to answer, so no traceback either.
    with contextlib.suppress(OSError), channel:
        if options.snapstart:
            from holiday_tools.locallambda import zygote

            zygote.run(handler, channel, started, options.runtime_pid)
        else:
            serve(handler, channel, {"init_ms": init_ms})


if __name__ == "__main__":
    main(sys.argv)
