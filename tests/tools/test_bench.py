"""`holiday bench`: its arithmetic, and a short run that checks every answer it counts."""

from __future__ import annotations

import os
import re
from collections import Counter

import httpx
import pytest
from click.testing import CliRunner

from holiday.models import RunType
from holiday_tools.bench import (
    NULL_LABEL,
    BenchResult,
    cpu_seconds,
    format_results,
    lambda_cost,
    parse_mix,
    ratio_to_null,
    ratio_to_one_node,
    run_load,
)
from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack
from tests.support import PROJECT_DIR


def test_mix_draws_run_types_in_the_given_proportions() -> None:
    assert parse_mix("clean=2,failPayment=1") == [None, None, RunType.FAIL_PAYMENT]
    with pytest.raises(ValueError, match="failEverything"):
        parse_mix("failEverything=1")


def test_percentiles_and_throughput() -> None:
    result = BenchResult("x", 100, 4, 2.0, [float(i) for i in range(1, 101)], Counter(success=100))
    assert result.throughput == 50.0
    assert (result.percentile(50), result.percentile(99), result.percentile(100)) == (51.0, 100.0, 100.0)


def test_each_run_is_compared_with_the_null_saga_at_its_own_concurrency() -> None:
    def run(label: str, concurrency: int, seconds: float, p50: float) -> BenchResult:
        return BenchResult(label, 10, concurrency, seconds, [p50] * 10, Counter(success=10))

    results = [
        run(NULL_LABEL, 1, 1.0, 20.0),
        run("holiday (http)", 1, 2.0, 40.0),
        run(NULL_LABEL, 32, 0.1, 100.0),
        run("holiday (http)", 32, 0.4, 300.0),
    ]
    assert ratio_to_null(results[1], results) == {"throughput": 0.5, "p50_latency": 2.0}
    assert ratio_to_null(results[3], results) == {"throughput": 0.25, "p50_latency": 3.0}
    assert ratio_to_null(results[0], results) is None  # the baseline is not compared with itself
    report = format_results(results).split("\n\n")
    assert report[1].splitlines() == [
        "Ratio to the null saga at the same concurrency:",
        "run             at once  trips/s    p50",
        "holiday (http)        1    0.50x  2.00x",
        "holiday (http)       32    0.25x  3.00x",
    ]


def test_the_report_is_tables_within_100_columns() -> None:
    result = BenchResult("holiday (lambda)", 300, 32, 5.6, [586.0] * 299 + [1304.0], Counter(success=299))
    result.outcomes["unexpected error"] = 1
    result.cpu_seconds = {"aws": 3.6, "restate": 2.1, "services": 4.2}
    result.lambda_stats = {"memory_mb": 1024, "invocations_per_1000_trips": 14300.0, "gb_seconds_per_1000_trips": 149.2}
    report = format_results([result])
    assert max(map(len, report.splitlines())) <= 100
    assert report.split("\n\n") == [
        "run               at once  trips  booked  undone  wrong  trips/s  p50 ms  p90 ms  p99 ms  max ms\n"
        "holiday (lambda)       32    300     299       0      1     53.6   586.0   586.0   586.0  1304.0",
        "CPU seconds by process:\n"
        "run               at once  aws  restate  services  all  ms per trip\n"
        "holiday (lambda)       32  3.6      2.1       4.2  9.9         33.0",
        "Lambda per 1,000 trips, at 1024 MB:\n"
        "run               at once  invocations   GB-s\n"
        "holiday (lambda)       32        14300  149.2",
    ]


def test_lambda_cost_per_thousand_trips() -> None:
    before = {"holiday-trips": {"invocations": 10, "billed_ms": 1000.0}}
    after = {"holiday-trips": {"invocations": 110, "billed_ms": 6000.0}}
    cost = lambda_cost(before, after, trips=10, memory_mb=1024)
    # 100 invocations for 10 trips; 5 s at 1 GB for 10 trips.
    assert cost["invocations_per_1000_trips"] == 10_000
    assert cost["gb_seconds_per_1000_trips"] == 500.0


def test_cpu_seconds_of_a_running_process_grow() -> None:
    before = cpu_seconds([os.getpid()])
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds([os.getpid()]) > before


