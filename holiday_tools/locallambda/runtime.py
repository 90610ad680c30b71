"""A local implementation of the AWS Lambda Invoke API, for development and tests.

restate-server calls Lambda through the AWS SDK, which honours
`AWS_ENDPOINT_URL_LAMBDA`; pointed here, it invokes the project's real
function handlers exactly as on AWS: `POST /2015-03-31/functions/<name or
ARN>/invocations`, the Restate event as JSON in, the handler's return value
out. Each function runs in worker processes (one per concurrent invocation,
started on demand, reused when idle, like Lambda's execution environments).

Errors are reported as Lambda reports them: status 200 with the header
`X-Amz-Function-Error: Unhandled` and a JSON error body, for an exception,
a timeout (the worker is then killed and replaced) or a worker that died.
`GET /local/workers` and `GET /local/stats` show the workers and the counts
of invocations and their durations.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from holiday_tools.localhttp import Handler, QuietServer

ACCOUNT = "123456789012"
VERSION = "1"
INVOKE_PREFIX = "/2015-03-31/functions/"


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about one function."""

    name: str  # e.g. "holiday-trips"
    handler: str  # e.g. "holiday.functions.trips.app"
    timeout: float = 30.0
    memory_mb: int = 256
    # Execution environments per function. Each is a Python process importing the SDK:
    # on a small machine many of them at once would only compete for the same cores.
    max_workers: int = 4

    def arn(self, region: str) -> str:
        return f"arn:aws:lambda:{region}:{ACCOUNT}:function:{self.name}:{VERSION}"


class FunctionError(Exception):
    """The invocation failed the way Lambda reports as `X-Amz-Function-Error: Unhandled`."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.payload = payload


@dataclass
class Stats:
    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0
    billed_ms: float = 0.0


class Worker:
    """One execution environment: a process running `holiday_tools.locallambda.worker`."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str]) -> None:
        self.spec = spec
        ours, theirs = socket.socketpair()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "holiday_tools.locallambda.worker", spec.handler, str(theirs.fileno())],
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=[theirs.fileno()],
            # No parent-death signal here: it fires when the *thread* that started the
            # worker ends, and request threads end with their connection. A worker
            # ends by itself when the runtime goes: its socket reads end of file.
        )
        theirs.close()
        self.channel = ours
        self.reader, self.writer = ours.makefile("rb"), ours.makefile("wb")
        self.busy = False
        self.used = False

    def invoke(self, event: Any, request_id: str, region: str) -> Any:
        """Run one invocation; raise `FunctionError` on any failure, after which the worker is unusable."""
        deadline = time.time() + self.spec.timeout
        context = {
            "function_name": self.spec.name,
            "function_version": VERSION,
            "invoked_function_arn": self.spec.arn(region),
            "memory_limit_in_mb": self.spec.memory_mb,
            "aws_request_id": request_id,
            "log_group_name": f"/aws/lambda/{self.spec.name}",
            "log_stream_name": f"local/{self.process.pid}",
            "deadline": deadline,
        }
        self.channel.settimeout(self.spec.timeout)
        try:
            self.writer.write(json.dumps({"event": event, "context": context}).encode() + b"\n")
            self.writer.flush()
            line = self.reader.readline()
        except TimeoutError:
            self.kill()
            raise FunctionError(
                {"errorMessage": f"RequestId: {request_id} Task timed out after {self.spec.timeout:.2f} seconds"}
            ) from None
        except OSError:
            line = b""
        if not line:
            code = self.process.wait()
            raise FunctionError(
                {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {_exit_reason(code)}",
                }
            )
        reply = json.loads(line)
        if "error" in reply:
            raise FunctionError(reply["error"])
        return reply["ok"]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        if self.alive:
            self.process.kill()
        self.process.wait()
        self.channel.close()


def _exit_reason(code: int) -> str:
    return f"signal: {_signal_name(-code)}" if code < 0 else f"exit status {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG").lower()
    except ValueError:
        return str(number)


