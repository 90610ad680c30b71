"""The chaos scenarios' load: the profile, the callers (ask, reserve), their results, the scenario's stack, a
background thread for the faults, and a cluster's view of itself (leaders, killing and restarting nodes)."""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Self

import httpx

from holiday.models import RunType, TripRecord
from holiday_tools.audit import AuditReport
from holiday_tools.devstack import LocalStack, Mode, NodePorts, Ports, StackError, http_ok, unrouted, wait_until
from holiday_tools.ingress import Ingress, judge
from holiday_tools.restatectl import RestatectlError

CLUSTER_NODES = 3  # the node scenario's cluster
# Half the trips are clean, the other half spread over the six failures.
MIX: list[RunType | None] = [*([None] * 6), *RunType]


@dataclass(frozen=True)
class Profile:
    trips: int = 200
    concurrency: int = 16
    # On average, between two faults. restate-server needs a few seconds after a restart
    # to make progress again (more in lambda mode, where a trip is a dozen invocations):
    # killing it every second would only prove that nothing moves while it is down.
    fault_every_s: tuple[tuple[str, float], ...] = (("services", 1.5), ("restate", 4.0), ("dynamodb", 3.0))
    outage_s: float = 3.0  # how long DynamoDB stays unreachable
    # At most this many faults (None: no limit). Faults come every few seconds while the load lasts, so on a
    # busy machine a slower load meets more of them, and each slows it further: a bounded run stays bounded.
    max_faults: int | None = None
    answer_within_s: float = 180.0  # a caller gives up after this
    # The node scenario.
    kills: int = 6  # nodes killed, one at a time
    node_down_s: float = 3.0  # how long a killed node stays down
    node_timeout_s: float = 5.0  # a caller asks the next node after this long without an answer
    two_down_calls: int = 4  # reservations sent while two of the three nodes are down
    two_down_wait_s: float = 5.0  # none of them may be answered in this long


@dataclass
class Kill:
    """One node killed in the node scenario, and how the cluster took it."""

    node: str
    why: str  # what it led
    at: float  # time.monotonic() of the SIGKILL
    after_s: float = 0.0  # from the start of the load to the SIGKILL
    down_s: float = 0.0  # until it was started again
    whole_s: float | None = None  # from its restart until the cluster was whole again
    first_answer_s: float | None = None  # from the kill to the first right answer, to any trip
    failover_s: float | None = None  # from the kill to the first right answer to a trip sent after it


@dataclass
class TwoDown:
    """The node scenario's end: two of three nodes down, a few reservations, one node back."""

    killed: list[str]
    restarted: str
    calls: int
    clean: int
    wait_s: float
    answered_while_down: int = 0
    rows_while_down: int = 0
    met_while_down: Counter[str] = field(default_factory=Counter)  # what the callers met meanwhile
    answered_after_s: float | None = None  # from the restart to the last answer
    wrong_answers: list[str] = field(default_factory=list)
    report: AuditReport = field(default_factory=AuditReport)  # these trips' rows only

    @property
    def failing(self) -> int:
        return self.calls - self.clean

    @property
    def ok(self) -> bool:
        counts = (self.report.trips, self.report.booked, self.report.undone)
        return (
            self.answered_while_down == 0
            and self.rows_while_down == 0
            and not self.wrong_answers
            and self.report.ok
            and counts == (self.calls, self.clean, self.failing)
        )


@dataclass
class ScenarioResult:
    scenario: str
    mode: Mode
    trips: int
    faults: int
    seconds: float
    clean: int
    failing: int
    wrong_answers: list[str] = field(default_factory=list)
    report: AuditReport = field(default_factory=AuditReport)
    kills: list[Kill] = field(default_factory=list)  # the node scenario's
    two_down: TwoDown | None = None  # the node scenario's
    problems: list[str] = field(default_factory=list)  # what kept a fault from being injected as planned

    @property
    def booked(self) -> int:
        """Trips of the load booked (the audit counts the node scenario's last few trips too)."""
        return self.report.booked - (self.two_down.report.booked if self.two_down else 0)

    @property
    def undone(self) -> int:
        return self.report.undone - (self.two_down.report.undone if self.two_down else 0)

    @property
    def failover_s(self) -> float | None:
        """The longest failover of the node scenario, None if no kill was measured."""
        return max((k.failover_s for k in self.kills if k.failover_s is not None), default=None)

    @property
    def ok(self) -> bool:
        extra = self.two_down
        expected = (self.trips, self.clean, self.failing)
        if extra is not None:
            expected = (self.trips + extra.calls, self.clean + extra.clean, self.failing + extra.failing)
        counts = (self.report.trips, self.report.booked, self.report.undone)
        return (
            not self.wrong_answers
            and self.report.ok
            and counts == expected
            and not self.report.stuck_invocations
            and not self.problems
            and all(k.failover_s is not None for k in self.kills)
            and (extra is None or extra.ok)
        )


