"""What the trips of a run cost on Lambda: invocations and GB-seconds, from the local runtime's counts."""

from __future__ import annotations

from typing import Any


def lambda_cost(
    stats_before: dict[str, Any], stats_after: dict[str, Any], trips: int, memory_mb: int
) -> dict[str, Any]:
    """Invocations and GB-seconds per 1,000 trips, per function and in all, from the local runtime's counts."""
    per_function = {}
    for name, after in stats_after.items():
        before = stats_before.get(name, {"invocations": 0, "billed_ms": 0.0})
        invocations = after["invocations"] - before["invocations"]
        billed_ms = after["billed_ms"] - before["billed_ms"]
        per_function[name] = {
            "invocations_per_1000_trips": round(invocations / trips * 1000, 1),
            "gb_seconds_per_1000_trips": round(billed_ms / 1000 * memory_mb / 1024 / trips * 1000, 2),
        }
    return {
        "memory_mb": memory_mb,
        "functions": per_function,
        "invocations_per_1000_trips": round(sum(f["invocations_per_1000_trips"] for f in per_function.values()), 1),
        "gb_seconds_per_1000_trips": round(sum(f["gb_seconds_per_1000_trips"] for f in per_function.values()), 2),
    }
