"""The registration custom resource's handler, against real restate-server, moto and the local Lambda runtime.

Each test drives `on_event` the way CloudFormation's Provider framework does and
checks what a user would notice: the deployments Restate lists, a trip that
books, and the reason shown when a registration fails.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from holiday.functions import FUNCTIONS
from holiday_tools.devstack import LOCAL_ACCOUNT, LocalStack, Ports
from infra.registration import handler
from infra.registration.handler import RegistrationError, on_event
from tests.support import PROJECT_DIR, ROLE, FakeContext, event, poll, published_version

SERVICES = {"trips": {"trips", "trip"}, "flights": {"flights"}, "cars": {"cars"}, "payments": {"payments"}}


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


def serving(admin: httpx.Client, service: str) -> tuple[str, int]:
    """The deployment Restate routes new invocations of `service` to, and the service's revision."""
    response = admin.get(f"/services/{service}")
    assert response.status_code == 200, response.text
    return response.json()["deployment_id"], response.json()["revision"]


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "restate.registration" and r.levelno == logging.WARNING]


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
    arn = published_version(local, "cars", 3)
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


def test_a_rollback_makes_restate_route_to_the_earlier_version_again(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    first = registered["flights"]["PhysicalResourceId"]
    earlier, later = published_version(local, "flights", 5), published_version(local, "flights", 6)
    created: list[str] = []
    try:
        v5 = on_event(event("Create", local.admin_url, earlier), FakeContext())["PhysicalResourceId"]
        created.append(v5)
        update = event("Update", local.admin_url, later, v5, old_props={"FunctionArn": earlier})
        v6 = on_event(update, FakeContext())["PhysicalResourceId"]
        created.append(v6)
        assert v6 != v5
        assert serving(admin, "flights")[0] == v6

        # The stack update fails elsewhere; CloudFormation sends the earlier properties back.
        rollback = event("Update", local.admin_url, earlier, v6, old_props={"FunctionArn": later})
        caplog.clear()
        result = on_event(rollback, FakeContext())
        assert result == {"PhysicalResourceId": v5, "Data": {"DeploymentId": v5, "Services": "flights"}}
        deployment_id, revision = serving(admin, "flights")
        assert deployment_id == v5
        assert caplog.messages[0].startswith(f"Update (rollback to version 5 from 6): {earlier} at ")
        assert f"made deployment {v5} of {earlier} current again for services flights" in caplog.messages
        assert warnings(caplog) == []
        assert deployments(admin)[v5]["assume_role_arn"] == ROLE
        book(local)

        # CloudFormation may repeat the request; the deployment is current, so nothing changes.
        assert on_event(rollback, FakeContext()) == result
        assert serving(admin, "flights") == (v5, revision)
    finally:
        for deployment_id in created:
            admin.delete(f"/deployments/{deployment_id}", params={"force": "true"})
        poll(lambda: deployments(admin), lambda listed: not set(created) & listed.keys(), "flights:5 and :6 to go")
        # Restate falls back to the deployment registered first, as the other tests expect.
        poll(lambda: serving(admin, "flights")[0], lambda current: current == first, "flights:1 to be current")


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
    arn = published_version(local, "payments", 2)  # the newest payments deployment while it exists
    deployment_id = on_event(event("Create", local.admin_url, arn), FakeContext())["PhysicalResourceId"]
    assert deployments(admin)[deployment_id]["arn"] == arn

    delete = event("Delete", local.admin_url, arn, deployment_id, RemovalPolicy="destroy")
    assert on_event(delete, FakeContext()) == {"PhysicalResourceId": deployment_id}
    listed = poll(lambda: deployments(admin), lambda listed: deployment_id not in listed, "the deployment to go")
    assert registered["payments"]["PhysicalResourceId"] in listed
    book(local)  # payments falls back to the version registered first
    # CloudFormation may repeat a Delete; a deployment that is already gone is not a failure.
    assert on_event(delete, FakeContext()) == {"PhysicalResourceId": deployment_id}


@pytest.mark.parametrize(
    ("old_version", "kind"),
    [
        (None, "Create"),
        (1, "Update (forward update to version 2 from 1)"),
    ],
    ids=["create", "update-to-a-later-version"],
)
def test_an_admin_api_nobody_answers_fails_before_the_lambda_times_out(
    old_version: int | None, kind: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(handler, "ROLLBACK_BUDGET_S", 1.0)  # were it taken for a rollback, it would not fail
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:2"
    if old_version is None:
        request = event("Create", nowhere, arn)
    else:
        request = event("Update", nowhere, arn, "dp_old", old_props={"FunctionArn": f"{arn[:-2]}:{old_version}"})
    started = time.monotonic()
    with pytest.raises(RegistrationError) as failure:
        on_event(request, FakeContext(20))  # 5 s to spend once the 15 s safety margin is kept back
    elapsed = time.monotonic() - started
    assert 4 <= elapsed < 10
    assert caplog.messages[0] == f"{kind}: {arn} at {nowhere} (5s to answer)"
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
    """A stand-in admin API that records each request; `failures` lists statuses to answer first, per path.

    `answers` replaces the answer to "METHOD path" with a status and a JSON body.
    """

    failures: dict[str, list[int]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None, Any]] = field(default_factory=list)
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
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
                elif f"{self.command} {self.path}" in fake.answers:
                    self.reply(*fake.answers[f"{self.command} {self.path}"])
                elif self.command == "GET" and self.path == "/health":
                    self.reply(200, None)
                elif self.command == "POST" and self.path == "/deployments":
                    self.reply(201, {"id": "dp_test", "services": [{"name": "x"}]})
                elif self.command == "POST" and self.path == "/query":
                    self.reply(200, {"rows": [{"pinned": 0}]})  # no invocation runs on the deployment
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
        ("POST", "/query"),
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


def keeps_routing_to_dp_newer(fake_admin: FakeAdmin) -> None:
    """Restate answers a registration with the known dp_test but keeps routing `trip` to dp_newer, even by force."""
    services = [{"name": "trips"}, {"name": "trip"}]
    fake_admin.answers = {
        "POST /deployments": (200, {"id": "dp_test", "services": services}),
        "GET /deployments/dp_test": (200, {"id": "dp_test", "assume_role_arn": ROLE}),
        "GET /services/trips": (200, {"name": "trips", "deployment_id": "dp_test"}),
        "GET /services/trip": (200, {"name": "trip", "deployment_id": "dp_newer"}),
    }


def test_a_deployment_restate_keeps_behind_a_newer_one_fails_the_update(fake_admin: FakeAdmin) -> None:
    keeps_routing_to_dp_newer(fake_admin)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:7"
    with pytest.raises(RegistrationError) as failure:
        on_event(
            event("Update", fake_admin.url, arn, "dp_older", old_props={"FunctionArn": arn[:-1] + "6"}), FakeContext()
        )
    message = str(failure.value)
    assert "still routes trip to dp_newer" in message
    assert "(deployment dp_test) again with force" in message
    posts = [body for method, path, _, body in fake_admin.requests if (method, path) == ("POST", "/deployments")]
    assert posts == [{"arn": arn, "assume_role_arn": ROLE}, {"arn": arn, "assume_role_arn": ROLE, "force": True}]


def test_a_rollback_restate_will_not_route_to_succeeds_with_a_warning(
    fake_admin: FakeAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    keeps_routing_to_dp_newer(fake_admin)
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:7"
    rollback = event("Update", fake_admin.url, arn, "dp_newer", old_props={"FunctionArn": arn[:-1] + "8"})
    assert on_event(rollback, FakeContext()) == {"PhysicalResourceId": "dp_newer"}  # the resource as it was
    posts = [body for method, path, _, body in fake_admin.requests if (method, path) == ("POST", "/deployments")]
    assert posts == [{"arn": arn, "assume_role_arn": ROLE}, {"arn": arn, "assume_role_arn": ROLE, "force": True}]
    [warning] = warnings(caplog)
    assert f"the rollback could not make Restate at {fake_admin.url} route new invocations to {arn}" in warning
    assert "still routes trip to dp_newer" in warning
    assert f"curl -X POST '{fake_admin.url}/deployments' " in warning


def test_a_delete_gives_up_on_an_unreachable_restate_within_its_budget_and_succeeds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(handler, "DELETE_BUDGET_S", 3.0)  # the Lambda itself has minutes left
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1"
    delete = event("Delete", nowhere, arn, "dp_gone", RemovalPolicy="destroy")
    started = time.monotonic()
    assert on_event(delete, FakeContext(300)) == {"PhysicalResourceId": "dp_gone"}
    assert 2 <= time.monotonic() - started < 8
    [warning] = warnings(caplog)
    assert f"could not delete deployment dp_gone from Restate at {nowhere}" in warning
    assert "Connection refused" in warning
    assert f"curl -X DELETE '{nowhere}/deployments/dp_gone?force=true'" in warning


def test_a_delete_succeeds_when_restate_answers_500_until_the_lambda_deadline(
    fake_admin: FakeAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    fake_admin.failures = {"/deployments/dp_test?force=true": [500] * 100}
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1"
    delete = event("Delete", fake_admin.url, arn, "dp_test", RemovalPolicy="destroy")
    started = time.monotonic()
    assert on_event(delete, FakeContext(18)) == {"PhysicalResourceId": "dp_test"}  # 3 s once the margin is kept
    assert time.monotonic() - started < 8
    assert len(fake_admin.requests) > 1  # retried, as 5xx may be transient
    [warning] = warnings(caplog)
    assert "HTTP 500: not yet" in warning
    assert f"curl -X DELETE '{fake_admin.url}/deployments/dp_test?force=true'" in warning


@pytest.mark.usefixtures("boto3_on_moto")
def test_a_delete_succeeds_when_the_token_secret_cannot_be_read(
    fake_admin: FakeAdmin, caplog: pytest.LogCaptureFixture
) -> None:
    secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    arn = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1"
    delete = event("Delete", fake_admin.url, arn, "dp_test", RemovalPolicy="destroy", AuthTokenSecretArn=secret_arn)
    assert on_event(delete, FakeContext()) == {"PhysicalResourceId": "dp_test"}
    assert fake_admin.requests == []
    [warning] = warnings(caplog)
    assert f"secret {secret_arn} failed" in warning
    assert f"curl -X DELETE '{fake_admin.url}/deployments/dp_test?force=true'" in warning
    assert f"TOKEN the SecretString of {secret_arn}" in warning


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"AdminUrl": "10.0.1.5:9070", "RemovalPolicy": "destroy"}, "AdminUrl must be an http(s) URL"),
        ({"RemovalPolicy": "snapshot"}, "RemovalPolicy must be retain or destroy"),
    ],
)
def test_a_delete_with_bad_properties_succeeds_with_a_warning(
    props: dict[str, str], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    delete = event("Delete", nowhere, "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1", "dp_test")
    delete["ResourceProperties"].update(props)
    started = time.monotonic()
    assert on_event(delete, FakeContext(60)) == {"PhysicalResourceId": "dp_test"}
    assert time.monotonic() - started < 0.5
    [warning] = warnings(caplog)
    assert expected in warning
    assert "curl -X DELETE '" in warning


# --- rollbacks: CloudFormation's Update back to the last good properties ----------------------

TRIPS = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips"


@pytest.mark.parametrize(
    ("function_arn", "old_function_arn", "expected"),
    [
        (f"{TRIPS}:5", f"{TRIPS}:6", True),
        (f"{TRIPS}:9", f"{TRIPS}:10", True),  # compared as numbers, not text
        (f"{TRIPS}:6", f"{TRIPS}:5", False),
        (f"{TRIPS}:10", f"{TRIPS}:9", False),
        (f"{TRIPS}:5", f"{TRIPS}:5", False),
        (f"{TRIPS}:5", "arn:aws:lambda:us-east-1:123456789012:function:holiday-cars:6", False),
        (f"{TRIPS}:5", "arn:aws:lambda:eu-west-1:123456789012:function:holiday-trips:6", False),
        (f"{TRIPS}:5", "arn:aws:lambda:us-east-1:210987654321:function:holiday-trips:6", False),
        (f"{TRIPS}:5", "", False),
        ("", f"{TRIPS}:6", False),
        (TRIPS, f"{TRIPS}:6", False),
        (f"{TRIPS}:$LATEST", f"{TRIPS}:6", False),
        (f"{TRIPS}:5", f"{TRIPS}:$LATEST", False),
        (f"{TRIPS}:live", f"{TRIPS}:6", False),
        (f"{TRIPS}:5", f"{TRIPS}:6:7", False),
        ("holiday-trips:5", "holiday-trips:6", False),
    ],
    ids=[
        "earlier-version",
        "earlier-version-by-number",
        "later-version",
        "later-version-by-number",
        "same-version",
        "another-function",
        "another-region",
        "another-account",
        "no-old-arn",
        "no-new-arn",
        "unqualified",
        "latest",
        "from-latest",
        "alias",
        "too-many-parts",
        "not-an-arn",
    ],
)
def test_a_rollback_is_an_update_to_an_earlier_version_of_the_same_function(
    function_arn: str, old_function_arn: str, expected: bool
) -> None:
    assert handler.is_rollback(function_arn, old_function_arn) is expected


def test_a_rollback_update_of_the_registration_succeeds_within_its_budget(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # An update to holiday-trips:8 failed; CloudFormation sends :7 back, and Restate cannot be reached.
    monkeypatch.setattr(handler, "ROLLBACK_BUDGET_S", 2.0)  # a minute in Lambda; the test need not wait that long
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    earlier = f"{TRIPS}:7"
    rollback = event("Update", nowhere, earlier, "dp_current", old_props={"FunctionArn": f"{TRIPS}:8"})
    started = time.monotonic()
    result = on_event(rollback, FakeContext(60))  # the Lambda's own deadline is 45 s away
    elapsed = time.monotonic() - started
    assert result == {"PhysicalResourceId": "dp_current"}  # CloudFormation keeps the resource as it was
    assert 1.5 <= elapsed < 10
    assert caplog.messages[0] == f"Update (rollback to version 7 from 8): {earlier} at {nowhere} (2s to answer)"
    [warning] = warnings(caplog)
    assert f"the rollback could not make Restate at {nowhere} route new invocations to {earlier}" in warning
    assert f"GET {nowhere}/health" in warning
    assert "Connection refused" in warning
    payload = f'{{"arn": "{earlier}", "assume_role_arn": "{ROLE}", "force": true}}'
    assert warning.endswith(
        f"To make Restate route to it by hand: curl -X POST '{nowhere}/deployments' "
        f"-H 'Content-Type: application/json' -d '{payload}'"
    )


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({"AdminUrl": "10.0.1.5:9070"}, "AdminUrl must be an http(s) URL"),
        ({"RemovalPolicy": "snapshot"}, "RemovalPolicy must be retain or destroy"),
    ],
)
def test_a_rollback_with_bad_properties_succeeds_with_a_warning(
    props: dict[str, str], expected: str, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"http://127.0.0.1:{Ports.free().admin}"
    rollback = event("Update", nowhere, f"{TRIPS}:7", "dp_current", old_props={"FunctionArn": f"{TRIPS}:8"})
    rollback["ResourceProperties"].update(props)
    started = time.monotonic()
    assert on_event(rollback, FakeContext(60)) == {"PhysicalResourceId": "dp_current"}
    assert time.monotonic() - started < 0.5
    [warning] = warnings(caplog)
    assert expected in warning
    assert "curl -X POST '" in warning


@pytest.mark.usefixtures("boto3_on_moto")
def test_the_command_a_failed_rollback_logs_makes_restate_route_to_the_earlier_version(
    local: LocalStack, admin: httpx.Client, registered: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    first = registered["flights"]["PhysicalResourceId"]
    earlier, later = published_version(local, "flights", 11), published_version(local, "flights", 12)
    secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf"
    created: list[str] = []
    try:
        for arn in (earlier, later):
            created.append(on_event(event("Create", local.admin_url, arn), FakeContext())["PhysicalResourceId"])
        v12 = created[-1]
        assert serving(admin, "flights")[0] == v12

        # The rollback cannot read the admin token, so it leaves Restate as it is, and says what to run.
        rollback = event(
            "Update", local.admin_url, earlier, v12, old_props={"FunctionArn": later}, AuthTokenSecretArn=secret_arn
        )
        caplog.clear()
        assert on_event(rollback, FakeContext()) == {"PhysicalResourceId": v12}
        assert serving(admin, "flights")[0] == v12
        [warning] = warnings(caplog)
        assert f"secret {secret_arn} failed" in warning
        assert f"with TOKEN the SecretString of {secret_arn}: curl -X POST '{local.admin_url}/deployments' " in warning

        # The command, as logged, in a shell (this restate-server wants no token, and ignores one).
        command = warning[warning.index("curl -X POST") :]
        assert command.endswith(' -H "Authorization: Bearer $TOKEN"')
        ran = subprocess.run(
            ["bash", "-c", command],
            env={"PATH": os.environ["PATH"], "TOKEN": "unused"},
            capture_output=True,
            timeout=60,
        )
        assert ran.returncode == 0, ran.stderr
        deployment_id = poll(lambda: serving(admin, "flights")[0], lambda current: current != v12, "flights to move")
        created.append(deployment_id)
        assert deployments(admin)[deployment_id]["arn"] == earlier
        assert deployments(admin)[deployment_id]["assume_role_arn"] == ROLE
        book(local)
    finally:
        for deployment_id in created:
            admin.delete(f"/deployments/{deployment_id}", params={"force": "true"})
        poll(lambda: deployments(admin), lambda listed: not set(created) & listed.keys(), "flights:11 and :12 to go")
        poll(lambda: serving(admin, "flights")[0], lambda current: current == first, "flights:1 to be current")
