"""A Delete with destroy must not break the invocations still pinned to the deployment it removes.

CloudFormation deletes the previous registration after every code update, while
trips that started on the old code may still be running on it. These tests hold
a trip mid-saga against the real restate-server (lambda mode, as on AWS) and
check what a user would notice: the deployment stays, the warning says why and
what removes it later, and the trip still books.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from holiday.functions import FUNCTIONS
from holiday_tools.devstack import LocalStack, Ports
from holiday_tools.faultproxy import FaultProxy
from infra.registration import handler
from infra.registration.handler import on_event
from tests.deploy.test_registration import FakeAdmin, deployments, serving, warnings
from tests.support import BOOKED, PROJECT_DIR, Admin, FakeContext, event, poll, statuses

ARN = "arn:aws:lambda:us-east-1:123456789012:function:holiday-trips:1"


@pytest.fixture(scope="module")
def ports() -> Ports:
    return Ports.free()


@pytest.fixture(scope="module")
def aws_proxy(ports: Ports) -> Iterator[FaultProxy]:
    """Between the functions and moto, to make a trip's payment fail until the test clears the fault."""
    proxy = FaultProxy(f"http://127.0.0.1:{ports.aws}")
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def local(ports: Ports, aws_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """moto, restate-server and the four functions, each registered through the handler as CloudFormation does."""
    stack = LocalStack(
        PROJECT_DIR, tmp_path_factory.mktemp("pins"), ports, services_aws_endpoint=aws_proxy.url, mode="lambda"
    )
    stack.start(register=False)
    try:
        for name in FUNCTIONS:
            on_event(event("Create", stack.admin_url, stack.function_arn(name)), FakeContext())
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def admin(local: LocalStack) -> Iterator[Admin]:
    admin = Admin(local)
    yield admin
    admin.client.close()


def test_a_delete_keeps_the_deployment_a_trip_still_runs_on_until_the_trip_has_finished(
    local: LocalStack, admin: Admin, aws_proxy: FaultProxy, trip_id: str, caplog: pytest.LogCaptureFixture
) -> None:
    deployment_id, _ = serving(admin.client, "trip")
    delete = event("Delete", local.admin_url, local.function_arn("trips"), deployment_id, RemovalPolicy="destroy")
    fault = aws_proxy.drop(b'"TableName": "payments"', trip_id.encode())
    try:
        sent = httpx.post(f"{local.ingress_url}/trips/reserve/send", json={"trip_id": trip_id}, timeout=30)
        assert sent.status_code == 202, sent.text
        poll(
            lambda: admin.query(
                "SELECT status, pinned_deployment_id FROM sys_invocation "
                f"WHERE target = 'trip/{trip_id}/run' AND pinned_deployment_id = '{deployment_id}'"
            ),
            lambda found: len(found) == 1 and found[0]["status"] != "completed" and fault.dropped >= 2,
            "the trip's saga to run on the trips deployment, its payment failing",
        )

        # The code update is done; CloudFormation deletes the registration of the old code.
        started = time.monotonic()
        assert on_event(delete, FakeContext()) == {"PhysicalResourceId": deployment_id}
        assert time.monotonic() - started < 5
        assert deployment_id in deployments(admin.client)
        [warning] = warnings(caplog)
        # The trip's reserve call and its saga, both started on this deployment.
        assert f"keeping deployment {deployment_id}: 2 invocations still run on it" in warning
        assert "CloudFormation deletes the previous registration after every code update" in warning
        assert "`holiday prune` removes it once they have finished" in warning
        assert f"curl -X DELETE '{local.admin_url}/deployments/{deployment_id}?force=true'" in warning
    finally:
        fault.clear()

    # The trip finishes on the deployment it started on: the caller gets the booking.
    attached = httpx.get(f"{local.ingress_url}/restate/invocation/{sent.json()['invocationId']}/attach", timeout=60)
    assert attached.status_code == 200, attached.text
    assert attached.json()["status"] == "success"
    assert statuses(local, trip_id) == BOOKED

    # Nothing runs on it any more (finished invocations stay listed a day), so the same Delete removes it.
    caplog.clear()
    assert on_event(delete, FakeContext()) == {"PhysicalResourceId": deployment_id}
    assert warnings(caplog) == []
    poll(lambda: deployments(admin.client), lambda listed: deployment_id not in listed, "the deployment to go")


@pytest.mark.parametrize(
    ("failures", "answers", "reason"),
    [
        ({"/query": [500] * 100}, {}, "HTTP 500: not yet"),
        ({}, {"POST /query": (200, {"columns": ["pinned"]})}, "unexpected answer (KeyError: 'rows')"),
        ({}, {"POST /query": (200, {"rows": [{"pinned": "many"}]})}, "unexpected count 'many'"),
    ],
    ids=["error-status", "no-rows", "not-a-count"],
)
def test_a_delete_that_cannot_check_for_running_invocations_keeps_the_deployment_and_succeeds(
    failures: dict[str, list[int]],
    answers: dict[str, tuple[int, Any]],
    reason: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setattr(handler, "DELETE_BUDGET_S", 3.0)  # a minute in Lambda; the test need not wait that long
    fake = FakeAdmin(failures=failures, answers=answers)
    try:
        delete = event("Delete", fake.url, ARN, "dp_test", RemovalPolicy="destroy")
        started = time.monotonic()
        assert on_event(delete, FakeContext(300)) == {"PhysicalResourceId": "dp_test"}
        assert time.monotonic() - started < 8
        assert ("DELETE", "/deployments/dp_test?force=true") not in [(m, p) for m, p, _, _ in fake.requests]
    finally:
        fake.close()
    [warning] = warnings(caplog)
    assert f"could not delete deployment dp_test from Restate at {fake.url}, so it stays registered" in warning
    assert "could not check whether invocations still run on it, and deleting it would break them" in warning
    assert reason in warning


def test_a_physical_id_not_shaped_like_a_deployment_id_never_reaches_a_query(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeAdmin()
    try:
        physical_id = "dp_x' OR 'a'='a"
        assert on_event(event("Delete", fake.url, ARN, physical_id, RemovalPolicy="destroy"), FakeContext()) == {
            "PhysicalResourceId": physical_id
        }
        assert fake.requests == []
    finally:
        fake.close()
    [warning] = warnings(caplog)
    assert "is not shaped like a Restate deployment id" in warning
