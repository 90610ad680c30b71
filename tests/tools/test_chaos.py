"""A small chaos profile in CI: every scenario, both modes (`holiday chaos` runs the full one); its report."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from holiday_tools.audit import AuditReport
from holiday_tools.chaos import SCENARIOS, Profile, ScenarioResult, format_result, format_results, run_scenario
from holiday_tools.cli import main
from holiday_tools.devstack import Mode
from tests.support import PROJECT_DIR

SMALL = Profile(trips=30, concurrency=6, outage_s=1.5, answer_within_s=120)


@pytest.mark.parametrize("mode", ["http", "lambda"])
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_under_chaos_every_trip_is_answered_right_and_booked_or_undone_once(scenario: str, mode: Mode) -> None:
    result = run_scenario(scenario, mode, SMALL, PROJECT_DIR, seed=7, log=lambda _: None)
    assert result.faults >= 1
    assert result.wrong_answers == []
    assert result.report.violations == []
    # Trips requested = trips booked + trips undone: nothing lost, nothing doubled.
    assert (result.report.trips, result.report.booked, result.report.undone) == (
        result.trips,
        result.clean,
        result.failing,
    )
    assert result.report.stuck_invocations == []


def test_holiday_chaos_prints_a_line_per_scenario_then_a_table_within_100_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(PROJECT_DIR)  # where the stack's binaries are, as for `make chaos`
    args = ["chaos", "--trips", "12", "--concurrency", "4", "--scenario", "services", "--mode", "http", "--seed", "7"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if len(line) > 100] == []
    assert lines[0] == "12 trips per scenario, 4 at once, half clean, half with an injected failure"
    assert re.fullmatch(r"services \(http\): 12 trips in [\d.]+ s, (1 fault|[2-9]\d* faults) injected: ok", lines[1])
    header = [line.split() for line in lines].index(
        ["scenario", "mode", "trips", "faults", "time", "booked", "undone", "wrong", "violations", "retrying", "result"]
    )
    cells = lines[header + 1].split()
    assert cells[:3] == ["services", "http", "12"]
    assert cells[-4:] == ["0", "0", "0", "ok"]


def test_the_results_say_one_fault_and_add_up_in_a_total_row() -> None:
    def result(scenario: str, faults: int) -> ScenarioResult:
        report = AuditReport(trips=200, booked=110, undone=90)
        return ScenarioResult(scenario, "lambda", 200, faults, 114.5, 110, 90, report=report)

    results = [result("services", 1), result("restate", 73)]
    assert format_result(results[0]) == "services (lambda): 200 trips in 114.5 s, 1 fault injected: ok"
    table = format_results(results).splitlines()
    assert table[:4] == [
        "scenario  mode    trips  faults     time   booked   undone  wrong  violations  retrying  result",
        "services  lambda    200       1  114.5 s  110/110    90/90      0           0         0      ok",
        "restate   lambda    200      73  114.5 s  110/110    90/90      0           0         0      ok",
        "in all              400      74  229.0 s  220/220  180/180      0           0         0      ok",
    ]
    assert max(map(len, table)) <= 100
