"""`holiday bench`: how fast is a trip, how many trips per second, and what do they cost on Lambda.

Reservations go to an ingress at a chosen count and concurrency, with a chosen
mix of `run_type`s. Every answer is checked: a fast wrong answer counts as an
error, not as throughput. With `--baseline`, the same load first goes to the
null saga (`holiday_tools/nullsaga.py`): the saga's call graph through Restate,
doing no storage and no notification. The figures then come with their ratio
to what Restate itself allows on that machine at that moment.

Run against a stack it starts itself (the default), the bench also reports
the CPU seconds each process of the stack used, and in lambda mode the
Lambda invocations and GB-seconds per 1,000 trips. With `--nodes 1,3` it
starts a single-node stack and then a replicated 3-node cluster (each fresh,
in the same mode), drives both with the same load (spread over the cluster's
three ingresses) and compares the cluster's figures with the single node's. Run against a deployed
ingress (`--ingress`), each request carries its key (`--token`) when given,
and `--insecure` accepts a self-signed certificate; a 401, or a certificate
that cannot be verified, stops the bench at the first (`IngressRefused`).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import httpx

from holiday.functions import MEMORY_MB
from holiday.models import RunType
from holiday_tools.chaos import judge
from holiday_tools.devstack import LocalStack, Mode, NodePorts, Ports
from holiday_tools.text import format_table

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NULL_LABEL = "null saga"


class IngressRefused(Exception):
    """What every request would meet, so the load stops at the first: a 401 (no key, or not the right one),
    or, with `certificate`, a TLS certificate that cannot be verified."""

    def __init__(self, certificate: ssl.SSLCertVerificationError | None = None) -> None:
        what = "the ingress answered 401" if certificate is None else f"unverified certificate: {certificate}"
        super().__init__(what)
        self.certificate = certificate


def unverified_certificate(err: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that `err` (an httpx error) comes from, if it does: a self-signed one, say."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def bearer(token: str | None) -> dict[str, str]:
    """The header that carries the ingress key, if there is one."""
    return {"authorization": f"Bearer {token}"} if token else {}


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

    @property
    def throughput(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "nodes": self.nodes,
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
) -> BenchResult:
    """Send `count` reservations, `concurrency` at a time; time and check every answer.

    Several ingresses (the nodes of a cluster) take the reservations in turn, as behind a load balancer.
    `token` is the ingress key, sent with each request; `insecure` accepts a self-signed certificate.
    A 401 or an unverified certificate is no trip: the first one stops the load and raises IngressRefused.
    """
    tag = uuid.uuid4().hex[:6]
    plan = [(f"bench-{tag}-{i}", mix[i % len(mix)]) for i in range(count)]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    refused: list[IngressRefused] = []
    urls = [ingress] if isinstance(ingress, str) else list(ingress)
    clients = [
        httpx.Client(base_url=url, timeout=120, limits=limits, headers=bearer(token), verify=not insecure)
        for url in urls
    ]
    try:

        def one(item: tuple[int, tuple[str, RunType | None]]) -> tuple[float, str] | None:
            if refused:
                return None  # turned away already: send nothing more
            index, (trip_id, run_type) = item
            client = clients[index % len(clients)]
            body = {"trip_id": trip_id, "run_type": run_type.value if run_type else None}
            started = time.perf_counter()
            try:
                answer: httpx.Response | str = client.post(path, json=body)
            except httpx.HTTPError as err:
                if (certificate := unverified_certificate(err)) is not None:
                    refused.append(IngressRefused(certificate))
                    return None
                answer = f"{type(err).__name__}: {err}"
            if isinstance(answer, httpx.Response) and answer.status_code == 401:
                refused.append(IngressRefused())
                return None
            elapsed = (time.perf_counter() - started) * 1000
            on_done()
            if judge(trip_id, run_type, answer) is not None:
                return elapsed, "unexpected error"
            return elapsed, "success" if run_type is None else "expected failure"

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            done = [d for d in pool.map(one, enumerate(plan)) if d is not None]
        seconds = time.perf_counter() - started
    finally:
        for client in clients:
            client.close()
    if refused:
        raise refused[0]
    return BenchResult(label, count, concurrency, seconds, [d[0] for d in done], Counter(d[1] for d in done))


def cpu_seconds(pids: Iterable[int]) -> float:
    """User + system CPU of these processes and all their descendants, from /proc."""
    total = 0.0
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            with open(f"/proc/{pid}/task/{pid}/children") as children:
                todo += [int(c) for c in children.read().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total


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


def ratio_to_null(result: BenchResult, results: list[BenchResult]) -> dict[str, float] | None:
    """Throughput and p50 of `result` over those of the null saga run at the same concurrency, on the same stack."""
    null = next(
        (
            r
            for r in results
            if r.label == NULL_LABEL and r.concurrency == result.concurrency and r.nodes == result.nodes
        ),
        None,
    )
    return _ratio(result, null)


def ratio_to_one_node(result: BenchResult, results: list[BenchResult]) -> dict[str, float] | None:
    """Throughput and p50 of `result`, run on a cluster, over those of the same run on a single node."""
    if result.nodes == 1:
        return None
    single = next(
        (r for r in results if r.label == result.label and r.concurrency == result.concurrency and r.nodes == 1),
        None,
    )
    return _ratio(result, single)


def _ratio(result: BenchResult, base: BenchResult | None) -> dict[str, float] | None:
    if base is None or result is base or not base.throughput or not base.percentile(50):
        return None
    return {
        "throughput": round(result.throughput / base.throughput, 2),
        "p50_latency": round(result.percentile(50) / base.percentile(50), 2),
    }


def format_results(results: list[BenchResult]) -> str:
    """Tables within 100 columns: each run, its ratio to the null saga, a cluster's to a single node, CPU per
    process, Lambda cost. With runs on more than one size of stack, each table says how many nodes."""
    sections = [_runs(results), _ratios(results), _node_ratios(results), _cpu(results), _lambda_cost(results)]
    return "\n\n".join("\n".join(section) for section in sections if section)


def _several_sizes(results: list[BenchResult]) -> bool:
    return len({r.nodes for r in results}) > 1


def _header(results: list[BenchResult]) -> tuple[str, ...]:
    """The columns that say which run a row is: its label, its stack's nodes (when sizes differ), concurrency."""
    return ("run", "nodes", "at once") if _several_sizes(results) else ("run", "at once")


