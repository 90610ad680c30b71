"""`holiday dev` as people start and stop it: Ctrl-C under load, SIGTERM, a closed terminal, SIGKILL.

Each test runs the real command in its own process on free ports, and checks what a user
would notice afterwards: the exit, what was printed, and that no process and no port is left.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import psutil
import pytest

from holiday_tools import devstack
from holiday_tools.devstack import LocalStack, Ports, StackError, unrouted
from tests.support import PROJECT_DIR, alive, children_of, poll


def listening(ports: Ports) -> list[int]:
    busy = []
    for port in vars(ports).values():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                busy.append(port)
    return busy


@dataclass
class Dev:
    """A running `holiday dev`, its ports, and everything it printed."""

    popen: subprocess.Popen[str]
    ports: Ports
    data_dir: Path
    output: list[str]

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ports.ingress}"

    def printed(self) -> str:
        return "".join(self.output)


def start_dev(mode: str, data_dir: Path, ports: Ports | None = None, nodes: int = 1) -> Dev:
    ports = ports or Ports.free()
    flags = [f"--{name}-port={port}" for name, port in vars(ports).items()] + [f"--mode={mode}", f"--nodes={nodes}"]
    popen = subprocess.Popen(
        [sys.executable, "-m", "holiday_tools.cli", "dev", *flags, "--data-dir", str(data_dir)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("HOLIDAY_")},
    )
    dev = Dev(popen, ports, data_dir, [])
    ready = threading.Event()

    def read() -> None:
        assert popen.stdout is not None
        for line in popen.stdout:
            dev.output.append(line)
            if line.startswith("Ctrl-C stops everything"):
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    assert ready.wait(120), dev.printed()
    assert popen.poll() is None, dev.printed()
    return dev


@pytest.fixture
def dev_stacks() -> Iterator[list[Dev]]:
    """Every `holiday dev` a test starts is gone afterwards, whatever the test did."""
    started: list[Dev] = []
    yield started
    for dev in started:
        if dev.popen.poll() is None:
            dev.popen.kill()
            dev.popen.wait()


def book(dev: Dev) -> None:
    response = httpx.post(f"{dev.ingress}/trips/reserve", json={}, timeout=60)
    assert response.status_code == 200, response.text


def booked_once(mode: str, tmp_path: Path, dev_stacks: list[Dev]) -> tuple[Dev, set[int]]:
    """A `holiday dev` that has booked a trip, and every process it runs."""
    dev = start_dev(mode, tmp_path)
    dev_stacks.append(dev)
    book(dev)
    return dev, children_of(dev.popen.pid)


def assert_stopped_cleanly(dev: Dev, family: set[int]) -> None:
    """Exit 0 with the stopping line, no traceback, nothing killed, no process or port left."""
    assert dev.popen.wait(timeout=60) == 0, dev.printed()
    poll(lambda: alive(family), lambda left: not left, "every process of the stack to be gone", timeout=10)
    poll(lambda: listening(dev.ports), lambda busy: not busy, "every port to be closed", timeout=10)
    printed = dev.printed()
    assert "Stopping ..." in printed
    assert "Traceback" not in printed
    assert "CancelledError" not in printed
    assert "had to be killed" not in printed  # restate-server and the rest exited by themselves


@pytest.mark.parametrize("mode", ["http", "lambda"])
def test_ctrl_c_under_load_stops_everything_by_itself(mode: str, tmp_path: Path, dev_stacks: list[Dev]) -> None:
    dev, family = booked_once(mode, tmp_path, dev_stacks)
    answered: list[int] = []
    stop = threading.Event()

    def caller(n: int) -> None:
        # A bounded loop: at most 50 trips per caller, and none once the stack is stopping.
        for i in range(50):
            if stop.is_set():
                return
            key = f"load-{n}-{i}"
            try:
                response = httpx.post(
                    f"{dev.ingress}/trips/reserve", json={}, headers={"idempotency-key": key}, timeout=30
                )
                answered.append(response.status_code)
            except httpx.HTTPError:
                return  # cut off by the stop: the README tells such a caller to ask again with its key

    with ThreadPoolExecutor(32) as pool:
        for n in range(32):
            pool.submit(caller, n)
        poll(lambda: len(answered), lambda count: count >= 32, "32 trips booked under load", timeout=60)
        dev.popen.send_signal(signal.SIGINT)
        assert_stopped_cleanly(dev, family)
        stop.set()
    assert set(answered) <= {200}  # every answer that came was a booking, never a 5xx


@pytest.mark.parametrize("mode", ["http", "lambda"])
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_a_closed_terminal_stop_as_ctrl_c_does(
    stop_signal: signal.Signals, mode: str, tmp_path: Path, dev_stacks: list[Dev]
) -> None:
    dev, family = booked_once(mode, tmp_path, dev_stacks)
    assert family
    dev.popen.send_signal(stop_signal)
    assert_stopped_cleanly(dev, family)


@pytest.mark.parametrize("mode", ["http", "lambda"])
def test_sigkill_leaves_no_process_and_no_port_behind(mode: str, tmp_path: Path, dev_stacks: list[Dev]) -> None:
    dev, family = booked_once(mode, tmp_path, dev_stacks)
    dev.popen.kill()
    dev.popen.wait()
    poll(lambda: alive(family), lambda left: not left, "every process of the stack to die with it", timeout=10)
    poll(lambda: listening(dev.ports), lambda busy: not busy, "every port to be closed", timeout=10)
    time.sleep(0.5)  # whatever a dying process might still print has had its chance
    assert "Traceback" not in dev.printed()


def test_dev_starts_again_at_once_on_the_ports_it_just_used(tmp_path: Path, dev_stacks: list[Dev]) -> None:
    # Stopping leaves connections in TIME_WAIT on those ports; the servers can bind them again.
    first = start_dev("http", tmp_path / "first")
    dev_stacks.append(first)
    for _ in range(5):
        book(first)
    first.popen.send_signal(signal.SIGINT)
    assert first.popen.wait(timeout=60) == 0
    second = start_dev("http", tmp_path / "second", first.ports)
    dev_stacks.append(second)
    book(second)


def test_dev_refuses_a_busy_port_by_name(tmp_path: Path) -> None:
    # Every other port free, so this holds beside a `make dev` on the default ports.
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        ports = replace(Ports.free(), ingress=busy.getsockname()[1])
        flags = [f"--{name}-port={port}" for name, port in vars(ports).items()]
        done = subprocess.run(
            [sys.executable, "-m", "holiday_tools.cli", "dev", *flags, "--data-dir", str(tmp_path)],
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    says = f"port {ports.ingress} (ingress) is already in use; choose another with --ingress-port"
    assert says in done.stdout + done.stderr


def test_when_the_services_die_dev_says_so_and_their_log_is_where_it_points(
    tmp_path: Path, dev_stacks: list[Dev]
) -> None:
    dev = start_dev("http", tmp_path)
    dev_stacks.append(dev)
    book(dev)
    [services] = [
        pid for pid in children_of(dev.popen.pid) if "holiday_tools.server" in " ".join(psutil.Process(pid).cmdline())
    ]
    os.kill(services, signal.SIGKILL)
    assert dev.popen.wait(timeout=30) == 1
    logs = tmp_path.resolve() / "logs"
    # (wrapped to the terminal's 100 columns, between words)
    assert f"error: services stopped unexpectedly; see the logs in {logs}" in " ".join(dev.printed().split())
    assert "trips: trip=" in (logs / "services.log").read_text()  # the trip it booked, in the services' own log


def cluster_ports() -> Ports:
    """Free ports for `holiday dev --nodes 3`: nodes 2 and 3 use the ingress, admin and fabric ports plus 1 and 2."""
    for _ in range(50):
        # Ports.free hands out ports one after another: the ingress, admin and fabric ports each come from a
        # set of their own, whose next two ports (nodes 2 and 3) are then this process's too, and unused.
        base, ingress, admin, fabric = (Ports.free() for _ in range(4))
        ports = replace(base, ingress=ingress.aws, admin=admin.aws, fabric=fabric.aws)
        nodes = [port + n for port in (ports.ingress, ports.admin, ports.fabric) for n in (1, 2)]
        if not set(nodes) & set(vars(ports).values()) and all(bindable(port) for port in nodes):
            return ports
    raise AssertionError("no free ports for three nodes")


def bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def restate_servers(dev: Dev) -> dict[int, str]:
    """pid -> node name ("restate-2") of each restate-server `holiday dev` runs, from their command lines."""
    found = {}
    for pid in children_of(dev.popen.pid):
        try:
            argv = psutil.Process(pid).cmdline()
            config = psutil.Process(pid).environ()
        except psutil.Error:
            continue  # gone meanwhile
        if argv and argv[0].endswith("/restate-server"):
            found[pid] = Path(config["RESTATE_CONFIG"]).stem
    return found


def test_dev_starts_a_cluster_node_that_exits_again_and_every_keyed_caller_gets_its_trip(
    tmp_path: Path, dev_stacks: list[Dev]
) -> None:
    dev = start_dev("http", tmp_path, cluster_ports(), nodes=3)
    dev_stacks.append(dev)
    ingresses = [f"http://127.0.0.1:{dev.ports.ingress + n}" for n in range(3)]
    first = restate_servers(dev)
    assert sorted(first.values()) == ["restate-1", "restate-2", "restate-3"]
    answers: dict[str, httpx.Response] = {}
    started = threading.Event()

    def reserve(trip_id: str, n: int) -> httpx.Response:
        """As a caller that has read the README: its own key, asked again (of the next node) until it gets an answer."""
        deadline = time.monotonic() + 90
        while True:
            ingress = ingresses[n % 3]
            n += 1
            try:
                response = httpx.post(
                    f"{ingress}/trips/reserve",
                    json={"trip_id": trip_id},
                    headers={"idempotency-key": f"key-{trip_id}"},
                    timeout=30,
                )
                if response.status_code < 500 and not unrouted(response):
                    return response
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"no answer for {trip_id}"
            time.sleep(0.2)

    def caller(n: int) -> None:
        for i in range(3):
            trip_id = f"c{n}-{i}"
            answers[trip_id] = reserve(trip_id, n)
            started.set()

    with ThreadPoolExecutor(24) as pool:
        calls = [pool.submit(caller, n) for n in range(24)]
        assert started.wait(60)
        for pid in first:
            os.kill(pid, signal.SIGTERM)  # as a rolling restart, or `docker stop`, stops a node
        for call in calls:
            call.result()
    assert len(answers) == 72
    assert {trip_id: (r.status_code, r.json().get("trip_id")) for trip_id, r in answers.items()} == {
        trip_id: (200, trip_id) for trip_id in answers
    }
    assert dev.popen.poll() is None, dev.printed()  # still running
    again = restate_servers(dev)
    assert sorted(again.values()) == ["restate-1", "restate-2", "restate-3"]
    assert not set(again) & set(first)  # each one a new process
    restarted = re.findall(r"^(restate-\d) exited \(.+\); started it again on its data", dev.printed(), re.M)
    assert sorted(restarted) == ["restate-1", "restate-2", "restate-3"], dev.printed()
    family = children_of(dev.popen.pid)
    dev.popen.send_signal(signal.SIGINT)
    assert_stopped_cleanly(dev, family)


def failing_server(tmp_path: Path) -> Path:
    """A restate-server that fails at start, as one whose socket path was too long did."""
    failing = tmp_path / "restate-server"
    failing.write_text("#!/bin/sh\necho 'starting'\necho 'Error: path must be shorter than SUN_LEN' >&2\nexit 1\n")
    failing.chmod(0o755)
    return failing


def test_a_node_that_exits_while_awaited_is_reported_at_once_with_its_last_log_line(tmp_path: Path) -> None:
    failing = failing_server(tmp_path)
    stack = LocalStack(PROJECT_DIR, tmp_path / "data", Ports.free())
    stack.start_node(0, binary=failing)
    began = time.monotonic()
    with pytest.raises(StackError) as raised:
        stack.wait_for_node(0)
    assert time.monotonic() - began < 5  # not the 60 s timeout
    log = tmp_path / "data" / "logs" / "restate.log"
    assert str(raised.value) == f"restate exited (code 1): Error: path must be shorter than SUN_LEN (see {log})"


def test_a_node_that_keeps_exiting_is_started_again_up_to_the_limit_then_stops_the_stack(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(devstack, "RESTART_DELAY_S", 0.1)  # 1 s in `holiday dev`
    stack = LocalStack(PROJECT_DIR, tmp_path / "data", Ports.free())
    stack.start_node(0, binary=failing_server(tmp_path))  # the supervisor starts it again on the same binary
    said: list[str] = []
    fatal = poll(lambda: stack.supervise(said.append), lambda fatal: fatal is not None, "the start limit", timeout=20)
    assert said == [
        f"restate exited (code 1); started it again on its data, as systemd does on a host (log: {stack.node_log(0)})"
    ] * (devstack.RESTART_LIMIT - 1)
    assert fatal == (
        f"restate exited (code 1): Error: path must be shorter than SUN_LEN (see {stack.node_log(0)}); "
        f"it started {devstack.RESTART_LIMIT} times within 30 s, so it is not started again"
    )
