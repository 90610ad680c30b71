"""Unit tests of the DynamoDB ledger, against moto in-process: the write rules that make retries safe."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from holiday.storage import DynamoLedger, RowConflict


@pytest.fixture
def ledger(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoLedger]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName="bookings",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoLedger("bookings", client)


def status(ledger: DynamoLedger, trip: str = "t1") -> list[tuple[str, str]]:
    return [(r["sk"], r["transaction_status"]) for r in ledger.rows(trip)]


def test_insert_twice_is_one_row(ledger: DynamoLedger) -> None:
    ledger.insert("t1", "b1", "pending", {"city": "Oslo", "amount": Decimal("9.50")})
    ledger.insert("t1", "b1", "pending", {"city": "Oslo", "amount": Decimal("9.50")})
    [row] = ledger.rows("t1")
    assert (row["sk"], row["transaction_status"], row["city"], row["amount"]) == (
        "b1",
        "pending",
        "Oslo",
        Decimal("9.5"),
    )


def test_a_late_insert_cannot_revive_a_cancelled_booking(ledger: DynamoLedger) -> None:
    ledger.insert("t1", "b1", "pending", {})
    ledger.set_final_status("t1", "b1", "cancelled")
    with pytest.raises(RowConflict, match="cannot insert b1 as pending in bookings: it is cancelled"):
        ledger.insert("t1", "b1", "pending", {})
    assert status(ledger) == [("b1", "cancelled")]


def test_a_final_status_without_a_row_leaves_a_tombstone_that_blocks_the_insert(ledger: DynamoLedger) -> None:
    ledger.set_final_status("t1", "b1", "cancelled")
    ledger.set_final_status("t1", "b1", "cancelled")
    with pytest.raises(RowConflict):
        ledger.insert("t1", "b1", "pending", {})
    assert status(ledger) == [("b1", "cancelled")]


def test_advance_is_idempotent_and_refuses_a_missing_or_cancelled_row(ledger: DynamoLedger) -> None:
    ledger.insert("t1", "b1", "pending", {})
    ledger.advance("t1", "b1", "confirmed", ["pending"])
    ledger.advance("t1", "b1", "confirmed", ["pending"])
    assert status(ledger) == [("b1", "confirmed")]
    with pytest.raises(RowConflict, match="cannot move b2 to confirmed in bookings: it is no row"):
        ledger.advance("t1", "b2", "confirmed", ["pending"])
    ledger.set_final_status("t1", "b1", "cancelled")
    with pytest.raises(RowConflict, match="it is cancelled"):
        ledger.advance("t1", "b1", "confirmed", ["pending"])


def test_rows_are_per_trip(ledger: DynamoLedger) -> None:
    ledger.insert("t1", "b1", "pending", {})
    ledger.insert("t2", "b2", "pending", {})
    assert status(ledger, "t1") == [("b1", "pending")]
    assert status(ledger, "t3") == []
