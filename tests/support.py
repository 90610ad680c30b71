"""What the tests share: how they look at the stack as a user would, and what they expect to see.

- `Inbox`: an SQS queue subscribed to the trips topic, read per trip.
- `rows` / `statuses`: the table rows of one trip; `BOOKED`, `NO_LIVE_ROWS`: what they should be.
- `Admin`: the parts of Restate's admin API an operator uses.
- `event` / `FakeContext`: the registration handler's events and context, as CloudFormation sends them.
"""

from __future__ import annotations

import io
import json
import threading
import time
import uuid
import zipfile
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import boto3
import httpx
import psutil
from boto3.dynamodb.types import TypeDeserializer
from botocore.config import Config

from holiday.models import RowStatus
from holiday_tools import release
from holiday_tools.chaos.load import ScenarioResult
from holiday_tools.devstack import HOST, LOCAL_ACCOUNT, LocalStack
from holiday_tools.locallambda.runtime import LocalLambda

T = TypeVar("T")
PROJECT_DIR = Path(__file__).resolve().parents[1]
TABLES = ("flights", "cars", "payments")
# Each table's row statuses for one trip (see `statuses`): fully booked, and fully undone.
BOOKED = {"flights": [RowStatus.CONFIRMED], "cars": [RowStatus.CONFIRMED], "payments": [RowStatus.CHARGED]}
NO_LIVE_ROWS = {"flights": [RowStatus.CANCELLED], "cars": [RowStatus.CANCELLED], "payments": [RowStatus.REFUNDED]}
# The compensations of a trip that fails after the payment, in the order they run.
ALL_UNDONE = ["refund payment", "cancel car", "cancel flight"]
_deserialize = TypeDeserializer().deserialize


def documentation() -> str:
    """The README and every page of docs/, as one text: what a user reads, for tests that check it."""
    pages = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").rglob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


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


# What a `json_server` answers: from the method, the path and the body, a status and a JSON value.
JsonAnswer = Callable[[str, str, bytes], tuple[int, Any]]


@contextmanager
def json_server(answer: JsonAnswer) -> Iterator[int]:
    """A small HTTP/1.1 server on a free loopback port, answering every GET and POST with JSON; yields the port."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._answer(b"")

        def do_POST(self) -> None:
            self._answer(self.rfile.read(int(self.headers.get("content-length") or 0)))

        def _answer(self, request: bytes) -> None:
            status, value = answer(self.command, self.path, request)
            body = json.dumps(value).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


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


def published_version(stack: LocalStack, name: str, version: int) -> str:
    """The ARN of version `version` of function `name` ("trips", ...) in the local Lambda runtime, published if need be.

    Each version is the project's own `holiday` package, zipped with a marker file of its own: Lambda
    publishes a new version only of changed code. Versions are published up to `version`, so ask for
    the versions of one function in ascending order.
    """
    client = release.lambda_client(stack)
    function = f"holiday-{name}"
    published = {v["Version"] for v in client.list_versions_by_function(FunctionName=function)["Versions"]}
    while str(version) not in published:
        code = io.BytesIO(release.code_zip(PROJECT_DIR))
        with zipfile.ZipFile(code, "a") as archive:
            archive.writestr("marker.txt", str(uuid.uuid4()))
        number = client.update_function_code(FunctionName=function, ZipFile=code.getvalue(), Publish=True)["Version"]
        assert int(number) <= version, f"{function} is already past version {version}"
        published.add(number)
    return stack.function_arn(name).rsplit(":", 1)[0] + f":{version}"


class Admin:
    """The parts of Restate's admin API an operator uses to look at, and stop, a trip."""

    def __init__(self, stack: LocalStack) -> None:
        self.client = httpx.Client(base_url=stack.admin_url, timeout=10)

    def query(self, sql: str) -> list[dict[str, Any]]:
        response = self.client.post("/query", json={"query": sql}, headers={"accept": "application/json"})
        response.raise_for_status()
        return response.json()["rows"]  # type: ignore[no-any-return]

    def run_of(self, trip_id: str) -> dict[str, Any]:
        """The trip's saga invocation (`trip/<id>/run`); trip ids are `[A-Za-z0-9_-]`, safe to quote."""
        [run] = poll(
            lambda: self.query(
                "SELECT id, status, retry_count, last_failure FROM sys_invocation WHERE target_service_name = 'trip' "
                f"AND target_service_key = '{trip_id}' AND target_handler_name = 'run'"
            ),
            lambda found: len(found) == 1,
            f"the run invocation of trip {trip_id}",
        )
        return run

    def called_by(self, invocation_id: str, target: str) -> list[dict[str, Any]]:
        """The invocations of `target` ("cars/cancel") that `invocation_id` made."""
        return self.query(
            "SELECT id, target, status, retry_count, last_failure, completion_result FROM sys_invocation "
            f"WHERE invoked_by_id = '{invocation_id}' AND target = '{target}'"
        )

    def cancel(self, invocation_id: str) -> httpx.Response:
        return self.client.patch(f"/invocations/{invocation_id}/cancel")


