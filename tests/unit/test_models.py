"""Unit tests of request parsing: both body shapes, defaults, and the messages of bad input."""

from __future__ import annotations

from decimal import Decimal

import pytest

from holiday.models import BadRequest, RunType, TripRequest


@pytest.mark.parametrize("raw", [None, b"", b"  ", b"{}", b'{"request": {}}', b'{"request": null}'])
def test_empty_means_a_new_trip_with_defaults(raw: bytes | None) -> None:
    request = TripRequest.parse(raw)
    assert (request.trip_id, request.run_type) == (None, None)
    assert (request.depart_city, request.amount, request.currency) == ("Dublin", Decimal("450.00"), "EUR")


@pytest.mark.parametrize(
    "raw",
    [b'{"trip_id": "foo", "run_type": "failPayment"}', b'{"request": {"trip_id": "foo", "run_type": "failPayment"}}'],
)
def test_flat_and_wrapped_bodies_mean_the_same(raw: bytes) -> None:
    request = TripRequest.parse(raw)
    assert (request.trip_id, request.run_type) == ("foo", RunType.FAIL_PAYMENT)


def test_a_time_without_offset_is_utc() -> None:
    request = TripRequest.parse(b'{"depart_at": "2027-01-01T10:00", "arrive_at": "2027-01-01T12:00+01:00"}')
    assert request.depart_at is not None
    assert request.arrive_at is not None
    assert request.depart_at.utcoffset() is not None
    assert (request.arrive_at - request.depart_at).total_seconds() == 3600


def test_every_problem_is_named() -> None:
    with pytest.raises(BadRequest) as caught:
        TripRequest.parse(b'{"trip_id": "a b", "amount": 0, "colour": "red"}')
    message = str(caught.value)
    assert message.startswith("invalid trip request: ")
    for field in ("trip_id: must be 1 to 64", "amount: Input should be greater than 0", "colour: Extra inputs"):
        assert field in message
    assert caught.value.status == 400


def test_oversize_is_413() -> None:
    with pytest.raises(BadRequest) as caught:
        TripRequest.parse(b" " * 20_000)
    assert caught.value.status == 413
