"""What `holiday prune` keeps and removes, decided from what Restate and Lambda report (no processes)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from holiday_tools import release
from holiday_tools.prune import Deployment, FunctionRef, format_plan, lambda_endpoint, plan, plan_versions
from tests.support import PROJECT_DIR

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:holiday-trips:{}"


def trips(version: int, *, current: bool = False, pinned: int = 0) -> Deployment:
    """A deployment of the trips function's `version`, newer versions registered later."""
    return Deployment(
        id=f"dp_trips{version}",
        endpoint=ARN.format(version),
        services=["trip", "trips"],
        created_at=f"2026-12-07T10:{version:02d}:00Z",
        current_for=["trip", "trips"] if current else [],
        pinned=pinned,
    )


class Published:
    """The function versions Lambda lists, and nothing else."""

    def __init__(self, versions: list[int]) -> None:
        self.versions = versions

    def published(self, function: FunctionRef) -> list[int]:
        return self.versions

    def delete(self, function: FunctionRef, version: int) -> None:
        raise AssertionError("planning deletes nothing")


def fates(deployments: list[Deployment]) -> dict[str, str]:
    return {d.id: d.keep or "remove" for d in deployments}


def test_the_current_the_pinned_and_the_newest_stay_the_rest_goes() -> None:
    found = [trips(5, current=True), trips(4), trips(3, pinned=2), trips(2), trips(1)]
    assert fates(plan(found, keep=2)) == {
        "dp_trips5": "current",
        "dp_trips4": "one of the newest 2",
        "dp_trips3": "2 invocations pinned",
        "dp_trips2": "remove",
        "dp_trips1": "remove",
    }


def test_keep_one_keeps_only_the_current_and_what_runs() -> None:
    found = [trips(3, current=True), trips(2, pinned=1), trips(1)]
    assert fates(plan(found, keep=1)) == {
        "dp_trips3": "current",
        "dp_trips2": "1 invocation pinned",
        "dp_trips1": "remove",
    }


def test_a_rolled_back_deployment_is_current_even_when_older() -> None:
    # After a rollback the earlier version serves again; the later one is kept as one of the newest.
    found = [trips(2), trips(1, current=True)]
    assert fates(plan(found, keep=1)) == {"dp_trips2": "remove", "dp_trips1": "current"}
    assert fates(plan([trips(2), trips(1, current=True)], keep=2))["dp_trips2"] == "one of the newest 2"


def test_versions_go_with_their_deployments_and_orphans_too_never_a_newer_one() -> None:
    # 1 was registered and is being removed; 2 was never registered (or its registration is gone);
    # 3 is kept for its pinned trips; 4 is current; 5 is published but not registered yet (a deploy under way).
    deployments = plan([trips(4, current=True), trips(3, pinned=1), trips(1)], keep=1)
    [versions] = plan_versions(deployments, Published([1, 2, 3, 4, 5]), keep=1)
    assert versions.function == FunctionRef("eu-west-1", "holiday-trips")
    assert (versions.kept, versions.doomed) == ([3, 4, 5], [1, 2])


def test_the_newest_versions_stay_for_a_rollback() -> None:
    deployments = plan([trips(4, current=True), trips(3), trips(2)], keep=2)
    [versions] = plan_versions(deployments, Published([1, 2, 3, 4]), keep=2)
    assert (versions.kept, versions.doomed) == ([3, 4], [1, 2])


def test_services_served_by_url_have_no_versions() -> None:
    http = Deployment("dp_http1", "http://127.0.0.1:9080", ["trips"], "2026-12-07T10:00:00Z", ["trips"], 0)
    assert plan_versions(plan([http], keep=1), Published([1]), keep=1) == []


def test_the_plan_shows_each_deployment_and_version_with_its_fate() -> None:
    deployments = plan([trips(2, current=True), trips(1, pinned=3)], keep=1)
    text = format_plan(deployments, plan_versions(deployments, Published([1, 2]), keep=1), "http://admin:9070", 1)
    lines = text.splitlines()
    assert any("dp_trips2" in line and "holiday-trips:2" in line and "keep: current" in line for line in lines)
    assert any("dp_trips1" in line and "keep: 3 invocations pinned" in line for line in lines)
    assert any(line.split() == ["holiday-trips", "1,", "2", "-"] for line in lines), text
    assert max(map(len, lines)) <= 100


def test_keep_zero_is_refused() -> None:
    with pytest.raises(ValueError, match="keep at least the current"):
        plan([trips(1, current=True)], keep=0)


def test_the_release_adds_one_step_before_the_reservations(tmp_path: Path) -> None:
    built = release.build(PROJECT_DIR, tmp_path / "release", "7")
    source = (built / "holiday" / "trips.py").read_text()
    ast.parse(source)  # still Python
    saga = source[source.index("async def run(") :]
    step = saga.index(release.step_name("7"))
    assert saga.index("try:") < step < saga.index("StepName.RESERVE_FLIGHT")
    original = (PROJECT_DIR / "holiday" / "trips.py").read_text()
    lines = source.splitlines(keepends=True)
    [added] = [line for line in lines if release.step_name("7") in line]
    lines.remove(added)
    assert "".join(lines) == original  # one line more, nothing else changed


def test_a_saga_without_its_try_is_refused_rather_than_released_unchanged(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "holiday").mkdir(parents=True)
    (project / "holiday" / "trips.py").write_text("async def run(ctx, plan):\n    return None\n")
    with pytest.raises(ValueError, match="no `try`"):
        release.build(project, tmp_path / "release", "2")


def test_versions_are_looked_up_locally_only_for_the_local_stacks_functions() -> None:
    local, aws = "http://127.0.0.1:9090", None
    deployed = [trips(1, current=True)]  # account 123456789012, the local stack's
    assert lambda_endpoint(deployed, None, "123456789012", local) == local
    # A deployed admin API, forwarded to 127.0.0.1 through Session Manager: its functions are in AWS.
    assert lambda_endpoint(deployed, None, "999999999999", local) is aws
    assert lambda_endpoint(deployed, "https://lambda.example", "123456789012", local) == "https://lambda.example"
