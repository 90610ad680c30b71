"""A local implementation of the AWS Lambda Invoke API, for development and tests.

restate-server calls Lambda through the AWS SDK, which honours
`AWS_ENDPOINT_URL_LAMBDA`; pointed here, it invokes the project's real
function handlers exactly as on AWS: `POST /2015-03-31/functions/<name or
ARN>/invocations`, the Restate event as JSON in, the handler's return value
out. Each function runs in worker processes (one invocation at a time each,
started under load, reused when idle, like Lambda's execution environments:
see `launch`).

A burst queues instead of failing: the listening socket's backlog holds the
connections not yet accepted, and invocations wait in their version's pool
for a worker (see `pool`).

Errors are reported as Lambda reports them: status 200 with the header
`X-Amz-Function-Error: Unhandled` and a JSON error body, for an exception,
a timeout (the worker is then killed and replaced) or a worker that died.
`GET /local/workers` and `GET /local/stats` show the workers and the counts
of invocations and their durations.

Functions have versions (see `versions`): UpdateFunctionCode, PublishVersion,
ListVersionsByFunction, GetFunction and DeleteFunction of one version work as
on Lambda, and each version runs in workers of its own.

As on Lambda, a worker of one of the project's functions can import only what
its asset ships (see `asset`); with `limit_cpu` each worker gets CPU in proportion
to its function's memory (see `cgroups`); with `snapstart` each version's workers
are forked from one process that imported the handler once (see `snapstart`).
`/local/stats` counts each version's init and restore times too.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
import threading
import uuid
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from holiday_tools.localhttp import Handler, QuietServer
from holiday_tools.locallambda.cgroups import CpuLimits, cores_for
from holiday_tools.locallambda.launch import Launch, Spawner, assets_of
from holiday_tools.locallambda.pool import FunctionPool, Stats
from holiday_tools.locallambda.spec import CORES, Deployed, FunctionError, FunctionSpec
from holiday_tools.locallambda.versions import LATEST, ApiError, VersionStore, invalid

FUNCTIONS_PREFIX = "/2015-03-31/functions/"


class LocalLambda:
    """The Lambda API over HTTP (Invoke and the version operations), in front of one pool per function version."""

    def __init__(
        self,
        specs: list[FunctionSpec],
        host: str,
        port: int,
        region: str,
        env: dict[str, str] | None = None,
        state_dir: Path | None = None,
        limit_cpu: bool = False,
        snapstart: bool = False,
    ) -> None:
        if snapstart and sys.platform != "linux":
            raise ValueError("SnapStart mode forks workers that must die with their zygote, which needs Linux")
        self.base_env = dict(os.environ if env is None else env)
        self.region = region
        self.specs = {s.name: s for s in specs}
        runtime = self

        class ApiHandler(Handler):
            def do_GET(self) -> None:
                runtime.handle(self, "GET")

            def do_POST(self) -> None:
                runtime.handle(self, "POST")

            def do_PUT(self) -> None:
                runtime.handle(self, "PUT")

            def do_DELETE(self) -> None:
                runtime.handle(self, "DELETE")

        self.server = QuietServer((host, port), ApiHandler)
        self.spawner = Spawner(cold_starts=CORES)
        self.cpu = CpuLimits.start() if limit_cpu else CpuLimits.off()
        self.launch = Launch(self.spawner, self.cpu, snapstart, assets_of(specs))
        self.versions = VersionStore({s.name: s.handler for s in specs}, region, state_dir)
        self.pools: dict[tuple[str, str], FunctionPool] = {}  # by (function, version), made at its first call
        self._every_pool: list[FunctionPool] = []  # retired ones too: their counts, and workers still finishing
        self._lock = threading.Lock()  # around `versions` and `pools`

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def shutdown(self) -> None:
        """Stop `serve_forever` (running in another thread), then everything else."""
        self.server.shutdown()
        self.close()

    def close(self) -> None:
        """Close the socket and stop every worker, once `serve_forever` has returned."""
        self.server.server_close()
        with self._lock:
            pools = list(self._every_pool)
        for pool in pools:
            pool.stop()
        self.spawner.stop()
        self.cpu.close()
        self.versions.close()

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Route one request: `/local/...`, or `/2015-03-31/functions/<name or ARN>[/<operation>]`."""
        url = urlsplit(request.path)
        body = request.rfile.read(int(request.headers.get("content-length") or 0))
        if method == "GET" and url.path.startswith("/local/"):
            self.handle_local(request, url.path)
            return
        given, _, operation = url.path.removeprefix(FUNCTIONS_PREFIX).partition("/")
        name, qualifier = _function_ref(unquote(given), parse_qs(url.query).get("Qualifier", [None])[0])
        try:
            if not url.path.startswith(FUNCTIONS_PREFIX):
                raise ApiError(404, "UnknownOperationException", f"no such operation: {method} {url.path}")
            if (method, operation) == ("POST", "invocations"):
                self.invoke(request, name, qualifier, body)
                return
            status, payload = self.operate(method, operation, name, qualifier, body)
        except ApiError as err:
            _reply(request, err.status, {"Type": "User", "message": str(err)}, {"x-amzn-ErrorType": err.error_type})
            return
        _reply(request, status, payload, {})

    def invoke(self, request: BaseHTTPRequestHandler, name: str, qualifier: str | None, body: bytes) -> None:
        """Invoke: unqualified runs `$LATEST`; the answer names the version that ran."""
        event = _parse(body, default={})
        pool = self._pool(name, qualifier or LATEST)
        headers = {"X-Amz-Executed-Version": pool.deployed.version}
        try:
            result = pool.invoke(event)
        except FunctionError as err:
            _reply(request, 200, err.payload, {**headers, "X-Amz-Function-Error": "Unhandled"})
            return
        _reply(request, 200, result, headers)

    def operate(
        self, method: str, operation: str, name: str, qualifier: str | None, body: bytes
    ) -> tuple[int, dict[str, Any] | None]:
        """The version operations: (status, response body)."""
        if (method, operation) == ("PUT", "code"):
            return 200, self.update_code(name, _parse(body, default={}))
        if (method, operation) == ("POST", "versions"):
            request = _parse(body, default={})
            with self._lock:
                number = self.versions.publish(name, request.get("Description", ""), request.get("CodeSha256"))
                return 201, self._configuration(name, number)
        if (method, operation) == ("GET", "versions"):
            with self._lock:
                numbers = [LATEST, *self.versions.function(name).published]
                return 200, {"Versions": [self._configuration(name, n) for n in numbers], "NextMarker": None}
        if (method, operation) == ("GET", ""):
            with self._lock:
                configuration = self._configuration(name, qualifier or LATEST)
            return 200, {"Configuration": configuration, "Code": {"RepositoryType": "S3", "Location": ""}}
        if (method, operation) == ("DELETE", ""):
            with self._lock:
                self.versions.delete(name, qualifier)
                self._retire_stale(name)
            return 204, None
        raise ApiError(404, "UnknownOperationException", f"no such operation: {method} .../{name}/{operation}")

    def update_code(self, name: str, request: dict[str, Any]) -> dict[str, Any]:
        """UpdateFunctionCode from a zip: `$LATEST` runs it from now on; with Publish, a version too."""
        unsupported = sorted(set(request) - {"ZipFile", "Publish"})
        if unsupported or "ZipFile" not in request:
            raise _invalid_code(unsupported)
        with self._lock:
            self.versions.function(name)  # a 404 before anything is unpacked
        try:
            data = base64.b64decode(request["ZipFile"], validate=True)
        except (binascii.Error, TypeError):
            raise _invalid_code(["ZipFile that is not base64"]) from None
        code = self.versions.unpack(data)  # outside the lock: invocations go on meanwhile
        with self._lock:
            self.versions.set_latest(name, code)
            number = self.versions.publish(name) if request.get("Publish") else LATEST
            self._retire_stale(name)
            return self._configuration(name, number)

    def _configuration(self, name: str, number: str) -> dict[str, Any]:
        return self.specs[name].configuration(self.region, number, self.versions.version(name, number))

    def _pool(self, name: str, qualifier: str) -> FunctionPool:
        """The pool of a version that exists (ResourceNotFound otherwise), made at its first invocation."""
        with self._lock:
            version = self.versions.version(name, qualifier)
            pool = self.pools.get((name, qualifier))
            if pool is None:
                deployed = Deployed(self.specs[name], qualifier, self.versions.code_path(version))
                pool = FunctionPool(deployed, self.base_env, self.region, self.launch)
                self.pools[name, qualifier] = pool
                self._every_pool.append(pool)
            return pool

    def _retire_stale(self, name: str) -> None:
        """After a change (under the lock): the pools of deleted versions, or of an older `$LATEST`, retire."""
        function = self.versions.function(name)
        for (pool_name, number), pool in list(self.pools.items()):
            if pool_name != name:
                continue
            version = function.find(number)
            if version is None or self.versions.code_path(version) != pool.deployed.code_dir:
                del self.pools[pool_name, number]
                pool.retire()

    def stats(self) -> dict[str, Any]:
        """Per function: the counts over all its versions, and `versions` with each one's."""
        with self._lock:
            pools = list(self._every_pool)
            numbers = {name: [LATEST, *f.published] for name, f in self.versions.functions.items()}
        by_version = {name: {number: Stats() for number in known} for name, known in numbers.items()}
        for pool in pools:
            by_version[pool.spec.name].setdefault(pool.deployed.version, Stats()).add(pool.stats)
        report = {}
        for name, versions in by_version.items():
            total = Stats()
            for counts in versions.values():
                total.add(counts)
            versions_report = {number: asdict(c) for number, c in versions.items()}
            report[name] = {**asdict(total), **self._resources(self.specs[name]), "versions": versions_report}
        return report

    def _resources(self, spec: FunctionSpec) -> dict[str, Any]:
        """What the function's workers get: memory, CPU (limited or not, and why) and SnapStart."""
        limited = self.cpu.limited
        return {
            "memory_mb": spec.memory_mb,
            "cpu_limited": limited,
            "cpu_cores": round(cores_for(spec.memory_mb, CORES), 3) if limited else None,
            "cpu_note": self.cpu.note,
            "snapstart": self.launch.snapstart,
        }

    def handle_local(self, request: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/local/workers":
            with self._lock:
                pools = list(self._every_pool)
            workers = [
                {"function": pool.spec.name, "version": pool.deployed.version, "pid": w.process.pid, "busy": w.busy}
                for pool in pools
                for w in list(pool.workers)
            ]
            _reply(request, 200, workers, {})
        elif path == "/local/stats":
            _reply(request, 200, self.stats(), {})
        else:
            _reply(request, 404, {"message": f"no such path {path}"}, {})


def _function_ref(given: str, qualifier: str | None) -> tuple[str, str | None]:
    """`name`, `name:qualifier` or an ARN with or without a version -> (name, qualifier); a Qualifier parameter wins."""
    parts = given.split(":")
    if given.startswith("arn:"):
        parts = parts[6:] or [given]
    return parts[0], qualifier or (parts[1] if len(parts) > 1 else None)


def _invalid_code(unsupported: list[str]) -> ApiError:
    return invalid(
        "The local Lambda runtime takes code only as ZipFile (a zip, base64 in the JSON body, as the AWS SDKs "
        f"send it), with Publish; not {', '.join(unsupported) or 'no code at all'}"
    )


def _parse(body: bytes, default: Any) -> Any:
    """A JSON request body; Lambda's 400 if it is not JSON."""
    try:
        return json.loads(body) if body else default
    except ValueError:
        raise ApiError(400, "InvalidRequestContentException", "Could not parse request body into json") from None


def _reply(request: BaseHTTPRequestHandler, status: int, payload: Any, headers: dict[str, str]) -> None:
    data = b"" if status == 204 else json.dumps(payload).encode()
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
