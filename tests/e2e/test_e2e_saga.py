"""The failure matrix, end to end: HTTP answer, table rows, SNS messages, compensation order."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

import httpx
import pytest

from holiday_tools.devstack import LocalStack
from tests.support import ALL_UNDONE, BOOKED, NO_LIVE_ROWS, TABLES, Admin, Inbox, rows, statuses


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


@pytest.mark.parametrize("dates", [True, False], ids=["dates given", "default dates"])
def test_a_trips_journal_holds_a_ctx_run_only_for_the_clock_of_default_dates(
    trip_id: str, dates: bool, ingress: httpx.Client, admin: Admin
) -> None:
    """Each `ctx.run` costs a trip one more invocation on Lambda (a wait for Restate's acknowledgement):
    the saga has none, and the entry point has one only to fill in dates from a durable clock."""
    body = {"trip_id": trip_id, **({"depart_at": "2031-05-01T09:00:00Z"} if dates else {})}
    assert ingress.post("/trips/reserve", json=body).status_code == 200
    saga = admin.run_of(trip_id)["id"]
    [entry_point] = admin.query(f"SELECT invoked_by_id FROM sys_invocation WHERE id = '{saga}'")
    runs = admin.query(
        f"SELECT id FROM sys_journal WHERE id IN ('{saga}', '{entry_point['invoked_by_id']}') "
        "AND entry_type = 'Command: Run'"
    )
    assert [r["id"] for r in runs] == ([] if dates else [entry_point["invoked_by_id"]])


@pytest.mark.parametrize("dates", [True, False], ids=["dates given", "default dates"])
def test_in_lambda_mode_a_trip_takes_the_invocations_its_rounds_need_and_no_more(
    trip_id: str, dates: bool, stack: LocalStack, ingress: httpx.Client
) -> None:
    """What a trip costs on Lambda, in invocations (request-response mode: a function ends at each wait).

    trips: `reserve` starts, and is resumed with the outcome (2); the saga starts, and is resumed
    after each of its three rounds (4); a round of two calls whose answers come apart takes one
    resume more (0 to 2). Default dates take one more, for the durable clock read. Each booking
    service runs once per call. A `ctx.run` or a call more anywhere would show here.
    """
    if stack.mode != "lambda":
        pytest.skip("only the lambda mode has a Lambda runtime to count invocations")
    body = {"trip_id": trip_id, **({"depart_at": "2031-05-01T09:00:00Z"} if dates else {})}
    before = httpx.get(f"{stack.services_url}/local/stats").json()
    assert ingress.post("/trips/reserve", json=body).status_code == 200
    after = httpx.get(f"{stack.services_url}/local/stats").json()
    grown = {name: after[name]["invocations"] - before[name]["invocations"] for name in after}
    clock = 0 if dates else 1
    assert 6 + clock <= grown["holiday-trips"] <= 8 + clock
    assert (grown["holiday-flights"], grown["holiday-cars"], grown["holiday-payments"]) == (2, 2, 1)
    assert all(after[name]["errors"] == before[name]["errors"] for name in after)
