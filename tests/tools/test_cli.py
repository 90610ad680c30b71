"""The `holiday` command as a user runs it: `dev` brings the stack up and down, `reserve` and `trip` talk to
it, `rows` reads the tables, and every line it prints fits in 100 columns."""

from __future__ import annotations

import re
import shlex
import subprocess
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from holiday_tools.cli import _banner, main
from holiday_tools.devstack import LocalStack, Ports
from tests.support import PROJECT_DIR

WIDTH = 100


def run(*args: str, ingress: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--ingress", ingress])
    return result.exit_code, result.output


def rows(trip_id: str, stack: LocalStack) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rows", trip_id, "--aws-endpoint", stack.aws_url])
    return result.exit_code, result.output


def too_wide(output: str) -> list[str]:
    return [line for line in output.splitlines() if len(line) > WIDTH]


def test_reserve_prints_the_booking(trip_id: str, stack: LocalStack) -> None:
    code, out = run("reserve", "--trip-id", trip_id, ingress=stack.ingress_url)
    assert code == 0, out
    assert out.startswith(f"Trip {trip_id} is booked.")
    assert "flight booking" in out
    assert "payment" in out


def test_reserve_reports_a_failed_trip_once_wrapped_between_words_and_exits_non_zero(
    trip_id: str, stack: LocalStack
) -> None:
    code, out = run("reserve", "--trip-id", trip_id, "--run-type", "failPayment", ingress=stack.ingress_url)
    assert code == 1
    assert too_wide(out) == []
    assert " ".join(out.split()) == (
        f"error: Trip {trip_id} was not booked: payment failed (injected by run_type failPayment). "
        "Compensated: refund payment, cancel car, cancel flight."
    )
    _, *more = out.splitlines()
    assert more
    assert all(line.startswith(" " * len("error: ")) for line in more)  # one message, wrapped under itself


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


@pytest.mark.parametrize("command", ["reserve", "trip"])
def test_an_ingress_without_a_scheme_is_read_as_http_as_curl_does(command: str, stack: LocalStack) -> None:
    booked = httpx.post(f"{stack.ingress_url}/trips/reserve", json={}, timeout=60).json()["trip_id"]
    args = ["trip", booked] if command == "trip" else ["reserve"]
    code, out = run(*args, ingress=stack.ingress_url.removeprefix("http://"))
    assert code == 0, out
    assert out.startswith("Trip ")


def test_a_bad_ingress_gets_one_tidy_sentence() -> None:
    code, out = run("trip", "x", ingress="127.0.0.1:1")
    assert code == 1
    assert " ".join(out.split()) == (
        "error: cannot reach the Restate ingress at http://127.0.0.1:1/trip/x/status: "
        "[Errno 111] Connection refused. Is `make dev` running?"
    )
    code, out = run("reserve", ingress="ftp://127.0.0.1:8080")
    assert code == 2
    assert "'ftp://127.0.0.1:8080' is not an http:// or https:// URL, like http://127.0.0.1:8080" in out


@pytest.mark.parametrize(
    ("run_type", "statuses"),
    [(None, ["confirmed", "confirmed", "charged"]), ("failPayment", ["cancelled", "cancelled", "refunded"])],
)
def test_rows_shows_the_trip_in_each_table(
    run_type: str | None, statuses: list[str], trip_id: str, stack: LocalStack
) -> None:
    run("reserve", "--trip-id", trip_id, *(["--run-type", run_type] if run_type else []), ingress=stack.ingress_url)
    record = httpx.get(f"{stack.ingress_url}/trip/{trip_id}/status", timeout=60).json()
    code, out = rows(trip_id, stack)
    assert code == 0, out
    assert too_wide(out) == []
    assert " ".join(out.split()).startswith(f"Trip {trip_id}: its rows in the tables flights, cars, payments table ")
    lines = out.splitlines()
    header = [line.split() for line in lines].index(["table", "status", "booking", "id", "updated", "(UTC)"])
    table = {line.split()[0]: line.split() for line in lines[header + 1 :] if not line.startswith(" ")}
    assert [table[t][1] for t in ("flights", "cars", "payments")] == statuses
    # Each row names its booking, as the trip's record does, and when it last changed.
    assert [table[t][2] for t in ("flights", "cars")] == [step["id"] for step in record["steps"][:2]]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d", row[3]) for row in table.values())
    assert "depart_city=Dublin arrive_city=Lisbon" in out


def test_rows_of_an_unknown_trip_is_an_error(stack: LocalStack) -> None:
    code, out = rows("no-such-trip", stack)
    assert (code, out) == (1, "error: trip 'no-such-trip' has no rows in the tables flights, cars, payments\n")


def test_every_line_of_every_command_fits_in_100_columns(trip_id: str, stack: LocalStack) -> None:
    """Long ids, long errors and tables included: nothing wraps mid-word in a 100-column terminal."""
    i = stack.ingress_url
    outputs = {
        "reserve": run("reserve", "--trip-id", f"{trip_id}-ok", ingress=i)[1],
        "reserve, failing": run("reserve", "--trip-id", trip_id, "--run-type", "failNotification", ingress=i)[1],
        "trip": run("trip", trip_id, ingress=i)[1],
        "rows": rows(trip_id, stack)[1],
    }
    audit = CliRunner().invoke(main, ["audit", "--aws-endpoint", stack.aws_url, "--admin", stack.admin_url])
    outputs["audit"] = audit.output
    assert all(outputs.values())
    assert {name: too_wide(out) for name, out in outputs.items()} == {name: [] for name in outputs}


def audit(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", *args])
    return result.exit_code, result.output


def test_audit_fails_in_one_line_naming_an_admin_api_nobody_answers(stack: LocalStack) -> None:
    nobody = f"http://127.0.0.1:{Ports.free().admin}"
    code, out = audit("--aws-endpoint", stack.aws_url, "--admin", nobody)
    assert code == 1, out
    assert "invocations retrying or paused: not known (see below)" in out
    report, error = out.split("error: ")
    assert report.startswith("trips: ")  # the tables were checked all the same
    assert " ".join(error.split()).startswith(f"could not query Restate's admin API at {nobody}: ")
    assert too_wide(out) == []


def test_audit_without_an_admin_api_says_it_did_not_look_at_invocations(stack: LocalStack) -> None:
    code, out = audit("--aws-endpoint", stack.aws_url, "--admin", "")
    assert "invocations retrying or paused: not looked at (no admin API given)" in out
    assert "error" not in out
    assert code == (0 if "no invariant violations" in out else 1), out


def test_audit_fails_when_it_cannot_read_the_tables() -> None:
    nobody = f"http://127.0.0.1:{Ports.free().aws}"
    code, out = audit("--aws-endpoint", nobody, "--admin", "")
    assert code == 1, out
    assert out.startswith("error: cannot read the tables: "), out


def test_the_banner_fits_and_its_commands_work_as_printed(stack: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make dev` does not activate the venv: the banner's `holiday` commands must run as shown."""
    monkeypatch.chdir(PROJECT_DIR)  # where `make dev` runs
    banner = _banner(stack)
    assert too_wide(banner) == []
    assert f"UI        {stack.admin_url}/ui/" in banner
    commands = [line.strip() for line in banner.splitlines() if line.strip().startswith(".venv/bin/holiday ")]
    assert [shlex.split(c)[1] for c in commands] == ["rows", "reserve"]
    httpx.post(f"{stack.ingress_url}/trips/reserve", json={"trip_id": "foo"}, timeout=60)  # as the banner's curl
    done = [subprocess.run(shlex.split(c), cwd=PROJECT_DIR, capture_output=True, text=True) for c in commands]
    shown_rows, failed = done
    assert shown_rows.returncode == 0, shown_rows.stderr
    assert shown_rows.stdout.startswith("Trip foo: its rows")
    assert failed.returncode == 1
    assert failed.stderr.startswith("error: Trip ")
    assert "success notification failed (injected by run_type failNotification)" in " ".join(failed.stderr.split())


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


def test_dev_refuses_snapstart_outside_lambda_mode_before_starting_anything(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["dev", "--snapstart", "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "--snapstart is for the Lambda functions: add --mode lambda" in " ".join(result.output.split())
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--memory", "512"], "--memory and --snapstart are for the local stack in lambda mode"),
        (["--mode", "lambda", "--memory", "64"], "--memory wants different sizes in MB, 128 to 10240"),
        (["--mode", "lambda", "--memory", "512,x"], "--memory wants sizes in MB separated by commas"),
        (["--cold-starts", "1", "--memory", "512,1024"], "--cold-starts measures at one memory size"),
    ],
)
def test_bench_refuses_memory_sizes_it_cannot_compare_before_starting_anything(args: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 1
    assert says in " ".join(result.output.split())
