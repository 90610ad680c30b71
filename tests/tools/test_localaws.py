"""The AWS stand-in's server: moto over granian, which runs moto in a worker process of its own."""

from __future__ import annotations

import signal
import subprocess
import sys

import psutil

from holiday_tools.devstack import HOST, Ports, StackError, http_ok, wait_until


def port_taken(port: int) -> bool:
    try:
        Ports(aws=port, ingress=port, admin=port, services=port, fabric=port, functions=port).check_free()
    except StackError:
        return True
    return False


def worker_pids(parent: int) -> list[int]:
    return [child.pid for child in psutil.Process(parent).children()]


def gone(pid: int) -> bool:
    """Exited: no such process, or a zombie that nobody has reaped yet."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_sigkilled_stand_in_leaves_no_worker_on_its_port() -> None:
    port = Ports.free().aws
    server = subprocess.Popen([sys.executable, "-m", "holiday_tools.localaws", "--host", HOST, "--port", str(port)])
    try:
        wait_until(http_ok(f"http://{HOST}:{port}/moto-api/"), "the stand-in to answer")
        workers = worker_pids(server.pid)
        assert workers, "granian serves moto from a worker process"
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    # Its worker goes with it, so the next `holiday dev` finds the port free.
    wait_until(lambda: not port_taken(port), f"port {port} to be free after the SIGKILL", timeout=10)
    wait_until(lambda: all(gone(pid) for pid in workers), f"workers {workers} to exit", timeout=10)
