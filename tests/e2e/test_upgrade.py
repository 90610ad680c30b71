"""New code deployed while trips are in flight: each trip finishes on the code it started with.

Per mode, on a stack of its own (the new release changes the saga every later test would see):
trips are held mid-saga (their payment fails until the test lets it through), a release whose
saga has one more step is deployed and registered as a deploy does, new trips run on it, then
the held trips are let through. Had Restate sent a held trip to the new code, its journal would
not match the new saga and the trip would never finish. `holiday prune` keeps the old code
while a trip runs on it, and removes it (and its Lambda versions) once none does.
"""

from __future__ import annotations

import re
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from holiday_tools import release
from holiday_tools.admin import RestateAdmin
from holiday_tools.audit import audit, format_report
from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack, Mode, Ports
from holiday_tools.faultproxy import FaultProxy
from tests.support import BOOKED, PROJECT_DIR, poll, statuses

HELD = 3
NEW = 3


HOLIDAY_SERVICES = {"trips", "trip", "flights", "cars", "payments"}


@dataclass
class Upgraded:
    stack: LocalStack
    proxy: FaultProxy  # between the services and the AWS stand-in: holds the trips mid-saga


@pytest.fixture(scope="module", params=["http", "lambda"])
def upgraded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgraded]:
    mode: Mode = request.param
    ports = Ports.free()
    proxy = FaultProxy(f"http://127.0.0.1:{ports.aws}")
    stack = LocalStack(PROJECT_DIR, tmp_path_factory.mktemp(f"upgrade-{mode}"), ports, proxy.url, mode=mode)
    try:
        stack.start()
        yield Upgraded(stack, proxy)
    finally:
        stack.stop()
        proxy.close()


def reserve(stack: LocalStack, trip_id: str) -> httpx.Response:
    body, key = {"trip_id": trip_id}, {"idempotency-key": trip_id}
    return httpx.post(f"{stack.ingress_url}/trips/reserve", json=body, headers=key, timeout=120)


def prune(stack: LocalStack, *args: str) -> str:
    result = CliRunner().invoke(
        main, ["prune", "--admin", stack.admin_url, "--lambda-endpoint", stack.services_url, "--keep", "1", *args]
    )
    assert result.exit_code == 0, result.output
    return result.output


def test_trips_in_flight_finish_on_the_code_they_started_on(upgraded: Upgraded, tmp_path: Path) -> None:
    stack, proxy = upgraded.stack, upgraded.proxy
    admin = RestateAdmin(stack.admin_url)
    old = {d["id"] for d in admin.deployments() if HOLIDAY_SERVICES & {s["name"] for s in d["services"]}}
    held = [f"held-{uuid.uuid4().hex[:8]}" for _ in range(HELD)]
    # Each held trip's payment fails (and is retried) until its fault is cleared.
    faults = [proxy.drop(b'"TableName": "payments"', trip_id.encode()) for trip_id in held]
    pool = ThreadPoolExecutor(HELD)
    try:
        answers: dict[str, Future[httpx.Response]] = {t: pool.submit(reserve, stack, t) for t in held}
        poll(lambda: [f.dropped for f in faults], lambda n: all(n), "every held trip's payment to be tried")

        code = release.build(PROJECT_DIR, tmp_path / "release-2", "2")
        deployed = release.deploy(stack, code, "2", removal_policy="destroy")
        new = set(deployed.deployments)
        assert not new & old

        # The cleanup Delete CloudFormation sends (lambda mode, destroy) left the trips' old code in place.
        pinned = release.saga_deployments(admin, held)
        assert set(pinned) == set(held), pinned
        assert set(pinned.values()) <= old, pinned
        assert set(pinned.values()) <= {d["id"] for d in admin.deployments()}

        fresh = [f"new-{uuid.uuid4().hex[:8]}" for _ in range(NEW)]
        for trip_id in fresh:
            response = reserve(stack, trip_id)
            assert response.status_code == 200, response.text

        # While they run, the old code stays, whatever the prune is told.
        output = prune(stack)
        assert re.search(r"keep: [0-9]+ invocations? pinned", output), output
        assert set(release.saga_deployments(admin, held).values()) <= {d["id"] for d in admin.deployments()}

        for fault in faults:
            fault.clear()
        for trip_id, answer in answers.items():
            response = answer.result(timeout=120)
            assert response.status_code == 200, f"{trip_id}: {response.status_code} {response.text}"
            assert response.json()["trip_id"] == trip_id
    finally:
        for fault in faults:  # a failing test does not wait out the held calls' timeouts
            fault.clear()
        pool.shutdown()

    ran_on = release.saga_deployments(admin, held + fresh)
    per_version = Counter("old" if ran_on[t] in old else "new" if ran_on[t] in new else "?" for t in ran_on)
    assert per_version == {"old": HELD, "new": NEW}, ran_on
    assert all(ran_on[t] in old for t in held)
    assert all(ran_on[t] in new for t in fresh)
    step = release.step_name("2")
    for trip_id in held + fresh:
        record = httpx.get(f"{stack.ingress_url}/trip/{trip_id}/status", timeout=30).json()
        assert record["status"] == "succeeded", record
        assert (step in [s["name"] for s in record["steps"]]) == (trip_id in fresh), record
        assert statuses(stack, trip_id) == BOOKED

    # Nothing runs on the old code now: a dry run plans its removal and changes nothing, then the prune removes it.
    plan = prune(stack, "--dry-run")
    assert "Dry run: nothing changed." in plan
    assert {d["id"] for d in admin.deployments()} >= {d for d in old if d in plan}
    prune(stack)
    remaining = {d["id"] for d in admin.deployments()}
    assert new <= remaining, (remaining, new)
    assert not remaining & old, (remaining, old)
    if stack.mode == "lambda":
        client = release.lambda_client(stack)
        for name in ("trips", "flights", "cars", "payments"):
            listed = client.list_versions_by_function(FunctionName=f"holiday-{name}")["Versions"]
            versions = [v["Version"] for v in listed]
            assert versions == ["$LATEST", "2"], (name, versions)

    report = audit(stack.ledgers(), threshold_s=0, admin_url=stack.admin_url)
    assert report.ok, format_report(report, threshold_s=0)
    admin.close()
