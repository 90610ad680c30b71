"""The `freeze` chaos scenario: a node that stops answering without dying, under load.

A killed node is the easy failure: its peers' connections break at once and the cluster fails over in
two to three seconds. A frozen one (a long GC pause, a stalled disk, a paused VM) keeps its sockets open:
the kernel still accepts connections and queues data, and nothing answers. Peers then wait on it until a
timeout of their own says it is gone: a log append or a leader's campaign until the fabric connection's
HTTP/2 keep-alive gives up ([networking], 1 s + 3 s by default), a metadata write until the metadata
client's does ([metadata-client], 5 s + 5 s, and the client may pick the frozen node again). The nodes run
restate_config (holiday_host/config.py), which shortens both, as on AWS: this scenario sets nothing itself.

On a fresh 3-node cluster (free ports, beside any `holiday dev`), callers send keyed reservations at a
steady pace, each asking the next node with the same idempotency key when one fails it or leaves it
unanswered for `node_timeout_s` (load.reserve). Some seconds in, the node leading the most partitions
gets SIGSTOP; `freeze_s` later, SIGCONT; the load goes on a little, every call is answered, and the audit
runs. Measured: the longest stretch without a completed trip around the freeze (the stall the cluster
imposes), the longest any trip in flight then waited, and how many trips completed while it was frozen.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from holiday_tools.audit import audit
from holiday_tools.chaos import FREEZE
from holiday_tools.chaos.load import (
    CLUSTER_NODES,
    Background,
    Call,
    ClusterView,
    Profile,
    ScenarioResult,
    ask,
    discard,
    longest_gap,
    node_ingresses,
    plan_calls,
    scenario_stack,
)
from holiday_tools.chaos.report import problem_lines, seconds_text, wrapped
from holiday_tools.devstack import Mode, StackError
from holiday_tools.restatectl import RestatectlError
from holiday_tools.text import plural

SCENARIO = FREEZE
FREEZE_S = 20.0  # how long the node stays frozen
MAX_GAP_S = 10.0  # the longest stretch without a completed trip the cluster may impose
WARMUP_S = 10.0  # load before the freeze
AFTER_S = 10.0  # load after it
SAMPLE_S = 0.25  # how often the frozen process's state is read
STOPPED = psutil.STATUS_STOPPED  # its state while frozen


@dataclass
class Freeze:
    """The node frozen, and what the load saw meanwhile."""

    node: str
    why: str  # what it led
    at: float  # time.monotonic() of the SIGSTOP
    after_s: float = 0.0  # from the start of the load to the SIGSTOP
    frozen_s: float = 0.0  # until the SIGCONT
    states: Counter[str] = field(default_factory=Counter)  # the process's state (psutil), read while frozen
    answered_while_frozen: int = 0  # trips answered right between the SIGSTOP and the SIGCONT
    longest_gap_s: float | None = None  # the longest stretch without a right answer that overlaps the freeze
    gap_from_s: float | None = None  # where that stretch began, from the SIGSTOP (negative: before it)
    longest_wait_s: float | None = None  # the longest a trip in flight during the freeze waited for its answer

    @property
    def stopped(self) -> bool:
        """The process really was stopped every time its state was read while frozen."""
        return bool(self.states) and set(self.states) == {STOPPED}


@dataclass
class FreezeResult(ScenarioResult):
    """A chaos ScenarioResult (it fits `report.format_results`' table, the gap in the failover column)."""

    freeze: Freeze | None = None
    max_gap_s: float = MAX_GAP_S

    @property
    def longest_gap_s(self) -> float | None:
        return None if self.freeze is None else self.freeze.longest_gap_s

    @property
    def failover_s(self) -> float | None:
        return self.longest_gap_s

    @property
    def ok(self) -> bool:
        gap = self.longest_gap_s
        counts = (self.report.trips, self.report.booked, self.report.undone)
        return (
            not self.wrong_answers
            and self.report.ok
            and counts == (self.trips, self.clean, self.failing)
            and not self.report.stuck_invocations
            and not self.problems
            and self.freeze is not None
            and self.freeze.stopped
            and gap is not None
            and gap <= self.max_gap_s
        )


def process_state(pid: int) -> str:
    """The state of process `pid` as psutil names it (running, sleeping, stopped...), '?' if unknown."""
    try:
        return str(psutil.Process(pid).status())
    except psutil.Error:
        return "?"


class Freezer(Background):
    """After `warmup_s` of load: SIGSTOP the node leading the most partitions, SIGCONT it `freeze_s` later."""

    def __init__(self, cluster: ClusterView, warmup_s: float, freeze_s: float) -> None:
        self.cluster, self.warmup_s, self.freeze_s = cluster, warmup_s, freeze_s
        self.freeze: Freeze | None = None
        self.resumed = 0.0
        self.problems: list[str] = []
        super().__init__()

    def wait(self) -> None:
        self._thread.join()

    def _run(self) -> None:
        if self._stop.wait(self.warmup_s):
            return
        try:
            busiest, led, metadata = self.cluster.leaders()
        except (StackError, RestatectlError) as err:
            self.problems.append(f"no node to freeze: {err}")
            return
        why = f"leader of the most partitions ({led} of {self.cluster.partitions})"
        if metadata == busiest:
            why += " and of the metadata"
        stack = self.cluster.stack
        process = stack.processes[busiest].popen
        assert process is not None
        freeze = Freeze(busiest, why, time.monotonic())
        os.kill(process.pid, signal.SIGSTOP)
        self.freeze = freeze
        try:
            # SIGSTOP takes effect at once: every read, the first one SAMPLE_S in, should find it stopped.
            while (left := self.freeze_s - (time.monotonic() - freeze.at)) > 0:
                if self._stop.wait(min(SAMPLE_S, left)):
                    break
                freeze.states[process_state(process.pid)] += 1
        finally:
            os.kill(process.pid, signal.SIGCONT)
            self.resumed = time.monotonic()
            freeze.frozen_s = self.resumed - freeze.at


def run_freeze_scenario(
    mode: Mode,
    profile: Profile,
    project_dir: Path,
    seed: int = 0,
    log: Callable[[str], None] = print,
    *,
    freeze_s: float = FREEZE_S,
    max_gap_s: float = MAX_GAP_S,
    warmup_s: float = WARMUP_S,
    after_s: float = AFTER_S,
) -> FreezeResult:
    """Freeze the busiest node of a 3-node cluster under keyed load for `freeze_s`; then audit.

    From `profile`: `trips` (sent at a steady pace over warm-up, freeze and after), `concurrency`,
    `node_timeout_s` (a caller asks the next node after this long without an answer), `answer_within_s`.
    """
    rng = random.Random(f"{seed}-{SCENARIO}-{mode}")
    stack = scenario_stack(SCENARIO, mode, project_dir, CLUSTER_NODES)
    cluster = ClusterView(stack)
    try:
        stack.start()
        calls = plan_calls(SCENARIO, rng, profile.trips, CLUSTER_NODES)
        ingresses = node_ingresses(stack, profile.node_timeout_s, profile.concurrency)
        # The trips go out at a steady pace over the whole load, so that some are always on their way.
        pace_s = (warmup_s + freeze_s + after_s) / max(1, profile.trips)
        try:
            started = time.monotonic()

            def one(index: int) -> Call:
                time.sleep(max(0.0, started + index * pace_s - time.monotonic()))
                return ask(ingresses, calls[index], profile.answer_within_s)

            with Freezer(cluster, warmup_s, freeze_s) as freezer, ThreadPoolExecutor(profile.concurrency) as pool:
                list(pool.map(one, range(len(calls))))
                freezer.wait()  # in case the load ended first (a trip count too small for the time)
            seconds = time.monotonic() - started
        finally:
            for api in ingresses:
                api.close()
        clean = sum(1 for call in calls if call.run_type is None)
        result = FreezeResult(SCENARIO, mode, len(calls), 0, seconds, clean, len(calls) - clean, max_gap_s=max_gap_s)
        result.wrong_answers = [wrong for call in calls if (wrong := call.wrong)]
        result.problems = freezer.problems
        if (freeze := freezer.freeze) is not None:
            result.faults = 1
            result.freeze = _measured(freeze, calls, started, freezer.resumed)
            if not freeze.stopped:
                result.problems.append(f"{freeze.node} was not stopped while frozen: states read {dict(freeze.states)}")
        result.report = audit(stack.ledgers(), threshold_s=0, admin_url=stack.admin_url)
        log(format_freeze(result))
        return result
    finally:
        discard(stack)


def _measured(freeze: Freeze, calls: Sequence[Call], started: float, resumed: float) -> Freeze:
    """`freeze`, with what the load saw around it."""
    right = [call for call in calls if call.wrong is None]
    freeze.after_s = freeze.at - started
    freeze.answered_while_frozen = sum(1 for call in right if freeze.at <= call.answered < resumed)
    gap = longest_gap([call.answered for call in right], freeze.at, resumed)
    if gap is not None:
        freeze.longest_gap_s, freeze.gap_from_s = gap
    waits = [call.answered - call.sent for call in calls if call.sent < resumed and call.answered > freeze.at]
    freeze.longest_wait_s = max(waits, default=None)
    return freeze


def format_freeze(r: FreezeResult) -> str:
    """A line, then what was frozen and what the load saw, then what went wrong if anything did."""
    f = r.freeze
    if f is None:
        what = "no node frozen"
    else:
        what = f"{f.node} frozen {f.frozen_s:.1f} s, longest gap {seconds_text(f.longest_gap_s)}"
    outcome = "ok" if r.ok else "FAILED"
    line = f"{r.scenario} ({r.mode}): {plural(r.trips, 'trip')} in {r.seconds:.1f} s, {what}: {outcome}"
    details = []
    if f is not None:
        reads = sum(f.states.values())
        others = ", ".join(f"{state} {count}" for state, count in f.states.items() if state != STOPPED)
        states = f"stopped in {f.states[STOPPED]} of {plural(reads, 'read')}" + (f" ({others})" if others else "")
        gap_from = ""
        if f.gap_from_s is not None:
            side = "before" if f.gap_from_s < 0 else "after"
            gap_from = f", from {abs(f.gap_from_s):.1f} s {side}" if abs(f.gap_from_s) >= 0.05 else ", from"
            gap_from += " the SIGSTOP"
        details.append(
            f"freeze at {f.after_s:.1f} s: {f.node}, {f.why}; {states} of its state while frozen; "
            f"{plural(f.answered_while_frozen, 'trip')} answered meanwhile; longest gap {seconds_text(f.longest_gap_s)}"
            f"{gap_from} (at most {r.max_gap_s:.0f} s); longest wait for one trip {seconds_text(f.longest_wait_s)}"
        )
    if r.report.stuck_invocations:
        details.append(f"{plural(len(r.report.stuck_invocations), 'invocation')} still retrying or paused")
    return "\n".join([line, *wrapped([*details, *problem_lines(r)])])
