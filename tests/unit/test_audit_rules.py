"""The audit's rules, on hand-made rows: what counts as booked, undone, in flight, or broken."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from holiday_tools.audit import check

NOW = 1_000_000.0


def row(sk: str, status: str, age: float = 120.0) -> dict[str, Any]:
    return {"pk": "t", "sk": sk, "transaction_status": status, "updated_at": Decimal(str(NOW - age))}


def trip(flights: list[str], cars: list[str], payments: list[str], age: float = 120.0) -> dict[str, Any]:
    return {
        "flights": [row(f"f{i}", s, age) for i, s in enumerate(flights)],
        "cars": [row(f"c{i}", s, age) for i, s in enumerate(cars)],
        "payments": [row(f"p{i}", s, age) for i, s in enumerate(payments)],
    }


def test_booked_and_undone_trips_pass() -> None:
    report = check(
        {
            "booked": trip(["confirmed"], ["confirmed"], ["charged"]),
            "undone": trip(["cancelled"], ["cancelled"], ["refunded"]),
            "failed-early": trip(["cancelled"], [], []),
        },
        threshold_s=60,
        now=NOW,
    )
    assert (report.trips, report.booked, report.undone, report.violations) == (3, 1, 2, [])


def test_half_booked_duplicate_and_stuck_trips_fail_with_reasons() -> None:
    report = check(
        {
            "half": trip(["confirmed"], ["cancelled"], ["refunded"]),
            "twice": trip(["confirmed", "confirmed"], ["confirmed"], ["charged"]),
            "stuck": trip(["pending"], [], []),
        },
        threshold_s=60,
        now=NOW,
    )
    found = {(v.trip_id, v.rule) for v in report.violations}
    assert found == {("half", "all or nothing"), ("twice", "no duplicates"), ("stuck", "nothing hangs")}
    [half] = [v for v in report.violations if v.trip_id == "half"]
    assert half.detail == "neither booked nor undone: flights=confirmed cars=cancelled payments=refunded"


def test_a_trip_still_in_flight_is_not_judged_yet_but_duplicates_always_are() -> None:
    report = check(
        {"young": trip(["pending"], [], [], age=5), "young-twice": trip(["pending", "pending"], [], [], age=5)},
        threshold_s=60,
        now=NOW,
    )
    assert report.in_flight == 2
    assert [(v.trip_id, v.rule) for v in report.violations] == [("young-twice", "no duplicates")]


def test_a_trip_that_just_finished_is_judged_at_once_not_reported_in_flight() -> None:
    # Right after "Try it": trips booked or undone a second ago are done, not pending.
    report = check(
        {
            "booked": trip(["confirmed"], ["confirmed"], ["charged"], age=1),
            "undone": trip(["cancelled"], ["cancelled"], ["refunded"], age=1),
        },
        threshold_s=60,
        now=NOW,
    )
    assert (report.booked, report.undone, report.in_flight, report.violations) == (1, 1, 0, [])
