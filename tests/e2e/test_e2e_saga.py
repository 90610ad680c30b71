"""The failure matrix, end to end: HTTP answer, table rows, SNS messages, compensation order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

from holiday_tools.devstack import LocalStack
from tests.support import ALL_UNDONE, BOOKED, NO_LIVE_ROWS, TABLES, Inbox, rows, statuses


@dataclass(frozen=True)
class Expected:
    failed_step: str | None
    tables: Mapping[str, Sequence[str]]
    compensations: list[str]


MATRIX: dict[str | None, Expected] = {
    None: Expected(None, BOOKED, []),
    # Flight and car are reserved together, so the car is held, then cancelled, here too.
    "failFlightsReservation": Expected(
        "reserve flight",
        {"flights": ["cancelled"], "cars": ["cancelled"], "payments": []},
        ["cancel car", "cancel flight"],
    ),
    "failCarRentalReservation": Expected(
        "reserve car",
        {"flights": ["cancelled"], "cars": ["cancelled"], "payments": []},
        ["cancel car", "cancel flight"],
    ),
    "failPayment": Expected("process payment", NO_LIVE_ROWS, ALL_UNDONE),
    "failFlightsConfirmation": Expected("confirm flight", NO_LIVE_ROWS, ALL_UNDONE),
    "failCarRentalConfirmation": Expected("confirm car", NO_LIVE_ROWS, ALL_UNDONE),
    "failNotification": Expected("send notification", NO_LIVE_ROWS, ALL_UNDONE),
}


def body(shape: str, **fields: Any) -> dict[str, Any]:
    """The flat body the original's code reads, or the `{"request": ...}` wrapper its README shows."""
    fields = {k: v for k, v in fields.items() if v is not None}
    return fields if shape == "flat" else {"request": fields}


@pytest.mark.parametrize("shape", ["flat", "wrapped"])
@pytest.mark.parametrize("run_type", list(MATRIX))
def test_each_run_type_gives_its_documented_outcome(
    run_type: str | None,
    shape: str,
    trip_id: str,
    stack: LocalStack,
    ingress: httpx.Client,
    inbox: Inbox,
) -> None:
    expected = MATRIX[run_type]
    response = ingress.post("/trips/reserve", json=body(shape, trip_id=trip_id, run_type=run_type))

    if expected.failed_step is None:
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["status"] == "success"
        assert answer["trip_id"] == trip_id
        ids = {"flights": answer["flight_booking_id"], "cars": answer["car_booking_id"]}
        ids["payments"] = answer["payment_id"]
        assert {t: [r["sk"] for r in rows(stack, t, trip_id)] for t in TABLES} == {t: [i] for t, i in ids.items()}
        [message] = inbox.messages(trip_id)
        assert message["outcome"] == "success"
        assert message["compensations"] == []
    else:
        assert response.status_code == 409, response.text
        # The outcome as data: the trip's record says where it failed, why, and what was undone.
        record = ingress.get(f"/trip/{trip_id}/status").json()
        assert (record["status"], record["failed_step"]) == ("failed", expected.failed_step)
        [failed] = [step for step in record["steps"] if step["name"] == expected.failed_step]
        assert failed["status"] == "failed"
        assert f"injected by run_type {run_type}" in failed["error"]
        assert [(c["name"], c["status"]) for c in record["compensations"]] == [
            (name, "done") for name in expected.compensations
        ]
        # Announced once, as a failure (for failNotification the success message itself failed).
        [message] = inbox.messages(trip_id)
        assert message["outcome"] == "failure"
        assert message["failed_step"] == expected.failed_step
        assert message["compensations"] == expected.compensations

    assert statuses(stack, trip_id) == expected.tables


