"""`holiday bench`: its arithmetic, and a short run that checks every answer it counts."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from holiday.models import RunType, StepName, StepRecord, TripRecord
from holiday_tools.bench.cost import lambda_cost
from holiday_tools.bench.cpu import cpu_seconds
from holiday_tools.bench.load import BenchResult, parse_mix, run_load
from holiday_tools.bench.report import NULL_LABEL, format_results, ratio_to_null, ratio_to_one_node, ratios_to_first
from holiday_tools.cli import main
from holiday_tools.devstack import LocalStack
from holiday_tools.ingress import judge, judge_status
from holiday_tools.locallambda.cgroups import find_controller
from tests.support import PROJECT_DIR, json_server


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
    result.lambda_stats = {
        "memory_mb": 1024,
        "invocations_per_1000_trips": 14300.0,
        "gb_seconds_per_1000_trips": 149.2,
        "billed_ms_per_trip": 149.2,
        "usd_per_million_trips": 4.85,
        "cold_starts": {
            "holiday-trips": {
                "inits": 2,
                "init_ms_mean": 141.2,
                "init_ms_max": 150.0,
                "restores": 0,
                "first_ms_mean": 90,
            }
        },
    }
    report = format_results([result])
    assert max(map(len, report.splitlines())) <= 100
    assert report.split("\n\n") == [
        "run               at once  trips  booked  undone  wrong  trips/s  p50 ms  p90 ms  p99 ms  max ms\n"
        "holiday (lambda)       32    300     299       0      1     53.4   586.0   586.0   586.0  1304.0",
        "CPU seconds by process:\n"
        "run               at once  aws  restate  services  all  ms per trip\n"
        "holiday (lambda)       32  3.6      2.1       4.2  9.9         33.0",
        "Lambda per 1,000 trips at 1024 MB (billed ms and price per trip: arm64 requests and GB-s):\n"
        "run               at once  invocations   GB-s  billed ms/trip  $/1M trips\n"
        "holiday (lambda)       32        14300  149.2           149.2        4.85",
        "Cold starts since the stack started:\n"
        "function       inits  init ms  max ms  restores  restore ms  1st call ms\n"
        "holiday-trips      2      141     150         0           -           90\n"
        "init: the handler's import, to ready; restore: SnapStart's; 1st call: a new worker's first.",
    ]


def test_lambda_cost_per_thousand_trips() -> None:
    before = {"holiday-trips": {"invocations": 10, "billed_ms": 1000.0}}
    after = {
        "holiday-trips": {
            **{"invocations": 110, "billed_ms": 6000.0, "memory_mb": 512, "cpu_limited": True, "cpu_note": None},
            **{"inits": 2, "init_ms": 300.0, "init_ms_max": 200.0, "restores": 0, "restore_ms": 0.0},
            **{"cold_starts": 2, "first_ms": 100.0},
        }
    }
    cost = lambda_cost(before, after, trips=10)
    # 100 invocations for 10 trips; 5 s at half a GB for 10 trips.
    assert cost["invocations_per_1000_trips"] == 10_000
    assert cost["gb_seconds_per_1000_trips"] == 250.0
    assert cost["billed_ms_per_trip"] == 500.0
    # 10 requests at $0.20 a million, 0.25 GB-s at $0.0000133334: $2 + $3.33 a million trips.
    assert cost["usd_per_million_trips"] == 5.33
    assert cost["cold_starts"] == {
        "holiday-trips": {
            "inits": 2,
            "init_ms_mean": 150.0,
            "init_ms_max": 200.0,
            "restores": 0,
            "restore_ms_mean": 0.0,
            "first_ms_mean": 50.0,
        }
    }


def test_cpu_seconds_of_a_running_process_grow() -> None:
    before = cpu_seconds([os.getpid()])
    sum(i * i for i in range(2_000_000))
    assert cpu_seconds([os.getpid()]) > before


def test_holiday_bench_against_an_ingress_given_as_host_and_port(stack: LocalStack) -> None:
    args = ["--count", "6", "--concurrency", "1,3", "--warmup", "0", "--no-baseline", "--mix", "clean=1,failPayment=1"]
    result = CliRunner().invoke(main, ["bench", "--ingress", stack.ingress_url.removeprefix("http://"), *args])
    assert result.exit_code == 0, result.output
    report = result.output[result.output.index("\nrun ") :].strip().split("\n\n")  # after the progress bars
    table = [line.split() for line in report[0].splitlines()]
    assert " ".join(table[0]) == "run at once trips booked undone wrong trips/s p50 ms p90 ms p99 ms max ms"
    # Every answer right: the ingress given as host:port was reached over http. (The label names --mode.)
    assert [row[:7] for row in table[1:]] == [["holiday", "(http)", c, "6", "3", "3", "0"] for c in ("1", "3")]
    # restate-server and the services found from /proc, in http mode; in lambda mode the services are functions.
    if stack.mode == "http":
        assert report[1].splitlines()[1].split() == [
            "run",
            "at",
            "once",
            "restate",
            "services",
            "own",
            "ms",
            "per",
            "trip",
        ]
    else:
        assert report[1] == ("No CPU figures for holiday (http): its deployments are Lambda functions (ARNs).")
    assert [line for line in result.output.splitlines() if len(line) > 100] == []


def test_cpu_of_a_process_that_has_gone_counts_nothing() -> None:
    assert cpu_seconds([2**22 + 12345]) == 0.0  # beyond any pid_max: no such process


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


def test_a_wrong_answer_is_no_throughput() -> None:
    result = BenchResult("x", 10, 1, 1.0, [1.0] * 10, Counter({"success": 4, "expected failure": 2}))
    result.outcomes["unexpected error"] = 4
    assert result.throughput == 6.0


def test_several_ingresses_are_compared_with_the_first_by_the_medians_of_their_rounds() -> None:
    def run(label: str, round_: int, seconds: float, p50: float) -> BenchResult:
        return BenchResult(label, 10, 1, seconds, [p50] * 10, Counter(success=10), round=round_)

    no_cpu = "its deployments are Lambda functions (ARNs)"
    results = []
    # The same load to each in turn, round after round: python's rounds 10, 5, 8 trips/s; the original's 20, 10, 12.5.
    for round_, (python, original) in enumerate(
        [((1.0, 40), (0.5, 20)), ((2.0, 50), (1.0, 30)), ((1.25, 44), (0.8, 22))]
    ):
        results.append(run("python", round_ + 1, *python))
        results[-1].cpu_seconds = {"restate": 0.1 * (round_ + 1), "services": 0.2}
        results.append(run("original", round_ + 1, *original))
        results[-1].no_cpu = no_cpu
    assert ratios_to_first(results) == [
        {"label": "original", "base": "python", "concurrency": 1, "throughput": 1.56, "p50_latency": 0.5}
    ]  # 12.5 / 8 trips/s, 22 / 44 ms
    assert format_results(results).split("\n\n") == [
        "run       round  at once  trips  booked  undone  wrong  trips/s  p50 ms  p90 ms  p99 ms\n"
        "python        1        1     10      10       0      0     10.0    40.0    40.0    40.0\n"
        "original      1        1     10      10       0      0     20.0    20.0    20.0    20.0\n"
        "python        2        1     10      10       0      0      5.0    50.0    50.0    50.0\n"
        "original      2        1     10      10       0      0     10.0    30.0    30.0    30.0\n"
        "python        3        1     10      10       0      0      8.0    44.0    44.0    44.0\n"
        "original      3        1     10      10       0      0     12.5    22.0    22.0    22.0",
        "Ratio to python at the same concurrency, medians of 3 rounds:\n"
        "run       at once  trips/s    p50\n"
        "original        1    1.56x  0.50x",
        "CPU seconds by process:\n"
        "run     round  at once  restate  services  own ms per trip\n"
        "python      1        1      0.1       0.2             30.0\n"
        "python      2        1      0.2       0.2             40.0\n"
        "python      3        1      0.3       0.2             50.0\n"
        f"No CPU figures for original: {no_cpu}.",
    ]


def test_the_status_judge_reads_only_the_status() -> None:
    booked = httpx.Response(200, json={"status": "success", "trip_id": "t1"})
    failed = httpx.Response(
        500, json={"message": "Travel reservation failed with err Error: Failed to process payment"}
    )
    assert judge_status("t1", None, booked) is None
    assert judge_status("t1", RunType.FAIL_PAYMENT, failed) is None
    assert judge_status("t1", RunType.FAIL_PAYMENT, httpx.Response(409, text="anything")) is None
    assert judge("t1", RunType.FAIL_PAYMENT, failed, lambda _: None) is not None  # not this project's 409
    # Still wrong: a failure for a clean trip, a success for an injected failure, no answer.
    assert judge_status("t1", None, failed) == f"t1 (clean): HTTP 500 {failed.text}"
    assert judge_status("t1", RunType.FAIL_PAYMENT, booked) == f"t1 (failPayment): HTTP 200 {booked.text}"
    assert judge_status("t1", None, "ConnectError: refused") == "t1: ConnectError: refused"


def test_the_strict_judge_reads_a_refused_trip_from_its_record_not_from_the_message() -> None:
    def record(failed_step: StepName | None, status: str = "failed") -> TripRecord:
        steps = [StepRecord(name=StepName.PROCESS_PAYMENT, status="failed", error="whatever it says")]
        return TripRecord.model_validate(
            {"trip_id": "t1", "status": status, "steps": steps, "failed_step": failed_step}
        )

    refused = httpx.Response(409, json={"code": 409, "message": "worded any way at all"})
    assert judge("t1", RunType.FAIL_PAYMENT, refused, lambda _: record(StepName.PROCESS_PAYMENT)) is None
    assert judge("t1", RunType.FAIL_PAYMENT, refused, lambda _: record(StepName.RESERVE_CAR)) == (
        "t1 (failPayment): HTTP 409, record failed, failed step reserve car; expected failed at process payment"
    )
    assert "record compensating" in str(
        judge("t1", RunType.FAIL_PAYMENT, refused, lambda _: record(StepName.PROCESS_PAYMENT, "compensating"))
    )
    assert "no record" in str(judge("t1", RunType.FAIL_PAYMENT, refused, lambda _: None))
    asked: list[str] = []
    booked = httpx.Response(200, json={"status": "success", "trip_id": "t1"})
    assert judge("t1", None, booked, lambda trip_id: asked.append(trip_id)) is None
    assert asked == []  # a booked trip's answer says it all: no record is read


@pytest.fixture
def original() -> Iterator[str]:
    """An ingress that answers as the TypeScript original does: 200 and the trip id, or a 500 for an injected
    failure."""

    def answer(_method: str, _path: str, body: bytes) -> tuple[int, Any]:
        request = json.loads(body)
        if request["run_type"]:
            return 500, {"message": "Travel reservation failed with err Error: injected", "code": 500}
        return 200, {"status": "success", "trip_id": request["trip_id"]}

    with json_server(answer) as port:
        yield f"127.0.0.1:{port}"


@pytest.mark.parametrize(("judged_by", "booked", "undone", "wrong"), [("status", 2, 2, 0), ("strict", 2, 0, 2)])
def test_a_saga_that_words_its_answers_otherwise_is_judged_by_status(
    original: str, judged_by: str, booked: int, undone: int, wrong: int
) -> None:
    args = ["--count", "4", "--concurrency", "2", "--warmup", "0", "--mix", "clean=1,failPayment=1"]
    result = CliRunner().invoke(
        main, ["bench", "--ingress", f"ts={original}", "--ingress", f"again={original}", "--judge", judged_by, *args]
    )
    assert result.exit_code == 0, result.output
    report = result.output[result.output.index("\nrun ") :].strip().split("\n\n")
    runs = [line.split() for line in report[0].splitlines()]
    counts = ["2", "4", str(booked), str(undone), str(wrong)]
    assert [row[:6] for row in runs[1:]] == [[label, *counts] for label in ("ts", "again")]
    assert report[1].splitlines()[:2] == ["Ratio to ts at the same concurrency:", "run    at once  trips/s    p50"]
    # This test's own process listens there, and is no restate-server: no CPU figures, said once for each.
    notes = report[-1].splitlines()
    assert len(notes) == 2
    for label, note in zip(("ts", "again"), notes, strict=True):
        expected = (
            rf"No CPU figures for {label}: \S+ \(pid {os.getpid()}\) listens there, "
            r"without a Restate admin API\."
        )
        assert re.fullmatch(expected, note), note


def test_holiday_bench_json_compares_ingresses_too(original: str) -> None:
    args = ["--count", "2", "--concurrency", "1", "--warmup", "0", "--rounds", "2", "--judge", "status", "--json"]
    args += ["--mix", "clean=1,failPayment=1"]
    result = CliRunner().invoke(main, ["bench", "--ingress", f"ts={original}", "--ingress", f"again={original}", *args])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # the progress bars are on stderr
    assert [(run["label"], run["round"], run["outcomes"]) for run in report["runs"]] == [
        (label, r, {"success": 1, "expected failure": 1}) for r in (1, 2) for label in ("ts", "again")
    ]
    assert all(run["no_cpu"].endswith("listens there, without a Restate admin API") for run in report["runs"])
    assert [
        {k: v for k, v in c.items() if k not in ("throughput", "p50_latency")} for c in report["ratio_to_first"]
    ] == [{"label": "again", "base": "ts", "concurrency": 1}]


@pytest.mark.parametrize(
    ("ingresses", "says"),
    [
        (["a=localhost:1", "a=localhost:2"], "'a' labels more than one ingress; give each a label of its own"),
        (["localhost:1", "http://localhost:1/"], "'localhost:1' labels more than one ingress"),
        (["=localhost:1"], "'=localhost:1' has an empty label: give LABEL=URL, or the URL alone"),
        (["a=ftp://x"], "'ftp://x' is not an http:// or https:// URL"),
    ],
)
def test_holiday_bench_refuses_ingresses_it_could_not_tell_apart(ingresses: list[str], says: str) -> None:
    result = CliRunner().invoke(main, ["bench", *(arg for url in ingresses for arg in ("--ingress", url))])
    assert result.exit_code == 2
    assert f"Invalid value for '--ingress': {says}" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("flag", "says"),
    [
        (
            "--baseline",
            "error: --baseline drives the null saga, which only this project's local stack has: with several "
            "--ingress there is none to compare with. Leave --baseline out; the ingresses are compared with the first.",
        ),
        ("--nodes=3", "error: --nodes is for the local stacks bench starts;"),
    ],
)
def test_holiday_bench_refuses_the_null_saga_and_nodes_for_several_ingresses(flag: str, says: str) -> None:
    result = CliRunner().invoke(main, ["bench", "--ingress", "a=localhost:1", "--ingress", "b=localhost:2", flag])
    assert result.exit_code == 1
    assert " ".join(result.output.split()).startswith(says)


def test_holiday_bench_compares_two_ingresses_round_by_round(stack: LocalStack) -> None:
    url = stack.ingress_url
    args = ["--rounds", "2", "--count", "6", "--concurrency", "2", "--warmup", "2", "--mix", "clean=1,failPayment=1"]
    result = CliRunner().invoke(main, ["bench", "--ingress", f"A={url}", "--ingress", f"B={url}", *args])
    assert result.exit_code == 0, result.output
    assert [line for line in result.output.splitlines() if len(line) > 100] == []
    assert "null saga" not in result.output  # no baseline for several ingresses
    report = result.output[result.output.index("\nrun ") :].strip().split("\n\n")
    runs = [line.split() for line in report[0].splitlines()]
    assert " ".join(runs[0]) == "run round at once trips booked undone wrong trips/s p50 ms p90 ms p99 ms"
    # A, B, A, B: every answer right.
    assert [row[:7] for row in runs[1:]] == [[label, r, "2", "6", "3", "3", "0"] for r in "12" for label in "AB"]
    ratio = report[1].splitlines()
    assert ratio[:2] == ["Ratio to A at the same concurrency, medians of 2 rounds:", "run  at once  trips/s    p50"]
    compared = re.fullmatch(r"B\s+2\s+(\d+\.\d\d)x\s+(\d+\.\d\d)x", ratio[2])
    assert compared is not None, ratio
    assert all(0.25 < float(figure) < 4 for figure in compared.groups())  # the same stack: near 1, on a busy machine
    cpu = report[2].splitlines()
    if stack.mode == "http":
        assert cpu[:2] == ["CPU seconds by process:", "run  round  at once  restate  services  own ms per trip"]
        rows = [line.split() for line in cpu[2:]]
        assert [row[:3] for row in rows] == [[label, r, "2"] for r in "12" for label in "AB"]
        assert all(float(row[5]) > 0 for row in rows)  # restate and the services worked for every trip
    else:
        lambdas = "its deployments are Lambda functions (ARNs)."
        assert cpu == [f"No CPU figures for {label}: {lambdas}" for label in "AB"]


def test_holiday_bench_in_lambda_mode_compares_memory_sizes_and_shows_cold_starts_and_restores() -> None:
    """Two sizes, SnapStart on: each its own stack, held to its share of a core where the machine allows it
    (and where it does not, the report says so), with the price, the inits and SnapStart's restores."""
    args = ["--mode", "lambda", "--memory", "512,1769", "--snapstart", "--dates", "--no-baseline"]
    result = CliRunner().invoke(main, ["bench", *args, "--count", "4", "--concurrency", "1", "--warmup", "2", "--json"])
    assert result.exit_code == 0, result.output
    runs = json.loads(result.stdout)["runs"]
    assert [(run["memory_mb"], run["outcomes"]) for run in runs] == [(512, {"success": 4}), (1769, {"success": 4})]
    controller, why = find_controller()  # None where the machine cannot limit CPU, and why
    for run in runs:
        figures = run["lambda"]
        assert figures["memory_mb"] == run["memory_mb"]
        assert figures["cpu_limited"] == (controller is not None), (figures["cpu_note"], why)
        assert min(figures["usd_per_million_trips"], figures["billed_ms_per_trip"]) > 0
        starts = figures["cold_starts"]
        for name in ("holiday-trips", "holiday-flights", "holiday-cars", "holiday-payments"):
            # One import per published version (the registered one), and every worker restored from it.
            assert starts[name]["inits"] == 1, starts[name]
            assert starts[name]["restores"] >= 1, starts[name]
            assert min(starts[name]["init_ms_mean"], starts[name]["restore_ms_mean"]) > 0, starts[name]
    # A size's price grows with its memory at about the same billed time.
    assert runs[1]["lambda"]["usd_per_million_trips"] > runs[0]["lambda"]["usd_per_million_trips"]