@dataclass
class Call:
    """One reservation: what it asked for, when, and what it got."""

    trip_id: str
    run_type: RunType | None
    first: int = 0  # the node asked first, in a cluster
    sent: float = 0.0  # time.monotonic() of the first attempt
    answered: float = 0.0  # of the answer, or of giving up
    answer: httpx.Response | str = ""
    met: list[tuple[float, str]] = field(default_factory=list)  # when, and what, an attempt met instead of an answer
    wrong: str | None = "not answered yet"  # None once the answer is judged right; else what is wrong with it


def plan_calls(scenario: str, rng: random.Random, trips: int, nodes: int = 1) -> list[Call]:
    """A scenario's trips: ids that name it, run_types drawn from `MIX`, and in a cluster of `nodes` each
    caller starting at the next node in turn (it asks the next one when its node fails it)."""
    return [Call(f"{scenario}-{i:04d}", rng.choice(MIX), first=i % nodes) for i in range(trips)]


def ask(ingresses: Sequence[Ingress], call: Call, within_s: float) -> Call:
    """Make the call (asking node after node, see `reserve`), then judge its answer, reading the trip's record
    if it was refused."""
    call.sent = time.monotonic()
    call.answer = reserve(ingresses, call.trip_id, call.run_type, within_s, call.first, call.met)
    call.answered = time.monotonic()
    call.wrong = judge(call.trip_id, call.run_type, call.answer, lambda trip_id: record(ingresses, trip_id, within_s))
    return call


def record(ingresses: Sequence[Ingress], trip_id: str, within_s: float) -> TripRecord | None:
    """The trip's record from the first node that gives it, asking again for `within_s`; None if none does."""
    deadline = time.monotonic() + within_s
    attempt = 0
    while time.monotonic() < deadline:
        api = ingresses[attempt % len(ingresses)]
        attempt += 1
        try:
            response = api.status(trip_id)
        except httpx.TransportError:
            pass
        else:
            if response.status_code == 200:
                return TripRecord.model_validate(response.json())
            if response.status_code == 404 and not unrouted(response):
                return None
        if attempt % len(ingresses) == 0:
            time.sleep(0.2)
    return None


def reserve(
    ingresses: Sequence[Ingress],
    trip_id: str,
    run_type: RunType | None,
    within_s: float,
    first: int = 0,
    met: list[tuple[float, str]] | None = None,
) -> httpx.Response | str:
    """Ask until answered, with one idempotency key; return the answer, or why there was none.

    With several ingresses (the nodes of a cluster) the first ask goes to `first`; a node that refuses,
    drops the connection, times out, answers 5xx or does not know the services (`unrouted`) is
    followed by the next one, with the same key. What each unanswered attempt met goes to `met`.
    """
    deadline = time.monotonic() + within_s
    last = ""
    attempt = 0
    while time.monotonic() < deadline:
        api = ingresses[(first + attempt) % len(ingresses)]
        attempt += 1
        try:
            response = api.reserve(trip_id, run_type, idempotency_key=f"chaos-{trip_id}")
        except httpx.TransportError as err:
            last = f"{type(err).__name__}: {err}"
            what = _MET.get(type(err), type(err).__name__)
        else:
            not_ready = unrouted(response)
            if response.status_code < 500 and not not_ready:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
            what = "not ready (404)" if not_ready else f"HTTP {response.status_code}"
        if met is not None:
            met.append((time.monotonic(), what))
        if attempt % len(ingresses) == 0:  # every node asked once more: pause before the next round
            time.sleep(0.2)
    return f"no answer within {within_s:.0f}s; last: {last}"


# What an attempt without an answer met, in words.
_MET: dict[type[Exception], str] = {
    httpx.ConnectError: "refused",
    httpx.ConnectTimeout: "timed out",
    httpx.ReadTimeout: "timed out",
    httpx.WriteTimeout: "timed out",
    httpx.PoolTimeout: "timed out",
    httpx.RemoteProtocolError: "dropped",
    httpx.ReadError: "dropped",
    httpx.WriteError: "dropped",
}


class Background:
    """A thread that runs `_run` while in a `with` block; at its end `_stop` is set, and the thread awaited."""

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError


