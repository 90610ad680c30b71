"""The bench's report: tables within 100 columns (or JSON) of each run, and the ratios that compare runs:
to the null saga, of a cluster to a single node, of each ingress to the first."""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable
from typing import Any

from holiday_tools.bench.load import OWN_PROCESSES, BenchResult
from holiday_tools.devstack import Mode
from holiday_tools.text import format_table

NULL_LABEL = "null saga"


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
        _memory_sizes(results),
        _cold_starts(results),
    ]
    return "\n\n".join("\n".join(section) for section in sections if section)


def _key_columns(results: list[BenchResult]) -> list[tuple[str, Callable[[BenchResult], str]]]:
    """The columns that say which run a row is: its label, its stack's nodes (when sizes differ), its round
    (when there are several), its concurrency."""
    columns: list[tuple[str, Callable[[BenchResult], str]]] = [("run", lambda r: r.label)]
    if len({r.nodes for r in results}) > 1:
        columns.append(("nodes", lambda r: str(r.nodes)))
    if len({r.memory_mb for r in results}) > 1:
        columns.append(("MB", lambda r: str(r.memory_mb)))
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
    return _ratio_table(results, ratio_to_null, "Ratio to the null saga at the same concurrency:")


def _node_ratios(results: list[BenchResult]) -> list[str]:
    title = "Ratio of a cluster to a single node, the same run at the same concurrency:"
    return _ratio_table(results, ratio_to_one_node, title)


def _ratio_table(
    results: list[BenchResult],
    ratio_of: Callable[[BenchResult, list[BenchResult]], dict[str, float] | None],
    title: str,
) -> list[str]:
    """A titled table of each run's ratio (none if no run has one)."""
    rows = [
        (*_key(r, results), f"{ratio['throughput']:.2f}x", f"{ratio['p50_latency']:.2f}x")
        for r in results
        if (ratio := ratio_of(r, results))
    ]
    if not rows:
        return []
    return [title, *format_table((*_header(results), "trips/s", "p50"), rows)]


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
            f"{r.lambda_stats['billed_ms_per_trip']:.1f}",
            f"{r.lambda_stats['usd_per_million_trips']:.2f}",
        )
        for r in measured
    ]
    table = format_table((*_header(measured), "invocations", "GB-s", "billed ms/trip", "$/1M trips"), rows)
    sizes = {r.lambda_stats["memory_mb"] for r in measured}
    at = f"at {sizes.pop()} MB" if len(sizes) == 1 else "at each size"
    return [f"Lambda per 1,000 trips {at} (billed ms and price per trip: arm64 requests and GB-s):", *table]


def _memory_sizes(results: list[BenchResult]) -> list[str]:
    """The saga at each memory size side by side, and the price of each over the first's; one line more if the
    machine could not hold the workers to their sizes' CPU (then only the price differs)."""
    runs = [r for r in results if r.memory_mb is not None and r.lambda_stats and r.label != NULL_LABEL]
    if len({r.memory_mb for r in runs}) < 2:
        return []
    base = runs[0].lambda_stats["usd_per_million_trips"]
    rows = [
        (
            str(r.memory_mb),
            str(r.concurrency),
            f"{r.percentile(50):.1f}",
            f"{r.percentile(99):.1f}",
            f"{r.lambda_stats['billed_ms_per_trip']:.1f}",
            f"{r.lambda_stats['usd_per_million_trips']:.2f}",
            f"{r.lambda_stats['usd_per_million_trips'] / base:.2f}x" if base else "-",
        )
        for r in runs
    ]
    header = ("MB", "at once", "p50 ms", "p99 ms", "billed ms/trip", "$/1M trips", "price")
    table = ["The saga at each memory size (CPU in proportion, as on Lambda):", *format_table(header, rows)]
    unlimited = next((r.lambda_stats["cpu_note"] for r in runs if not r.lambda_stats["cpu_limited"]), None)
    return [*table, *([f"CPU was not limited ({unlimited}): the sizes differ in price only."] if unlimited else [])]


def _cold_starts(results: list[BenchResult]) -> list[str]:
    """Each function's inits (and restores, with SnapStart) since its stack started, from each stack's last run."""
    last: dict[tuple[int, int | None], BenchResult] = {}
    for r in results:
        if r.lambda_stats.get("cold_starts"):
            last[r.nodes, r.memory_mb] = r
    if not last:
        return []
    several = len(last) > 1
    rows = [
        (
            *((str(r.memory_mb),) if several else ()),
            name,
            str(c["inits"]),
            f"{c['init_ms_mean']:.0f}",
            f"{c['init_ms_max']:.0f}",
            str(c["restores"]),
            f"{c['restore_ms_mean']:.0f}" if c["restores"] else "-",
            f"{c['first_ms_mean']:.0f}",
        )
        for r in last.values()
        for name, c in r.lambda_stats["cold_starts"].items()
    ]
    header = (
        *(("MB",) if several else ()),
        *("function", "inits", "init ms", "max ms", "restores", "restore ms", "1st call ms"),
    )
    legend = "init: the handler's import, to ready; restore: SnapStart's; 1st call: a new worker's first."
    return ["Cold starts since the stack started:", *format_table(header, rows), legend]


def json_report(results: list[BenchResult], mode: Mode, *, several_sizes: bool, several_ingresses: bool) -> str:
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
