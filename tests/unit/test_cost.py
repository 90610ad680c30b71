"""`holiday cost`: the arithmetic on a hand-computed month, reading a bench output, the Step Functions sample's
counts recounted from its definition, the stacks' parts against the CDK app, and what the command prints."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from holiday_tools.cli import main
from holiday_tools.cost.model import SELF_HOSTED_NODES, basis, estimate, restate_cloud_bill
from holiday_tools.cost.prices import PRICES_CHECKED
from holiday_tools.cost.usage import (
    CLEAN_TRIP_INVOCATIONS,
    DATA_VOLUME_GB,
    INSTANCE_TYPE,
    ROOT_VOLUME_GB,
    SAGA_STATE_MACHINE,
    lambda_usage,
    read_bench,
)
from holiday_tools.text import WIDTH
from infra.settings import DEFAULT_INSTANCE_TYPE, RESTATE_NODES
from tests.support import PROJECT_DIR

# Round figures for a hand count: per trip 13 invocations, 0.07 GB-s; flights, cars and payments bill 10 ms each.
STATS = {
    "memory_mb": 1024,
    "functions": {
        "holiday-trips": {"invocations_per_1000_trips": 8000.0, "gb_seconds_per_1000_trips": 20.0},
        "holiday-flights": {"invocations_per_1000_trips": 2000.0, "gb_seconds_per_1000_trips": 20.0},
        "holiday-cars": {"invocations_per_1000_trips": 2000.0, "gb_seconds_per_1000_trips": 20.0},
        "holiday-payments": {"invocations_per_1000_trips": 1000.0, "gb_seconds_per_1000_trips": 10.0},
    },
}


def month(trips: int, memory_mb: int = 1024, snapstart: bool = False) -> dict[str, Any]:
    lines = estimate(basis(lambda_usage(STATS, "test"), memory_mb, snapstart, 0.01), trips)
    return {line.option: line for line in lines}


def test_a_thousand_trips_cost_what_the_prices_say() -> None:
    lines = month(1000)
    # Lambda: 1000 x (13 x $0.20/M + 0.07 GB-s x $0.0000133334); DynamoDB and SNS: 1000 x (5 x $0.625/M + $0.50/M).
    ours, tables = 0.0026 + 0.000933338, 0.003625
    # One node: t4g.small 730 h x $0.0168, 28 GB x $0.08, 2 addresses x 730 h x $0.005, a zone $0.50, a secret $0.40.
    assert lines["holiday, 1 node"].total_usd == pytest.approx(12.264 + 2.24 + 7.30 + 0.50 + 0.40 + ours + tables)
    # Three nodes: three of each, six addresses, and a load balancer, 730 h x $0.0225.
    three = 36.792 + 6.72 + 21.90 + 16.425 + 0.50 + 0.40
    assert lines["holiday, 3 nodes"].total_usd == pytest.approx(three + ours + tables)
    # 20,000 actions: the Starter plan's $75 covers them.
    assert lines["holiday, Restate Cloud"].total_usd == pytest.approx(75 + ours + tables)
    assert lines["holiday, Restate Cloud"].note == "Starter plan, 20,000 actions a month"
    # The sample: 5 Lambda tasks of 10 ms at 1 GB: 1000 x 5 x ($0.20/M + 0.01 GB-s x $0.0000133334).
    theirs = 5 * (0.0002 + 0.000133334)
    # Standard: 7 transitions x $0.025 per 1,000. Express: $1/M, and 64 MB for 100 ms (50 ms of tasks) at $0.06/GB-h.
    assert lines["Step Functions Standard"].total_usd == pytest.approx(0.175 + theirs + tables)
    express = 0.001 + 1000 * 0.0625 * 0.1 * 0.06 / 3600
    assert lines["Step Functions Express"].total_usd == pytest.approx(express + theirs + tables)


def test_snapstart_adds_a_cache_a_month_and_a_restore_per_cold_start() -> None:
    plain, snap = month(1000), month(1000, snapstart=True)
    cache = 4 * 1 * 730 * 3600 * 0.0000015046  # four functions, 1 GB each, all month
    restores = 1000 * 13 * 0.01 * 1 * 0.0001397998  # 1% of 13,000 invocations, 1 GB each
    assert snap["holiday, 1 node"].fixed_usd - plain["holiday, 1 node"].fixed_usd == pytest.approx(cache)
    assert snap["holiday, 1 node"].lambda_usd - plain["holiday, 1 node"].lambda_usd == pytest.approx(restores)
    assert snap["Step Functions Express"].total_usd == plain["Step Functions Express"].total_usd


def test_less_memory_keeps_the_billed_time_and_scales_the_gb_seconds() -> None:
    full, half = month(1000), month(1000, memory_mb=512)
    requests = 0.0026  # 13,000 invocations whatever the memory
    halved = (full["holiday, 1 node"].lambda_usd - requests) / 2
    assert half["holiday, 1 node"].lambda_usd == pytest.approx(requests + halved)


@pytest.mark.parametrize(
    ("actions", "plan", "extra"),
    [
        (2_100_000, "Starter", 0.0),
        (21_000_000, "Business", 25.0),  # 8/s is past Starter's 5/s; 1 million beyond the 20 included
        (60_000_000, "Premium", 150.0),  # 22.8/s is past Business's 20/s; 10 million at $15
    ],
)
def test_restate_cloud_takes_the_cheapest_published_plan(actions: int, plan: str, extra: float) -> None:
    bill = restate_cloud_bill(actions)
    assert bill is not None
    assert bill[0].name == plan
    assert bill[1] == pytest.approx(extra)


def test_restate_cloud_above_its_published_plans_has_no_price() -> None:
    assert restate_cloud_bill(210_000_000) is None
    line = month(10_000_000)["holiday, Restate Cloud"]
    assert not line.priced
    assert line.note == "200.0 million actions a month (76.1/s): no published plan; contact sales"


def test_restate_cloud_actions_are_counted_from_the_trips_invocations() -> None:
    # Every invocation but the caller's is made by a call of another: the calls and invocations agree.
    assert sum(i.calls for i in CLEAN_TRIP_INVOCATIONS) == len(CLEAN_TRIP_INVOCATIONS) - 1
    # Each invocation and its completion, each call; no step: a trip that names its dates journals no ctx.run
    # (tests/e2e/test_e2e_saga.py reads the journal).
    assert sum(i.actions for i in CLEAN_TRIP_INVOCATIONS) == 2 * 7 + 6


def recount(failing: str | None) -> tuple[int, int]:
    """Transitions and Lambda tasks of one run of the sample, walked from its definition here."""
    states, name, transitions, tasks = SAGA_STATE_MACHINE["States"], SAGA_STATE_MACHINE["StartAt"], 0, 0
    while name is not None:
        state = states[name]
        transitions += 1
        tasks += state.get("Resource", "").endswith(":lambda:invoke")
        catches = state.get("Catch", [])
        name = catches[0]["Next"] if name == failing else state.get("Next")
    return transitions, tasks


def test_the_step_functions_counts_are_those_of_the_samples_definition() -> None:
    report = json.loads(invoke("--json").output)["per_trip"]["step_functions"]
    assert (report["clean"]["transitions"], report["clean"]["lambda_tasks"]) == recount(None)
    assert (report["failed_payment"]["transitions"], report["failed_payment"]["lambda_tasks"]) == recount(
        "ProcessPayment"
    )
    assert recount(None) == (7, 5)  # the five steps, the success announcement, the end


def bench_output(tmp_path: Path) -> Path:
    """A bench report: a null saga's run, then the saga at 1 and at 8 at once."""

    def run(label: str, concurrency: int, trips_invocations: float) -> dict[str, Any]:
        stats = json.loads(json.dumps(STATS))
        stats["functions"]["holiday-trips"]["invocations_per_1000_trips"] = trips_invocations
        stats["functions"]["holiday-nullsaga"] = {"invocations_per_1000_trips": 0.0, "gb_seconds_per_1000_trips": 0}
        return {"label": label, "count": 100, "concurrency": concurrency, "lambda": stats}

    runs = [run("null saga", 1, 0.0), run("holiday (lambda)", 1, 8000.0), run("holiday (lambda)", 8, 9000.0)]
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"mode": "lambda", "runs": runs}), encoding="utf-8")
    return path