def test_holiday_bench_cold_starts_compares_this_checkouts_inits_with_another(tmp_path: Path) -> None:
    shutil.copytree(PROJECT_DIR / "holiday", tmp_path / "holiday", ignore=shutil.ignore_patterns("__pycache__"))
    result = CliRunner().invoke(main, ["bench", "--cold-starts", "1", "--against", str(tmp_path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Init, the handler's import to ready (median ms, at 1024 MB):"
    assert lines[1].split() == ["function", "starts", "this", "checkout", "ms", f"{tmp_path}", "ms", "ratio"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:6]}
    assert list(rows) == ["holiday-trips", "holiday-flights", "holiday-cars", "holiday-payments"]
    for starts, ours, theirs, ratio in rows.values():
        assert starts == "1"
        assert min(float(ours), float(theirs)) > 0
        # The ratio of the medians, before they were rounded for the table.
        assert abs(float(ratio.removesuffix("x")) - float(ours) / float(theirs)) < 0.02


def test_holiday_bench_cold_starts_refuses_a_directory_without_functions(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["bench", "--cold-starts", "1", "--against", str(tmp_path)])
    assert result.exit_code != 0
    said = " ".join(result.output.split())  # as wrapped to the terminal
    assert f"{tmp_path} holds no holiday/functions/: give the root of another checkout" in said
