"""Many identical requests at once must book one trip and give every caller the same answer.

The callers are released together by a barrier, each on its own connection,
so Restate sees the requests as close to simultaneous as a client can make them.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from holiday_tools.devstack import LocalStack
from tests.support import BOOKED, Inbox, poll, row_count, statuses

UNDONE = {"flights": ["cancelled"], "cars": ["cancelled"], "payments": ["refunded"]}


@pytest.fixture
def crowd(stack: LocalStack) -> Iterator[httpx.Client]:
    """A client with room for 100 connections, so no request waits in the client's own pool."""
    with httpx.Client(base_url=stack.ingress_url, timeout=60, limits=httpx.Limits(max_connections=100)) as client:
        yield client


def all_at_once(client: httpx.Client, requests: list[dict[str, Any]]) -> list[httpx.Response]:
    """POST each `{"json": ..., "headers": ...}` to /trips/reserve, all released at the same moment."""
    start = threading.Barrier(len(requests))

    def send(request: dict[str, Any]) -> httpx.Response:
        start.wait(timeout=30)
        return client.post("/trips/reserve", **request)

    with ThreadPoolExecutor(len(requests)) as pool:
        return list(pool.map(send, requests))


def one_announcement(inbox: Inbox, trip_id: str) -> dict[str, Any]:
    """The trip's only SNS message (it is published before the answer, so it is already there)."""
    messages = poll(lambda: inbox.messages(trip_id), bool, f"the announcement of {trip_id}")
    assert len(messages) == 1, messages
    return messages[0]


def test_100_identical_requests_with_one_idempotency_key_book_one_trip(
    stack: LocalStack, crowd: httpx.Client, inbox: Inbox
) -> None:
    key = f"crowd-{uuid.uuid4().hex}"
    rows_before, messages_before = row_count(stack), inbox.count()

    answers = all_at_once(crowd, [{"json": {}, "headers": {"idempotency-key": key}}] * 100)

    assert {a.status_code for a in answers} == {200}, {a.text for a in answers}
    assert len({a.text for a in answers}) == 1
    trip_id = answers[0].json()["trip_id"]
    assert statuses(stack, trip_id) == BOOKED
    assert one_announcement(inbox, trip_id)["outcome"] == "success"
    # No other trip was booked on the side: a body without trip_id would get a fresh id per call.
    assert (row_count(stack), inbox.count()) == (rows_before + 3, messages_before + 1)


def test_50_requests_for_one_trip_id_book_one_trip(
    trip_id: str, stack: LocalStack, crowd: httpx.Client, inbox: Inbox
) -> None:
    rows_before = row_count(stack)

    answers = all_at_once(crowd, [{"json": {"trip_id": trip_id}}] * 50)

    assert {a.status_code for a in answers} == {200}, {a.text for a in answers}
    assert len({a.text for a in answers}) == 1
    assert answers[0].json()["trip_id"] == trip_id
    assert statuses(stack, trip_id) == BOOKED
    assert one_announcement(inbox, trip_id)["outcome"] == "success"
    assert row_count(stack) == rows_before + 3


def test_50_requests_for_one_trip_id_asking_different_things_all_get_the_first_outcome(
    trip_id: str, stack: LocalStack, crowd: httpx.Client, inbox: Inbox
) -> None:
    """Half ask for a payment failure, half for nothing: whichever runs first decides for all."""
    bodies = [{"trip_id": trip_id, "run_type": "failPayment"} if i % 2 else {"trip_id": trip_id} for i in range(50)]

    answers = all_at_once(crowd, [{"json": body} for body in bodies])

    assert len({(a.status_code, a.text) for a in answers}) == 1, {(a.status_code, a.text) for a in answers}
    answer = answers[0]
    record = crowd.get(f"/trip/{trip_id}/status").json()
    announcement = one_announcement(inbox, trip_id)
    if answer.status_code == 200:
        assert answer.json()["trip_id"] == trip_id
        assert statuses(stack, trip_id) == BOOKED
        assert announcement["outcome"] == "success"
        assert (record["status"], record["run_type"], record["outcome"]) == ("succeeded", None, answer.json())
    else:
        assert answer.status_code == 409, answer.text
        assert record["failed_step"] == "process payment"
        assert statuses(stack, trip_id) == UNDONE
        assert announcement["outcome"] == "failure"
        assert (record["status"], record["run_type"], record["error"]) == (
            "failed",
            "failPayment",
            answer.json()["message"],
        )
