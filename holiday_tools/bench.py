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

Given several running ingresses (this project's stack and one running the
TypeScript original, say), the bench sends each the same load, in turn, round
after round, and compares each with the first. For an ingress on loopback it
finds restate-server and the services from /proc (`holiday_tools.procnet`)
and counts their CPU; `--judge status` checks only the HTTP status of the
answers, for a saga that words its answers otherwise than this one.
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
from typing import Any, NamedTuple

import click
import httpx

from holiday.functions import MEMORY_MB
from holiday.models import RunType
from holiday_tools.chaos import judge as strict_judge
from holiday_tools.devstack import LocalStack, Mode, NodePorts, Ports
from holiday_tools.procnet import NotFound, discover
from holiday_tools.text import format_table

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NULL_LABEL = "null saga"
SAGA_PATH, NULL_PATH = "/trips/reserve", "/nulltrips/reserve"
OWN_PROCESSES = ("restate", "services")  # what a trip costs outside the AWS stand-in, on any stack
# None if the answer is the right one for the trip (its id, its run_type), else what is wrong with it.
Judge = Callable[[str, RunType | None, httpx.Response | str], str | None]


class IngressRefused(Exception):
    """What every request would meet, so the load stops at the first: a 401 (no key, or not the right one),
    or, with `certificate`, a TLS certificate that cannot be verified."""

    def __init__(self, certificate: ssl.SSLCertVerificationError | None = None, ingress: str = "") -> None:
        what = "the ingress answered 401" if certificate is None else f"unverified certificate: {certificate}"
        super().__init__(what)
        self.certificate = certificate
        self.ingress = ingress  # which one, when the load goes to several


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


def status_judge(trip_id: str, run_type: RunType | None, answer: httpx.Response | str) -> str | None:
    """Only the HTTP status: 200 for a clean trip, any 4xx or 5xx for an injected failure.

    For a saga that words its answers otherwise than this project's: the TypeScript original
    answers an injected failure with a 500 and its own message. Whatever it turns away, the
    strict judge turns away too, and says why.
    """
    if isinstance(answer, httpx.Response):
        status = answer.status_code
        if (status == 200) if run_type is None else (400 <= status < 600):
            return None
    return strict_judge(trip_id, run_type, answer)


