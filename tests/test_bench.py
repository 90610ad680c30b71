"""`holiday bench`: its arithmetic, and a short run that checks every answer it counts."""

from __future__ import annotations

import os
from collections import Counter

import httpx
import pytest

from holiday.bench import BenchResult, cpu_seconds, lambda_cost, parse_mix, run_load
from holiday.devstack import LocalStack
from holiday.models import RunType


def test_mix_draws_run_types_in_the_given_proportions() -> None:
    assert parse_mix("clean=2,failPayment=1") == [None, None, RunType.FAIL_PAYMENT]
    with pytest.raises(ValueError, match="failEverything"):
        parse_mix("failEverything=1")


def test_percentiles_and_throughput() -> None:
    result = BenchResult("x", 100, 4, 2.0, [float(i) for i in range(1, 101)], Counter(success=100))
    assert result.throughput == 50.0
    assert (result.percentile(50), result.percentile(99), result.percentile(100)) == (51.0, 100.0, 100.0)


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


def test_a_short_run_counts_only_right_answers(stack: LocalStack, ingress: httpx.Client) -> None:
    result = run_load(stack.ingress_url, "/trips/reserve", 12, 4, parse_mix("clean=1,failPayment=1"), "t")
    assert result.outcomes == Counter({"success": 6, "expected failure": 6})
    assert len(result.latencies_ms) == 12
    assert result.throughput > 0
    # The null saga answers as the saga does, with none of its work.
    null = run_load(stack.ingress_url, "/nulltrips/reserve", 4, 2, [None], "null")
    if stack.mode == "http":
        assert null.outcomes == Counter({"success": 4})
    else:
        assert null.outcomes == Counter({"unexpected error": 4})  # not served by the Lambda functions