def test_holiday_bench_against_an_ingress_given_as_host_and_port(stack: LocalStack) -> None:
    args = ["--count", "6", "--concurrency", "1,3", "--warmup", "0", "--no-baseline", "--mix", "clean=1,failPayment=1"]
    result = CliRunner().invoke(main, ["bench", "--ingress", stack.ingress_url.removeprefix("http://"), *args])
    assert result.exit_code == 0, result.output
    report = result.output[result.output.index("\nrun ") :]  # after the progress bars, on stderr
    table = [line.split() for line in report.strip().splitlines()]
    assert " ".join(table[0]) == "run at once trips booked undone wrong trips/s p50 ms p90 ms p99 ms max ms"
    # Every answer right: the ingress given as host:port was reached over http. (The label names --mode.)
    assert [row[:7] for row in table[1:]] == [["holiday", "(http)", c, "6", "3", "3", "0"] for c in ("1", "3")]
    assert [line for line in result.output.splitlines() if len(line) > 100] == []


def test_a_short_run_counts_only_right_answers(stack: LocalStack, ingress: httpx.Client) -> None:
    result = run_load(stack.ingress_url, "/trips/reserve", 12, 4, parse_mix("clean=1,failPayment=1"), "t")
    assert result.outcomes == Counter({"success": 6, "expected failure": 6})
    assert len(result.latencies_ms) == 12
    assert result.throughput > 0
    # The null saga answers as the saga does, with none of its work, in both modes.
    null = run_load(stack.ingress_url, "/nulltrips/reserve", 4, 2, [None], "null")
    assert null.outcomes == Counter({"success": 4})


def test_a_cluster_is_compared_with_a_single_node_run_for_run() -> None:
    def run(label: str, nodes: int, concurrency: int, seconds: float, p50: float) -> BenchResult:
        result = BenchResult(label, 10, concurrency, seconds, [p50] * 10, Counter(success=10), nodes=nodes)
        result.cpu_seconds = {"aws": 0.5, "restate": 0.5 * nodes, "services": 0.5}
        return result

    results = [
        run(NULL_LABEL, 1, 32, 0.1, 100.0),
        run("holiday (lambda)", 1, 32, 0.4, 300.0),
        run(NULL_LABEL, 3, 32, 0.4, 400.0),
        run("holiday (lambda)", 3, 32, 0.8, 600.0),
    ]
    assert ratio_to_one_node(results[3], results) == {"throughput": 0.5, "p50_latency": 2.0}
    assert ratio_to_one_node(results[1], results) is None  # the single node is the base
    assert ratio_to_null(results[3], results) == {"throughput": 0.5, "p50_latency": 1.5}  # on its own stack
    report = format_results(results)
    assert max(map(len, report.splitlines())) <= 100
    sections = report.split("\n\n")
    assert sections[0].splitlines()[:2] == [
        "run               nodes  at once  trips  booked  undone  wrong  trips/s  p50 ms  p90 ms  p99 ms",
        "null saga             1       32     10      10       0      0    100.0   100.0   100.0   100.0",
    ]
    assert sections[2].splitlines() == [
        "Ratio of a cluster to a single node, the same run at the same concurrency:",
        "run               nodes  at once  trips/s    p50",
        "null saga             3       32    0.25x  4.00x",
        "holiday (lambda)      3       32    0.50x  2.00x",
    ]
    assert sections[3].splitlines()[:2] == [
        "CPU seconds by process (a cluster's restate: all its nodes):",
        "run               nodes  at once  aws  restate  services  all  ms per trip",
    ]


def test_holiday_bench_runs_the_same_load_on_one_node_then_on_three_and_compares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(PROJECT_DIR)  # where the stack's binaries are, as for `make bench`
    args = ["bench", "--nodes", "1,3", "--count", "4", "--concurrency", "2", "--warmup", "2", "--no-baseline"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = result.output[result.output.index("\nrun ") :].strip().split("\n\n")
    runs = [line.split() for line in report[0].splitlines()]
    assert runs[0][:4] == ["run", "nodes", "at", "once"]
    # Every answer right, on the single node and on the cluster.
    assert [row[:8] for row in runs[1:]] == [["holiday", "(http)", n, "2", "4", "4", "0", "0"] for n in ("1", "3")]
    ratio = report[1].splitlines()
    assert ratio[0] == "Ratio of a cluster to a single node, the same run at the same concurrency:"
    assert re.fullmatch(r"holiday \(http\)\s+3\s+2\s+\d+\.\d\dx\s+\d+\.\d\dx", ratio[2])
    assert [line for line in result.output.splitlines() if len(line) > 100] == []


def test_holiday_bench_refuses_nodes_for_a_given_ingress() -> None:
    result = CliRunner().invoke(main, ["bench", "--ingress", "localhost:1", "--nodes", "3"])
    assert result.exit_code == 1
    assert "error: --nodes is for the local stacks bench starts" in result.output
    result = CliRunner().invoke(main, ["bench", "--nodes", "2"])
    assert result.exit_code == 1
    assert "--nodes wants 1, 3 or 1,3" in result.output