def test_a_bench_output_gives_its_first_saga_run_or_the_one_asked_for(tmp_path: Path) -> None:
    path = bench_output(tmp_path)
    first = read_bench(path, None)
    assert first.functions["trips"].invocations == 8.0
    assert first.invocations == pytest.approx(13.0)
    assert first.gb_seconds == pytest.approx(0.07)
    assert first.source == f"{path} (its run of 100 trips, 1 at once)"
    assert read_bench(path, 8).functions["trips"].invocations == 9.0
    with pytest.raises(ValueError, match=r"no Lambda run at concurrency 4 \(it has \[1, 8\]\)"):
        read_bench(path, 4)


def test_a_file_without_the_sagas_lambda_figures_is_refused(tmp_path: Path) -> None:
    http = tmp_path / "http.json"
    http.write_text(json.dumps({"mode": "http", "runs": [{"concurrency": 1, "lambda": None}]}), encoding="utf-8")
    with pytest.raises(ValueError, match="no Lambda figures of the saga"):
        read_bench(http, None)
    text = tmp_path / "bench.txt"
    text.write_text("run  trips/s\n", encoding="utf-8")
    with pytest.raises(ValueError, match="is not the JSON of `holiday bench --json`"):
        read_bench(text, None)


def test_the_stacks_priced_are_the_cdk_apps() -> None:
    assert INSTANCE_TYPE == DEFAULT_INSTANCE_TYPE
    assert SELF_HOSTED_NODES == RESTATE_NODES
    host = (PROJECT_DIR / "infra" / "constructs" / "restate_host.py").read_text(encoding="utf-8")
    assert re.findall(r"size=Size\.gibibytes\((\d+)\)", host) == [str(DATA_VOLUME_GB)]
    assert re.findall(r"BlockDeviceVolume\.ebs\((\d+)", host) == [str(ROOT_VOLUME_GB)]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(main, ["cost", *args])


