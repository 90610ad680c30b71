"""A small chaos profile in CI: every scenario, both modes (`holiday chaos` runs the full one)."""

from __future__ import annotations

import pytest

from holiday_tools.chaos import SCENARIOS, Profile, run_scenario
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
