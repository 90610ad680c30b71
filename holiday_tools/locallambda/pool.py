"""The workers of one function version, and the invocations waiting for one; and the counts of that version.

A burst queues instead of failing: invocations wait in arrival order for the
first worker of their function to come free. A function starts one worker at
a time and only while invocations wait, and only as many workers import their
handler at once as there are cores: on a small machine a pile of cold starts
would only slow one another and the warm workers down.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field, fields, replace
from typing import Any

from holiday_tools.locallambda.launch import (
    INIT_TIMEOUT,
    Launch,
    StartFailure,
    Worker,
    environment,
    exit_error,
    zygote_failure,
)
from holiday_tools.locallambda.snapstart import Zygote, ZygoteError
from holiday_tools.locallambda.spec import Deployed, FunctionError
from holiday_tools.locallambda.versions import LATEST, ApiError


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
                failure = lambda request_id: exit_error(request_id, reason)  # noqa: E731
            except ZygoteError as err:
                failure = zygote_failure(err)
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
