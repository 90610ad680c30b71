"""The `holiday` command as a user runs it: `dev` brings the stack up and down, `reserve` and `trip` talk to it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack, Ports
from tests.support import PROJECT_DIR, poll


def run(*args: str, ingress: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--ingress", ingress])
    return result.exit_code, result.output


def test_reserve_prints_the_booking(trip_id: str, stack: LocalStack) -> None:
    code, out = run("reserve", "--trip-id", trip_id, ingress=stack.ingress_url)
    assert code == 0, out
    assert out.startswith(f"Trip {trip_id} is booked.")
    assert "flight booking" in out
    assert "payment" in out


def test_reserve_reports_a_failed_trip_and_exits_non_zero(trip_id: str, stack: LocalStack) -> None:
    code, out = run("reserve", "--trip-id", trip_id, "--run-type", "failPayment", ingress=stack.ingress_url)
    assert code == 1
    assert f"Trip not booked (HTTP 409): trip {trip_id} failed at process payment" in out


def test_trip_shows_steps_and_compensations(trip_id: str, stack: LocalStack) -> None:
    run("reserve", "--trip-id", trip_id, "--run-type", "failCarRentalReservation", ingress=stack.ingress_url)
    code, out = run("trip", trip_id, ingress=stack.ingress_url)
    assert code == 0, out
    lines = [line.split()[:3] for line in out.splitlines()]
    assert lines[0] == ["Trip", f"{trip_id}:", "failed"]
    assert ["reserve", "car", "failed"] in lines
    assert out.index("cancel car") < out.index("cancel flight")


def test_user_mistakes_are_one_line_errors_not_tracebacks(stack: LocalStack) -> None:
    code, out = run("trip", "nope", ingress=stack.ingress_url)
    assert (code, out) == (1, "error: HTTP 404: no trip with id 'nope'\n")
    code, out = run("reserve", "--trip-id", "not valid!", ingress=stack.ingress_url)
    assert code == 1
    assert "trip_id: must be 1 to 64 characters" in out
    code, out = run("trip", "x", ingress="http://127.0.0.1:1")
    assert code == 1
    assert out.startswith("error: cannot reach the Restate ingress at http://127.0.0.1:1")
    assert "Traceback" not in out


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize("mode", ["http", "lambda"])
def test_dev_serves_the_readme_curl_and_stops_cleanly_on_ctrl_c(mode: str, tmp_path: Path) -> None:
    ports = Ports.free()
    flags = [f"--{name}-port={port}" for name, port in vars(ports).items()] + [f"--mode={mode}"]
    dev = subprocess.Popen(
        [sys.executable, "-m", "holiday_tools.cli", "dev", *flags, "--data-dir", str(tmp_path)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("HOLIDAY_")},
    )
    try:
        assert dev.stdout is not None
        banner = []
        for line in dev.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops everything"):
                break
        assert f"ingress   http://127.0.0.1:{ports.ingress}" in "".join(banner), "".join(banner)
        assert f"{mode} mode" in "".join(banner)
        response = httpx.post(f"http://127.0.0.1:{ports.ingress}/trips/reserve", json={}, timeout=30)
        assert response.status_code == 200, response.text
        dev.send_signal(signal.SIGINT)
        assert dev.wait(timeout=30) == 0
        assert "Stopping ..." in dev.stdout.read()
        still_open = poll(
            lambda: [p for p in vars(ports).values() if _listening(p)], lambda busy: not busy, "every port to close"
        )
        assert still_open == []
    finally:
        if dev.poll() is None:
            dev.kill()


def test_dev_refuses_a_busy_port_by_name(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["dev", f"--ingress-port={port}", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert f"port {port} (ingress) is already in use; choose another with --ingress-port" in result.output


def test_trip_needs_an_id() -> None:
    result = CliRunner().invoke(main, ["trip"])
    assert result.exit_code == 2
    assert "Missing argument 'TRIP_ID'" in result.output


@pytest.mark.parametrize(
    ("levels", "says"),
    [("1,x", "whole numbers separated by commas, like 1,32; got '1,x'"), ("0", "concurrency must be 1 or more")],
)
def test_bench_refuses_a_bad_concurrency_before_starting_anything(levels: str, says: str) -> None:
    result = CliRunner().invoke(main, ["bench", "--concurrency", levels])
    assert result.exit_code == 1
    assert says in result.output
