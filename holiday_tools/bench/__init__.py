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
finds restate-server and the services from /proc/net (`holiday_tools.procnet`:
Linux only; elsewhere the report says in one line that their CPU is unknown) and
counts their CPU; `--judge status` checks only the HTTP status of the answers,
for a saga that words its answers otherwise than this one.

The command is here; the load is in `load`, CPU (psutil) in `cpu`, Lambda cost
in `cost`, the tables and ratios in `report`.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import click
import httpx

from holiday.functions import MEMORY_MB
from holiday.models import RunType, TripRequest
from holiday.planning import default_times
from holiday_tools.bench.cost import lambda_cost
from holiday_tools.bench.cpu import CpuUnknown, cpu_seconds
from holiday_tools.bench.load import JUDGES, BenchResult, Judge, parse_mix, run_load
from holiday_tools.bench.report import NULL_LABEL, format_results, json_report
from holiday_tools.devstack import LocalStack, Mode, NodePorts, Ports
from holiday_tools.ingress import RESERVE_PATH, judge
from holiday_tools.procnet import NotFound, discover

NULL_PATH = "/nulltrips/reserve"


class IngressUrl(NamedTuple):
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
    judge: Judge = judge
    depart_at: str | None = None  # every request's, as a booking form sends; None: the saga's default dates


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
    memory_mb: int | None = None  # a local stack's functions' memory, when the bench compares sizes


def run_bench_command(
    count: int,
    concurrencies: list[int],
    mix_spec: str,
    baseline: bool,
    mode: Mode,
    ingresses: Sequence[IngressUrl],
    warmup: int,
    as_json: bool,
    project_dir: Path,
    *,
    token: str | None = None,
    insecure: bool = False,
    nodes: Sequence[int] = (1,),
    rounds: int = 1,
    judge: str = "strict",
    dates: bool = False,
    memories: Sequence[int] = (),
    snapstart: bool = False,
) -> str:
    """What `holiday bench` does: start a stack unless given ingresses, warm up, measure, report.

    At each concurrency the null saga (with `baseline`) and then the saga run
    on the same stack, one after the other, so each ratio compares like with like.
    With several `nodes` (1 and 3), a fresh stack of each size in turn gets the same load.
    With several `ingresses`, each gets the same load in turn, `rounds` times, and is compared with the
    first; the null saga is this project's, so there is no `baseline`. `token` and `insecure` are for given
    ingresses: see `run_load`. Neither is ever part of the report. With `dates`, every request names its
    departure (the saga's default, 14 days ahead), so the saga reads no clock. With `memories` (lambda mode), a
    fresh stack at each memory size in turn, each worker held to that size's share of a core as on Lambda;
    with `snapstart`, the local runtime starts the functions' workers as SnapStart does.
    """
    plan = _plan(count, concurrencies, mix_spec, baseline, rounds, judge, warmup, token, insecure)
    if dates:
        depart_at = default_times(TripRequest(), datetime.now(UTC))["depart_at"]
        plan = replace(plan, depart_at=depart_at.isoformat())
    if not nodes or any(n not in (1, 3) for n in nodes) or len(set(nodes)) != len(nodes):
        raise ValueError(f"nodes: 1, 3 or both (a single node, a 3-node cluster); got {','.join(map(str, nodes))}")
    if ingresses and tuple(nodes) != (1,):
        raise ValueError("nodes are for the local stacks bench starts; it cannot change those of a given ingress")
    if len(ingresses) > 1 and baseline:
        raise ValueError(
            "--baseline drives the null saga, which only this project's local stack has: with several --ingress "
            "there is none to compare with. Leave --baseline out; the ingresses are compared with the first."
        )
    if (memories or snapstart) and (mode != "lambda" or ingresses):
        raise ValueError("--memory and --snapstart are for the local stack in lambda mode: add --mode lambda")
    if memories and len(nodes) > 1:
        raise ValueError("compare memory sizes or node counts, one at a time")
    if any(not 128 <= mb <= 10240 for mb in memories) or len(set(memories)) != len(memories):
        raise ValueError(f"--memory wants different sizes in MB, 128 to 10240 as on Lambda; got {list(memories)}")
    results: list[BenchResult] = []
    if ingresses:
        results += _bench([_given(ingress, mode) for ingress in ingresses], plan)
    for size in nodes if not ingresses else ():
        sizes: list[int | None] = [*memories] or [None]  # None: the deployed size, CPU not limited
        for memory_mb in sizes:
            results += _bench_local(project_dir, mode, size, plan, memory_mb, snapstart)
    if as_json:
        return json_report(results, mode, several_sizes=len(nodes) > 1, several_ingresses=len(ingresses) > 1)
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


