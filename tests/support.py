"""What the end-to-end tests use to look at the stack as a user would.

- `Inbox`: an SQS queue subscribed to the trips topic, read per trip.
- `rows` / `statuses`: the table rows of one trip.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer

from holiday.devstack import LocalStack

T = TypeVar("T")
TABLES = ("flights", "cars", "payments")
_deserialize = TypeDeserializer().deserialize


def poll(fetch: Callable[[], T], done: Callable[[T], bool], what: str, timeout: float = 20.0) -> T:
    """Fetch until `done(value)`; fail naming `what` and the last value at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {value!r}")
        time.sleep(0.05)


class Inbox:
    """An SQS queue subscribed to the trips topic; messages are kept per trip id."""

    def __init__(self, stack: LocalStack) -> None:
        self.sqs = stack.aws_client("sqs")
        self.queue_url = self.sqs.create_queue(QueueName="trip-announcements")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        stack.aws_client("sns").subscribe(
            TopicArn=stack.settings.topic_arn,
            Protocol="sqs",
            Endpoint=queue_arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        self.by_trip: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def messages(self, trip_id: str) -> list[dict[str, Any]]:
        """Every announcement received so far for `trip_id`."""
        self._drain()
        return list(self.by_trip[trip_id])

    def count(self) -> int:
        """How many announcements have arrived, for all trips."""
        self._drain()
        return sum(len(m) for m in self.by_trip.values())

    def _drain(self) -> None:
        while batch := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages"):
            for message in batch:
                body = json.loads(message["Body"])
                self.by_trip[body["trip_id"]].append(body)
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def rows(stack: LocalStack, table: str, trip_id: str | None = None) -> list[dict[str, Any]]:
    """The rows of `table` (of one trip, if given), straight from the stand-in."""
    client = stack.aws_client("dynamodb")
    if trip_id is None:
        items = client.scan(TableName=table, ConsistentRead=True)["Items"]
    else:
        items = client.query(
            TableName=table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": trip_id}},
            ConsistentRead=True,
        )["Items"]
    return [{k: _deserialize(v) for k, v in item.items()} for item in items]


def statuses(stack: LocalStack, trip_id: str) -> dict[str, list[str]]:
    """`{"flights": ["confirmed"], ...}`: each table's row statuses for one trip."""
    return {t: sorted(r["transaction_status"] for r in rows(stack, t, trip_id)) for t in TABLES}


def row_count(stack: LocalStack) -> int:
    return sum(len(rows(stack, t)) for t in TABLES)