def scenario_stack(
    scenario: str, mode: Mode, project_dir: Path, nodes: int = 1, ports: Ports | None = None, **options: Any
) -> LocalStack:
    """A fresh local stack for `scenario` (not started yet), on free ports (or `ports`), in a temporary
    folder that `discard` removes; with `nodes` > 1, a cluster."""
    data_dir = Path(tempfile.mkdtemp(prefix=f"holiday-chaos-{scenario}-"))
    ports = ports or Ports.free()
    node_ports = NodePorts.free(ports, nodes) if nodes > 1 else []
    return LocalStack(project_dir, data_dir, ports, mode=mode, nodes=nodes, node_ports=node_ports, **options)


def discard(stack: LocalStack) -> None:
    """Stop a scenario's stack and remove its folder."""
    stack.stop()
    shutil.rmtree(stack.data_dir, ignore_errors=True)


def node_ingresses(stack: LocalStack, node_timeout_s: float, concurrency: int) -> list[Ingress]:
    """Each node's ingress: a caller asks the next node after `node_timeout_s` without an answer."""
    timeout = httpx.Timeout(node_timeout_s, connect=1.0)
    return [Ingress(url, timeout=timeout, concurrency=concurrency) for url in stack.ingress_urls]


def longest_gap(done: Sequence[float], start: float, end: float) -> tuple[float, float] | None:
    """The longest time without a trip done that overlaps [`start`, `end`] (a roll, a freeze), from the last trip
    done before it to the first after, and when it began, from `start` (negative: before it); None if no trip
    was done after `end` (the load did not outlast what it measures, so the gap has no end)."""
    before = [t for t in done if t <= start]
    inside = [t for t in done if start < t <= end]
    after = [t for t in done if t > end]
    if not after:
        return None
    points = [before[-1] if before else start, *inside, after[0]]
    gap, began = max((b - a, a) for a, b in pairwise(points))
    return gap, began - start


class ClusterView:
    """The node scenario's view of the stack: which node leads what, and killing and restarting nodes."""

    def __init__(self, stack: LocalStack) -> None:
        self.stack = stack
        self.partitions = stack.cluster.partitions if stack.cluster else 1
        self.down: set[int] = set()

    def leaders(self) -> tuple[str, int, str | None]:
        """The node leading the most partitions, how many it leads, and the metadata's leader (None: none yet).

        Asked again for a few seconds while there is no answer (an election, say).
        """
        ctl = self.stack.restatectl
        deadline = time.monotonic() + 20
        while True:
            try:
                partitions = ctl.partition_leaders().most_common(1)
                metadata = ctl.metadata_leader()
            except RestatectlError:
                if time.monotonic() > deadline:
                    raise
            else:
                if (partitions and metadata) or time.monotonic() > deadline:
                    if not partitions:
                        raise StackError("restatectl names no partition leader")
                    return partitions[0][0], partitions[0][1], metadata
            time.sleep(0.5)

    def index(self, node: str) -> int:
        return self.stack.restate_names.index(node)

    def kill(self, node: str) -> float:
        index = self.index(node)
        self.down.add(index)
        self.stack.kill_node(index)
        return time.monotonic()

    def start(self, node: str) -> float:
        """Start a killed node again, on its data; when that was."""
        index = self.index(node)
        self.stack.start_node(index)
        self.down.discard(index)
        return time.monotonic()

    def wait_whole(self, timeout: float = 90.0) -> None:
        """Until every node answers its health checks and each partition has a leader and a follower caught up."""
        for admin, ingress, name in zip(
            self.stack.admin_urls, self.stack.ingress_urls, self.stack.restate_names, strict=True
        ):
            wait_until(http_ok(f"{admin}/health"), f"{name} admin on {admin}", timeout)
            wait_until(http_ok(f"{ingress}/restate/health"), f"{name} ingress on {ingress}", timeout)
        wait_until(self._whole, "every partition led, with a follower caught up", timeout, interval=0.5)

    def _whole(self) -> bool:
        ctl = self.stack.restatectl
        try:
            nodes = ctl.sql("SELECT gen_node_id, state FROM nodes")
            live = {row["gen_node_id"] for row in nodes if row["state"] == "alive"}
            if len(live) < self.stack.nodes:
                return False
            rows = ctl.sql("SELECT partition_id, gen_node_id, effective_mode, replay_status FROM partition_state")
        except RestatectlError:
            return False
        for partition in range(self.partitions):
            mine = [r for r in rows if r["partition_id"] == partition and r["gen_node_id"] in live]
            leaders = [r for r in mine if r["effective_mode"] == "Leader"]
            active = [r for r in mine if r["replay_status"] == "active"]
            if len(leaders) != 1 or len(active) < 2:
                return False
        return True

    def restart_all(self) -> None:
        """Every killed node started again (after a failure midway)."""
        for index in sorted(self.down):
            self.start(self.stack.restate_names[index])