# --- processes ------------------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    """Every live descendant of `pid` (psutil: Linux and macOS alike)."""
    try:
        return {child.pid for child in psutil.Process(pid).children(recursive=True)}
    except psutil.NoSuchProcess:
        return set()


def alive(pids: set[int]) -> set[int]:
    """Those of `pids` still running (a zombie has exited: it only waits to be reaped)."""
    running = set()
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                running.add(pid)
        except psutil.NoSuchProcess:
            continue
    return running


# --- the registration handler's side of CloudFormation ---------------------------------------

ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/holiday-restate-invoker"


class FakeContext:
    """A Lambda context whose remaining time runs down like the real one."""

    def __init__(self, seconds: float = 300.0) -> None:
        self.end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.end - time.monotonic()) * 1000)


def event(
    request_type: str,
    admin_url: str,
    function_arn: str,
    physical_id: str | None = None,
    *,
    old_props: Mapping[str, str] | None = None,
    **props: str,
) -> Any:
    """A Provider framework event, with the properties CloudFormation would pass.

    An Update's OldResourceProperties are its ResourceProperties with `old_props` in place:
    a rollback is an Update to the earlier properties, with the newer ones as `old_props`.
    """
    properties = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider", "AdminUrl": admin_url}
    properties |= {"FunctionArn": function_arn, "InvokerRoleArn": ROLE, **props}
    body: dict[str, Any] = {"RequestType": request_type, "ResourceProperties": properties}
    if physical_id is not None:
        body["PhysicalResourceId"] = physical_id
    if request_type == "Update":
        body["OldResourceProperties"] = {**properties, **(old_props or {})}
    return body


def assert_every_trip_settled_once(result: ScenarioResult) -> None:
    """A chaos scenario kept the saga's promises: every answer right, no violation, nothing still retrying,
    and trips requested = trips booked + trips undone (nothing lost, nothing doubled)."""
    assert result.wrong_answers == [], result.wrong_answers
    assert result.report.violations == []
    assert (result.report.trips, result.report.booked, result.report.undone) == (
        result.trips,
        result.clean,
        result.failing,
    )
    assert result.report.stuck_invocations == []


def lambda_client(runtime: LocalLambda, read_timeout: int = 30) -> Any:
    """A boto3 Lambda client of a local Lambda runtime running in this process, with no retries of its own."""
    return boto3.client(
        "lambda",
        endpoint_url=f"http://{HOST}:{runtime.server.server_address[1]}",
        region_name="eu-west-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(retries={"max_attempts": 1}, read_timeout=read_timeout),
    )


def invoke(client: Any, name: str, event: Any = None) -> tuple[str | None, Any]:
    """Invoke `name` with `event`: its FunctionError (None if it answered) and its payload."""
    response = client.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode())
    return response.get("FunctionError"), json.loads(response["Payload"].read())
