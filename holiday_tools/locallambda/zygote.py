"""A version's zygote, in SnapStart mode: imports the handler once, then forks each worker from itself.

Lambda SnapStart (Python 3.12+) runs a version's init once, runs the
before-snapshot runtime hooks, snapshots the whole environment and resumes
every later execution environment from that snapshot, running the after-restore
hooks first (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-runtime-hooks-python.html;
the hooks are registered with AWS's `snapshot_restore_py`). Here a fork of the
zygote stands for the restore: the child starts with the zygote's memory, as a
restored environment starts with the snapshot's.

The zygote is a worker started with `--snapstart`. Once its handler is imported it
runs the before-snapshot hooks (in reverse order of registration, as Lambda's
runtime does), checks it is single-threaded (a fork keeps only the thread that
forks), says ready with `{"ready": true, "init_ms": ...}` and then serves the
runtime's requests on its control socket (SOCK_SEQPACKET, one JSON message per
packet):
- `{"fork": {"cgroup": PATH or null}}` with the new worker's socket attached:
  fork; the answer is `{"forked": PID}`;
- `{"kill": PID}`: SIGKILL that child, if it is still one;
and it reports every child that ends as `{"exited": PID, "code": N}` (N < 0: the
signal), since only the parent can learn that.

A forked child joins its cgroup, asks to die with the zygote, runs the
after-restore hooks in order of registration and says `{"ready": true,
"restore_ms": ...}` (from just before the fork), then serves invocations as any
worker. A hook that raises is reported as `{"ready": false, "restore_error": ...}`
and the child exits, as Lambda's runtime does (status 65). The zygote dies with
the runtime, and its children with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from typing import Any

from snapshot_restore_py import get_after_restore, get_before_snapshot

from holiday_tools.locallambda import cgroups
from holiday_tools.locallambda.worker import Handler, error_payload, log_error, serve
from holiday_tools.processes import exit_with_parent

BEFORE_SNAPSHOT_EXIT = 64  # the exit statuses of Lambda's Python runtime when a hook fails
AFTER_RESTORE_EXIT = 65


def run(handler: Handler, control: socket.socket, started: float, runtime_pid: int) -> None:
    """Finish the init (before-snapshot hooks), say ready, then fork workers on request until the runtime hangs up."""
    try:
        for func, args, kwargs in reversed(list(get_before_snapshot())):
            func(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 -- the function's own failure: reported as the init's
        payload = {**error_payload(err), "errorType": "Runtime.BeforeSnapshotError"}
        payload["errorMessage"] = f"{type(err).__name__}: {err}"
        _fail(control, "error", payload, BEFORE_SNAPSHOT_EXIT)
    threads = _threads()
    if threads > 1:
        message = f"the handler's init left {threads} threads running; a forked worker would have only one of them"
        _fail(control, "error", {"errorType": "Runtime.SnapStartUnsupported", "errorMessage": message}, 1)
    _send(control, {"ready": True, "init_ms": (time.perf_counter() - started) * 1000})
    Zygote(handler, control).serve()


class Zygote:
    """The zygote's loop: requests from the runtime, and its children's ends, on one thread."""

    def __init__(self, handler: Handler, control: socket.socket) -> None:
        self.handler = handler
        self.control = control
        self.children: set[int] = set()
        # SIGCHLD only wakes the loop (through this pipe); the loop reaps, never the handler.
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_w, False)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(self.wakeup_w)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.control, selectors.EVENT_READ)
        self.selector.register(self.wakeup_r, selectors.EVENT_READ)

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.fileobj == self.wakeup_r:
                    os.read(self.wakeup_r, 4096)
                    self.reap()
                elif not self.request():
                    return  # the runtime hung up: our children die with us

    def request(self) -> bool:
        message, fds, _, _ = socket.recv_fds(self.control, 65536, 1)
        if not message:
            return False
        request = json.loads(message)
        if "fork" in request:
            channel = fds[0]
            try:
                pid = self.fork(channel, request["fork"].get("cgroup"))
            except (RuntimeError, OSError) as err:
                _send(self.control, {"fork_error": str(err)})
                return True
            finally:
                os.close(channel)
            self.children.add(pid)
            _send(self.control, {"forked": pid})
        elif "kill" in request and request["kill"] in self.children:
            os.kill(request["kill"], signal.SIGKILL)
        return True

    def reap(self) -> None:
        while self.children:
            pid, status = os.waitpid(-1, os.WNOHANG)
            if pid == 0:
                return
            self.children.discard(pid)
            _send(self.control, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})

    def fork(self, channel: int, cgroup: str | None) -> int:
        """Fork a worker that serves on `channel`; its pid (in the zygote)."""
        if _threads() > 1:  # something started a thread since the init: a fork would lose it
            raise RuntimeError("the zygote is no longer single-threaded")
        state = random.getstate()
        zygote = os.getpid()
        forked = time.perf_counter()
        pid = os.fork()
        if pid:
            return pid
        code = 1
        try:
            code = self.restored(channel, cgroup, zygote, forked, state)
        except Exception:  # noqa: BLE001 -- the child must never return into the zygote's loop
            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)

    def restored(self, channel: int, cgroup: str | None, zygote: int, forked: float, state: Any) -> int:
        """In the child: become a worker restored from the zygote's snapshot; the exit status."""
        exit_with_parent()
        if os.getppid() != zygote:
            return 0  # the zygote died before we asked to die with it
        if cgroup:
            cgroups.join(cgroup)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self.selector.close()
        for fd in (self.wakeup_r, self.wakeup_w, self.control.detach()):
            os.close(fd)
        # A snapshot restores `random` as it was; CPython reseeds it in a forked child. Undo that, so that
        # init-time randomness is shared between workers as between restored environments, until a hook reseeds.
        random.setstate(state)
        with socket.socket(fileno=channel) as worker:
            try:
                for func, args, kwargs in list(get_after_restore()):
                    func(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 -- the function's own failure: reported as the restore's
                payload = {**error_payload(err), "errorType": "Runtime.AfterRestoreError"}
                payload["errorMessage"] = f"{type(err).__name__}: {err}"
                log_error(payload)
                _send_line(worker, {"ready": False, "restore_error": payload})
                return AFTER_RESTORE_EXIT
            with contextlib.suppress(OSError):  # else the runtime is gone: nobody to answer
                serve(self.handler, worker, {"restore_ms": (time.perf_counter() - forked) * 1000})
        return 0


def _fail(control: socket.socket, key: str, payload: dict[str, Any], code: int) -> None:
    log_error(payload)
    _send(control, {"ready": False, key: payload})
    sys.exit(code)


def _send(control: socket.socket, message: dict[str, Any]) -> None:
    control.send(json.dumps(message).encode())


def _send_line(channel: socket.socket, message: dict[str, Any]) -> None:
    channel.sendall(json.dumps(message).encode() + b"\n")


def _threads() -> int:
    """Threads in this process, native ones too where Linux tells."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return threading.active_count()
