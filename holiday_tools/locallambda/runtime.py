"""A local implementation of the AWS Lambda Invoke API, for development and tests.

restate-server calls Lambda through the AWS SDK, which honours
`AWS_ENDPOINT_URL_LAMBDA`; pointed here, it invokes the project's real
function handlers exactly as on AWS: `POST /2015-03-31/functions/<name or
ARN>/invocations`, the Restate event as JSON in, the handler's return value
out. Each function runs in worker processes (one invocation at a time each,
started under load, reused when idle, like Lambda's execution environments).

A burst queues instead of failing: the listening socket's backlog holds the
connections not yet accepted, and invocations wait in arrival order for the
first worker of their function to come free. A function starts one worker at
a time and only while invocations wait, and only as many workers import their
handler at once as there are cores: on a small machine a pile of cold starts
would only slow one another and the warm workers down.

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
import contextlib
import json
import math
import os
import queue
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field, fields, replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, TypeAlias
from urllib.parse import parse_qs, unquote, urlsplit

from holiday_tools.localhttp import Handler, QuietServer
from holiday_tools.locallambda import asset
from holiday_tools.locallambda.cgroups import CpuLimits, cores_for
from holiday_tools.locallambda.snapstart import ForkedProcess, Zygote, ZygoteError, exit_reason
from holiday_tools.locallambda.versions import LATEST, ApiError, Version, VersionStore, function_arn, invalid

FUNCTIONS_PREFIX = "/2015-03-31/functions/"
# Seconds a worker may take to import its handler, as Lambda's init phase.
INIT_TIMEOUT = 10.0
# Seconds a worker that failed its init may take to exit by itself (its traceback, its exit status).
EXIT_GRACE = 1.0
CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about one function."""

    name: str  # e.g. "holiday-trips"
    handler: str  # e.g. "holiday.functions.trips.app"
    timeout: float = 30.0
    memory_mb: int = 256
    # Execution environments per function. Each runs its handler on about one core, so
    # more workers than cores only take turns on them. 100 trips at once on 2 cores
    # (2026-12-01): 19 to 24 trips/s with 2 workers per function, 16 to 23 with 4, 14 to 17 with 6.
    max_workers: int = max(2, CORES)
    # Whether its workers may import only what a holiday function's Lambda asset ships (see `asset`).
    # None: when the handler is the project's own code (holiday, the null saga, the registration handler),
    # not a test's handler module, which imports the test tools.
    lambda_asset: bool | None = None

    def arn(self, region: str, version: str) -> str:
        return function_arn(region, self.name, version)

    def configuration(self, region: str, number: str, version: Version) -> dict[str, Any]:
        """The FunctionConfiguration Lambda answers about one version."""
        return {
            "FunctionName": self.name,
            "FunctionArn": self.arn(region, number),
            "Version": number,
            "Handler": self.handler,
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "CodeSha256": version.code_sha256,
            "CodeSize": version.code_size,
            "Description": version.description,
            "LastModified": version.last_modified,
            "MemorySize": self.memory_mb,
            "Timeout": math.ceil(self.timeout),
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
        }


@dataclass(frozen=True)
class Deployed:
    """One version of one function as its workers run it."""

    spec: FunctionSpec
    version: str  # "1", ... or "$LATEST"
    code_dir: str | None  # first on the worker's sys.path; None: the project's own code


