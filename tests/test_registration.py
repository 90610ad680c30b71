"""The registration custom resource's handler, against real restate-server, moto and the local Lambda runtime.

Each test drives `on_event` the way CloudFormation's Provider framework does and
checks what a user would notice: the deployments Restate lists, a trip that
books, and the reason shown when a registration fails.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from holiday.devstack import LOCAL_ACCOUNT, LocalStack, Ports
from holiday.functions import FUNCTIONS
from infra.registration.handler import RegistrationError, on_event
from tests.support import poll

PROJECT_DIR = Path(__file__).resolve().parents[1]
ROLE = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/holiday-restate-invoker"
SERVICES = {"trips": {"trips", "trip"}, "flights": {"flights"}, "cars": {"cars"}, "payments": {"payments"}}


class FakeContext:
    """A Lambda context whose remaining time runs down like the real one."""

    def __init__(self, seconds: float = 300.0) -> None:
        self.end = time.monotonic() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self.end - time.monotonic()) * 1000)


def event(request_type: str, admin_url: str, function_arn: str, physical_id: str | None = None, **props: str) -> Any:
    """A Provider framework event, with the properties CloudFormation would pass."""
    properties = {"ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:provider", "AdminUrl": admin_url}
    properties |= {"FunctionArn": function_arn, "InvokerRoleArn": ROLE, **props}
    body: dict[str, Any] = {"RequestType": request_type, "ResourceProperties": properties}
    if physical_id is not None:
        body["PhysicalResourceId"] = physical_id
    if request_type == "Update":
        body["OldResourceProperties"] = properties
    return body


def other_version(stack: LocalStack, name: str, version: int) -> str:
    """Another version ARN of the same function: the local runtime serves any version, Restate sees a new one."""
    return stack.function_arn(name).rsplit(":", 1)[0] + f":{version}"


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """moto, restate-server and the four functions, with nothing registered."""
    stack = LocalStack(PROJECT_DIR, tmp_path_factory.mktemp("registration"), Ports.free(), mode="lambda")
    stack.start(register=False)
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def admin(local: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=local.admin_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def registered(local: LocalStack) -> dict[str, Any]:
    """Each function registered through the handler, as CloudFormation's first deploy does."""
    return {
        name: on_event(event("Create", local.admin_url, local.function_arn(name)), FakeContext()) for name in FUNCTIONS
    }


def deployments(admin: httpx.Client) -> dict[str, Any]:
    response = admin.get("/deployments")
    assert response.status_code == 200, response.text
    return {d["id"]: d for d in response.json()["deployments"]}


def book(local: LocalStack) -> None:
    response = httpx.post(f"{local.ingress_url}/trips/reserve", json={}, timeout=60)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"


def test_create_registers_every_function_and_a_trip_books(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any]
) -> None:
    listed = deployments(admin)
    for name, result in registered.items():
        deployment_id = result["PhysicalResourceId"]
        assert deployment_id.startswith("dp_")
        assert result["Data"]["DeploymentId"] == deployment_id
        assert set(result["Data"]["Services"].split(",")) == SERVICES[name]
        assert listed[deployment_id]["arn"] == local.function_arn(name)
        assert listed[deployment_id]["assume_role_arn"] == ROLE
    book(local)


def test_update_with_the_same_properties_keeps_the_deployment(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any]
) -> None:
    before = deployments(admin)
    deployment_id = registered["flights"]["PhysicalResourceId"]
    result = on_event(event("Update", local.admin_url, local.function_arn("flights"), deployment_id), FakeContext())
    assert result == registered["flights"]
    assert deployments(admin).keys() == before.keys()


def test_update_with_a_new_invoker_role_changes_the_role_restate_assumes(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any]
) -> None:
    arn = other_version(local, "cars", 3)
    created = on_event(event("Create", local.admin_url, arn), FakeContext())
    deployment_id = created["PhysicalResourceId"]
    try:
        new_role = f"{ROLE}-renamed"
        updated = on_event(event("Update", local.admin_url, arn, deployment_id, InvokerRoleArn=new_role), FakeContext())
        assert updated["PhysicalResourceId"] == deployment_id
        assert deployments(admin)[deployment_id]["assume_role_arn"] == new_role
    finally:
        admin.delete(f"/deployments/{deployment_id}", params={"force": "true"})
        poll(lambda: deployments(admin), lambda listed: deployment_id not in listed, "the cars:3 deployment to go")


