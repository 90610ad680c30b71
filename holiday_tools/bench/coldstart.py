"""Cold starts side by side: fresh workers of each function, one at a time, importing this checkout's code and,
to compare, another checkout's, in turn.

Each worker starts as the local Lambda runtime starts an execution environment (see
`holiday_tools.locallambda`): it may import only what the function's Lambda asset ships, and with a memory
size its CPU is held to that size's share of a core. Its init is the handler's import, to ready. The two
codes take turns, worker by worker, so both meet the machine in the same state; the report gives the median
of each and their ratio.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass
from pathlib import Path

from holiday.functions import FUNCTIONS
from holiday_tools.locallambda.cgroups import CpuLimits
from holiday_tools.locallambda.launch import Launch, Spawner, Worker, assets_of, environment
from holiday_tools.locallambda.spec import Deployed, FunctionSpec
from holiday_tools.locallambda.versions import LATEST
from holiday_tools.text import format_table

THIS = "this checkout"


class ColdStartError(Exception):
    """A worker did not start: the code it was given cannot be imported as a function."""


@dataclass(frozen=True)
class Inits:
    """Each function's init times (ms), by the code that was imported: this checkout's, and another's."""

    times: dict[str, dict[str, list[float]]]  # code -> function -> ms
    cpu_note: str | None  # why CPU was not held to the memory's share, when it was asked and could not be

    def median(self, code: str, function: str) -> float:
        return statistics.median(self.times[code][function])


def measure_inits(count: int, against: Path | None, memory_mb: int, limit_cpu: bool) -> Inits:
    """Start `count` workers of each function for each code in turn, each alone, and time their imports."""
    codes: dict[str, str | None] = {THIS: None}
    if against is not None:
        if not (against / "holiday" / "functions").is_dir():
            raise ColdStartError(f"{against} holds no holiday/functions/: give the root of another checkout")
        codes[str(against)] = str(against.resolve())
    specs = [FunctionSpec(f"holiday-{name}", handler, memory_mb=memory_mb) for name, handler in FUNCTIONS.items()]
    cpu = CpuLimits.start() if limit_cpu else CpuLimits.off()
    launch = Launch(Spawner(cold_starts=1), cpu, assets=assets_of(specs))
    times: dict[str, dict[str, list[float]]] = {code: {s.name: [] for s in specs} for code in codes}
    unlimited = None if cpu.limited or not limit_cpu else cpu.note
    try:
        for _ in range(count):
            for spec in specs:
                for code, code_dir in codes.items():
                    deployed = Deployed(spec, LATEST, code_dir)
                    env = environment(deployed, dict(os.environ), "us-east-1", snapstart=False)
                    worker = Worker.spawn(deployed, env, launch)
                    failed = worker.wait_ready()
                    worker.kill()
                    if failed is not None:
                        raise ColdStartError(f"{spec.name} from {code} did not start: {failed('-')}")
                    times[code][spec.name].append(worker.init_ms)
    finally:
        launch.spawner.stop()
        cpu.close()
    return Inits(times, unlimited)


def format_inits(inits: Inits, memory_mb: int) -> str:
    """A table: each function's median init for each code, and the ratio of this checkout's to the other's."""
    codes = list(inits.times)
    functions = list(inits.times[THIS])
    rows = []
    for name in functions:
        medians = [inits.median(code, name) for code in codes]
        ratio = (f"{medians[0] / medians[1]:.2f}x",) if len(codes) > 1 else ()
        rows.append((name, str(len(inits.times[THIS][name])), *(f"{m:.0f}" for m in medians), *ratio))
    header = ("function", "starts", *(f"{code} ms" for code in codes), *(("ratio",) if len(codes) > 1 else ()))
    lines = [f"Init, the handler's import to ready (median ms, at {memory_mb} MB):", *format_table(header, rows)]
    if inits.cpu_note:
        lines.append(f"CPU was not limited: {inits.cpu_note}.")
    return "\n".join(lines)
