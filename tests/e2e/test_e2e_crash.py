"""Crashes: what runs the handlers is SIGKILLed in the middle of a saga.

In http mode that is the services process, started again at once; in lambda
mode the busy function worker, which the local Lambda runtime replaces.

The proxy between the services and moto holds one chosen DynamoDB write, so
the crash lands at an exact step. The held write is let through *after* the
restart, like a packet from a dead process arriving late: the conditional
writes must make it harmless.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from holiday_tools.devstack import LocalStack
from holiday_tools.faultproxy import FaultProxy
from tests.support import Inbox, poll, rows, statuses


class Crasher:
    """Sends a reservation and SIGKILLs the services while one chosen DynamoDB write is in flight."""

    def __init__(self, stack: LocalStack, proxy: FaultProxy, ingress: httpx.Client, pool: ThreadPoolExecutor) -> None:
        self.stack, self.proxy, self.ingress, self.pool = stack, proxy, ingress, pool

    def reserve(self, body: dict[str, Any], *needles: bytes) -> httpx.Response:
        """Send `body`; when the write matching `needles` is held, crash and restart, then let it through."""
        hold = self.proxy.hold(*needles)
        answer: Future[httpx.Response] = self.pool.submit(self.ingress.post, "/trips/reserve", json=body)
        hold.wait_held()
        self.stack.crash_services()
        hold.release()
        return answer.result(timeout=60)


@pytest.fixture
def crasher(stack: LocalStack, aws_proxy: FaultProxy, ingress: httpx.Client, background: ThreadPoolExecutor) -> Crasher:
    return Crasher(stack, aws_proxy, ingress, background)


def test_crash_while_reserving_the_car_still_books_the_trip_once(
    trip_id: str, stack: LocalStack, crasher: Crasher, inbox: Inbox
) -> None:
    response = crasher.reserve({"trip_id": trip_id}, b'"TableName": "cars"', b"pending", trip_id.encode())
    assert response.status_code == 200, response.text
    assert response.json()["car_booking_id"] == rows(stack, "cars", trip_id)[0]["sk"]
    assert statuses(stack, trip_id) == {"flights": ["confirmed"], "cars": ["confirmed"], "payments": ["charged"]}
    assert [m["outcome"] for m in inbox.messages(trip_id)] == ["success"]


def test_crash_while_compensating_resumes_and_finishes_the_undo(
    trip_id: str, stack: LocalStack, crasher: Crasher, ingress: httpx.Client, inbox: Inbox
) -> None:
    body = {"trip_id": trip_id, "run_type": "failPayment"}
    response = crasher.reserve(body, b'"TableName": "cars"', b"cancelled", trip_id.encode())
    assert response.status_code == 409, response.text
    assert statuses(stack, trip_id) == {"flights": ["cancelled"], "cars": ["cancelled"], "payments": ["refunded"]}
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert (record["status"], record["failed_step"]) == ("failed", "process payment")
    assert [(c["name"], c["status"]) for c in record["compensations"]] == [
        ("refund payment", "done"),
        ("cancel car", "done"),
        ("cancel flight", "done"),
    ]
    assert [m["outcome"] for m in inbox.messages(trip_id)] == ["failure"]


def test_trip_lookup_shows_the_step_in_flight(
    trip_id: str, aws_proxy: FaultProxy, background: ThreadPoolExecutor, ingress: httpx.Client
) -> None:
    hold = aws_proxy.hold(b'"TableName": "payments"', trip_id.encode())
    answer = background.submit(ingress.post, "/trips/reserve", json={"trip_id": trip_id})
    hold.wait_held()
    record = poll(
        lambda: ingress.get(f"/trip/{trip_id}/status").json(),
        lambda r: r.get("steps", [{}])[-1].get("name") == "process payment",
        "the lookup to show the payment step",
    )
    assert record["status"] == "running"
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("reserve flight", "done"),
        ("reserve car", "done"),
        ("process payment", "running"),
    ]
    hold.release()
    assert answer.result(timeout=60).status_code == 200


def test_car_is_held_while_the_flight_is_and_the_payment_waits_for_both(
    trip_id: str, stack: LocalStack, aws_proxy: FaultProxy, background: ThreadPoolExecutor, ingress: httpx.Client
) -> None:
    hold = aws_proxy.hold(b'"TableName": "flights"', b"pending", trip_id.encode())
    answer = background.submit(ingress.post, "/trips/reserve", json={"trip_id": trip_id})
    hold.wait_held()
    # The flight's write is stuck, yet the car's lands: the two reservations run at once.
    poll(lambda: statuses(stack, trip_id), lambda s: s["cars"] == ["pending"], "the car to be held")
    # The record moves by rounds: both steps show as running until the round settles.
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert [(s["name"], s["status"]) for s in record["steps"]] == [
        ("reserve flight", "running"),
        ("reserve car", "running"),
    ]
    assert statuses(stack, trip_id)["payments"] == []  # nobody is charged before both are held
    hold.release()
    assert answer.result(timeout=60).status_code == 200
    assert statuses(stack, trip_id) == {"flights": ["confirmed"], "cars": ["confirmed"], "payments": ["charged"]}
