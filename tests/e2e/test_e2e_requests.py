"""Bad input, idempotency keys, repeated trip ids and the trip lookup, over the real ingress."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx
import pytest

from holiday.models import RunType
from holiday_tools.devstack import LocalStack
from tests.support import Inbox, row_count, rows, statuses

BOOKED = {"flights": ["confirmed"], "cars": ["confirmed"], "payments": ["charged"]}

BAD_BODIES = {
    "malformed JSON": (b'{"trip_id": ', 400, "request body is not valid JSON"),
    "not an object": (b"[1, 2]", 400, "request must be a JSON object, not list"),
    "wrapper holding a string": (b'{"request": "x"}', 400, "request must be a JSON object, not str"),
    "trip_id of wrong type": (b'{"trip_id": 42}', 400, "trip_id: must be 1 to 64 characters"),
    "trip_id empty": (b'{"trip_id": ""}', 400, "trip_id: must be 1 to 64 characters"),
    "trip_id too long": (json.dumps({"trip_id": "a" * 65}).encode(), 400, "trip_id: must be 1 to 64"),
    "trip_id with a space": (b'{"trip_id": "a b"}', 400, "trip_id: must be 1 to 64 characters"),
    "trip_id with a slash": (b'{"trip_id": "a/b"}', 400, "trip_id: must be 1 to 64 characters"),
    "unknown run_type": (
        b'{"run_type": "failEverything"}',
        400,
        "unknown run_type 'failEverything'; valid values: " + ", ".join(r.value for r in RunType),
    ),
    "run_type of wrong type": (b'{"run_type": 3}', 400, "run_type: unknown run_type 3"),
    "amount not a number": (b'{"amount": "lots"}', 400, "amount: Input should be a valid decimal"),
    "amount negative": (b'{"amount": -5}', 400, "amount: Input should be greater than 0"),
    "unknown field": (b'{"runtype": "failPayment"}', 400, "runtype: Extra inputs are not permitted"),
    "times out of order": (
        b'{"depart_at": "2027-01-02T10:00:00Z", "arrive_at": "2027-01-02T09:00:00Z"}',
        400,
        "arrive_at must be after depart_at",
    ),
    "invalid UTF-8": (b'{"trip_id": "\xff"}', 400, "request body is not valid UTF-8"),
    "nested too deeply": (b"[" * 5000 + b"]" * 5000, 400, "request body is nested too deeply"),
    "a default date past the year 9999": (
        b'{"depart_at": "9999-12-31T23:00:00Z"}',
        400,
        "trip dates out of range",
    ),
    "a number of seconds as a time": (b'{"depart_at": 0}', 400, "depart_at: Input should be a valid datetime"),
    "a bare date as a time": (b'{"rental_to": "2027-01-01"}', 400, "rental_to: Input should be a valid datetime"),
    "whitespace that JSON does not allow": (b"\x0b", 400, "request body is not valid JSON"),
    "oversize body": (json.dumps({"depart_city": "x" * 20_000}).encode(), 413, "the limit is 16384"),
    "a key twice": (
        b'{"run_type": "failPayment", "run_type": null}',
        400,
        'request body has the key "run_type" more than once; send each key once',
    ),
    "a key twice in the wrapper": (
        b'{"request": {"run_type": "failPayment", "run_type": null}}',
        400,
        'request body has the key "run_type" more than once',
    ),
    "only whitespace": (b" \r\n", 400, "request body is empty; send a JSON object, {} for all defaults"),
    "an amount a float would round to 20": (
        b'{"amount": 19.999999999999999999}',
        400,
        "amount: Decimal input should have no more than 2 decimal places",
    ),
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_bad_input_is_a_4xx_naming_the_problem_and_writes_nothing(
    case: str, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    raw, status, says = BAD_BODIES[case]
    rows_before, messages_before = row_count(stack), inbox.count()
    response = ingress.post("/trips/reserve", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert says in response.json()["message"]
    assert (row_count(stack), inbox.count()) == (rows_before, messages_before)


@pytest.mark.parametrize(
    ("method", "headers", "says"),
    [
        # What a browser's address bar or a link preview sends: the ingress lets a GET through.
        ("GET", {}, "request body is empty; send a JSON object, {} for all defaults"),
        ("POST", {}, "request body is empty; send a JSON object, {} for all defaults"),
        ("POST", {"content-type": "application/json"}, "Empty body not allowed"),  # the ingress's own refusal
    ],
)
def test_a_request_without_a_body_is_refused_and_books_nothing(
    method: str, headers: dict[str, str], says: str, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    rows_before, messages_before = row_count(stack), inbox.count()
    response = ingress.request(method, "/trips/reserve", headers=headers)
    assert response.status_code == 400, response.text
    assert says in response.json()["message"]
    assert (row_count(stack), inbox.count()) == (rows_before, messages_before)


@pytest.mark.parametrize(("amount", "charged"), [(19.99, "19.99"), ("19.99", "19.99"), (5, "5")])
def test_an_amount_may_be_a_json_number_and_is_charged_exactly(
    amount: object, charged: str, trip_id: str, stack: LocalStack, ingress: httpx.Client
) -> None:
    response = ingress.post("/trips/reserve", json={"trip_id": trip_id, "amount": amount})
    assert response.status_code == 200, response.text
    [payment] = rows(stack, "payments", trip_id)
    assert payment["amount"] == Decimal(charged)


def test_a_body_that_is_not_json_by_content_type_is_refused(stack: LocalStack, ingress: httpx.Client) -> None:
    before = row_count(stack)
    response = ingress.post("/trips/reserve", content=b"trip_id=x", headers={"content-type": "text/plain"})
    assert response.status_code == 400
    assert "Content-type 'text/plain' does not match 'application/json'" in response.json()["message"]
    assert row_count(stack) == before


def test_flights_cars_and_payments_are_not_reachable_from_the_ingress(stack: LocalStack, ingress: httpx.Client) -> None:
    before = row_count(stack)
    for path in ("/flights/reserve", "/cars/cancel", "/payments/process", "/trip/x/run"):
        response = ingress.post(path, json={"trip_id": "x", "booking_id": "y"})
        assert response.status_code == 400, (path, response.text)
        assert "not public" in response.json()["message"]
    assert row_count(stack) == before


@pytest.mark.parametrize("run_type", [None, "failPayment"])
def test_same_idempotency_key_gives_the_same_answer_and_one_trip(
    run_type: str | None, trip_id: str, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    headers = {"idempotency-key": f"key-{trip_id}"}
    first = ingress.post("/trips/reserve", json={"trip_id": trip_id, "run_type": run_type}, headers=headers)
    # A repeat with another body still gets the first answer: the key names the call.
    again = ingress.post("/trips/reserve", json={"trip_id": trip_id + "-other"}, headers=headers)
    assert (again.status_code, again.json()) == (first.status_code, first.json())
    assert first.status_code == (200 if run_type is None else 409)
    assert statuses(stack, trip_id + "-other") == {"flights": [], "cars": [], "payments": []}
    assert len(inbox.messages(trip_id)) == 1


def test_idempotency_key_without_trip_id_books_one_new_trip(
    stack: LocalStack, ingress: httpx.Client, trip_id: str
) -> None:
    headers = {"idempotency-key": f"key-{trip_id}"}
    answers = [ingress.post("/trips/reserve", json={}, headers=headers) for _ in range(3)]
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert statuses(stack, answers[0].json()["trip_id"]) == BOOKED


@pytest.mark.parametrize("run_type", [None, "failCarRentalConfirmation"])
def test_same_trip_id_twice_books_once_and_repeats_the_first_outcome(
    run_type: str | None, trip_id: str, stack: LocalStack, ingress: httpx.Client, inbox: Inbox
) -> None:
    first = ingress.post("/trips/reserve", json={"trip_id": trip_id, "run_type": run_type})
    second = ingress.post("/trips/reserve", json={"trip_id": trip_id})  # no failure asked this time
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    expected = (
        BOOKED if run_type is None else {"flights": ["cancelled"], "cars": ["cancelled"], "payments": ["refunded"]}
    )
    assert statuses(stack, trip_id) == expected
    assert len(inbox.messages(trip_id)) == 1


def test_concurrent_requests_for_one_trip_id_book_once(trip_id: str, stack: LocalStack, ingress: httpx.Client) -> None:
    with ThreadPoolExecutor(10) as pool:
        answers = list(pool.map(lambda _: ingress.post("/trips/reserve", json={"trip_id": trip_id}), range(10)))
    assert {a.status_code for a in answers} == {200}
    assert len({a.text for a in answers}) == 1
    assert statuses(stack, trip_id) == BOOKED


def test_trip_lookup_shows_steps_ids_compensations_and_outcome(trip_id: str, ingress: httpx.Client) -> None:
    failed = ingress.post("/trips/reserve", json={"trip_id": trip_id, "run_type": "failFlightsConfirmation"})
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert record["status"] == "failed"
    assert record["run_type"] == "failFlightsConfirmation"
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("reserve flight", "done"),
        ("reserve car", "done"),
        ("process payment", "done"),
        ("confirm flight", "failed"),
        ("confirm car", "done"),  # confirmed together with the flight, then cancelled
    ]
    assert all(s["id"] for s in record["steps"])
    assert [c["name"] for c in record["compensations"]] == ["refund payment", "cancel car", "cancel flight"]
    assert record["failed_step"] == "confirm flight"
    assert record["error"] == failed.json()["message"]

    booked = ingress.post("/trips/reserve", json={"trip_id": trip_id + "-ok"}).json()
    record = ingress.get(f"/trip/{trip_id}-ok/status").json()
    assert record["status"] == "succeeded"
    assert record["outcome"] == booked
    assert [s["name"] for s in record["steps"]][-1] == "send notification"
    assert record["compensations"] == []


def test_lookup_of_an_unknown_trip_is_404(ingress: httpx.Client) -> None:
    response = ingress.get("/trip/no-such-trip/status")
    assert response.status_code == 404
    assert response.json()["message"] == "no trip with id 'no-such-trip'"