@pytest.mark.parametrize("run_type", ["failPayment", "failNotification"])
def test_compensations_run_newest_first(run_type: str, trip_id: str, stack: LocalStack, ingress: httpx.Client) -> None:
    response = ingress.post("/trips/reserve", json={"trip_id": trip_id, "run_type": run_type})
    assert response.status_code == 409

    # The rows say it: each undo stamped its row, the refund first; then the car and the flight,
    # held together, were cancelled together.
    [payment], [car], [flight] = (rows(stack, t, trip_id) for t in ("payments", "cars", "flights"))
    assert payment["updated_at"] <= min(car["updated_at"], flight["updated_at"])

    # And so does the trip's record.
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert [(c["name"], c["status"]) for c in record["compensations"]] == [(n, "done") for n in ALL_UNDONE]
    assert [c["id"] for c in record["compensations"]] == [payment["sk"], car["sk"], flight["sk"]]


def test_an_empty_object_books_a_trip_with_a_new_id_each_time(
    stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    first = ingress.post("/trips/reserve", json={})
    second = ingress.post("/trips/reserve", json={"request": {}})
    assert first.status_code == second.status_code == 200, (first.text, second.text)
    a, b = first.json()["trip_id"], second.json()["trip_id"]
    assert a != b
    for trip in (a, b):
        assert statuses(stack, trip) == MATRIX[None].tables
        assert [m["outcome"] for m in inbox.messages(trip)] == ["success"]


def test_trip_details_are_stored_with_the_bookings(trip_id: str, stack: LocalStack, ingress: httpx.Client) -> None:
    response = ingress.post(
        "/trips/reserve",
        json={
            "trip_id": trip_id,
            "depart_city": "Oslo",
            "arrive_city": "Rome",
            "depart_at": "2027-03-01T08:00:00Z",
            "car_class": "van",
            "amount": "99.50",
            "currency": "NOK",
        },
    )
    assert response.status_code == 200, response.text
    [flight] = rows(stack, "flights", trip_id)
    assert (flight["depart_city"], flight["arrive_city"]) == ("Oslo", "Rome")
    assert flight["depart_at"].startswith("2027-03-01T08:00:00")
    assert flight["arrive_at"].startswith("2027-03-01T11:00:00")  # three hours later by default
    [car] = rows(stack, "cars", trip_id)
    assert (car["car_class"], car["city"]) == ("van", "Rome")
    [payment] = rows(stack, "payments", trip_id)
    assert (payment["amount"], payment["currency"]) == (Decimal("99.50"), "NOK")


def test_without_a_topic_trips_finish_and_announcements_are_only_logged(
    trip_id: str, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    """The original hung on a failure with no topic configured; here the announcement is a log line."""
    with_topic = stack.settings
    stack.settings = replace(with_topic, topic_arn=None)
    try:
        stack.restart_services(kill=False)
        messages_before = inbox.count()
        booked = ingress.post("/trips/reserve", json={"trip_id": trip_id})
        failed = ingress.post("/trips/reserve", json={"trip_id": f"{trip_id}-f", "run_type": "failPayment"})
        assert (booked.status_code, failed.status_code) == (200, 409)
        assert inbox.count() == messages_before
        log = (stack.log_dir / "services.log").read_text()
        assert f"trip={trip_id} no TRIPS_TOPIC_ARN set, not announcing" in log
        assert f"trip={trip_id}-f no TRIPS_TOPIC_ARN set, not announcing" in log
    finally:
        stack.settings = with_topic
        stack.restart_services(kill=False)


def test_in_lambda_mode_every_service_runs_through_the_lambda_invoke_api(
    trip_id: str, stack: LocalStack, ingress: httpx.Client
) -> None:
    if stack.mode != "lambda":
        pytest.skip("only the lambda mode has a Lambda runtime to count invocations")
    before = httpx.get(f"{stack.services_url}/local/stats").json()
    assert ingress.post("/trips/reserve", json={"trip_id": trip_id}).status_code == 200
    after = httpx.get(f"{stack.services_url}/local/stats").json()
    grown = {name: after[name]["invocations"] - before[name]["invocations"] for name in after}
    # trips resumes after each of its calls (request-response mode); the others run per call.
    assert grown["holiday-flights"] >= 2  # reserve, confirm
    assert grown["holiday-cars"] >= 2
    assert grown["holiday-payments"] >= 1
    assert grown["holiday-trips"] > grown["holiday-flights"]
    assert all(after[name]["errors"] == before[name]["errors"] for name in after)