class FunctionPool:
    """The workers of one function: idle ones are reused, new ones start under load."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], region: str) -> None:
        self.spec = spec
        self.region = region
        self.env = {
            **env,
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": VERSION,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
            "AWS_REGION": region,
            "PYTHONUNBUFFERED": "1",
        }
        self.workers: list[Worker] = []
        self.stats = Stats()
        self._free = threading.Condition()

    def invoke(self, event: Any) -> Any:
        request_id = str(uuid.uuid4())
        worker = self._acquire()
        started = time.perf_counter()
        healthy = True
        try:
            return worker.invoke(event, request_id, self.region)
        except FunctionError:
            healthy = worker.alive
            self.stats.errors += 1
            raise
        finally:
            self.stats.invocations += 1
            self.stats.billed_ms += (time.perf_counter() - started) * 1000
            self._release(worker, healthy)

    def _acquire(self) -> Worker:
        with self._free:
            while True:
                # A worker that died while idle (killed from outside) leaves room for a new one.
                self.workers = [w for w in self.workers if w.busy or w.alive]
                idle = next((w for w in self.workers if not w.busy), None)
                if idle is None and len(self.workers) < self.spec.max_workers:
                    idle = Worker(self.spec, self.env)
                    self.workers.append(idle)
                if idle is not None:
                    idle.busy = True
                    if not idle.used:
                        idle.used = True
                        self.stats.cold_starts += 1
                    return idle
                self._free.wait()

    def _release(self, worker: Worker, healthy: bool) -> None:
        with self._free:
            worker.busy = False
            if not healthy or not worker.alive:
                worker.kill()
                self.workers.remove(worker)
            self._free.notify()

    def stop(self) -> None:
        with self._free:
            for worker in self.workers:
                worker.kill()
            self.workers.clear()


class LocalLambda:
    """The Invoke API over HTTP, in front of one pool per function."""

    def __init__(
        self, specs: list[FunctionSpec], host: str, port: int, region: str, env: dict[str, str] | None = None
    ) -> None:
        base_env = dict(os.environ if env is None else env)
        self.region = region
        self.pools = {s.name: FunctionPool(s, base_env, region) for s in specs}
        runtime = self

        class InvokeHandler(Handler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                runtime.handle_invoke(self, body)

            def do_GET(self) -> None:
                runtime.handle_local(self)

        self.server = QuietServer((host, port), InvokeHandler)

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        self.server.shutdown()
        for pool in self.pools.values():
            pool.stop()

    def function_name(self, path: str) -> tuple[str | None, str]:
        """`/2015-03-31/functions/<name, name:qualifier or ARN>/invocations` -> (pool name, as given)."""
        url = urlsplit(path)
        if not (url.path.startswith(INVOKE_PREFIX) and url.path.endswith("/invocations")):
            return None, url.path
        given = unquote(url.path[len(INVOKE_PREFIX) : -len("/invocations")])
        name = given.split(":")[6] if given.startswith("arn:") else given.split(":")[0]
        qualifier = parse_qs(url.query).get("Qualifier", [VERSION])[0]
        known = name in self.pools and qualifier in (VERSION, "$LATEST")
        return (name if known else None), given

    def handle_invoke(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        name, given = self.function_name(request.path)
        if name is None:
            message = {"Type": "User", "message": f"Function not found: {given}"}
            _reply(request, 404, message, {"x-amzn-ErrorType": "ResourceNotFoundException"})
            return
        headers = {"X-Amz-Executed-Version": VERSION}
        try:
            result = self.pools[name].invoke(json.loads(body or b"{}"))
        except FunctionError as err:
            _reply(request, 200, err.payload, {**headers, "X-Amz-Function-Error": "Unhandled"})
            return
        _reply(request, 200, result, headers)

    def handle_local(self, request: BaseHTTPRequestHandler) -> None:
        if request.path == "/local/workers":
            workers = [
                {"function": name, "pid": w.process.pid, "busy": w.busy}
                for name, pool in self.pools.items()
                for w in list(pool.workers)
            ]
            _reply(request, 200, workers, {})
        elif request.path == "/local/stats":
            _reply(request, 200, {name: asdict(pool.stats) for name, pool in self.pools.items()}, {})
        else:
            _reply(request, 404, {"message": f"no such path {request.path}"}, {})


def _reply(request: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str]) -> None:
    data = json.dumps(payload).encode()
    # One connection per invocation: a caller that pooled connections to this runtime
    # would otherwise, after the runtime restarts, send its next invocation down a
    # connection nobody answers, and wait (restate-server waited 60 s) before retrying.
    request.close_connection = True
    try:
        request.send_response(status)
        request.send_header("Connection", "close")
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in headers.items():
            request.send_header(key, value)
        request.end_headers()
        request.wfile.write(data)
    except OSError:
        pass  # the caller went away
