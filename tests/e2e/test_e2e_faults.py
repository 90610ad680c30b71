"""Faults that are not crashes: DynamoDB out of reach, and an operator cancelling a trip.

The proxy between the services and moto drops or holds chosen DynamoDB
requests. Restate's admin API shows what an operator would see meanwhile
(which invocation is backing off, how often it was retried), and the
caller, the trip's record, the tables and the SNS topic show what a user
would see.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
from click.testing import CliRunner

from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack
from holiday_tools.faultproxy import FaultProxy
from tests.support import ALL_UNDONE, BOOKED, NO_LIVE_ROWS, Admin, Inbox, poll, rows, statuses

DYNAMODB = b'"TableName": "'  # in every DynamoDB request body, in no SNS one


def reserve_in_background(
    pool: ThreadPoolExecutor, ingress: httpx.Client, body: dict[str, Any]
) -> Future[httpx.Response]:
    return pool.submit(ingress.post, "/trips/reserve", json=body)


def compensations(record: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["name"], c["status"]) for c in record.get("compensations", [])]


def test_a_compensation_that_keeps_failing_is_retried_until_the_fault_clears(
    trip_id: str,
    stack: LocalStack,
    aws_proxy: FaultProxy,
    admin: Admin,
    ingress: httpx.Client,
    background: ThreadPoolExecutor,
    inbox: Inbox,
) -> None:
    """The car cannot be cancelled while its table is unreachable: the undo waits, it is never skipped."""
    fault = aws_proxy.drop(b'"TableName": "cars"', b"cancelled", trip_id.encode())
    try:
        answer = reserve_in_background(background, ingress, {"trip_id": trip_id, "run_type": "failPayment"})
        run = admin.run_of(trip_id)

        def now() -> dict[str, Any]:
            return {
                "record": ingress.get(f"/trip/{trip_id}/status").json(),
                "cancel car": admin.called_by(run["id"], "cars/cancel"),
            }

        stuck = poll(
            now,
            lambda s: (
                s["record"].get("status") == "compensating"
                and compensations(s["record"])
                == [("refund payment", "done"), ("cancel car", "running"), ("cancel flight", "running")]
                and len(s["cancel car"]) == 1
                and s["cancel car"][0]["status"] == "backing-off"
                and (s["cancel car"][0].get("retry_count") or 0) >= 2
            ),
            "cars/cancel to back off after two failed attempts",
        )
        # The operator sees why: the undo's own invocation is retried with DynamoDB's error...
        assert "ConnectionClosedError" in stuck["cancel car"][0]["last_failure"]
        # ...while the saga just waits for it (suspended in lambda mode), itself not failing.
        assert admin.run_of(trip_id)["status"] in ("running", "suspended")
        # The refund came first; the flight, held together with the car, was cancelled beside it.
        assert statuses(stack, trip_id) == {"flights": ["cancelled"], "cars": ["pending"], "payments": ["refunded"]}
        assert not answer.done(), "the caller was answered before the trip was undone"
        assert inbox.messages(trip_id) == []
        # holiday audit lists the undo still retrying (the trip itself is in flight, not judged yet).
        audit = CliRunner().invoke(
            main, ["audit", "--aws-endpoint", stack.aws_url, "--admin", stack.admin_url, "--threshold", "600"]
        )
        retrying = [line for line in audit.output.splitlines() if stuck["cancel car"][0]["id"] in line]
        assert len(retrying) == 1, audit.output
        assert "cars/cancel" in retrying[0]
        assert "ConnectionClosedError" in retrying[0]
    finally:
        fault.clear()

    response = answer.result(timeout=30)
    assert response.status_code == 409, response.text
    # The one test of the failed trip's message, as the README shows it: people read it, no code parses it (the
    # tools and the other tests read the trip's record: `failed_step`, `compensations`, `status`).
    assert response.json()["message"] == (
        f"trip {trip_id} failed at process payment: payment failed (injected by run_type failPayment); "
        "compensated: refund payment, cancel car, cancel flight"
    )
    assert statuses(stack, trip_id) == NO_LIVE_ROWS
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert record["status"] == "failed"
    assert compensations(record) == [(name, "done") for name in ALL_UNDONE]
    [cancel_car] = admin.called_by(run["id"], "cars/cancel")
    assert cancel_car["completion_result"] == "success"
    assert [m["outcome"] for m in inbox.messages(trip_id)] == ["failure"]


def test_cancelling_a_running_trip_through_the_admin_api_undoes_it(
    trip_id: str,
    stack: LocalStack,
    aws_proxy: FaultProxy,
    admin: Admin,
    ingress: httpx.Client,
    background: ThreadPoolExecutor,
    inbox: Inbox,
) -> None:
    """An operator stops a trip stuck on its payment: everything is undone, including the payment in flight.

    The charge is held in the proxy through the cancel, and let through only
    after the trip is undone, like a write from a stuck process arriving late.
    """
    hold = aws_proxy.hold(b'"TableName": "payments"', trip_id.encode())
    try:
        answer = reserve_in_background(background, ingress, {"trip_id": trip_id})
        hold.wait_held()
        run = admin.run_of(trip_id)
        cancelled = admin.cancel(run["id"])
        assert cancelled.status_code == 202, cancelled.text
        # The caller is answered without waiting for the stuck dependency.
        response = answer.result(timeout=30)
    finally:
        hold.release()

    assert response.status_code == 409, response.text
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert record["status"] == "failed"
    assert record["failed_step"] == "process payment"
    assert [(s["name"], s["status"], s["error"]) for s in record["steps"]][-1] == (
        "process payment",
        "failed",
        "cancelled",
    )
    # The payment was in flight, so it is refunded as well.
    assert compensations(record) == [(name, "done") for name in ALL_UNDONE]

    # The held charge reaches DynamoDB after the refund, and the refunded row refuses it.
    assert hold.answered.wait(20), "the held charge never reached DynamoDB"
    assert hold.answer is not None
    status, payload = hold.answer
    assert (status, b"ConditionalCheckFailedException" in payload) == (400, True), payload
    assert statuses(stack, trip_id) == NO_LIVE_ROWS
    [message] = inbox.messages(trip_id)
    assert (message["outcome"], message["failed_step"], message["compensations"]) == (
        "failure",
        "process payment",
        ALL_UNDONE,
    )


def test_a_trip_rides_out_dynamodb_being_unreachable(
    trip_id: str,
    stack: LocalStack,
    aws_proxy: FaultProxy,
    admin: Admin,
    ingress: httpx.Client,
    background: ThreadPoolExecutor,
    inbox: Inbox,
) -> None:
    """An outage is not a failure: the step in flight is retried and the trip books once when it ends."""
    fault = aws_proxy.drop(DYNAMODB)
    try:
        answer = reserve_in_background(background, ingress, {"trip_id": trip_id})
        run = admin.run_of(trip_id)
        poll(
            lambda: admin.called_by(run["id"], "flights/reserve"),
            lambda found: len(found) == 1 and (found[0].get("retry_count") or 0) >= 3,
            "flights/reserve to be retried three times",
        )
        assert not answer.done(), "the caller was answered during the outage"
    finally:
        fault.clear()

    response = answer.result(timeout=30)
    assert response.status_code == 200, response.text
    booked = response.json()
    assert statuses(stack, trip_id) == BOOKED
    assert [r["sk"] for r in rows(stack, "flights", trip_id)] == [booked["flight_booking_id"]]
    assert [r["sk"] for r in rows(stack, "cars", trip_id)] == [booked["car_booking_id"]]
    assert [r["sk"] for r in rows(stack, "payments", trip_id)] == [booked["payment_id"]]
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert (record["status"], record["compensations"]) == ("succeeded", [])
    assert [m["outcome"] for m in inbox.messages(trip_id)] == ["success"]


def test_cancelling_a_trip_while_it_compensates_still_finishes_the_undo(
    trip_id: str,
    stack: LocalStack,
    aws_proxy: FaultProxy,
    admin: Admin,
    ingress: httpx.Client,
    background: ThreadPoolExecutor,
    inbox: Inbox,
) -> None:
    """An operator cancelling a trip that is already being undone must not leave bookings behind."""
    fault = aws_proxy.drop(b'"TableName": "cars"', b"cancelled", trip_id.encode())
    try:
        answer = reserve_in_background(background, ingress, {"trip_id": trip_id, "run_type": "failPayment"})
        run = admin.run_of(trip_id)
        poll(
            lambda: admin.called_by(run["id"], "cars/cancel"),
            lambda found: len(found) == 1 and found[0]["status"] == "backing-off",
            "cars/cancel to back off",
        )
        assert admin.cancel(run["id"]).status_code == 202
    finally:
        fault.clear()

    response = answer.result(timeout=30)
    assert response.status_code == 409, response.text
    assert statuses(stack, trip_id) == NO_LIVE_ROWS
    record = ingress.get(f"/trip/{trip_id}/status").json()
    assert record["status"] == "failed"
    assert compensations(record) == [(name, "done") for name in ALL_UNDONE]
    assert [m["outcome"] for m in inbox.messages(trip_id)] == ["failure"]