JUDGES: dict[str, Judge] = {"strict": strict_judge, "status": status_judge}


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
    no_cpu: str | None = None  # why the CPU of a running ingress's processes is not counted

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
    judge: Judge = strict_judge,
) -> BenchResult:
    """Send `count` reservations, `concurrency` at a time; time every answer and `judge` it.

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
            client, url = clients[index % len(clients)], urls[index % len(clients)]
            body = {"trip_id": trip_id, "run_type": run_type.value if run_type else None}
            started = time.perf_counter()
            try:
                answer: httpx.Response | str = client.post(path, json=body)
            except httpx.HTTPError as err:
                if (certificate := unverified_certificate(err)) is not None:
                    refused.append(IngressRefused(certificate, url))
                    return None
                answer = f"{type(err).__name__}: {err}"
            if isinstance(answer, httpx.Response) and answer.status_code == 401:
                refused.append(IngressRefused(ingress=url))
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
    """Throughput and p50 of `result` over those of the null saga run at the same concurrency, on the same stack,
    in the same round."""
    null = next(
        (r for r in results if r.label == NULL_LABEL and _same_place(r, result) and r.nodes == result.nodes),
        None,
    )
    return _ratio(result, null)


def ratio_to_one_node(result: BenchResult, results: list[BenchResult]) -> dict[str, float] | None:
    """Throughput and p50 of `result`, run on a cluster, over those of the same run on a single node."""
    if result.nodes == 1:
        return None
    single = next((r for r in results if r.label == result.label and _same_place(r, result) and r.nodes == 1), None)
    return _ratio(result, single)


def ratios_to_first(results: list[BenchResult]) -> list[dict[str, Any]]:
    """Each saga's throughput and p50 over the first saga's, at each concurrency: the medians of their rounds.

    The sagas are the runs' labels other than the null saga's, in the order they ran (several ingresses).
    """
    labels = list(dict.fromkeys(r.label for r in results if r.label != NULL_LABEL))
    compared = []
    for concurrency in dict.fromkeys(r.concurrency for r in results):
        base = _figures([r for r in results if r.label == labels[0] and r.concurrency == concurrency])
        for label in labels[1:]:
            rounds = [r for r in results if r.label == label and r.concurrency == concurrency]
            if ratio := _over(_figures(rounds), base):
                compared.append({"label": label, "base": labels[0], "concurrency": concurrency, **ratio})
    return compared


def _same_place(a: BenchResult, b: BenchResult) -> bool:
    """Run at the same concurrency, in the same round."""
    return a.concurrency == b.concurrency and a.round == b.round


def _ratio(result: BenchResult, base: BenchResult | None) -> dict[str, float] | None:
    if base is None or result is base:
        return None
    return _over(_figures([result]), _figures([base]))


def _figures(rounds: list[BenchResult]) -> tuple[float, float] | None:
    """Throughput and p50 of a run: the medians of its rounds."""
    if not rounds:
        return None
    return statistics.median(r.throughput for r in rounds), statistics.median(r.percentile(50) for r in rounds)


def _over(figures: tuple[float, float] | None, base: tuple[float, float] | None) -> dict[str, float] | None:
    if figures is None or base is None or not all(base):
        return None
    return {"throughput": round(figures[0] / base[0], 2), "p50_latency": round(figures[1] / base[1], 2)}


def format_results(results: list[BenchResult]) -> str:
    """Tables within 100 columns: each run, its ratio to the null saga, a cluster's to a single node, each
    ingress's to the first, CPU per process, Lambda cost. With runs on more than one size of stack, or in
    several rounds, each table says which."""
    sections = [
        _runs(results),
        _ratios(results),
        _node_ratios(results),
        _first_ratios(results),
        _cpu(results),
        _lambda_cost(results),
    ]
    return "\n\n".join("\n".join(section) for section in sections if section)


def _key_columns(results: list[BenchResult]) -> list[tuple[str, Callable[[BenchResult], str]]]:
    """The columns that say which run a row is: its label, its stack's nodes (when sizes differ), its round
    (when there are several), its concurrency."""
    columns: list[tuple[str, Callable[[BenchResult], str]]] = [("run", lambda r: r.label)]
    if len({r.nodes for r in results}) > 1:
        columns.append(("nodes", lambda r: str(r.nodes)))
    if len({r.round for r in results}) > 1:
        columns.append(("round", lambda r: str(r.round)))
    return [*columns, ("at once", lambda r: str(r.concurrency))]


def _header(results: list[BenchResult]) -> tuple[str, ...]:
    return tuple(name for name, _ in _key_columns(results))


def _key(r: BenchResult, results: list[BenchResult]) -> tuple[str, ...]:
    return tuple(cell(r) for _, cell in _key_columns(results))


def _runs(results: list[BenchResult]) -> list[str]:
    # Beside a nodes or a round column the slowest trip is left to --json: the table stays within 100 columns.
    percentiles = {50: "p50 ms", 90: "p90 ms", 99: "p99 ms", 100: "max ms"}
    if len(_header(results)) > 2:
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
    rows = [
        (*_key(r, results), f"{ratio['throughput']:.2f}x", f"{ratio['p50_latency']:.2f}x")
        for r in results
        if (ratio := ratio_to_one_node(r, results))
    ]
    if not rows:
        return []
    table = format_table((*_header(results), "trips/s", "p50"), rows)
    return ["Ratio of a cluster to a single node, the same run at the same concurrency:", *table]


def _first_ratios(results: list[BenchResult]) -> list[str]:
    compared = ratios_to_first(results)
    if not compared:
        return []
    rows = [
        (c["label"], str(c["concurrency"]), f"{c['throughput']:.2f}x", f"{c['p50_latency']:.2f}x") for c in compared
    ]
    rounds = max(r.round for r in results)
    medians = f", medians of {rounds} rounds" if rounds > 1 else ""
    title = f"Ratio to {compared[0]['base']} at the same concurrency{medians}:"
    return [title, *format_table(("run", "at once", "trips/s", "p50"), rows)]


def _cpu(results: list[BenchResult]) -> list[str]:
    """The CPU table, then one line for each running ingress whose processes could not be found."""
    unknown = {r.label: r.no_cpu for r in results if r.no_cpu}
    notes = [f"No CPU figures for {label}: {why}." for label, why in unknown.items()]
    measured = [r for r in results if r.cpu_seconds]
    return [*_cpu_table(measured), *notes]


def _cpu_table(measured: list[BenchResult]) -> list[str]:
    if not measured:
        return []
    processes = list(dict.fromkeys(name for r in measured for name in r.cpu_seconds))
    # A running ingress's processes are restate and the services only (its AWS stand-in is not the bench's to
    # find): their sum is the "own" CPU, and a column "all" would repeat it.
    own = set(processes) <= set(OWN_PROCESSES)
    rows = [
        (
            *_key(r, measured),
            *(f"{r.cpu_seconds.get(name, 0.0):.1f}" for name in processes),
            *(() if own else (f"{sum(r.cpu_seconds.values()):.1f}",)),
            f"{sum(r.cpu_seconds.values()) / r.count * 1000:.1f}",
        )
        for r in measured
    ]
    header = (*_header(measured), *processes, *(("own ms per trip",) if own else ("all", "ms per trip")))
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


class Ingress(NamedTuple):
    """A running ingress to bench: its URL, and its name in the report (None: the saga's, for a lone one)."""

    url: str
    label: str | None = None


@dataclass(frozen=True)
class Plan:
    """The load every measured run sends, and how each answer is judged: the same for every stack, so their
    figures compare. `token` and `insecure` are for a given ingress: see `run_load`."""

    count: int
    concurrencies: list[int]
    mix: list[RunType | None]
    warmup: int
    rounds: int = 1
    baseline: bool = False
    token: str | None = None
    insecure: bool = False
    judge: Judge = strict_judge


def _no_figures() -> dict[str, Any]:
    return {}


@dataclass(frozen=True)
class Target:
    """One stack under load: the label of its saga's runs, its ingress URLs (a cluster's take turns), and how
    to read the counts that a run's CPU and Lambda figures are the growth of."""

    label: str
    urls: list[str]
    cpu: Callable[[], dict[str, float]] = _no_figures  # CPU seconds so far, by process; {} if unknown
    lambda_stats: Callable[[], dict[str, Any]] = _no_figures
    nodes: int = 1
    no_cpu: str | None = None  # why the CPU of a running ingress cannot be counted


def run_bench_command(
    count: int,
    concurrencies: list[int],
    mix_spec: str,
    baseline: bool,
    mode: Mode,
    ingresses: Sequence[Ingress],
    warmup: int,
    as_json: bool,
    project_dir: Path,
    *,
    token: str | None = None,
    insecure: bool = False,
    nodes: Sequence[int] = (1,),
    rounds: int = 1,
    judge: str = "strict",
) -> str:
    """What `holiday bench` does: start a stack unless given ingresses, warm up, measure, report.

    At each concurrency the null saga (with `baseline`) and then the saga run
    on the same stack, one after the other, so each ratio compares like with like.
    With several `nodes` (1 and 3), a fresh stack of each size in turn gets the same load.
    With several `ingresses`, each gets the same load in turn, `rounds` times, and is compared with the
    first; the null saga is this project's, so there is no `baseline`. `token` and `insecure` are for given
    ingresses: see `run_load`. Neither is ever part of the report.
    """
    plan = _plan(count, concurrencies, mix_spec, baseline, rounds, judge, warmup, token, insecure)
    if not nodes or any(n not in (1, 3) for n in nodes) or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes: 1, 3 or both (a single node, a 3-node cluster); got {','.join(map(str, nodes))}")
    if ingresses and tuple(nodes) != (1,):
        raise ValueError("nodes are for the local stacks bench starts; it cannot change those of a given ingress")
    if len(ingresses) > 1 and baseline:
        raise ValueError(
            "--baseline drives the null saga, which only this project's local stack has: with several --ingress "
            "there is none to compare with. Leave --baseline out; the ingresses are compared with the first."
        )
    results: list[BenchResult] = []
    if ingresses:
        results += _bench([_given(ingress, mode) for ingress in ingresses], plan)
    for size in nodes if not ingresses else ():
        results += _bench_local(project_dir, mode, size, plan)
    if as_json:
        return _json(results, mode, several_sizes=len(nodes) > 1, several_ingresses=len(ingresses) > 1)
    return format_results(results)


def _plan(
    count: int,
    concurrencies: list[int],
    mix_spec: str,
    baseline: bool,
    rounds: int,
    judge: str,
    warmup: int,
    token: str | None,
    insecure: bool,
) -> Plan:
    """The plan, or ValueError saying what is wrong with it."""
    mix = parse_mix(mix_spec)
    if not concurrencies or min(concurrencies) < 1:
        raise ValueError("concurrency must be 1 or more")
    if rounds < 1:
        raise ValueError("rounds must be 1 or more")
    if judge not in JUDGES:
        raise ValueError(f"judge: {' or '.join(JUDGES)}; got {judge!r}")
    return Plan(count, concurrencies, mix, warmup, rounds, baseline, token, insecure, JUDGES[judge])


def _json(results: list[BenchResult], mode: Mode, *, several_sizes: bool, several_ingresses: bool) -> str:
    runs = [
        {
            **r.as_dict(),
            "ratio_to_null_saga": ratio_to_null(r, results),
            **({"ratio_to_one_node": ratio_to_one_node(r, results)} if several_sizes else {}),
        }
        for r in results
    ]
    report: dict[str, Any] = {"mode": mode, "runs": runs}
    if several_ingresses:
        report["ratio_to_first"] = ratios_to_first(results)
    return json.dumps(report, indent=2)


def _given(ingress: Ingress, mode: Mode) -> Target:
    """A running ingress, with its processes' CPU when they can be found on this machine."""
    label = ingress.label or f"holiday ({mode})"
    try:
        served = discover(ingress.url)
    except NotFound as why:
        return Target(label, [ingress.url], no_cpu=str(why))

    def cpu() -> dict[str, float]:
        return {"restate": cpu_seconds(served.restate), "services": cpu_seconds(served.services)}

    return Target(label, [ingress.url], cpu)


def _bench_local(project_dir: Path, mode: Mode, size: int, plan: Plan) -> list[BenchResult]:
    """Start a fresh local stack of `size` nodes, bench it, stop it."""
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
        return _bench([_local(stack, mode)], plan)
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def _local(stack: LocalStack, mode: Mode) -> Target:
    """A stack the bench started: its processes' CPU, and in lambda mode its runtime's counts."""

    def cpu() -> dict[str, float]:
        # A cluster's nodes ("restate-1" ...) count as one restate, beside a single node's.
        used: dict[str, float] = {}
        for name, process in stack.processes.items():
            if process.popen:
                key = "restate" if name.startswith("restate") else name
                used[key] = used.get(key, 0.0) + cpu_seconds([process.popen.pid])
        return used

    def lambda_stats() -> dict[str, Any]:
        if stack.mode != "lambda":
            return {}
        stats: dict[str, Any] = httpx.get(f"{stack.services_url}/local/stats", timeout=10).json()
        return stats

    return Target(f"holiday ({mode})", stack.ingress_urls, cpu, lambda_stats, stack.nodes)


def _bench(targets: list[Target], plan: Plan) -> list[BenchResult]:
    """Warm each target up; then at each concurrency, round after round, each target in turn (A, B, A, B),
    the null saga (with `baseline`) just before the saga."""
    for target in targets:
        _warm_up(target, plan)
    results = []
    for concurrency in plan.concurrencies:
        for round_ in range(1, plan.rounds + 1):
            for target in targets:
                if plan.baseline:
                    results.append(_measure(target, plan, NULL_PATH, NULL_LABEL, concurrency, round_))
                results.append(_measure(target, plan, SAGA_PATH, target.label, concurrency, round_))
    return results


def _warm_up(target: Target, plan: Plan) -> None:
    if not plan.warmup:
        return
    at_once = min(max(plan.concurrencies), plan.warmup)
    for path in (SAGA_PATH, NULL_PATH) if plan.baseline else (SAGA_PATH,):
        _send(target, plan, path, "warm-up", plan.warmup, at_once)


def _send(
    target: Target,
    plan: Plan,
    path: str,
    label: str,
    count: int,
    concurrency: int,
    on_done: Callable[[], None] = lambda: None,
) -> BenchResult:
    """The plan's load to the target: its mix to the saga, clean trips to the null saga."""
    null: list[RunType | None] = [None]
    return run_load(
        target.urls,
        path,
        count,
        concurrency,
        plan.mix if path == SAGA_PATH else null,
        label,
        on_done,
        token=plan.token,
        insecure=plan.insecure,
        judge=plan.judge,
    )


def _measure(target: Target, plan: Plan, path: str, label: str, concurrency: int, round_: int) -> BenchResult:
    """One measured run, with the target's CPU and Lambda counts read around it."""
    cpu_before, stats_before = target.cpu(), target.lambda_stats()
    nodes = "" if target.nodes == 1 else f" ({target.nodes} nodes)"
    rounds = "" if plan.rounds == 1 else f", round {round_} of {plan.rounds}"
    with click.progressbar(length=plan.count, label=f"{label}{nodes}{rounds}", file=sys.stderr) as bar:
        lock = threading.Lock()

        def tick() -> None:
            with lock:
                bar.update(1)

        result = _send(target, plan, path, label, plan.count, concurrency, tick)
    cpu_after, stats_after = target.cpu(), target.lambda_stats()
    result.cpu_seconds = {name: used - cpu_before.get(name, 0.0) for name, used in cpu_after.items()}
    if stats_after:
        result.lambda_stats = lambda_cost(stats_before, stats_after, plan.count, MEMORY_MB)
    result.nodes, result.round, result.no_cpu = target.nodes, round_, target.no_cpu
    return result
