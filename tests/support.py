"""What the end-to-end tests use to look at the stack as a user would.

- `AwsProxy`: an HTTP proxy between the services and moto that can hold a
  matching request, so a test can crash the services at an exact step.
- `Inbox`: an SQS queue subscribed to the trips topic, read per trip.
- `rows` / `statuses`: the table rows of one trip.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import urlsplit

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


@dataclass
class Hold:
    """Holds the first request whose body contains every one of `needles`."""

    needles: tuple[bytes, ...]
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def matches(self, body: bytes) -> bool:
        return not self.held.is_set() and all(n in body for n in self.needles)

    def wait_held(self, timeout: float = 20.0) -> None:
        assert self.held.wait(timeout), f"no request with {self.needles} arrived within {timeout}s"

    def release(self) -> None:
        self.released.set()


class AwsProxy:
    """Forwards every request to `upstream`, except that it can hold one back on demand."""

    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.holds: list[Hold] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in separate writes: without this, Nagle's
                # algorithm and delayed ACKs add 40 ms to every response.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                proxy._maybe_hold(body)
                status, headers, payload = proxy._forward(self.command, self.path, dict(self.headers), body)
                try:
                    self.send_response(status)
                    for name, value in headers:
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass  # the caller died while we held its request: that is the point

            do_GET = do_POST

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self, *needles: bytes) -> Hold:
        hold = Hold(needles)
        with self._lock:
            self.holds.append(hold)
        return hold

    def close(self) -> None:
        for hold in self.holds:
            hold.release()
        self.server.shutdown()

    def _maybe_hold(self, body: bytes) -> None:
        with self._lock:
            hold = next((h for h in self.holds if h.matches(body)), None)
            if hold is not None:
                hold.held.set()
        if hold is not None:
            hold.released.wait(60)

    def _forward(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname or "127.0.0.1", self.upstream.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()


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
