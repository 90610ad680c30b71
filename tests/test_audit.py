"""`holiday audit`: the rules on hand-made rows, then the command against the real stack, clean and corrupted."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import httpx
from click.testing import CliRunner

from holiday.audit import check
from holiday.cli import main
from holiday.devstack import LocalStack

NOW = 1_000_000.0


def row(sk: str, status: str, age: float = 120.0) -> dict[str, Any]:
    return {"pk": "t", "sk": sk, "transaction_status": status, "updated_at": Decimal(str(NOW - age))}


def trip(flights: list[str], cars: list[str], payments: list[str], age: float = 120.0) -> dict[str, Any]:
    return {
        "flights": [row(f"f{i}", s, age) for i, s in enumerate(flights)],
        "cars": [row(f"c{i}", s, age) for i, s in enumerate(cars)],
        "payments": [row(f"p{i}", s, age) for i, s in enumerate(payments)],
    }


def test_booked_and_undone_trips_pass() -> None:
    report = check(
        {
            "booked": trip(["confirmed"], ["confirmed"], ["charged"]),
            "undone": trip(["cancelled"], ["cancelled"], ["refunded"]),
            "failed-early": trip(["cancelled"], [], []),
        },
        threshold_s=60,
        now=NOW,
    )
    assert (report.trips, report.booked, report.undone, report.violations) == (3, 1, 2, [])


def test_half_booked_duplicate_and_stuck_trips_fail_with_reasons() -> None:
    report = check(
        {
            "half": trip(["confirmed"], ["cancelled"], ["refunded"]),
            "twice": trip(["confirmed", "confirmed"], ["confirmed"], ["charged"]),
            "stuck": trip(["pending"], [], []),
        },
        threshold_s=60,
        now=NOW,
    )
    found = {(v.trip_id, v.rule) for v in report.violations}
    assert found == {("half", "all or nothing"), ("twice", "no duplicates"), ("stuck", "nothing hangs")}
    [half] = [v for v in report.violations if v.trip_id == "half"]
    assert half.detail == "neither booked nor undone: flights=confirmed cars=cancelled payments=refunded"


def test_a_trip_still_in_flight_is_not_judged_yet_but_duplicates_always_are() -> None:
    report = check(
        {"young": trip(["pending"], [], [], age=5), "young-twice": trip(["pending", "pending"], [], [], age=5)},
        threshold_s=60,
        now=NOW,
    )
    assert report.in_flight == 2
    assert [(v.trip_id, v.rule) for v in report.violations] == [("young-twice", "no duplicates")]


def run_audit(stack: LocalStack) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, ["audit", "--aws-endpoint", stack.aws_url, "--admin", stack.admin_url, "--threshold", "0"]
    )
    return result.exit_code, result.output


def test_audit_of_everything_the_suite_booked_is_clean(stack: LocalStack, ingress: httpx.Client, trip_id: str) -> None:
    assert ingress.post("/trips/reserve", json={"trip_id": trip_id}).status_code == 200
    assert (
        ingress.post("/trips/reserve", json={"trip_id": f"{trip_id}-x", "run_type": "failPayment"}).status_code == 409
    )
    code, out = run_audit(stack)
    assert code == 0, out
    assert "no invariant violations" in out
    assert "no invocations retrying or paused" in out


def test_audit_finds_a_deliberately_corrupted_table(stack: LocalStack, ingress: httpx.Client, trip_id: str) -> None:
    booked = ingress.post("/trips/reserve", json={"trip_id": trip_id}).json()
    dynamodb = stack.aws_client("dynamodb")
    rogue = {
        "pk": {"S": trip_id},
        "sk": {"S": "second-charge"},
        "transaction_status": {"S": "charged"},
        "updated_at": {"N": str(time.time() - 3600)},
    }
    dynamodb.put_item(TableName=stack.settings.payments_table, Item=rogue)
    try:
        code, out = run_audit(stack)
        assert code == 1
        assert f"trip {trip_id}: [no duplicates] 2 rows in payments" in out
        assert booked["payment_id"] in out
    finally:
        dynamodb.delete_item(TableName=stack.settings.payments_table, Key={"pk": rogue["pk"], "sk": rogue["sk"]})
    assert run_audit(stack)[0] == 0
