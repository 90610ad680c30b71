"""The freeze scenario, small: a node of a 3-node cluster is SIGSTOPped under load, then let go.

How long the cluster stalls is what `holiday chaos --scenario freeze` reports; here only that the freeze
happened, that the load went on through the other nodes meanwhile, and that no trip came out wrong.
"""

from __future__ import annotations

from holiday_tools.chaos.freeze import STOPPED, run_freeze_scenario
from holiday_tools.chaos.load import Profile
from tests.support import PROJECT_DIR, assert_every_trip_settled_once

SMALL_FREEZE = Profile(trips=36, concurrency=6, answer_within_s=120)


def test_a_frozen_node_loses_no_trip_and_the_others_keep_booking() -> None:
    result = run_freeze_scenario(
        "http", SMALL_FREEZE, PROJECT_DIR, seed=7, log=lambda _: None, freeze_s=8.0, warmup_s=3.0, after_s=3.0
    )
    freeze = result.freeze
    assert freeze is not None, result.problems
    assert set(freeze.states) == {STOPPED}  # stopped each time its state was read, from SIGSTOP to SIGCONT
    assert freeze.frozen_s >= 8.0
    assert freeze.answered_while_frozen > 0  # through the other nodes: the frozen one answers nothing
    assert_every_trip_settled_once(result)
    assert result.problems == []
