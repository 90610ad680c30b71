"""The local Lambda runtime's workers live exactly as long as it does, and no stop prints a traceback.

Each test starts the runtime in its own process (as `holiday dev` does), keeps several
workers busy in a handler that leaves a marker when it finishes, stops the runtime one
way or another, and then looks at what a user would: every worker gone at once, nothing
printed, and no handler that went on to finish after the runtime was gone.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from holiday_tools.devstack import HOST, Ports
from tests.support import PROJECT_DIR, alive, poll

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="workers die with the runtime through Linux's prctl")

BUSY = 3  # workers in a handler when the runtime stops
SECONDS = 30.0  # how long the handler works at most, unless released first
# Start the runtime as `holiday dev` does (its own session, dying with its parent), and
# wait: the test then kills this parent. Output stays on our pipes, to see all that is printed.
AS_DEV_DOES = """
import subprocess, sys, time
from holiday_tools.processes import die_with_parent
runtime = subprocess.Popen(sys.argv[1:], stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
print(runtime.pid, flush=True)
time.sleep(600)
"""


def late(event: Any, context: Any) -> int:
    """Says it started (with its pid), works until released (or `seconds`), then leaves its finished marker."""
    started = Path(event["started"])
    started.with_suffix(".writing").write_text(str(os.getpid()))
    started.with_suffix(".writing").rename(started)  # whole, even if killed right after
    release = Path(event["release"]) if "release" in event else None
    deadline = time.monotonic() + event["seconds"]
    while time.monotonic() < deadline and not (release and release.exists()):
        time.sleep(0.02)
    Path(event["finished"]).touch()
    return os.getpid()


@dataclass
class Runtime:
    """A runtime in its own process; `top` is that process, or the parent that started it."""

    top: subprocess.Popen[str]
    pid: int
    port: int
    markers: Path

    def invoke(self, name: str) -> None:
        event = {"seconds": SECONDS, "started": str(self.markers / f"{name}.started")}
        event |= {"finished": str(self.markers / f"{name}.finished"), "release": str(self.release)}
        url = f"http://{HOST}:{self.port}/2015-03-31/functions/late/invocations"
        with contextlib.suppress(httpx.HTTPError):  # the runtime went away mid-call, as the test meant it to
            httpx.post(url, json=event, timeout=30)

    @property
    def release(self) -> Path:
        """Once this file exists, every handler still running finishes at once."""
        return self.markers / "release"

    def markers_of(self, kind: str) -> list[Path]:
        return sorted(self.markers.glob(f"*.{kind}"))


@pytest.fixture
def runtimes() -> Iterator[list[Runtime]]:
    """Whatever a test did, no runtime it started outlives it."""
    started: list[Runtime] = []
    yield started
    for runtime in started:
        if runtime.top.poll() is None:
            runtime.top.kill()
            runtime.top.communicate()


def start(tmp_path: Path, runtimes: list[Runtime], as_dev_does: bool = False) -> Runtime:
    port = Ports.free().functions
    argv = [sys.executable, "-m", "holiday_tools.locallambda", "--host", HOST, "--port", str(port)]
    argv += [f"--max-workers={BUSY}", f"--function=late={__name__}.late"]
    if as_dev_does:
        argv = [sys.executable, "-c", AS_DEV_DOES, *argv]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_DIR)}
    # Its own session, as `holiday dev` starts it: a Ctrl-C at a terminal reaches that group.
    top = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    assert top.stdout is not None
    pid = int(top.stdout.readline()) if as_dev_does else top.pid
    markers = tmp_path / "markers"
    markers.mkdir()
    runtime = Runtime(top, pid, port, markers)
    runtimes.append(runtime)
    poll(lambda: _answers(runtime), bool, "the runtime to answer")
    return runtime


def _answers(runtime: Runtime) -> bool:
    try:
        return httpx.get(f"http://{HOST}:{runtime.port}/local/stats", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def stop_with_workers_busy(runtime: Runtime, stop: Callable[[Runtime], None]) -> set[int]:
    """Stop the runtime while `BUSY` handlers run; return the pids of their workers."""
    with ThreadPoolExecutor(BUSY) as calls:
        for n in range(BUSY):
            calls.submit(runtime.invoke, f"call{n}")
        started = poll(lambda: runtime.markers_of("started"), lambda found: len(found) == BUSY, "busy workers")
        stop(runtime)
        stopped_at = time.monotonic()
    workers = {int(marker.read_text()) for marker in started}
    assert len(workers) == BUSY
    # Release the handlers: any that still ran would finish within a few hundredths of a second.
    runtime.release.touch()
    while time.monotonic() < stopped_at + 1.0:
        assert runtime.markers_of("finished") == [], "a handler ran on after the runtime stopped"
        time.sleep(0.05)
    return workers


def sigkill(runtime: Runtime) -> None:
    os.kill(runtime.pid, signal.SIGKILL)


def sigterm(runtime: Runtime) -> None:
    os.kill(runtime.pid, signal.SIGTERM)


def ctrl_c(runtime: Runtime) -> None:
    os.killpg(runtime.pid, signal.SIGINT)  # what a terminal does: to the whole group, workers too


def test_the_marker_handler_finishes_when_nothing_stops_it(tmp_path: Path, runtimes: list[Runtime]) -> None:
    runtime = start(tmp_path, runtimes)
    runtime.release.touch()
    runtime.invoke("call")
    assert [m.name for m in runtime.markers_of("finished")] == ["call.finished"]


@linux_only
@pytest.mark.parametrize("stop", [sigkill, sigterm, ctrl_c], ids=["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_however_the_runtime_stops_its_workers_go_with_it_silently(
    tmp_path: Path, runtimes: list[Runtime], stop: Callable[[Runtime], None]
) -> None:
    runtime = start(tmp_path, runtimes)
    workers = stop_with_workers_busy(runtime, stop)
    # The pipes close once the runtime and every worker (which share them) are gone.
    _, printed = runtime.top.communicate(timeout=5)
    assert alive(workers | {runtime.pid}) == set()
    assert printed == ""


@linux_only
def test_sigkill_of_what_started_the_runtime_takes_runtime_and_workers_with_it(
    tmp_path: Path, runtimes: list[Runtime]
) -> None:
    """`kill -9` of `holiday dev`: its runtime dies, and with it every worker, mid-handler."""
    runtime = start(tmp_path, runtimes, as_dev_does=True)
    workers = stop_with_workers_busy(runtime, lambda r: r.top.kill())
    _, printed = runtime.top.communicate(timeout=5)
    assert alive(workers | {runtime.pid}) == set()
    assert printed == ""


def test_a_worker_whose_runtime_hangs_up_mid_handler_finishes_and_exits_quietly(tmp_path: Path) -> None:
    """Where Linux cannot kill it with its parent, a worker finds its socket closed when it answers."""
    ours, theirs = socket.socketpair()
    argv = [sys.executable, "-m", "holiday_tools.locallambda.worker", f"{__name__}.late", str(theirs.fileno())]
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_DIR)}
    with ours:
        worker = subprocess.Popen(
            [*argv, str(os.getpid())], env=env, pass_fds=[theirs.fileno()], stderr=subprocess.PIPE, text=True
        )
        theirs.close()
        assert ours.makefile("rb").readline()  # ready
        event = {"seconds": 0.2, "started": str(tmp_path / "started"), "finished": str(tmp_path / "finished")}
        context = {"function_name": "late", "function_version": "1", "invoked_function_arn": "arn", "deadline": 0}
        context |= {"memory_limit_in_mb": 128, "aws_request_id": "r", "log_group_name": "g", "log_stream_name": "s"}
        ours.sendall(json.dumps({"event": event, "context": context}).encode() + b"\n")
        poll((tmp_path / "started").exists, bool, "the handler to start")
    _, printed = worker.communicate(timeout=10)
    assert (tmp_path / "finished").exists()
    assert (worker.returncode, printed) == (0, "")
