"""`--token` and `--insecure`: the CLI through a deployed ingress's front, as a user sees it.

The front is the host's own nginx (tests/front.py) with the key check, in front of the session's
local stack: without the key it answers 401 and nothing reaches Restate. One front speaks plain
HTTP, the other HTTPS with a self-signed certificate, as a default self-hosted deployment does.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack, Ports
from tests.front import Front, Secret
from tests.support import BOOKED, TABLES, rows, statuses

# As the deployment makes them: 32 to 512 of A-Z a-z 0-9 . _ ~ + / - (see holiday_host/ingress_key.sh).
KEY = secrets.token_urlsafe(32)
WRONG_KEY = secrets.token_urlsafe(32)
# Whatever the shell running the tests has exported, each test says what it sends.
NO_ACCESS = {"HOLIDAY_INGRESS_TOKEN": None, "HOLIDAY_INGRESS_INSECURE": None, "HOLIDAY_INGRESS": None}
INDENT = " " * len("error: ")


def holiday(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the CLI; its exit code and everything it printed (stdout and stderr, as a terminal shows them)."""
    result = CliRunner().invoke(main, list(args), env={**NO_ACCESS, **(env or {})})
    # An exception other than the exit would be a traceback for the user (CliRunner keeps it, unprinted).
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exc_info
    assert "Traceback" not in result.output
    assert KEY not in result.output  # a key is never printed
    assert WRONG_KEY not in result.output
    return result.exit_code, result.output


def one_error(output: str) -> str:
    """The single `error:` message of `output` (wrapped under itself to fit), as one line."""
    first, *more = output.splitlines()
    assert first.startswith("error: "), output
    assert all(line.startswith(INDENT) for line in more), output
    return " ".join(output.split())


def no_rows(stack: LocalStack, trip_id: str) -> bool:
    return all(rows(stack, table, trip_id) == [] for table in TABLES)


def start_front(stack: LocalStack, work: Path, *, tls: bool) -> Front:
    secret = Secret.create(stack, f"ingress-key-{uuid.uuid4().hex[:8]}", KEY)
    upstream = urlsplit(stack.ingress_url).netloc
    return Front.start(work, Ports.free().ingress, upstream=upstream, tls=tls, secret=secret)


