"""What the trips of a run cost on Lambda, from the local runtime's counts: invocations, GB-seconds, billed
milliseconds and dollars per trip, and the functions' cold starts."""

from __future__ import annotations

from typing import Any

from holiday_tools.cost.model import lambda_usd

EMPTY = {"invocations": 0, "billed_ms": 0.0}


def lambda_cost(stats_before: dict[str, Any], stats_after: dict[str, Any], trips: int) -> dict[str, Any]:
    """Per 1,000 trips, per function and in all, the growth of the local runtime's counts over a run; with
    the functions' memory (the same for all), its price per million trips, and each function's inits so far."""
    first = next(iter(stats_after.values()))
    memory_mb = first["memory_mb"]
    per_function = {}
    invocations = billed_ms = 0.0
    for name, after in stats_after.items():
        before = stats_before.get(name, EMPTY)
        grown = after["invocations"] - before["invocations"]
        grown_ms = after["billed_ms"] - before["billed_ms"]
        invocations, billed_ms = invocations + grown, billed_ms + grown_ms
        per_function[name] = {
            "invocations_per_1000_trips": round(grown / trips * 1000, 1),
            "gb_seconds_per_1000_trips": round(grown_ms / 1000 * memory_mb / 1024 / trips * 1000, 2),
        }
    gb_seconds = billed_ms / 1000 * memory_mb / 1024
    return {
        "memory_mb": memory_mb,
        "functions": per_function,
        "invocations_per_1000_trips": round(sum(f["invocations_per_1000_trips"] for f in per_function.values()), 1),
        "gb_seconds_per_1000_trips": round(sum(f["gb_seconds_per_1000_trips"] for f in per_function.values()), 2),
        "billed_ms_per_trip": round(billed_ms / trips, 1),
        "usd_per_million_trips": round(lambda_usd(invocations / trips, gb_seconds / trips) * 1e6, 2),
        "cold_starts": cold_starts(stats_after),
        "cpu_limited": first.get("cpu_limited", False),
        "cpu_note": first.get("cpu_note"),
    }


def cold_starts(stats: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each function's inits since its runtime started (the handler's import, to ready), and with SnapStart
    its restores (fork to ready): how many, and their mean and longest milliseconds; and the mean of a new
    worker's first invocation, which pays for what the import left to it."""
    found = {}
    for name, s in stats.items():
        if not s.get("inits"):
            continue
        found[name] = {
            "inits": s["inits"],
            "init_ms_mean": round(s["init_ms"] / s["inits"], 1),
            "init_ms_max": round(s["init_ms_max"], 1),
            "restores": s.get("restores", 0),
            "restore_ms_mean": round(s["restore_ms"] / s["restores"], 1) if s.get("restores") else 0.0,
            "first_ms_mean": round(s["first_ms"] / s["cold_starts"], 1) if s.get("cold_starts") else 0.0,
        }
    return found
