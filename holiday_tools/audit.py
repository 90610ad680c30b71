"""`holiday audit`: check the tables against the saga's promises.

For every trip, looking at its rows in the flights, cars and payments tables:

- no duplicates: at most one row per table (one booking, one charge);
- all or nothing: a settled trip is either fully booked (flight confirmed, car
  confirmed, payment charged) or fully undone (no row pending, confirmed or
  charged: only cancelled and refunded rows, or none);
- nothing hangs: no booking stays `pending` longer than the threshold.

A trip that is neither booked nor undone and whose newest row changed within
the threshold is still in flight: only the duplicate rule applies to it yet.
The audit also lists the invocations Restate holds as backing-off or paused,
the ones still retrying a failure.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from holiday.models import RowStatus
from holiday.storage import DynamoLedger
from holiday_tools.admin import AdminError, RestateAdmin
from holiday_tools.text import wrap

# The statuses are the ones the services write (holiday.models.RowStatus), so these rules cannot drift.
BOOKED = {"flights": [RowStatus.CONFIRMED], "cars": [RowStatus.CONFIRMED], "payments": [RowStatus.CHARGED]}
KNOWN = {status.value for status in RowStatus}
TABLE_KEYS = ("flights", "cars", "payments")


@dataclass(frozen=True)
class Violation:
    trip_id: str
    rule: str
    detail: str


@dataclass
class AuditReport:
    trips: int = 0
    booked: int = 0
    undone: int = 0
    in_flight: int = 0
    violations: list[Violation] = field(default_factory=list)
    stuck_invocations: list[dict[str, Any]] = field(default_factory=list)
    admin_error: str | None = None  # why Restate's invocations could not be listed
    invocations_checked: bool = False  # whether they were: False without an admin URL, or on `admin_error`

    @property
    def ok(self) -> bool:
        """No violation, and nothing it was asked to look at went unseen."""
        return not self.violations and self.admin_error is None


def scan(ledgers: Mapping[str, DynamoLedger]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Every row of every table, grouped by trip, then by table ("flights", "cars", "payments")."""
    trips: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: {k: [] for k in TABLE_KEYS})
    for key, ledger in ledgers.items():
        for row in ledger.scan():
            trips[row["pk"]][key].append(row)
    return dict(trips)


def check(
    trips: Mapping[str, Mapping[str, list[dict[str, Any]]]], threshold_s: float, now: float | None = None
) -> AuditReport:
    """Apply the rules of the module docstring to the scanned rows."""
    now = time.time() if now is None else now
    report = AuditReport(trips=len(trips))
    for trip_id, tables in sorted(trips.items()):
        problems = _problems(trip_id, tables, threshold_s, now)
        report.violations += problems
        statuses = {k: sorted(str(r.get("transaction_status")) for r in rows) for k, rows in tables.items()}
        newest = max((float(r.get("updated_at", 0)) for rows in tables.values() for r in rows), default=0.0)
        # Booked or undone is where every saga ends, so such a trip is judged at once; only a
        # trip in between is given the threshold's time to get there.
        if statuses == BOOKED:
            report.booked += 1
        elif not any(s in KNOWN and RowStatus(s).live for rows in statuses.values() for s in rows):
            report.undone += 1
        elif now - newest < threshold_s:
            report.in_flight += 1
        elif not problems:
            report.violations.append(
                Violation(trip_id, "all or nothing", f"neither booked nor undone: {_describe(statuses)}")
            )
    return report


def _problems(
    trip_id: str, tables: Mapping[str, list[dict[str, Any]]], threshold_s: float, now: float
) -> list[Violation]:
    found = []
    for key, rows in tables.items():
        if len(rows) > 1:
            found.append(Violation(trip_id, "no duplicates", f"{len(rows)} rows in {key}: {_ids(rows)}"))
        for row in rows:
            status = row.get("transaction_status")
            if status not in KNOWN:
                found.append(Violation(trip_id, "known status", f"{key} row {row['sk']} has status {status!r}"))
            age = now - float(row.get("updated_at", Decimal(0)))
            if status == RowStatus.PENDING and age >= threshold_s:
                found.append(Violation(trip_id, "nothing hangs", f"{key} row {row['sk']} pending for {age:.0f}s"))
    return found


def _ids(rows: list[dict[str, Any]]) -> str:
    return ", ".join(f"{r['sk']} ({r.get('transaction_status')})" for r in rows)


def _describe(statuses: Mapping[str, list[str]]) -> str:
    return " ".join(f"{k}={'+'.join(v) or '-'}" for k, v in statuses.items())


def stuck_invocations(admin: RestateAdmin) -> list[dict[str, Any]]:
    """Invocations Restate is still retrying or has paused, from its admin API.

    A retried invocation alternates between `backing-off` (waiting) and `running`
    (the next attempt): one that is running again after a failure counts too.
    """
    return admin.query(
        "SELECT id, target, status, retry_count, last_failure, created_at FROM sys_invocation "
        "WHERE status IN ('backing-off', 'paused') OR (status = 'running' AND last_failure IS NOT NULL) "
        "ORDER BY created_at"
    )


def audit(
    ledgers: Mapping[str, DynamoLedger],
    threshold_s: float,
    admin_url: str | None,
    token: str | None = None,
) -> AuditReport:
    """Scan, check, and (if an admin URL is given) list the invocations still retrying."""
    report = check(scan(ledgers), threshold_s)
    if admin_url:
        try:
            with RestateAdmin(admin_url, token) as admin:
                report.stuck_invocations = stuck_invocations(admin)
        except AdminError as err:  # no answer, an error, or not the admin API's
            why = err.reason.partition("\n")[0]
            report.admin_error = f"could not query Restate's admin API at {admin_url}: {why}"
        else:
            report.invocations_checked = True
    return report


def format_report(report: AuditReport, threshold_s: float, admin_error: bool = True) -> str:
    """The counts, then each violation and each invocation still retrying, wrapped to 100 columns.

    `admin_error=False` leaves out why the invocations could not be listed (`holiday audit` says it last, as its error).
    """

    def wrapped(text: str) -> list[str]:
        return wrap(text, indent="    ")

    lines = [
        f"trips: {report.trips} ({report.booked} booked, {report.undone} undone, "
        f"{report.in_flight} in flight, changed in the last {threshold_s:.0f} s)"
    ]
    if report.violations:
        lines.append(f"invariant violations: {len(report.violations)}")
        for v in report.violations:
            lines += wrapped(f"trip {v.trip_id}: [{v.rule}] {v.detail}")
    else:
        lines.append("no invariant violations")
    if report.admin_error:
        lines += wrapped(report.admin_error if admin_error else "invocations retrying or paused: not known (see below)")
    elif not report.invocations_checked:
        lines.append("invocations retrying or paused: not looked at (no admin API given)")
    elif report.stuck_invocations:
        lines.append(f"invocations still retrying or paused: {len(report.stuck_invocations)}")
        for inv in report.stuck_invocations:
            # The failure's first line, the error itself: not Restate's code tag ("[500 Internal]"), nor the traceback.
            failure = re.sub(r"^\[[^]]*\] ", "", str(inv.get("last_failure") or "").partition("\n")[0])
            status = f"({inv.get('status')}, retries: {inv.get('retry_count')})"
            lines += wrapped(f"{inv.get('id')} {inv.get('target')}: {failure} {status}")
    else:
        lines.append("no invocations retrying or paused")
    return "\n".join(lines)