def test_delete_keeps_the_deployment_by_default(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any]
) -> None:
    deployment_id = registered["flights"]["PhysicalResourceId"]
    result = on_event(event("Delete", local.admin_url, local.function_arn("flights"), deployment_id), FakeContext())
    assert result == {"PhysicalResourceId": deployment_id}
    book(local)  # still served, by the very deployment that was "deleted"
    assert deployment_id in deployments(admin)


def test_delete_of_a_failed_create_touches_nothing() -> None:
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    physical_id = "holiday-RegisterTrips-1A2B3C4D5E6F"
    delete = event("Delete", nowhere, "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1", physical_id)
    delete["ResourceProperties"]["RemovalPolicy"] = "destroy"
    started = time.monotonic()
    assert on_event(delete, FakeContext(16)) == {"PhysicalResourceId": physical_id}
    assert time.monotonic() - started < 0.5  # no call to the admin URL where nothing listens


def test_delete_with_destroy_removes_only_that_deployment(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any]
) -> None:
    arn = other_version(local, "payments", 2)  # the newest payments deployment while it exists
    deployment_id = on_event(event("Create", local.admin_url, arn), FakeContext())["PhysicalResourceId"]
    assert deployments(admin)[deployment_id]["arn"] == arn

    delete = event("Delete", local.admin_url, arn, deployment_id, RemovalPolicy="destroy")
    assert on_event(delete, FakeContext()) == {"PhysicalResourceId": deployment_id}
    listed = poll(lambda: deployments(admin), lambda listed: deployment_id not in listed, "the deployment to go")
    assert registered["payments"]["PhysicalResourceId"] in listed
    book(local)  # payments falls back to the version registered first
    # CloudFormation may repeat a Delete; a deployment that is already gone is not a failure.
    assert on_event(delete, FakeContext()) == {"PhysicalResourceId": deployment_id}


def test_an_admin_api_nobody_answers_fails_before_the_lambda_times_out() -> None:
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    create = event("Create", nowhere, "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1")
    started = time.monotonic()
    with pytest.raises(RegistrationError) as failure:
        on_event(create, FakeContext(20))  # 5 s to spend once the 15 s safety margin is kept back
    elapsed = time.monotonic() - started
    assert 4 <= elapsed < 10
    message = str(failure.value)
    assert f"GET {nowhere}/health" in message
    assert "attempts" in message
    assert "Connection refused" in message


def test_an_unqualified_function_arn_fails_at_once_with_restates_message(local: LocalStack) -> None:
    arn = local.function_arn("trips").rsplit(":", 1)[0]  # the function, not a version
    started = time.monotonic()
    with pytest.raises(RegistrationError) as failure:
        on_event(event("Create", local.admin_url, arn), FakeContext())
    assert time.monotonic() - started < 3  # a 4xx is not retried
    message = str(failure.value)
    assert f"POST {local.admin_url}/deployments" in message
    assert "HTTP 400" in message
    assert "qualified ARN" in message


def test_an_unknown_function_fails_within_the_deadline_with_restates_message(local: LocalStack) -> None:
    # restate-server answers a failed discovery with 500 (META0003), which can be transient,
    # so the handler retries it until its deadline and then reports Restate's message.
    arn = f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT}:function:holiday-nope:1"
    started = time.monotonic()
    with pytest.raises(RegistrationError) as failure:
        on_event(event("Create", local.admin_url, arn), FakeContext(20))
    assert time.monotonic() - started < 10
    message = str(failure.value)
    assert f"POST {local.admin_url}/deployments" in message
    assert "HTTP 500" in message
    assert f"Function not found: {arn}" in message


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"AdminUrl": "10.0.1.5:9070"}, "AdminUrl must be an http(s) URL"),
        ({"FunctionArn": ""}, "FunctionArn is required"),
        ({"FunctionArn": "arn:aws:lambda:us-east-1:123456789012:function:f:$LATEST"}, "not $LATEST"),
        ({"RemovalPolicy": "snapshot"}, "RemovalPolicy must be retain or destroy"),
    ],
)
def test_bad_properties_fail_before_any_call(props: dict[str, str], expected: str) -> None:
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    create = event("Create", nowhere, "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1")
    create["ResourceProperties"].update(props)
    started = time.monotonic()
    with pytest.raises(RegistrationError, match="invalid properties") as failure:
        on_event(create, FakeContext(60))
    assert expected in str(failure.value)
    assert time.monotonic() - started < 0.5


