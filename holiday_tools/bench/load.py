"""The bench's load: reservations at a chosen count, concurrency and mix of run_types, each answer timed and
judged. A fast wrong answer counts as an error, not as throughput."""

from __future__ import annotations

import statistics
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from holiday.models import RunType, TripRecord
from holiday_tools.ingress import Ingress, IngressRefused, RecordLookup, judge, judge_status

OWN_PROCESSES = ("restate", "services")  # what a trip costs outside the AWS stand-in, on any stack
# None if the answer is the right one for the trip (its id, its run_type), else what is wrong with it.
Judge = Callable[[str, RunType | None, httpx.Response | str, RecordLookup], str | None]


def by_status(
    trip_id: str, run_type: RunType | None, answer: httpx.Response | str, _lookup: RecordLookup
) -> str | None:
    """`judge_status`, as a bench judge: a saga other than this project's keeps no record to look up."""
    return judge_status(trip_id, run_type, answer)


# strict: a failed trip's record must name the failed step; status: only the HTTP status (the original).
JUDGES: dict[str, Judge] = {"strict": judge, "status": by_status}


@dataclass
class BenchResult:
    label: str
    count: int
    concurrency: int
    seconds: float
    latencies_ms: list[float]
    outcomes: Counter[str]
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    lambda_stats: dict[str, Any] = field(default_factory=dict)
    nodes: int = 1  # restate-server nodes of the stack that served the run
    round: int = 1  # of the same run, with `--rounds`
    no_cpu: str | None = None  # why the CPU of the processes is not counted
    memory_mb: int | None = None  # the functions' memory, when the bench compares sizes

    @property
    def throughput(self) -> float:
        """Right answers per second: a fast wrong one is no trip."""
        right = self.outcomes["success"] + self.outcomes["expected failure"]
        return right / self.seconds if self.seconds else 0.0

    @property
    def own_cpu_ms_per_trip(self) -> float | None:
        """restate-server's and the services' CPU per trip: what any stack's trip costs, the AWS stand-in aside."""
        if not self.cpu_seconds:
            return None
        return sum(self.cpu_seconds.get(name, 0.0) for name in OWN_PROCESSES) / self.count * 1000

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "nodes": self.nodes,
            "memory_mb": self.memory_mb,
            "round": self.round,
            "count": self.count,
            "concurrency": self.concurrency,
            "seconds": round(self.seconds, 3),
            "throughput_per_s": round(self.throughput, 2),
            "latency_ms": {
                "p50": round(self.percentile(50), 2),
                "p90": round(self.percentile(90), 2),
                "p99": round(self.percentile(99), 2),
                "max": round(max(self.latencies_ms, default=0.0), 2),
                "mean": round(statistics.fmean(self.latencies_ms), 2) if self.latencies_ms else 0.0,
            },
            "outcomes": dict(self.outcomes),
            "cpu_seconds": {k: round(v, 2) for k, v in self.cpu_seconds.items()},
            "own_cpu_ms_per_trip": None if (own := self.own_cpu_ms_per_trip) is None else round(own, 1),
            "no_cpu": self.no_cpu,
            "lambda": self.lambda_stats,
        }


def parse_mix(spec: str) -> list[RunType | None]:
    """`clean=8,failPayment=1` -> a list to draw run_types from, in those proportions."""
    mix: list[RunType | None] = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, weight = part.partition("=")
        run_type = None if name == "clean" else RunType(name)
        mix += [run_type] * int(weight or 1)
    if not mix:
        raise ValueError(f"empty mix {spec!r}")
    return mix


@dataclass(frozen=True)
class Sent:
    """One reservation of the load, and its answer (or why there was none) and how long it took."""

    trip_id: str
    run_type: RunType | None
    answer: httpx.Response | str
    elapsed_ms: float


def run_load(
    ingress: str | Sequence[str],
    path: str,
    count: int,
    concurrency: int,
    mix: list[RunType | None],
    label: str,
    on_done: Callable[[], None] = lambda: None,
    *,
    token: str | None = None,
    insecure: bool = False,
    judge: Judge = judge,
    depart_at: str | None = None,
) -> BenchResult:
    """Send `count` reservations, `concurrency` at a time; time every answer, then `judge` it.

    Each names `depart_at` when given; otherwise the saga reads its clock for the default dates.

    Several ingresses (the nodes of a cluster) take the reservations in turn, as behind a load balancer.
    `token` is the ingress key, sent with each request; `insecure` accepts a self-signed certificate.
    A 401 or an unverified certificate is no trip: the first one stops the load and raises IngressRefused.
    The answers are judged once the load is timed: reading a failed trip's record costs the load nothing.
    """
    tag = uuid.uuid4().hex[:6]
    plan = [(f"bench-{tag}-{i}", mix[i % len(mix)]) for i in range(count)]
    refused: list[IngressRefused] = []
    urls = [ingress] if isinstance(ingress, str) else list(ingress)
    ingresses = [Ingress(url, token, insecure, timeout=120, concurrency=concurrency) for url in urls]
    try:

        def one(item: tuple[int, tuple[str, RunType | None]]) -> Sent | None:
            if refused:
                return None  # turned away already: send nothing more
            index, (trip_id, run_type) = item
            api = ingresses[index % len(ingresses)]
            started = time.perf_counter()
            try:
                answer: httpx.Response | str = api.reserve(trip_id, run_type, path=path, depart_at=depart_at)
            except IngressRefused as refusal:
                refused.append(refusal)
                return None
            except httpx.HTTPError as err:
                answer = f"{type(err).__name__}: {err}"
            elapsed = (time.perf_counter() - started) * 1000
            on_done()
            return Sent(trip_id, run_type, answer, elapsed)

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            done = [d for d in pool.map(one, enumerate(plan)) if d is not None]
        seconds = time.perf_counter() - started
        if refused:
            raise refused[0]

        def lookup(trip_id: str) -> TripRecord | None:
            try:
                return ingresses[0].record(trip_id)
            except (httpx.HTTPError, IngressRefused):
                return None

        def outcome(sent: Sent) -> str:
            if judge(sent.trip_id, sent.run_type, sent.answer, lookup) is not None:
                return "unexpected error"
            return "success" if sent.run_type is None else "expected failure"

        with ThreadPoolExecutor(concurrency) as pool:
            outcomes = Counter(pool.map(outcome, done))
    finally:
        for api in ingresses:
            api.close()
    return BenchResult(label, count, concurrency, seconds, [d.elapsed_ms for d in done], outcomes)