@pytest.fixture(scope="module")
def front(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """Plain HTTP, as behind a load balancer that ends TLS; the key checked."""
    started = start_front(stack, tmp_path_factory.mktemp("front"), tls=False)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def tls_front(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Front]:
    """HTTPS with a self-signed certificate, as a default self-hosted deployment serves; the key checked."""
    started = start_front(stack, tmp_path_factory.mktemp("tls-front"), tls=True)
    yield started
    started.stop()


def test_reserve_without_a_key_is_one_error_naming_token_and_books_nothing(
    trip_id: str, stack: LocalStack, front: Front
) -> None:
    code, out = holiday("reserve", "--trip-id", trip_id, "--ingress", front.url)
    assert code == 1
    assert one_error(out) == (
        f"error: the Restate ingress at {front.url} wants a key (HTTP 401): give it with --token or "
        "HOLIDAY_INGRESS_TOKEN (the ingress key of a self-hosted deployment, or a Restate Cloud API key)."
    )
    assert no_rows(stack, trip_id)
    code, out = holiday("trip", trip_id, "--ingress", front.url)
    assert code == 1
    assert "wants a key (HTTP 401): give it with --token or HOLIDAY_INGRESS_TOKEN" in one_error(out)


def test_a_wrong_key_is_refused_in_one_line(trip_id: str, stack: LocalStack, front: Front) -> None:
    code, out = holiday("reserve", "--trip-id", trip_id, "--ingress", front.url, "--token", WRONG_KEY)
    assert code == 1
    assert one_error(out) == (
        f"error: the Restate ingress at {front.url} refused the key (HTTP 401): check --token or "
        "HOLIDAY_INGRESS_TOKEN against the deployment's ingress key (or your Restate Cloud API key)."
    )
    assert no_rows(stack, trip_id)


@pytest.mark.parametrize("given_by", ["--token", "HOLIDAY_INGRESS_TOKEN"])
def test_the_right_key_books_and_looks_the_trip_up(
    given_by: str, trip_id: str, stack: LocalStack, front: Front
) -> None:
    flag, env = (["--token", KEY], None) if given_by == "--token" else ([], {"HOLIDAY_INGRESS_TOKEN": KEY})
    code, out = holiday("reserve", "--trip-id", trip_id, "--ingress", front.url, *flag, env=env)
    assert code == 0, out
    assert out.startswith(f"Trip {trip_id} is booked.\n")
    assert statuses(stack, trip_id) == BOOKED
    code, out = holiday("trip", trip_id, "--ingress", front.url, *flag, env=env)
    assert code == 0, out
    assert out.startswith(f"Trip {trip_id}: succeeded\n")


def test_a_self_signed_certificate_is_one_error_naming_insecure_and_accepted_with_it(
    trip_id: str, stack: LocalStack, tls_front: Front
) -> None:
    assert tls_front.url.startswith("https://")
    code, out = holiday("reserve", "--trip-id", trip_id, "--ingress", tls_front.url, "--token", KEY)
    assert code == 1
    message = one_error(out)
    assert message.startswith(f"error: cannot verify the TLS certificate of the Restate ingress at {tls_front.url} (")
    assert message.endswith(
        "A default self-hosted deployment serves a self-signed certificate: add --insecure "
        "(or set HOLIDAY_INGRESS_INSECURE=1) to accept it, as curl -k does."
    )
    assert no_rows(stack, trip_id)
    code, out = holiday("reserve", "--trip-id", trip_id, "--ingress", tls_front.url, "--token", KEY, "--insecure")
    assert code == 0, out
    assert out.startswith(f"Trip {trip_id} is booked.\n")
    code, out = holiday("trip", trip_id, "--ingress", tls_front.url, env={"HOLIDAY_INGRESS_INSECURE": "1"})
    assert code == 1  # the certificate accepted, the key still wanted
    assert "wants a key (HTTP 401)" in one_error(out)
    env = {"HOLIDAY_INGRESS_INSECURE": "1", "HOLIDAY_INGRESS_TOKEN": KEY}
    code, out = holiday("trip", trip_id, "--ingress", tls_front.url, env=env)
    assert code == 0, out
    assert out.startswith(f"Trip {trip_id}: succeeded\n")


def test_bench_through_an_https_front_with_the_key_prints_figures(stack: LocalStack, tls_front: Front) -> None:
    args = ["--count", "4", "--concurrency", "2", "--warmup", "1", "--no-baseline", "--mix", "clean=1,failPayment=1"]
    code, out = holiday("bench", "--ingress", tls_front.url, "--token", KEY, "--insecure", *args)
    assert code == 0, out
    report = out[out.index("\nrun ") :].strip().split("\n\n")  # after the progress bar's label, on stderr
    table = [line.split() for line in report[0].splitlines()]
    assert " ".join(table[0]) == "run at once trips booked undone wrong trips/s p50 ms p90 ms p99 ms max ms"
    assert [row[:7] for row in table[1:]] == [["holiday", "(http)", "2", "4", "2", "2", "0"]]
    # nginx, not restate-server, listens on the front's port: no CPU figures, and the bench says why.
    nginx = r"No CPU figures for holiday \(http\): nginx \(pid \d+\) listens there, without a Restate admin API\."
    assert len(report) == 2, report
    assert re.fullmatch(nginx, report[1]), report[1]


def test_bench_with_a_wrong_key_stops_at_the_first_401_in_one_line(front: Front) -> None:
    access_log = Path(front.layout.access_log)
    before = len(access_log.read_text().splitlines())
    # 100 warm-up reservations, 4 at once: the first 401 ends it, and nothing is counted as a trip.
    args = ["--count", "4", "--concurrency", "4", "--warmup", "100", "--no-baseline"]
    code, out = holiday("bench", "--ingress", front.url, "--token", WRONG_KEY, *args)
    assert code == 1
    assert one_error(out) == (
        f"error: the Restate ingress at {front.url} refused the key (HTTP 401): check --token or "
        "HOLIDAY_INGRESS_TOKEN against the deployment's ingress key (or your Restate Cloud API key)."
    )
    sent = access_log.read_text().splitlines()[before:]
    assert 1 <= len(sent) <= 2 * 4  # those already in flight when the first 401 came back, not 100
    assert all('" 401 ' in line for line in sent)


def test_bench_over_https_without_insecure_is_one_error_naming_insecure(tls_front: Front) -> None:
    args = ["--count", "4", "--concurrency", "1", "--warmup", "0", "--no-baseline"]
    code, out = holiday("bench", "--ingress", tls_front.url, "--token", KEY, *args)
    assert code == 1
    lines = out.splitlines()
    assert lines[0] == "holiday (http)"  # the progress bar's label, on stderr
    message = one_error("\n".join(lines[1:]))
    assert f"cannot verify the TLS certificate of the Restate ingress at {tls_front.url} (" in message
    assert "add --insecure (or set HOLIDAY_INGRESS_INSECURE=1) to accept it, as curl -k does." in message


@pytest.mark.parametrize(
    ("flag", "env", "says"),
    [
        (
            ["--token", "x"],
            None,
            "error: --token is for a deployed ingress: name it with --ingress URL. Without --ingress, bench starts "
            "a local stack of its own, which takes no key.",
        ),
        (
            [],
            {"HOLIDAY_INGRESS_TOKEN": "x"},
            "error: HOLIDAY_INGRESS_TOKEN is set, and a key is for a deployed ingress: name it with --ingress URL, "
            "or unset HOLIDAY_INGRESS_TOKEN to bench a local stack of its own, which takes no key.",
        ),
    ],
)
def test_bench_refuses_a_key_without_an_ingress_before_starting_anything(
    flag: list[str], env: dict[str, str] | None, says: str
) -> None:
    code, out = holiday("bench", *flag, env=env)
    assert code == 1
    assert one_error(out) == says


def test_a_key_no_header_can_carry_is_refused_without_showing_it() -> None:
    result = CliRunner().invoke(main, ["reserve", "--token", "my s3cr3t"], env=NO_ACCESS)
    assert result.exit_code == 2
    assert (
        "Invalid value for '--token': a key is printable ASCII, no spaces (not shown here: it is a secret)"
        in result.output
    )
    assert "s3cr3t" not in result.output