def _given(ingress: IngressUrl, mode: Mode) -> Target:
    """A running ingress, with its processes' CPU when they can be found on this machine."""
    label = ingress.label or f"holiday ({mode})"
    try:
        served = discover(ingress.url)
    except NotFound as why:
        return Target(label, [ingress.url], no_cpu=str(why))

    def cpu() -> dict[str, float]:
        return {"restate": cpu_seconds(served.restate), "services": cpu_seconds(served.services)}

    return Target(label, [ingress.url], cpu)


def _bench_local(
    project_dir: Path, mode: Mode, size: int, plan: Plan, memory_mb: int | None, snapstart: bool
) -> list[BenchResult]:
    """Start a fresh local stack of `size` nodes, bench it, stop it. With `memory_mb`, its functions have that
    memory and CPU in proportion to it."""
    ports = Ports.free()
    stack = LocalStack(
        project_dir,
        Path(tempfile.mkdtemp(prefix="holiday-bench-")),
        ports,
        mode=mode,
        nodes=size,
        node_ports=NodePorts.free(ports, size),
        lambda_memory_mb=memory_mb or MEMORY_MB,
        lambda_limit_cpu=memory_mb is not None,
        lambda_snapstart=snapstart,
    )
    try:
        stack.start()
        return _bench([_local(stack, mode, memory_mb)], plan)
    finally:
        stack.stop()
        shutil.rmtree(stack.data_dir, ignore_errors=True)


def _local(stack: LocalStack, mode: Mode, memory_mb: int | None) -> Target:
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

    return Target(f"holiday ({mode})", stack.ingress_urls, cpu, lambda_stats, stack.nodes, memory_mb=memory_mb)


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
                results.append(_measure(target, plan, RESERVE_PATH, target.label, concurrency, round_))
    return results


def _warm_up(target: Target, plan: Plan) -> None:
    if not plan.warmup:
        return
    at_once = min(max(plan.concurrencies), plan.warmup)
    for path in (RESERVE_PATH, NULL_PATH) if plan.baseline else (RESERVE_PATH,):
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
        plan.mix if path == RESERVE_PATH else null,
        label,
        on_done,
        token=plan.token,
        insecure=plan.insecure,
        judge=plan.judge,
        depart_at=plan.depart_at,
    )


def _measure(target: Target, plan: Plan, path: str, label: str, concurrency: int, round_: int) -> BenchResult:
    """One measured run, with the target's CPU and Lambda counts read around it."""
    no_cpu = target.no_cpu
    cpu_before, stats_before = _cpu(target), target.lambda_stats()
    nodes = "" if target.nodes == 1 else f" ({target.nodes} nodes)"
    nodes += "" if target.memory_mb is None else f" ({target.memory_mb} MB)"
    rounds = "" if plan.rounds == 1 else f", round {round_} of {plan.rounds}"
    with click.progressbar(length=plan.count, label=f"{label}{nodes}{rounds}", file=sys.stderr) as bar:
        lock = threading.Lock()

        def tick() -> None:
            with lock:
                bar.update(1)

        result = _send(target, plan, path, label, plan.count, concurrency, tick)
    cpu_after, stats_after = _cpu(target), target.lambda_stats()
    if isinstance(cpu_before, str) or isinstance(cpu_after, str):
        no_cpu = no_cpu or (cpu_before if isinstance(cpu_before, str) else str(cpu_after))
    else:
        result.cpu_seconds = {name: used - cpu_before.get(name, 0.0) for name, used in cpu_after.items()}
    if stats_after:
        result.lambda_stats = lambda_cost(stats_before, stats_after, plan.count)
    result.nodes, result.round, result.no_cpu = target.nodes, round_, no_cpu
    result.memory_mb = target.memory_mb
    return result


def _cpu(target: Target) -> dict[str, float] | str:
    """The target's CPU seconds so far, by process; or why they cannot be counted (never a wrong 0)."""
    try:
        return target.cpu()
    except CpuUnknown as why:
        return str(why)
