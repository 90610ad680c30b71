"""Booking and payment rows, behind one small interface.

Each table holds one row per booking (or payment): partition key `pk` is the
trip id, sort key `sk` the booking id, and `transaction_status` its state.
Every write is conditional or an idempotent overwrite, so a step that Restate
retries, or replays after a crash, never writes a second row or revives a
cancelled one. A handler makes its write with `write_or_refuse`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import cache
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError
from restate import TerminalError

from holiday import aws

Value = str | Decimal | int
Row = dict[str, Any]
T = TypeVar("T")


class RowConflict(Exception):
    """The row is not in a state that allows the change (e.g. confirming a cancelled booking)."""


class Ledger(Protocol):
    """One table of rows that move through statuses."""

    def insert(self, trip_id: str, row_id: str, status: str, details: Mapping[str, Value]) -> None:
        """Create the row in `status`; repeating it is harmless, reviving a row in a final status is refused."""

    def advance(self, trip_id: str, row_id: str, status: str, allowed_from: Iterable[str]) -> None:
        """Move an existing row to `status` if it is in `allowed_from` (or already there)."""

    def set_final_status(self, trip_id: str, row_id: str, status: str) -> None:
        """Put the row in a final `status` whatever it held, leaving a tombstone if it never existed."""

    def rows(self, trip_id: str) -> list[Row]:
        """All rows of one trip, for lookups, tests and audits."""


class DynamoLedger:
    """A `Ledger` on one DynamoDB table (the real one, or the local stand-in)."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._given = client

    @property
    def _client(self) -> Any:
        # Looked up at each call, not kept: after a SnapStart restore the shared client is a new one.
        return self._given if self._given is not None else aws.client("dynamodb")

    def insert(self, trip_id: str, row_id: str, status: str, details: Mapping[str, Value]) -> None:
        item = {**details, "pk": trip_id, "sk": row_id, "transaction_status": status, "updated_at": _now()}
        self._conditional(
            "put_item",
            Item={k: _serialize(v) for k, v in item.items()},
            ConditionExpression="attribute_not_exists(pk) OR transaction_status = :status",
            ExpressionAttributeValues={":status": _serialize(status)},
            what=f"insert {row_id} as {status}",
        )

    def advance(self, trip_id: str, row_id: str, status: str, allowed_from: Iterable[str]) -> None:
        allowed = sorted({status, *allowed_from})
        placeholders = {f":from{i}": _serialize(s) for i, s in enumerate(allowed)}
        self._conditional(
            "update_item",
            Key=_key(trip_id, row_id),
            UpdateExpression="SET transaction_status = :status, updated_at = :now",
            ConditionExpression=f"transaction_status IN ({', '.join(placeholders)})",
            ExpressionAttributeValues={
                ":status": _serialize(status),
                ":now": _serialize(_now()),
                **placeholders,
            },
            what=f"move {row_id} to {status}",
        )

    def set_final_status(self, trip_id: str, row_id: str, status: str) -> None:
        self._client.update_item(
            TableName=self.table_name,
            Key=_key(trip_id, row_id),
            UpdateExpression="SET transaction_status = :status, updated_at = :now",
            ExpressionAttributeValues={":status": _serialize(status), ":now": _serialize(_now())},
        )

    def rows(self, trip_id: str) -> list[Row]:
        pages = self._client.get_paginator("query").paginate(
            TableName=self.table_name,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": _serialize(trip_id)},
            ConsistentRead=True,
        )
        return [{k: _deserialize(v) for k, v in item.items()} for page in pages for item in page["Items"]]

    def scan(self) -> Iterator[Row]:
        """Every row of the table, for audits."""
        for page in self._client.get_paginator("scan").paginate(TableName=self.table_name, ConsistentRead=True):
            for item in page["Items"]:
                yield {k: _deserialize(v) for k, v in item.items()}

    def _conditional(self, operation: str, what: str, **request: Any) -> None:
        try:
            getattr(self._client, operation)(
                TableName=self.table_name, ReturnValuesOnConditionCheckFailure="ALL_OLD", **request
            )
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
            old = err.response.get("Item") or {}
            held = _deserialize(old["transaction_status"]) if "transaction_status" in old else "no row"
            raise RowConflict(f"cannot {what} in {self.table_name}: it is {held}") from err


def _serialize(value: Value) -> dict[str, str]:
    """A DynamoDB attribute value: this project stores strings and numbers only."""
    return {"S": value} if isinstance(value, str) else {"N": str(value)}


def _deserialize(attribute: dict[str, Any]) -> Any:
    (kind, value), *_ = attribute.items()
    if kind == "N":
        return Decimal(value)
    if kind == "S":
        return value
    raise ValueError(f"unexpected DynamoDB attribute type {kind}")


def _key(trip_id: str, row_id: str) -> dict[str, Any]:
    return {"pk": _serialize(trip_id), "sk": _serialize(row_id)}


def _now() -> Decimal:
    """Seconds since the epoch, as DynamoDB stores numbers."""
    return Decimal(f"{time.time():.3f}")


async def write_or_refuse(write: Callable[..., T], *args: object) -> T:
    """Run one ledger write off the event loop; a `RowConflict` refuses the step with a terminal 409.

    For a handler whose only effect is the write: the handler is the durable step.
    Restate journals the handler's answer and retries the whole handler until
    it has one, so the write may run again after a crash or a lost reply. Every
    write of the ledger is made to be repeated (insert: the row is absent or
    already so; advance: the target state is allowed; set_final_status:
    overwrite), so no `ctx.run` journals it: that would cost a round trip to
    restate-server per step and buy nothing.

    A `RowConflict` (the row is in a state that forbids the change) is a
    business answer, not an outage, so it becomes a `TerminalError`.
    """
    try:
        return await aws.off_loop(write, *args)
    except RowConflict as conflict:
        raise TerminalError(str(conflict), status_code=409) from conflict


@cache
def ledger(table_name: str) -> DynamoLedger:
    """One ledger per table, shared by every invocation in this process."""
    return DynamoLedger(table_name)