def _key(r: BenchResult, results: list[BenchResult]) -> tuple[str, ...]:
    return (r.label, str(r.nodes), str(r.concurrency)) if _several_sizes(results) else (r.label, str(r.concurrency))


def _runs(results: list[BenchResult]) -> list[str]:
    # Beside a nodes column the slowest trip is left to --json: the table stays within 100 columns.
    percentiles = {50: "p50 ms", 90: "p90 ms", 99: "p99 ms", 100: "max ms"}
    if _several_sizes(results):
        del percentiles[100]
    rows = [
        (
            *_key(r, results),
            str(r.count),
            *(str(r.outcomes[outcome]) for outcome in ("success", "expected failure", "unexpected error")),
            f"{r.throughput:.1f}",
            *(f"{r.percentile(p):.1f}" for p in percentiles),
        )
        for r in results
    ]
    # The outcomes as `holiday chaos` names them: booked, undone as asked, or a wrong answer.
    header = (*_header(results), "trips", "booked", "undone", "wrong", "trips/s", *percentiles.values())
    return format_table(header, rows)


def _ratios(results: list[BenchResult]) -> list[str]:
    rows = [
        (*_key(r, results), f"{ratio['throughput']:.2f}x", f"{ratio['p50_latency']:.2f}x")
        for r in results
        if (ratio := ratio_to_null(r, results))
    ]
    if not rows:
        return []
    table = format_table((*_header(results), "trips/s", "p50"), rows)
    return ["Ratio to the null saga at the same concurrency:", *table]


def _node_ratios(results: list[BenchResult]) -> list[str]:
    compared = [(r, ratio) for r in results if (ratio := ratio_to_one_node(r, results))]
    if not compared:
        return []
    rows = [
        (r.label, str(r.nodes), str(r.concurrency), f"{ratio['throughput']:.2f}x", f"{ratio['p50_latency']:.2f}x")
        for r, ratio in compared
    ]
    table = format_table(("run", "nodes", "at once", "trips/s", "p50"), rows)
    return ["Ratio of a cluster to a single node, the same run at the same concurrency:", *table]


def _cpu(results: list[BenchResult]) -> list[str]:
    measured = [r for r in results if r.cpu_seconds]
    if not measured:
        return []
    processes = list(dict.fromkeys(name for r in measured for name in r.cpu_seconds))
    rows = [
        (
            *_key(r, measured),
            *(f"{r.cpu_seconds.get(name, 0.0):.1f}" for name in processes),
            f"{sum(r.cpu_seconds.values()):.1f}",
            f"{sum(r.cpu_seconds.values()) / r.count * 1000:.1f}",
        )
        for r in measured
    ]
    header = (*_header(measured), *processes, "all", "ms per trip")
    title = "CPU seconds by process" + (
        " (a cluster's restate: all its nodes)" if any(r.nodes > 1 for r in measured) else ""
    )
    return [f"{title}:", *format_table(header, rows)]


def _lambda_cost(results: list[BenchResult]) -> list[str]:
    measured = [r for r in results if r.lambda_stats]
    if not measured:
        return []
    rows = [
        (
            *_key(r, measured),
            f"{r.lambda_stats['invocations_per_1000_trips']:.0f}",
            f"{r.lambda_stats['gb_seconds_per_1000_trips']:.1f}",
        )
        for r in measured
    ]
    table = format_table((*_header(measured), "invocations", "GB-s"), rows)
    return [f"Lambda per 1,000 trips, at {measured[0].lambda_stats['memory_mb']} MB:", *table]


