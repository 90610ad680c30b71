"""The chaos report: a line (and what went wrong) per scenario as it ends, then every scenario in a table."""

from __future__ import annotations

from collections.abc import Sequence

from holiday_tools.chaos import FREEZE, ROLLING, UPGRADE
from holiday_tools.chaos.load import Kill, ScenarioResult, TwoDown
from holiday_tools.text import format_table, plural, wrap

RESULT_COLUMNS = (
    "scenario",
    "mode",
    "trips",
    "faults",
    "time",
    "failover",
    "booked",
    "undone",
    "wrong",
    "violated",
    "stuck",
    "result",
)


def format_result(r: ScenarioResult) -> str:
    """One scenario as it ends: a line, and what went wrong if anything did."""
    if r.scenario in ROLLING:
        from holiday_tools.chaos.rolling import RollingResult, format_rolling

        assert isinstance(r, RollingResult)
        return format_rolling(r)
    if r.scenario == FREEZE:
        from holiday_tools.chaos.freeze import FreezeResult, format_freeze

        assert isinstance(r, FreezeResult)
        return format_freeze(r)
    if r.scenario == UPGRADE:
        from holiday_tools.chaos.upgrade import UpgradeResult, format_upgrade

        assert isinstance(r, UpgradeResult)
        return format_upgrade(r)
    if r.scenario == "node":
        failover = "-" if r.failover_s is None else f"{r.failover_s:.1f} s"
        faults = f"{plural(r.faults, 'node')} killed, longest failover {failover}"
    else:
        faults = f"{plural(r.faults, 'fault')} injected"
    outcome = "ok" if r.ok else "FAILED"
    line = f"{r.scenario} ({r.mode}): {plural(r.trips, 'trip')} in {r.seconds:.1f} s, {faults}: {outcome}"
    details = [_describe_kill(number, kill) for number, kill in enumerate(r.kills, start=1)]
    if r.two_down is not None:
        details.append(_describe_two_down(r.two_down))
    details += problem_lines(r)
    details += [f"wrong answer: {w}" for w in (r.two_down.wrong_answers if r.two_down else [])]
    return "\n".join([line, *wrapped(details)])


def problem_lines(r: ScenarioResult) -> list[str]:
    """What went wrong in a scenario, for its report: problems, then (the first ten) wrong answers and violations."""
    return [
        *r.problems,
        *(f"wrong answer: {w}" for w in r.wrong_answers[:10]),
        *(f"violation: trip {v.trip_id}: [{v.rule}] {v.detail}" for v in r.report.violations[:10]),
    ]


def wrapped(details: Sequence[str]) -> list[str]:
    """A scenario's detail lines as its report shows them: indented under its line, within 100 columns."""
    return [part for d in details for part in wrap(d, "      ", "    ")]


def seconds_text(value: float | None, unknown: str = "none") -> str:
    """`4.8 s`; from 1000 s on, whole seconds (the table stays within 100 columns)."""
    if value is None:
        return unknown
    return f"{value:.0f} s" if value >= 999.95 else f"{value:.1f} s"


def _describe_kill(number: int, kill: Kill) -> str:
    whole = "" if kill.whole_s is None else f", every partition replicated again {kill.whole_s:.1f} s later"
    return (
        f"kill {number} at {kill.after_s:.1f} s: {kill.node}, {kill.why}; failover {seconds_text(kill.failover_s)} "
        f"(first answer to any trip: {seconds_text(kill.first_answer_s)}); back after {kill.down_s:.1f} s{whole}"
    )


def _describe_two_down(t: TwoDown) -> str:
    met = ", ".join(f"{count} {what}" for what, count in t.met_while_down.most_common()) or "nothing"
    written = "no row" if not t.rows_while_down else plural(t.rows_while_down, "row")
    answered = "none" if not t.answered_while_down else str(t.answered_while_down)
    right = t.calls - len(t.wrong_answers)
    after = f"{'all' if right == t.calls else right} {t.calls if right == t.calls else f'of {t.calls}'}"
    settled = f"{t.report.booked} booked and {t.report.undone} undone, each once"
    if t.report.violations:
        settled = plural(len(t.report.violations), "violation")
    return (
        f"two of three down: {' and '.join(t.killed)} killed; {plural(t.calls, 'reservation')} sent to the three "
        f"ingresses: {answered} answered in {t.wait_s:.1f} s (attempts: {met}), {written} written; "
        f"{t.restarted} back: {after} answered right {seconds_text(t.answered_after_s)} later, {settled}: "
        f"{'ok' if t.ok else 'FAILED'}"
    )


def format_results(results: Sequence[ScenarioResult]) -> str:
    """Every scenario side by side, with a total row when there are several."""
    rows = [_row(r.scenario, r.mode, [r]) for r in results]
    if len(results) > 1:
        rows.append(_row("in all", "", results))
    legend = [
        "booked: trips booked / clean trips; undone: trips undone / trips with an injected failure",
        "wrong: wrong answers; violated: invariant violations; stuck: invocations still retrying or paused",
    ]
    if any(r.scenario in ROLLING for r in results):
        legend.append("rolling, rolling1: faults are nodes upgraded; failover: the longest gap between two trips done")
    if any(r.scenario == FREEZE for r in results):
        legend.append("freeze: the fault is a node frozen; failover: the longest gap between two trips done around it")
    if any(r.scenario == UPGRADE for r in results):
        legend.append("upgrade: the fault is a new release deployed under load; the old one is pruned after it")
    if any(r.kills for r in results):
        legend.append("node: faults are nodes killed; failover: the longest from a kill to a trip sent after it done")
    return "\n".join([*format_table(RESULT_COLUMNS, rows, left=2), "", *legend])


def _row(scenario: str, mode: str, results: Sequence[ScenarioResult]) -> tuple[str, ...]:
    """The table's cells for `results`, summed."""
    reports = [r.report for r in results]
    failovers = [f for r in results if (f := r.failover_s) is not None]
    return (
        scenario,
        mode,
        str(sum(r.trips for r in results)),
        str(sum(r.faults for r in results)),
        seconds_text(sum(r.seconds for r in results)),
        seconds_text(max(failovers) if failovers else None, "-"),
        f"{sum(r.booked for r in results)}/{sum(r.clean for r in results)}",
        f"{sum(r.undone for r in results)}/{sum(r.failing for r in results)}",
        str(sum(len(r.wrong_answers) for r in results)),
        str(sum(len(a.violations) for a in reports)),
        str(sum(len(a.stuck_invocations) for a in reports)),
        "ok" if all(r.ok for r in results) else "FAILED",
    )