def rows(output: str, heading: str) -> dict[str, list[str]]:
    """The table under `heading`: option -> its cells."""
    lines = output.splitlines()
    start = lines.index(heading) + 2  # past the header
    table = {}
    for line in lines[start:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != 8:
            break
        table[cells[0]] = cells[1:]
    return table


def test_the_command_prints_a_table_per_volume_with_its_sources() -> None:
    result = invoke()
    assert result.exit_code == 0
    out = result.output
    for heading in ("100,000 trips a month:", "10,000,000 trips a month:"):
        assert list(rows(out, heading)) == [
            "holiday, 1 node",
            "holiday, 3 nodes",
            "holiday, Restate Cloud",
            "Step Functions Standard",
            "Step Functions Express",
        ]
    small, large = rows(out, "100,000 trips a month:"), rows(out, "10,000,000 trips a month:")
    assert small["holiday, 1 node"][3] == large["holiday, 1 node"][3] == "$22.70"  # fixed a month
    assert small["Step Functions Standard"][1] == "$175.00"  # 7 transitions a trip
    assert small["holiday, Restate Cloud"][3] == "$75.00"  # Starter
    assert large["holiday, Restate Cloud"][-1] == "n/a"
    assert "no published plan; contact sales" in out
    assert f"checked {PRICES_CHECKED}" in out
    assert "https://aws.amazon.com/step-functions/pricing/" in out
    assert "https://restate.dev/pricing" in out
    assert "a recorded run of .venv/bin/holiday bench --mode lambda" in out
    assert all(len(line) <= WIDTH for line in out.splitlines())


def test_the_command_says_what_memory_and_snapstart_change() -> None:
    result = invoke("--memory", "512", "--snapstart", "--cold-starts", "2", "--trips", "1000000")
    assert result.exit_code == 0
    out = " ".join(result.output.split())
    assert "GB-s scaled from the measured 1024 MB to 512 MB at the same billed duration" in out
    assert "a restore for 2.0% of invocations" in out
    assert "1,000,000 trips a month:" in out
    assert "GB-s scaled" not in " ".join(invoke().output.split())


def test_the_command_reads_a_bench_output_and_prints_json(tmp_path: Path) -> None:
    result = invoke("--from", str(bench_output(tmp_path)), "--concurrency", "8", "--json", "--trips", "1000")
    assert result.exit_code == 0
    report = json.loads(result.output)
    assert report["measurement"]["per_trip"]["trips"]["invocations"] == 9.0
    (volume,) = report["volumes"]
    assert volume["trips_per_month"] == 1000
    assert [o["option"] for o in volume["options"]][-1] == "Step Functions Express"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--trips", "0,x"), "--trips wants whole numbers above 0"),
        (("--concurrency", "8"), "--concurrency picks a run of a bench output"),
    ],
)
def test_the_command_refuses_what_it_cannot_price(args: tuple[str, ...], message: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 1
    assert message in result.output