def run_bench_command(
    count: int,
    concurrencies: list[int],
    mix_spec: str,
    baseline: bool,
    mode: Mode,
    ingress: str | None,
    warmup: int,
    as_json: bool,
    project_dir: Path,
    *,
    token: str | None = None,
    insecure: bool = False,
    nodes: Sequence[int] = (1,),
) -> str:
    """What `holiday bench` does: start a stack unless given an ingress, warm up, measure, report.

    At each concurrency the null saga (with `baseline`) and then the saga run
    on the same stack, one after the other, so each ratio compares like with like.
    With several `nodes` (1 and 3), a fresh stack of each size in turn gets the same load.
    `token` and `insecure` are for a given ingress: see `run_load`. Neither is ever part of the report.
    """
    mix = parse_mix(mix_spec)
    if not concurrencies or min(concurrencies) < 1:
        raise ValueError("concurrency must be 1 or more")
    if not nodes or any(n not in (1, 3) for n in nodes) or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes: 1, 3 or both (a single node, a 3-node cluster); got {','.join(map(str, nodes))}")
    if ingress is not None and tuple(nodes) != (1,):
        raise ValueError("nodes are for the local stacks bench starts; it cannot change those of a given ingress")
    results: list[BenchResult] = []
    if ingress is not None:
        results += _bench([ingress], None, count, concurrencies, mix, baseline, warmup, token, insecure, mode)
    for size in nodes if ingress is None else ():
        ports = Ports.free()
        stack = LocalStack(
            project_dir,
            Path(tempfile.mkdtemp(prefix="holiday-bench-")),
            ports,
            mode=mode,
            nodes=size,
            node_ports=NodePorts.free(ports, size),
        )
        try:
            stack.start()
            sized = _bench(stack.ingress_urls, stack, count, concurrencies, mix, baseline, warmup, None, False, mode)
        finally:
            stack.stop()
            shutil.rmtree(stack.data_dir, ignore_errors=True)
        for result in sized:
            result.nodes = size
        results += sized
    if as_json:
        runs = [
            {
                **r.as_dict(),
                "ratio_to_null_saga": ratio_to_null(r, results),
                **({"ratio_to_one_node": ratio_to_one_node(r, results)} if len(nodes) > 1 else {}),
            }
            for r in results
        ]
        return json.dumps({"mode": mode, "runs": runs}, indent=2)
    return format_results(results)


def _bench(
    ingresses: list[str],
    stack: LocalStack | None,
    count: int,
    concurrencies: list[int],
    mix: list[RunType | None],
    baseline: bool,
    warmup: int,
    token: str | None,
    insecure: bool,
    mode: str,
) -> list[BenchResult]:
    """Warm up, then at each concurrency the null saga (with `baseline`) and the saga, on one stack."""
    if warmup:
        at_once = min(max(concurrencies), warmup)
        run_load(ingresses, "/trips/reserve", warmup, at_once, mix, "warm-up", token=token, insecure=insecure)
        if baseline:
            run_load(
                ingresses, "/nulltrips/reserve", warmup, at_once, [None], "warm-up", token=token, insecure=insecure
            )
    results = []
    for concurrency in concurrencies:
        measure = _Measure(ingresses, stack, count, concurrency, token, insecure)
        if baseline:
            results.append(measure.run("/nulltrips/reserve", [None], NULL_LABEL))
        results.append(measure.run("/trips/reserve", mix, f"holiday ({mode})"))
    return results


class _Measure:
    """One measured run, with the stack's CPU and Lambda counts taken around it."""

    def __init__(
        self,
        ingresses: list[str],
        stack: LocalStack | None,
        count: int,
        concurrency: int,
        token: str | None,
        insecure: bool,
    ) -> None:
        self.ingresses, self.stack, self.count, self.concurrency = ingresses, stack, count, concurrency
        self.token, self.insecure = token, insecure

    def run(self, path: str, mix: list[RunType | None], label: str) -> BenchResult:
        pids = {n: p.popen.pid for n, p in (self.stack.processes.items() if self.stack else []) if p.popen}
        cpu_before = {n: cpu_seconds([pid]) for n, pid in pids.items()}
        stats_before = self._lambda_stats()
        nodes = "" if self.stack is None or self.stack.nodes == 1 else f" ({self.stack.nodes} nodes)"
        with click.progressbar(length=self.count, label=f"{label}{nodes}", file=sys.stderr) as bar:
            lock = threading.Lock()

            def tick() -> None:
                with lock:
                    bar.update(1)

            result = run_load(
                self.ingresses,
                path,
                self.count,
                self.concurrency,
                mix,
                label,
                tick,
                token=self.token,
                insecure=self.insecure,
            )
        # A cluster's nodes ("restate-1" ...) count as one restate, beside a single node's.
        for name, pid in pids.items():
            process = "restate" if name.startswith("restate") else name
            used = cpu_seconds([pid]) - cpu_before[name]
            result.cpu_seconds[process] = result.cpu_seconds.get(process, 0.0) + used
        stats_after = self._lambda_stats()
        if stats_after:
            result.lambda_stats = lambda_cost(stats_before, stats_after, self.count, MEMORY_MB)
        return result

    def _lambda_stats(self) -> dict[str, Any]:
        if self.stack is None or self.stack.mode != "lambda":
            return {}
        stats: dict[str, Any] = httpx.get(f"{self.stack.services_url}/local/stats", timeout=10).json()
        return stats
