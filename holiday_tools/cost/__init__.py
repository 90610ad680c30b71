"""`holiday cost`: what a million clean trips cost, and a month of them at given volumes, for this project on
Lambda with Restate (self-hosted on one node or three, or Restate Cloud) beside AWS's own saga sample on Step
Functions (Standard and Express), from public us-east-1 prices.

The Lambda counts come from a measurement (`holiday bench --mode lambda --json`): a recorded one, or a file.
What a trip uses is in `usage`, the prices with their sources in `prices`, the arithmetic in `model`, the
output in `report`. docs/cost.md says what is counted and what is not.
"""

from __future__ import annotations

from pathlib import Path

from holiday_tools.cost.model import basis, estimate
from holiday_tools.cost.report import format_json, format_text
from holiday_tools.cost.usage import read_bench, recorded

DEFAULT_VOLUMES = "100000,10000000"
# AWS's own SnapStart pricing example assumes that 1% of requests start a new execution environment.
DEFAULT_COLD_START_PERCENT = 1.0


def parse_volumes(spec: str) -> list[int]:
    """`100000,10000000` (underscores allowed) -> trips a month; ValueError names what is wrong."""
    try:
        volumes = [int(part.strip().replace("_", "")) for part in spec.split(",") if part.strip()]
    except ValueError:
        volumes = []
    if not volumes or any(v <= 0 for v in volumes):
        raise ValueError(
            f"--trips wants whole numbers above 0 separated by commas, like {DEFAULT_VOLUMES}; got {spec!r}"
        )
    return list(dict.fromkeys(volumes))


def run_cost_command(
    source: Path | None,
    concurrency: int | None,
    volumes: list[int],
    memory_mb: int,
    snapstart: bool,
    cold_start_percent: float,
    as_json: bool,
) -> str:
    """The report, from the bench output `source` (its run at `concurrency`) or the recorded measurement."""
    if concurrency is not None and source is None:
        raise ValueError("--concurrency picks a run of a bench output: give the file with --from")
    measured = read_bench(source, concurrency) if source is not None else recorded()
    b = basis(measured, memory_mb, snapstart, cold_start_percent / 100)
    by_volume = {trips: estimate(b, trips) for trips in volumes}
    return format_json(b, by_volume) if as_json else format_text(b, by_volume)
