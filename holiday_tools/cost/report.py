"""`holiday cost`'s output: a table per monthly volume within 100 columns, what was counted and assumed, and
where each price comes from; or the same as JSON."""

from __future__ import annotations

import json
from typing import Any

from holiday_tools.cost.model import SELF_HOSTED_NODES, Basis, Line, fixed_usd, snapstart_cache_usd
from holiday_tools.cost.prices import (
    HOURS_PER_MONTH,
    PRICES,
    PRICES_CHECKED,
    REGION,
    RESTATE_CLOUD_URL,
)
from holiday_tools.cost.usage import (
    CLEAN_TRIP_INVOCATIONS,
    EXPRESS_MEMORY_MB,
    EXPRESS_STEP_MS,
    LAMBDA_TASK,
    SAGA_SAMPLE_URL,
    SNS_PUBLISHES_PER_TRIP,
    TABLE_WRITES_PER_TRIP,
    self_hosted,
)
from holiday_tools.text import format_table, wrap

LAMBDA_FIRST_TIER_GB_SECONDS = 7.5e9  # a month, arm64
EXPRESS_FIRST_TIER_GB_SECONDS = 1000 * 3600  # 1,000 GB-hours a month


def format_text(b: Basis, volumes: dict[int, list[Line]]) -> str:
    head = wrap(
        f"What clean trips cost in {REGION} at on-demand prices checked {PRICES_CHECKED}, with no free tier. "
        f"Lambda, workflow (Step Functions, or Restate Cloud's actions beyond its plan) and DDB+SNS (DynamoDB "
        "writes, SNS publishes) are per 1M trips; fixed (instances, a plan's fee) and total are a month (/mo) "
        "and per 1M trips."
    )
    tables = [_table(trips, lines) for trips, lines in volumes.items()]
    sections = [head, *tables, _counted(b), _tiers(b, list(volumes)), _sources()]
    return "\n\n".join("\n".join(section) for section in sections if section)


def _table(trips: int, lines: list[Line]) -> list[str]:
    header = ("option", "Lambda", "workflow", "DDB+SNS", "fixed/mo", "fixed/1M", "total/mo", "total/1M")
    rows = [
        (
            line.option,
            _usd(line.per_million(line.lambda_usd)),
            _usd(line.per_million(line.workflow_usd), line.priced),
            _usd(line.per_million(line.tables_usd)),
            _usd(line.fixed_usd, line.priced),
            _usd(line.per_million(line.fixed_usd), line.priced),
            _usd(line.total_usd, line.priced),
            _usd(line.per_million(line.total_usd), line.priced),
        )
        for line in lines
    ]
    notes = [n for line in lines if line.note for n in wrap(f"{line.option}: {line.note}.", "  ")]
    return [f"{trips:,} trips a month:", *format_table(header, rows), *notes]


def _usd(value: float, priced: bool = True) -> str:
    return f"${value:,.2f}" if priced else "n/a"


def _counted(b: Basis) -> list[str]:
    usage, measured = b.usage, b.measured
    per_function = ", ".join(f"{name} {f.invocations:.1f}" for name, f in usage.functions.items())
    writes = ", ".join(f"{table} {n}" for table, n in TABLE_WRITES_PER_TRIP.items())
    notes = [
        f"holiday: {usage.invocations:.2f} Lambda invocations a trip ({per_function}) and {usage.gb_seconds:.4f} "
        f"GB-s at {usage.memory_mb} MB, arm64, from {measured.source}. {sum(TABLE_WRITES_PER_TRIP.values())} "
        f"DynamoDB write units ({writes}) and {SNS_PUBLISHES_PER_TRIP} SNS publish a trip.",
    ]
    if usage.memory_mb != measured.memory_mb:
        notes.append(
            f"GB-s scaled from the measured {measured.memory_mb} MB to {usage.memory_mb} MB at the same billed "
            "duration: an approximation, since Lambda gives CPU in proportion to memory."
        )
    if b.snapstart:
        notes.append(
            f"SnapStart: one active version of each of the {len(usage.functions)} functions cached all month "
            f"(${snapstart_cache_usd(usage):,.2f} a month, in fixed) and a restore for {b.cold_start_rate:.1%} of "
            "invocations (in Lambda). Cold starts' init time is in neither column, with or without SnapStart."
        )
    for nodes in SELF_HOSTED_NODES:
        items = self_hosted(nodes)
        parts = ", ".join(f"{i.what} ${fixed_usd((i,)):,.2f}" for i in items)
        notes.append(f"holiday, {nodes} node{'s' if nodes > 1 else ''}: ${fixed_usd(items):,.2f} a month ({parts}).")
    calls = sum(i.calls for i in CLEAN_TRIP_INVOCATIONS)
    runs = sum(i.runs for i in CLEAN_TRIP_INVOCATIONS)
    notes.append(
        f"Restate Cloud: {b.actions_per_trip} actions a trip ({len(CLEAN_TRIP_INVOCATIONS)} invocations and their "
        f"completions, {calls} calls, {runs} ctx.run); the cheapest published plan whose actions per second "
        f"cover the month's average ({RESTATE_CLOUD_URL})."
    )
    tasks, failed = b.clean.tasks(LAMBDA_TASK), b.failed_payment
    step = PRICES["sfn_express_gb_second"].usd * EXPRESS_MEMORY_MB / 1024 * EXPRESS_STEP_MS / 1000 * 1e6
    notes.append(
        f"Step Functions: AWS's saga sample ({SAGA_SAMPLE_URL}). A clean run enters {b.clean.transitions} states "
        f"({b.clean.transitions} transitions) with {tasks} Lambda tasks and 1 SNS publish; a failed payment "
        f"{failed.transitions} transitions and {failed.tasks(LAMBDA_TASK)} Lambda tasks. Each task bills "
        f"{b.leaf_ms:.1f} ms at {usage.memory_mb} MB, the mean of our flights, cars and payments invocations. An "
        f"Express execution bills {EXPRESS_MEMORY_MB} MB for {b.express_ms} ms (its tasks' {tasks * b.leaf_ms:.0f} "
        f"ms, rounded up; each further {EXPRESS_STEP_MS} ms adds ${step:.2f} per 1M trips)."
    )
    notes.append(
        "Not counted: data transfer, CloudWatch Logs and metrics, X-Ray, cold-start init, table storage and "
        "backups, load balancer capacity units (docs/cost.md)."
    )
    return [line for note in notes for line in wrap(note, "  ")]


