"""The upgrade scenario, small: release 2 deployed halfway through keyed load, the old code pruned after it.

What `holiday chaos --scenario upgrade` reports, read as a user reads it: every trip's saga ran on
release 1 or release 2, both ran some, every trip sent after the deploy ran on release 2, and the prune
removed the old deployments (and in lambda mode their function versions) and nothing else.
"""

from __future__ import annotations

import re

import pytest

from holiday.functions import FUNCTIONS
from holiday_tools.chaos.load import Profile
from holiday_tools.chaos.report import format_result, format_results
from holiday_tools.chaos.upgrade import NEW, OLD, run_upgrade_scenario
from holiday_tools.devstack import Mode
from tests.support import PROJECT_DIR, assert_every_trip_settled_once

SMALL_UPGRADE = Profile(trips=40, concurrency=4, answer_within_s=120)
# Long enough that trips are still being sent once the deploy is done (lambda mode: about 4 s here).
LOAD_S = 12.0


@pytest.mark.parametrize("mode", ["http", "lambda"])
def test_trips_run_on_the_release_they_started_on_and_the_old_one_is_pruned(mode: Mode) -> None:
    result = run_upgrade_scenario(mode, SMALL_UPGRADE, PROJECT_DIR, seed=7, log=lambda _: None, load_s=LOAD_S)
    assert result.problems == []
    assert_every_trip_settled_once(result)
    deploy = result.deploy
    assert deploy is not None
    assert not set(deploy.new) & set(deploy.old)

    per_release = result.per_release
    assert per_release[OLD] > 0, per_release
    assert per_release[NEW] > 0, per_release
    assert per_release[OLD] + per_release[NEW] == SMALL_UPGRADE.trips, per_release
    assert result.after, "no trip was sent after the deploy"
    assert [result.release_of(trip_id) for trip_id in result.after] == [NEW] * len(result.after)

    pruned = result.pruned
    assert pruned is not None
    assert pruned.problems == []
    assert sorted(pruned.removed) == result.doomed
    assert set(result.doomed) <= set(deploy.old)
    if mode == "lambda":
        assert len(result.doomed) == len(FUNCTIONS)  # one old registration per function
        assert sorted(pruned.versions_deleted) == sorted(f"holiday-{name}:1" for name in FUNCTIONS)
        assert result.versions_left == {f"holiday-{name}": ["$LATEST", "2"] for name in FUNCTIONS}
    else:
        assert len(result.doomed) == 1  # one services process served them all
        assert pruned.versions_deleted == []

    assert result.broken_rules == []
    assert result.ok
    [line, *details] = format_result(result).splitlines()
    assert re.fullmatch(
        rf"upgrade \({mode}\): 40 trips in [\d.]+ s, release 2 deployed in [\d.]+ s at [\d.]+ s: ok", line
    )
    report = " ".join(details)
    assert f"sagas on release {OLD}: {per_release[OLD]} (" in report
    assert f"on release {NEW}: {per_release[NEW]};" in report
    table = format_results([result]).splitlines()
    assert "upgrade: the fault is a new release deployed under load; the old one is pruned after it" in table
    assert [text for text in [line, *details, *table] if len(text) > 100] == []