class FunctionError(Exception):
    """The invocation failed the way Lambda reports as `X-Amz-Function-Error: Unhandled`."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.payload = payload


def _exit_error(request_id: str, reason: str) -> FunctionError:
    return FunctionError(
        {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {reason}",
        }
    )


@dataclass
class Stats:
    """Counts of one function version (or, added up, of a function); the `_max` fields combine as maxima."""

    invocations: int = 0
    errors: int = 0
    cold_starts: int = 0  # workers that took their first invocation
    billed_ms: float = 0.0
    inits: int = 0  # handler imports: one per cold start; in SnapStart mode, one per zygote
    init_ms: float = 0.0  # summed over the inits
    init_ms_max: float = 0.0
    restores: int = 0  # SnapStart: cold starts of workers forked from the zygote, fork to ready
    restore_ms: float = 0.0
    restore_ms_max: float = 0.0
    # The first invocation of each new worker: on Lambda, what a cold start adds to the request beside the init.
    first_ms: float = 0.0

    def add(self, other: Stats) -> None:
        for counter in fields(self):
            mine, theirs = getattr(self, counter.name), getattr(other, counter.name)
            setattr(self, counter.name, max(mine, theirs) if counter.name.endswith("_max") else mine + theirs)

    def count_init(self, ms: float) -> None:
        self.inits += 1
        self.init_ms += ms
        self.init_ms_max = max(self.init_ms_max, ms)

    def count_restore(self, ms: float) -> None:
        self.restores += 1
        self.restore_ms += ms
        self.restore_ms_max = max(self.restore_ms_max, ms)


class Spawner:
    """Where workers come from: one long-lived thread forks them all, a few import at once.

    A worker asks Linux to kill it when its parent dies, so that no handler runs on
    after the runtime is gone; Linux takes the *thread* that forked it as the parent.
    Request threads end with their connection, so they must not fork workers.
    """

    def __init__(self, cold_starts: int) -> None:
        # Workers importing their handler at the same time, each on about one core.
        self.slots = threading.BoundedSemaphore(cold_starts)
        self._requests: queue.SimpleQueue[_Spawn | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="locallambda-spawner", daemon=True)
        self._thread.start()

    def popen(self, argv: list[str], env: dict[str, str], pass_fd: int) -> subprocess.Popen[bytes]:
        """Start a process from the spawner thread; OSError if it could not start."""
        spawn = _Spawn(argv, env, pass_fd)
        with self._lock:
            if self._stopped:
                raise OSError("the local Lambda runtime is stopping")
            self._requests.put(spawn)
        return spawn.done.result()

    def stop(self) -> None:
        """End the thread once it has started what was asked before (its workers then die too)."""
        with self._lock:
            self._stopped = True
            self._requests.put(None)
        self._thread.join()

    def _run(self) -> None:
        while spawn := self._requests.get():
            try:
                process = subprocess.Popen(
                    spawn.argv, env=spawn.env, stdin=subprocess.DEVNULL, pass_fds=[spawn.pass_fd]
                )
            except OSError as err:
                spawn.done.set_exception(err)
            else:
                spawn.done.set_result(process)


@dataclass
class _Spawn:
    argv: list[str]
    env: dict[str, str]
    pass_fd: int
    done: Future[subprocess.Popen[bytes]] = field(default_factory=Future)


@dataclass(frozen=True)
class Launch:
    """How the runtime starts workers: its spawner, its CPU limits, SnapStart or not, and the functions' assets."""

    spawner: Spawner
    cpu: CpuLimits
    snapstart: bool = False
    assets: dict[str, frozenset[str]] = field(default_factory=dict)  # by function: what its asset ships

    def argv(self, deployed: Deployed, fd: int, cgroup: str | None) -> list[str]:
        spec = deployed.spec
        argv = [sys.executable, "-m", "holiday_tools.locallambda.worker", spec.handler, str(fd)]
        argv.append(str(os.getpid()))  # its parent: if that is not who it finds, we are gone already
        if deployed.code_dir is not None:
            argv.append(deployed.code_dir)
        if cgroup is not None:
            argv.append(f"--cgroup={cgroup}")
        if spec.name in self.assets:
            argv.append(f"--asset={','.join(sorted(self.assets[spec.name]))}")
        return argv

    def cgroup(self, deployed: Deployed, label: str = "") -> str | None:
        """A cgroup with the function's share of CPU, for one worker (None: CPU is not limited)."""
        return self.cpu.create(f"{deployed.spec.name}{label}", cores_for(deployed.spec.memory_mb, CORES))