def _tiers(b: Basis, volumes: list[int]) -> list[str]:
    """A warning where a volume passes a first price tier: the figures apply the first tier's price to all."""
    most = max(volumes)
    passed = []
    if most * b.usage.gb_seconds > LAMBDA_FIRST_TIER_GB_SECONDS:
        passed.append("Lambda's first duration tier")
    if most * EXPRESS_MEMORY_MB / 1024 * b.express_ms / 1000 > EXPRESS_FIRST_TIER_GB_SECONDS:
        passed.append("Express's first duration tier")
    if not passed:
        return []
    return wrap(f"At {most:,} trips a month the use passes {' and '.join(passed)}: those figures are upper bounds.")


def _sources() -> list[str]:
    urls = dict.fromkeys(p.url for p in PRICES.values())
    return [
        f"Prices ({REGION}, on-demand, {HOURS_PER_MONTH} hours a month, checked {PRICES_CHECKED}):",
        *urls,
        RESTATE_CLOUD_URL,
    ]


def format_json(b: Basis, volumes: dict[int, list[Line]]) -> str:
    def money(value: float, priced: bool = True) -> float | None:
        return round(value, 6) if priced else None

    report: dict[str, Any] = {
        "prices_checked": PRICES_CHECKED,
        "region": REGION,
        "measurement": {
            "source": b.measured.source,
            "measured_memory_mb": b.measured.memory_mb,
            "memory_mb": b.usage.memory_mb,
            "per_trip": {
                name: {"invocations": round(f.invocations, 4), "gb_seconds": round(f.gb_seconds, 6)}
                for name, f in b.usage.functions.items()
            },
        },
        "per_trip": {
            "dynamodb_write_units": sum(TABLE_WRITES_PER_TRIP.values()),
            "sns_publishes": SNS_PUBLISHES_PER_TRIP,
            "restate_cloud_actions": b.actions_per_trip,
            "step_functions": {
                "clean": {"transitions": b.clean.transitions, "lambda_tasks": b.clean.tasks(LAMBDA_TASK)},
                "failed_payment": {
                    "transitions": b.failed_payment.transitions,
                    "lambda_tasks": b.failed_payment.tasks(LAMBDA_TASK),
                },
                "task_billed_ms": round(b.leaf_ms, 2),
                "express_billed_ms": b.express_ms,
                "express_billed_memory_mb": EXPRESS_MEMORY_MB,
            },
        },
        "snapstart": {"cold_start_rate": b.cold_start_rate} if b.snapstart else None,
        "volumes": [
            {
                "trips_per_month": trips,
                "options": [
                    {
                        "option": line.option,
                        "lambda_per_month": money(line.lambda_usd),
                        "workflow_per_month": money(line.workflow_usd, line.priced),
                        "dynamodb_sns_per_month": money(line.tables_usd),
                        "fixed_per_month": money(line.fixed_usd, line.priced),
                        "total_per_month": money(line.total_usd, line.priced),
                        "total_per_million_trips": money(line.per_million(line.total_usd), line.priced),
                        "note": line.note or None,
                    }
                    for line in lines
                ],
            }
            for trips, lines in volumes.items()
        ],
        "prices": {name: {"usd": p.usd, "unit": p.unit, "source": p.url} for name, p in PRICES.items()},
        "restate_cloud_pricing": RESTATE_CLOUD_URL,
    }
    return json.dumps(report, indent=2)
