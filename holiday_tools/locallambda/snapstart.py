"""The runtime's side of SnapStart mode: a version's zygote, and the workers it forks.

See `zygote` for what runs in the zygote. The zygote, not the runtime, is the
parent of its workers, so the runtime learns of a worker's end from the zygote's
report (`ForkedProcess`), and asks the zygote to kill one: a pid is only ever
signalled by the process that will reap it, so it is never a reused pid. When
the zygote ends, Linux kills its workers (they asked to die with it).
"""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, Protocol


class Spawns(Protocol):
    def popen(self, argv: list[str], env: dict[str, str], pass_fd: int) -> subprocess.Popen[bytes]: ...


class ZygoteError(Exception):
    """The zygote could not start or fork; `payload` is the init error Lambda would report, if any."""

    def __init__(self, message: str, payload: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.payload = payload


class ForkedProcess:
    """A worker forked by a zygote, with the parts of `subprocess.Popen` the runtime uses."""

    def __init__(self, pid: int, zygote: Zygote) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self._zygote = zygote
        self._ended = threading.Event()

    def poll(self) -> int | None:
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self._zygote.kill_child(self.pid)

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def ended(self, code: int) -> None:
        self.returncode = code
        self._ended.set()


class Zygote:
    """One version's zygote process: started by the runtime's spawner, it imports the handler once."""

    def __init__(
        self,
        argv: Callable[[int], list[str]],
        env: dict[str, str],
        spawner: Spawns,
        timeout: float,
        cleanup: Callable[[], None],
    ) -> None:
        """Start a worker process as a zygote: `argv(fd)` is its command line, `cleanup` runs once it has ended."""
        if sys.platform != "linux":
            raise ZygoteError("SnapStart mode forks workers that die with their zygote, which needs Linux")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            self.process = spawner.popen([*argv(theirs.fileno()), "--snapstart"], env, theirs.fileno())
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self.control = ours
        self.timeout = timeout
        self.cleanup = cleanup
        self.init_ms = 0.0
        self._children: dict[int, ForkedProcess] = {}
        self._forking: Future[ForkedProcess] | None = None
        self._lock = threading.Lock()  # one fork at a time, and one message sent at a time
        self._state = threading.Lock()  # `_children` and `_forking`, shared with the reader thread
        self._reader: threading.Thread | None = None

    def wait_ready(self) -> None:
        """Wait while the zygote imports the handler and runs the before-snapshot hooks; ZygoteError if it fails."""
        self.control.settimeout(self.timeout)
        try:
            message = self.control.recv(65536)
        except OSError:  # the timeout too
            message = b""
        ready = json.loads(message) if message else {}
        if not ready.get("ready"):
            self.stop()
            raise ZygoteError(exit_reason(self.process.returncode), ready.get("error"))
        self.init_ms = float(ready["init_ms"])
        self.control.settimeout(None)
        self._reader = threading.Thread(target=self._read, name=f"zygote-{self.process.pid}", daemon=True)
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None and self._reader is not None and self._reader.is_alive()

    def fork(self, cgroup: str | None) -> tuple[ForkedProcess, socket.socket]:
        """A new worker restored from the zygote, and the runtime's end of its socket."""
        ours, theirs = socket.socketpair()
        try:
            with self._lock:
                forking: Future[ForkedProcess] = Future()
                with self._state:
                    self._forking = forking
                message = json.dumps({"fork": {"cgroup": cgroup}}).encode()
                try:
                    socket.send_fds(self.control, [message], [theirs.fileno()])
                except OSError as err:
                    raise ZygoteError(f"the zygote is gone: {err}") from None
                return forking.result(self.timeout), ours
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()

    def kill_child(self, pid: int) -> None:
        with self._lock, contextlib.suppress(OSError):  # else the zygote is gone, and its children with it
            self.control.send(json.dumps({"kill": pid}).encode())

    def stop(self) -> None:
        """Kill the zygote (its workers die with it) and wait until the runtime knows them all ended."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        if self._reader is not None:
            self._reader.join()
        self.control.close()
        self.cleanup()

    def _read(self) -> None:
        """The zygote's messages: forks done, children ended. At its end, every child it had ended too."""
        while True:
            try:
                message = self.control.recv(65536)
            except OSError:
                message = b""
            if not message:
                break
            report = json.loads(message)
            with self._state:
                if "forked" in report:
                    child = ForkedProcess(report["forked"], self)
                    self._children[child.pid] = child
                    self._settle(child)
                elif "fork_error" in report:
                    self._settle(ZygoteError(f"the zygote could not fork: {report['fork_error']}"))
                elif "exited" in report and report["exited"] in self._children:
                    self._children.pop(report["exited"]).ended(report["code"])
        self.process.wait()
        with self._state:
            for child in self._children.values():
                child.ended(-9)  # killed by Linux with their parent
            self._children.clear()
            self._settle(ZygoteError(exit_reason(self.process.returncode)))

    def _settle(self, outcome: ForkedProcess | ZygoteError) -> None:
        """Answer the fork that waits, if one does (under `_state`)."""
        forking, self._forking = self._forking, None
        if forking is None or forking.done():
            return
        if isinstance(outcome, ZygoteError):
            forking.set_exception(outcome)
        else:
            forking.set_result(outcome)


def exit_reason(code: int | None) -> str:
    """How a process ended, in the words of Lambda's Runtime.ExitError: `exit status 3`, `signal: kill`."""
    if code is None:
        return "still running"
    return f"signal: {_signal_name(-code)}" if code < 0 else f"exit status {code}"


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name.removeprefix("SIG").lower()
    except ValueError:
        return str(number)
