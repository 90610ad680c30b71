"""A small rolling upgrade in CI (`holiday chaos --scenario rolling` runs the full one): a 3-node cluster and a
single node, each started on the previous restate-server and replaced node by node with the pinned one
under keyed load. Speed is reported, not asserted: only that the gap is measured."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from holiday_tools.audit import AuditReport
from holiday_tools.chaos.load import ScenarioResult, longest_gap
from holiday_tools.chaos.report import format_result, format_results
from holiday_tools.chaos.rolling import (
    NodeRoll,
    RollingProfile,
    RollingResult,
    previous_restate_server_binary,
    restate_server_version,
    run_rolling_scenario,
)
from holiday_tools.cli import main
from holiday_tools.devstack import restate_server_binary
from tests.support import PROJECT_DIR, assert_every_trip_settled_once

SMALL = RollingProfile(trips=30, concurrency=6, pause_s=3.0, warmup_s=1.0, answer_within_s=120)
TINY = RollingProfile(trips=8, concurrency=3, pause_s=0.5, warmup_s=1.0, answer_within_s=60)


@pytest.fixture(scope="module")
def cluster_roll() -> RollingResult:
    """The 3-node roll, once for the tests below: a cluster start and three replacements take a while."""
    return run_rolling_scenario("http", SMALL, PROJECT_DIR, seed=7, log=lambda _: None, nodes=3)


def _correct(result: RollingResult, profile: RollingProfile) -> None:
    """Every trip answered right, booked or undone once, nothing left retrying."""
    assert result.problems == []
    assert result.trips >= profile.trips  # the load lasted the whole roll
    assert_every_trip_settled_once(result)  # a trip with no answer in time is a wrong answer too


def test_the_previous_restate_server_is_installed_beside_the_pinned_one() -> None:
    previous = restate_server_version(previous_restate_server_binary(PROJECT_DIR))
    pinned = restate_server_version(restate_server_binary(PROJECT_DIR))
    assert [int(part) for part in previous.split(".")] < [int(part) for part in pinned.split(".")]


def test_a_rolling_upgrade_replaces_each_node_only_once_the_one_before_is_ready(cluster_roll: RollingResult) -> None:
    result = cluster_roll
    names = ["restate-1", "restate-2", "restate-3"]
    assert [step.node for step in result.steps] == names
    assert result.previous == restate_server_version(previous_restate_server_binary(PROJECT_DIR))
    assert result.pinned == restate_server_version(restate_server_binary(PROJECT_DIR))
    for step in result.steps:
        assert (step.before, step.after) == (result.previous, result.pinned), step  # as each node itself says
        assert step.down_s is not None, step
        assert step.ready_s is not None, step
    # Stop, started, ready, node after node: no node stopped before the readiness script passed the one before.
    assert [(node, what) for _, node, what in result.events] == [
        (node, what) for node in names for what in ("stop", "started", "ready")
    ]
    times = [at for at, _, _ in result.events]
    assert times == sorted(times)
    assert result.upgraded


def test_a_rolling_upgrade_of_the_cluster_answers_every_trip_right_and_reports_the_longest_gap(
    cluster_roll: RollingResult,
) -> None:
    _correct(cluster_roll, SMALL)
    assert cluster_roll.gap_s is not None  # measured (how long, the command reports)
    line = format_result(cluster_roll).splitlines()[0]
    assert line.startswith("rolling (http): ")
    assert "3 of 3 nodes" in line
    assert "longest gap" in line
    assert max(map(len, format_results([cluster_roll]).splitlines())) <= 100


def test_a_rolling_upgrade_of_a_single_node_answers_every_trip_right_and_reports_its_downtime() -> None:
    result = run_rolling_scenario("http", TINY, PROJECT_DIR, seed=7, log=lambda _: None, nodes=1)
    _correct(result, TINY)
    assert [(step.node, step.before, step.after) for step in result.steps] == [
        ("restate", result.previous, result.pinned)
    ]
    assert result.gap_s is not None
    assert result.gap_target_s is None  # its downtime: expected there, not held to a target
    lines = format_result(result).splitlines()
    assert lines[0].startswith("rolling1 (http): ")
    assert "downtime" in lines[0]
    assert result.ok


def test_the_longest_gap_spans_the_roll_from_the_last_trip_done_before_it_to_the_first_after() -> None:
    assert longest_gap([1.0, 2.0, 7.0, 8.0, 11.0], start=3.0, end=9.0) == (5.0, -1.0)
    assert longest_gap([1.0, 4.0, 5.0, 12.0], start=3.0, end=9.0) == (7.0, 2.0)
    assert longest_gap([1.0, 4.0], start=3.0, end=9.0) is None  # the load did not outlast the roll
    # A freeze from 10 to 30: of the stretches overlapping it (9.5-12, 12-20, 20-31), the longest.
    assert longest_gap([1.0, 2.0, 9.5, 12.0, 20.0, 31.0, 40.0], start=10.0, end=30.0) == (11.0, 10.0)


def test_the_rolling_report_names_each_node_and_fits_in_100_columns() -> None:
    result = RollingResult("rolling", "lambda", 412, 3, 61.5, 210, 202, report=AuditReport(412, 210, 202), nodes=3)
    result.previous, result.pinned, result.gap_target_s = "1.7.10", "1.7.12", 10.0
    result.gap_s, result.gap_after_s, result.gap_node = 2.4, 9.1, "restate-2"
    last = "not ready: 6 of 8 partitions have a leader and 2 caught-up copies"
    result.steps = [
        NodeRoll(f"restate-{n}", "1.7.10", "1.7.12", 0, 0.4, 2.9, 7.2, ready_at=1.0, checks=9, not_ready=last)
        for n in (1, 2, 3)
    ]
    lines = format_result(result).splitlines()
    assert lines[0] == ("rolling (lambda): 412 trips in 61.5 s, 3 of 3 nodes 1.7.10 -> 1.7.12, longest gap 2.4 s: ok")
    assert lines[1:4] == [
        "    restate-1: 1.7.10 -> 1.7.12; stopped in 0.4 s, down 2.9 s (SIGTERM to started), ready 7.2 s",
        "      after its start (readiness script run 9 times; last: not ready: 6 of 8 partitions have a",
        "      leader and 2 caught-up copies)",
    ]
    assert lines[-2:] == [
        "    the longest without a trip done: 2.4 s, from 9.1 s after the first stop, during restate-2's",
        "      replacement",
    ]
    services = ScenarioResult("services", "http", 200, 7, 12.7, 110, 90, report=AuditReport(200, 110, 90))
    single = RollingResult("rolling1", "lambda", 1200, 1, 161.5, 600, 600, report=AuditReport(1200, 600, 600))
    single.previous, single.pinned, single.gap_s = "1.7.10", "1.7.12", 1.2
    table = format_results([services, result, single]).splitlines()
    assert table[2] == (
        "rolling   lambda    412       3   61.5 s     2.4 s  210/210  202/202      0         0      0      ok"
    )
    assert max(map(len, [*lines, *table, *format_result(single).splitlines()])) <= 100
    result.gap_s = 12.0  # over the target on a cluster: the command fails
    assert not result.ok
    lines = format_result(result).splitlines()
    assert lines[0].endswith("longest gap 12.0 s: FAILED")
    assert "    the longest gap, 12.0 s, is not under the 10 s target" in lines


def test_holiday_chaos_offers_the_rolling_scenarios() -> None:
    result = CliRunner().invoke(main, ["chaos", "--scenario", "bogus"])
    assert result.exit_code == 2
    assert "'node', 'freeze', 'rolling', 'rolling1', 'upgrade'" in result.output
