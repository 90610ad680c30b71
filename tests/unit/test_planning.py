"""Unit tests of request parsing (holiday/planning.py): both body shapes, defaults, and the messages of bad input."""

from __future__ import annotations

from decimal import Decimal

import pytest

from holiday.models import RunType
from holiday.planning import BadRequest, parse_request


@pytest.mark.parametrize("raw", [b"{}", b" {}\n", b'{"request": {}}', b'{"request": null}'])
def test_an_empty_object_means_a_new_trip_with_defaults(raw: bytes) -> None:
    request = parse_request(raw)
    assert (request.trip_id, request.run_type) == (None, None)
    assert (request.depart_city, request.amount, request.currency) == ("Dublin", Decimal("450.00"), "EUR")


@pytest.mark.parametrize("raw", [None, b"", b"  ", b"\r\n\t"])
def test_no_body_is_refused_not_booked_with_defaults(raw: bytes | None) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(raw)
    assert str(caught.value) == "request body is empty; send a JSON object, {} for all defaults"
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        (b'{"run_type": "failPayment", "run_type": null}', "run_type"),
        (b'{"request": {"run_type": "failPayment", "run_type": null}}', "run_type"),
        (b'{"request": {"trip_id": "a"}, "request": {"trip_id": "b"}}', "request"),
        (b'{"trip_id": "a", "depart_city": {"x": [{"y": 1, "y": 2}]}}', "y"),
        (b'{"amount": "5.00", "amount": "500.00"}', "amount"),
    ],
)
def test_a_key_given_twice_is_refused_naming_it(raw: bytes, key: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(raw)
    assert str(caught.value) == f'request body has the key "{key}" more than once; send each key once'
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    ("raw", "amount"),
    [
        (b'{"amount": "19.99"}', "19.99"),
        (b'{"amount": 19.99}', "19.99"),
        (b'{"amount": 5}', "5.00"),
        (b'{"amount": "5"}', "5.00"),
        (b'{"amount": 12.5}', "12.50"),
        (b'{"amount": 1e2}', "100.00"),
        (b'{"request": {"amount": 100000}}', "100000.00"),
    ],
)
def test_an_amount_is_a_decimal_string_or_a_json_number_kept_to_the_cent(raw: bytes, amount: str) -> None:
    assert str(parse_request(raw).amount) == amount


@pytest.mark.parametrize(
    "number",
    [
        b"19.999999999999999999",  # a float would make it 20.0
        b"100000.000000000001",  # a float would make it 100000.0, within the limit
        b"0.30000000000000004",  # 0.1 + 0.2 in a binary float
    ],
)
def test_an_amount_with_more_than_cents_is_refused_however_a_float_would_round_it(number: bytes) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(b'{"amount": ' + number + b"}")
    assert str(caught.value) == "invalid trip request: amount: Decimal input should have no more than 2 decimal places"


@pytest.mark.parametrize(
    "raw",
    [b'{"trip_id": "foo", "run_type": "failPayment"}', b'{"request": {"trip_id": "foo", "run_type": "failPayment"}}'],
)
def test_flat_and_wrapped_bodies_mean_the_same(raw: bytes) -> None:
    request = parse_request(raw)
    assert (request.trip_id, request.run_type) == ("foo", RunType.FAIL_PAYMENT)


def test_a_time_without_offset_is_utc() -> None:
    request = parse_request(b'{"depart_at": "2027-01-01T10:00", "arrive_at": "2027-01-01T12:00+01:00"}')
    assert request.depart_at is not None
    assert request.arrive_at is not None
    assert request.depart_at.utcoffset() is not None
    assert (request.arrive_at - request.depart_at).total_seconds() == 3600


def test_every_problem_is_named() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(b'{"trip_id": "a b", "amount": 0, "colour": "red"}')
    message = str(caught.value)
    assert message.startswith("invalid trip request: ")
    for field in ("trip_id: must be 1 to 64", "amount: Input should be greater than 0", "colour: Extra inputs"):
        assert field in message
    assert caught.value.status_code == 400


def test_oversize_is_413() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_request(b" " * 20_000)
    assert caught.value.status_code == 413