WorkerProcess: TypeAlias = "subprocess.Popen[bytes] | ForkedProcess"
# What a worker that failed to start makes of the invocation that waited for it (given its request id).
StartFailure: TypeAlias = "Callable[[str], FunctionError | ApiError]"


class Worker:
    """One execution environment: a process running `holiday_tools.locallambda.worker`, or forked from its zygote."""

    def __init__(
        self, deployed: Deployed, process: WorkerProcess, channel: socket.socket, launch: Launch, cgroup: str | None
    ) -> None:
        self.deployed = deployed
        self.spec = deployed.spec
        self.process = process
        self.channel = channel
        self.reader, self.writer = channel.makefile("rb"), channel.makefile("wb")
        self.cpu = launch.cpu
        self.cgroup = cgroup
        self.busy = False
        self.used = False
        self.first = False  # taken its first invocation, which has not ended yet
        self.init_ms = 0.0  # its handler's import
        self.restore_ms: float | None = None  # SnapStart: fork to ready

    @classmethod
    def spawn(cls, deployed: Deployed, env: dict[str, str], launch: Launch) -> Worker:
        """A new worker process, which imports the handler itself."""
        cgroup = launch.cgroup(deployed)
        ours, theirs = socket.socketpair()
        try:
            process = launch.spawner.popen(launch.argv(deployed, theirs.fileno(), cgroup), env, theirs.fileno())
        except OSError:
            ours.close()
            launch.cpu.remove(cgroup)
            raise
        finally:
            theirs.close()
        return cls(deployed, process, ours, launch, cgroup)

    @classmethod
    def fork(cls, deployed: Deployed, zygote: Zygote, launch: Launch) -> Worker:
        """A new worker forked from the version's zygote (SnapStart's restore)."""
        cgroup = launch.cgroup(deployed)
        try:
            process, channel = zygote.fork(cgroup)
        except BaseException:
            launch.cpu.remove(cgroup)
            raise
        return cls(deployed, process, channel, launch, cgroup)

    def wait_ready(self) -> StartFailure | None:
        """Wait while the worker imports its handler (or is restored): None once it is ready, else what failed."""
        self.channel.settimeout(INIT_TIMEOUT)
        try:
            line = self.reader.readline()
        except OSError:  # the timeout too
            line = None
        ready = json.loads(line) if line else {}
        if ready.get("ready"):
            self.init_ms = float(ready.get("init_ms", 0.0))
            self.restore_ms = ready.get("restore_ms")
            return None
        if line is not None:  # it said why, or hung up: it is on its way out, let it finish its last words
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(EXIT_GRACE)
        self.kill()
        return _start_failure(ready, exit_reason(self.process.returncode))

    def invoke(self, event: Any, request_id: str, region: str) -> Any:
        """Run one invocation; raise `FunctionError` on any failure, after which the worker may be dead."""
        deadline = time.time() + self.spec.timeout
        context = {
            "function_name": self.spec.name,
            "function_version": self.deployed.version,
            "invoked_function_arn": self.spec.arn(region, self.deployed.version),
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
            raise _exit_error(request_id, exit_reason(self.process.wait()))
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
        self.cpu.remove(self.cgroup)
        self.cgroup = None


def _start_failure(ready: dict[str, Any], reason: str) -> StartFailure:
    """What Lambda answers an invocation whose environment failed to start, from the worker's last word."""
    if "error" in ready:  # its init failed, as the Lambda runtime reports it (Runtime.ImportModuleError, ...)
        payload: dict[str, Any] = ready["error"]
        return lambda request_id: FunctionError(payload)
    if "restore_error" in ready:  # an after-restore hook raised: Invoke fails with SnapStartException (400)
        message = ready["restore_error"]["errorMessage"]
        return lambda request_id: ApiError(
            400,
            "SnapStartException",
            f"RequestId: {request_id} The afterRestore() runtime hook encountered an error: {message}. "
            "For more information, check the function's log.",
        )
    return lambda request_id: _exit_error(request_id, reason)


def _zygote_failure(err: ZygoteError) -> StartFailure:
    payload = err.payload
    if payload is not None:
        return lambda request_id: FunctionError(payload)
    return lambda request_id: _exit_error(request_id, str(err))


@dataclass(eq=False)
class _Waiter:
    """An invocation waiting for a worker; it gets one, or the error of a worker that failed to start."""

    request_id: str
    done: threading.Event = field(default_factory=threading.Event)
    worker: Worker | None = None
    error: FunctionError | ApiError | None = None


class FunctionPool:
    """The workers of one function version, and the invocations waiting for one, served in arrival order.

    A waiting invocation takes the first worker to come free, warm or new, so it
    never sits out a cold start that a warm worker would have spared it.
    """

    def __init__(self, deployed: Deployed, env: dict[str, str], region: str, launch: Launch) -> None:
        spec = deployed.spec
        self.deployed = deployed
        self.spec = spec
        self.region = region
        # As on Lambda, SnapStart applies to published versions only: `$LATEST` is initialised on demand.
        self.launch = replace(launch, snapstart=launch.snapstart and deployed.version != LATEST)
        self.env = environment(deployed, env, region, self.launch.snapstart)
        self.workers: list[Worker] = []  # ready ones, busy or idle
        self.stats = Stats()
        self._idle: list[Worker] = []  # never non-empty while invocations wait
        self._waiting: deque[_Waiter] = deque()
        self._starting = False
        self._stopped = False
        self._retired = False
        self._lock = threading.Lock()
        self.zygote: Zygote | None = None  # SnapStart: the process the workers are forked from

    def invoke(self, event: Any) -> Any:
        request_id = str(uuid.uuid4())
        worker = self._acquire(request_id)
        started = time.perf_counter()
        failed = False
        try:
            return worker.invoke(event, request_id, self.region)
        except FunctionError:
            failed = True
            raise
        finally:
            self._release(worker, time.perf_counter() - started, failed)

    def _acquire(self, request_id: str) -> Worker:
        with self._lock:
            while self._idle:
                worker = self._idle.pop()
                if worker.alive:
                    self._assign(worker)
                    return worker
                self._drop(worker)  # killed from outside while idle
            waiter = _Waiter(request_id)
            self._waiting.append(waiter)
            self._scale()
        waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error
        assert waiter.worker is not None
        return waiter.worker

    def _release(self, worker: Worker, seconds: float, failed: bool) -> None:
        with self._lock:
            self.stats.invocations += 1
            if failed:
                self.stats.errors += 1
            self.stats.billed_ms += seconds * 1000
            if worker.first:
                worker.first = False
                self.stats.first_ms += seconds * 1000
            if worker.alive and not self._stopped:
                self._hand_over(worker)
            else:
                self._drop(worker)
                self._scale()

    def _assign(self, worker: Worker) -> None:
        worker.busy = True
        if not worker.used:
            worker.used = worker.first = True
            self.stats.cold_starts += 1
            if worker.restore_ms is None:
                self.stats.count_init(worker.init_ms)
            else:
                self.stats.count_restore(worker.restore_ms)

    def _hand_over(self, worker: Worker) -> None:
        """A free worker goes to the invocation that has waited longest, or waits itself (ends, once retired)."""
        if self._waiting:
            waiter = self._waiting.popleft()
            self._assign(worker)
            waiter.worker = worker
            waiter.done.set()
        elif self._retired:
            self._drop(worker)
        else:
            worker.busy = False
            self._idle.append(worker)

    def _drop(self, worker: Worker) -> None:
        worker.kill()
        if worker in self.workers:
            self.workers.remove(worker)
        self._end_zygote()

    def _scale(self) -> None:
        """Start one more worker if invocations wait and there is room (under the lock)."""
        if self._waiting and not self._starting and not self._stopped and len(self.workers) < self.spec.max_workers:
            self._starting = True
            name = f"start-{self.spec.name}:{self.deployed.version}"
            threading.Thread(target=self._start_worker, name=name, daemon=True).start()

    def _start_worker(self) -> None:
        worker: Worker | None = None
        failure: StartFailure | None = None
        with self.launch.spawner.slots:
            try:
                worker = self._new_worker()
                failure = worker.wait_ready()
            except OSError as err:
                reason = str(err)
                failure = lambda request_id: _exit_error(request_id, reason)  # noqa: E731
            except ZygoteError as err:
                failure = _zygote_failure(err)
        with self._lock:
            self._starting = False
            if worker is None or failure is not None or self._stopped:
                if worker is not None:
                    worker.kill()
                if failure is not None and self._waiting:
                    waiter = self._waiting.popleft()  # as on Lambda, a failed init fails the invocation
                    waiter.error = failure(waiter.request_id)
                    waiter.done.set()
            else:
                self.workers.append(worker)
                self._hand_over(worker)
            self._scale()
            self._end_zygote()

    def _new_worker(self) -> Worker:
        if not self.launch.snapstart:
            return Worker.spawn(self.deployed, self.env, self.launch)
        return Worker.fork(self.deployed, self._running_zygote(), self.launch)

    def _running_zygote(self) -> Zygote:
        """The version's zygote; started first (its init counted, once) if there is none, or it died."""
        with self._lock:
            zygote = self.zygote
        if zygote is not None and zygote.alive:
            return zygote
        if zygote is not None:
            zygote.stop()  # it died, and its workers with it
        cgroup = self.launch.cgroup(self.deployed, "-zygote")
        try:
            zygote = Zygote(
                lambda fd: self.launch.argv(self.deployed, fd, cgroup),
                self.env,
                self.launch.spawner,
                INIT_TIMEOUT,
                lambda: self.launch.cpu.remove(cgroup),
            )
        except BaseException:
            self.launch.cpu.remove(cgroup)
            raise
        zygote.wait_ready()
        with self._lock:
            stopped = self._stopped
            if not stopped:
                self.zygote = zygote
                self.stats.count_init(zygote.init_ms)
        if stopped:
            zygote.stop()
            raise ZygoteError("the local Lambda runtime is stopping")
        return zygote

    def _end_zygote(self) -> None:
        """A retired version's zygote ends with its last worker (under the lock)."""
        if self._retired and self.zygote and not (self.workers or self._waiting or self._starting):
            zygote, self.zygote = self.zygote, None
            zygote.stop()

    def retire(self) -> None:
        """Its version is gone or has new code: what runs or waits finishes, then every worker ends."""
        with self._lock:
            self._retired = True
            for worker in self._idle:
                self._drop(worker)
            self._idle.clear()
            self._end_zygote()

    def stop(self) -> None:
        """Kill every worker (and the zygote); invocations still waiting fail."""
        with self._lock:
            self._stopped = True
            for worker in self.workers:
                worker.kill()
            self.workers.clear()
            self._idle.clear()
            while self._waiting:
                waiter = self._waiting.popleft()
                waiter.error = FunctionError({"errorMessage": f"RequestId: {waiter.request_id} runtime stopping"})
                waiter.done.set()
            zygote, self.zygote = self.zygote, None
        if zygote is not None:
            zygote.stop()


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


def environment(deployed: Deployed, base: dict[str, str], region: str, snapstart: bool) -> dict[str, str]:
    """`base` and the variables Lambda sets in a function version's execution environments."""
    spec = deployed.spec
    return {
        **base,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": deployed.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.name}",
        "AWS_REGION": region,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start" if snapstart else "on-demand",
        "PYTHONUNBUFFERED": "1",
    }


def assets_of(specs: list[FunctionSpec]) -> dict[str, frozenset[str]]:
    """The modules each guarded function's asset ships (see `FunctionSpec.lambda_asset`), worked out once."""
    project = asset.project_packages() if any(s.lambda_asset is None for s in specs) else frozenset()
    own = [s.name for s in specs if s.lambda_asset is None and s.handler.split(".")[0] in project]
    guarded = [s.name for s in specs if s.lambda_asset] + own
    shipped = asset.shipped_modules() if guarded else None
    return {} if shipped is None else dict.fromkeys(guarded, shipped)


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
