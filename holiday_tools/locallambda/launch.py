"""The local Lambda runtime's execution environments: how one starts, runs one invocation at a time, and dies.

A worker is a process running `holiday_tools.locallambda.worker` (see there for its side), started by the
runtime's one spawner thread, or in SnapStart mode forked from its version's zygote (see `snapstart`). As on
Lambda, a worker of one of the project's functions can import only what its asset ships (see `asset`), and
with CPU limits it runs in a cgroup with its function's share of CPU (see `cgroups`). A worker that fails to
start, times out or dies fails its invocation with the error Lambda reports for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from holiday_tools.locallambda import asset
from holiday_tools.locallambda.cgroups import CpuLimits, cores_for
from holiday_tools.locallambda.snapstart import ForkedProcess, Zygote, ZygoteError, exit_reason
from holiday_tools.locallambda.spec import CORES, Deployed, FunctionError, FunctionSpec
from holiday_tools.locallambda.versions import ApiError

# Seconds a worker may take to import its handler, as Lambda's init phase.
INIT_TIMEOUT = 10.0
# Seconds a worker that failed its init may take to exit by itself (its traceback, its exit status).
EXIT_GRACE = 1.0


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
            raise exit_error(request_id, exit_reason(self.process.wait()))
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


def exit_error(request_id: str, reason: str) -> FunctionError:
    return FunctionError(
        {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {reason}",
        }
    )


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
    return lambda request_id: exit_error(request_id, reason)


def zygote_failure(err: ZygoteError) -> StartFailure:
    payload = err.payload
    if payload is not None:
        return lambda request_id: FunctionError(payload)
    return lambda request_id: exit_error(request_id, str(err))


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