@dataclass
class FakeAdmin:
    """A stand-in admin API that records each request; `failures` lists statuses to answer first, per path."""

    failures: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer = field(init=False)

    def __post_init__(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.requests.append((self.command, self.path, self.headers.get("Authorization"), body))
                queued = fake.failures.get(self.path)
                if queued:
                    self.reply(queued.pop(0), {"message": "not yet"})
                elif self.command == "GET" and self.path == "/health":
                    self.reply(200, None)
                elif self.command == "POST" and self.path == "/deployments":
                    self.reply(201, {"id": "dp_test", "services": [{"name": "x"}]})
                elif self.command == "DELETE" and self.path == "/deployments/dp_test?force=true":
                    self.reply(202, None)
                else:
                    self.reply(404, {"message": f"no {self.command} {self.path}"})

            do_GET = do_POST = do_DELETE = do_PATCH = answer

            def reply(self, status: int, payload: Any) -> None:
                data = b"" if payload is None else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_admin() -> Iterator[FakeAdmin]:
    fake = FakeAdmin()
    yield fake
    fake.close()


@pytest.fixture
def boto3_on_moto(local: LocalStack, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's boto3 (Secrets Manager) talks to the local stand-in, as it would to AWS."""
    for name, value in {
        "AWS_ENDPOINT_URL": local.aws_url,
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.mark.usefixtures("boto3_on_moto")
def test_every_admin_call_carries_the_token_from_secrets_manager(local: LocalStack, fake_admin: FakeAdmin) -> None:
    secret = local.aws_client("secretsmanager").create_secret(Name="restate-admin-token", SecretString="s3cret")
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:7"
    props = {"AuthTokenSecretArn": secret["ARN"], "RemovalPolicy": "destroy"}

    created = on_event(event("Create", fake_admin.url, arn, **props), FakeContext())
    assert created == {"PhysicalResourceId": "dp_test", "Data": {"DeploymentId": "dp_test", "Services": "x"}}
    on_event(event("Delete", fake_admin.url, arn, "dp_test", **props), FakeContext())

    assert [(method, path) for method, path, _, _ in fake_admin.requests] == [
        ("GET", "/health"),
        ("POST", "/deployments"),
        ("DELETE", "/deployments/dp_test?force=true"),
    ]
    assert {auth for _, _, auth, _ in fake_admin.requests} == {"Bearer s3cret"}
    assert fake_admin.requests[1][3] == {"arn": arn, "assume_role_arn": ROLE}  # and no "force"


@pytest.mark.usefixtures("boto3_on_moto")
def test_a_missing_secret_fails_naming_the_secret(local: LocalStack) -> None:
    secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    create = event("Create", local.admin_url, local.function_arn("trips"), AuthTokenSecretArn=secret_arn)
    with pytest.raises(RegistrationError, match=f"secret {secret_arn} failed.*ResourceNotFoundException"):
        on_event(create, FakeContext())


def test_restate_starting_up_or_failing_briefly_is_waited_for(fake_admin: FakeAdmin) -> None:
    fake_admin.failures = {"/health": [503], "/deployments": [502]}
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:7"
    created = on_event(event("Create", fake_admin.url, arn, InvokerRoleArn=""), FakeContext())
    assert created["PhysicalResourceId"] == "dp_test"
    assert [(method, path) for method, path, _, _ in fake_admin.requests] == [
        ("GET", "/health"),
        ("GET", "/health"),
        ("POST", "/deployments"),
        ("POST", "/deployments"),
    ]
    assert fake_admin.requests[-1][3] == {"arn": arn}  # no role asked for, none sent
