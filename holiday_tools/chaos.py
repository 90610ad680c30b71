"""`holiday chaos`: book trips under load while breaking things, then count what came out.

Each scenario starts a fresh local stack (on free ports, beside any `holiday
dev`), sends concurrent reservations that mix every `run_type`, and keeps
injecting one kind of fault until the load is done:

- `services`: SIGKILL what runs the handlers (the services process, or in
  lambda mode the busy function workers), at random moments;
- `restate`: SIGKILL restate-server and start it again on the same data;
- `dynamodb`: make DynamoDB unreachable for a few seconds (the proxy in
  front of the AWS stand-in drops every request), again and again;
- `node`: on a replicated 3-node cluster, SIGKILL one node at a time (the
  one that leads the most partitions, then the one that leads the metadata,
  in turn) and start it again on its data. The load comes in waves, one per
  kill: half a wave is in flight when the node dies, the other half is sent
  while it is down, so each kill's failover (from the kill to the first
  answer to a trip sent after it) is measured. At the end two of the three
  nodes die: reservations must then get no answer and write nothing, and
  complete, once each, when one node comes back;
- `freeze`: on a 3-node cluster, SIGSTOP the node leading the most
  partitions for a while (holiday_tools/freeze.py);
- `rolling`, `rolling1`: upgrade restate-server node by node, on a 3-node
  cluster and on a single node (holiday_tools/rolling.py);
- `upgrade`: deploy a new release of the code halfway through the load,
  beside the running one, and prune the old one after the last answer
  (holiday_tools/upgrade.py).

Callers behave as callers should: each reservation has its own
`idempotency-key`, and a caller that loses its connection asks again with it
(on a cluster: the next node, which also gets a call that one node leaves
unanswered for a few seconds). Afterwards every answer must be the expected
one (success for clean trips, 409 naming the injected step for the others),
and `holiday audit` must find every trip fully booked or fully undone,
nothing duplicated and nothing lost.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Self

import httpx

from holiday.models import RunType, TripRecord
from holiday.storage import DynamoLedger
from holiday_tools.audit import AuditReport, audit, check
from holiday_tools.devstack import LocalStack, Mode, NodePorts, Ports, StackError, http_ok, unrouted, wait_until
from holiday_tools.faultproxy import FaultProxy
from holiday_tools.ingress import Ingress, judge
from holiday_tools.restatectl import RestatectlError
from holiday_tools.text import format_table, plural, wrap

SCENARIOS = ("services", "restate", "dynamodb", "node")
# A rolling upgrade under load (holiday_tools/rolling.py): of a 3-node cluster, and of a single node (its
# downtime). Short names: the report's table stays within 100 columns.
ROLLING = ("rolling", "rolling1")
# A cluster node frozen (SIGSTOP) under load (holiday_tools/freeze.py).
FREEZE = "freeze"
# A new release of the code deployed under load, the old one pruned after it (holiday_tools/upgrade.py).
UPGRADE = "upgrade"
EVERY_SCENARIO = (*SCENARIOS, FREEZE, *ROLLING, UPGRADE)
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


class Injector(Background):
    """Injects one kind of fault at random intervals until stopped; counts the faults."""

    def __init__(
        self, scenario: str, stack: LocalStack, proxy: FaultProxy, profile: Profile, rng: random.Random
    ) -> None:
        self.stack, self.proxy, self.profile, self.rng = stack, proxy, profile, rng
        self.inject: Callable[[], bool] = {
            "services": self._crash_services,
            "restate": self._crash_restate,
            "dynamodb": self._dynamodb_outage,
        }[scenario]
        self.every_s = dict(profile.fault_every_s)[scenario]
        self.faults = 0
        super().__init__()

    def _run(self) -> None:
        # The first fault comes early, so even a short run sees one; a fault that found
        # nothing to break (no busy worker) is tried again soon.
        wait = 0.3
        while not self._stop.wait(wait):
            if self.inject():
                self.faults += 1
                wait = self.rng.uniform(0.5, 1.5) * self.every_s
            else:
                wait = 0.05

    def _crash_services(self) -> bool:
        try:
            self.stack.crash_services()
        except StackError:
            return False  # lambda mode with no worker busy at this instant: nothing to crash
        return True

    def _crash_restate(self) -> bool:
        self.stack.crash_restate()
        return True

    def _dynamodb_outage(self) -> bool:
        fault = self.proxy.drop()
        self._stop.wait(self.profile.outage_s)
        fault.clear()
        return True


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


def run_scenario(
    scenario: str, mode: Mode, profile: Profile, project_dir: Path, seed: int = 0, log: Callable[[str], None] = print
) -> ScenarioResult:
    if scenario == "node":
        return run_node_scenario(mode, profile, project_dir, seed, log)
    if scenario == FREEZE:
        from holiday_tools.freeze import run_freeze_scenario

        return run_freeze_scenario(mode, profile, project_dir, seed, log)
    if scenario == UPGRADE:
        from holiday_tools.upgrade import run_upgrade_scenario

        return run_upgrade_scenario(mode, profile, project_dir, seed, log)
    if scenario in ROLLING:
        from holiday_tools.rolling import ROLLING_NODES, RollingProfile, run_rolling_scenario

        nodes = ROLLING_NODES[scenario]
        return run_rolling_scenario(mode, RollingProfile.of(profile), project_dir, seed, log, nodes)
    rng = random.Random(f"{seed}-{scenario}-{mode}")
    ports = Ports.free()
    proxy = FaultProxy(f"http://127.0.0.1:{ports.aws}")
    stack = scenario_stack(scenario, mode, project_dir, ports=ports, services_aws_endpoint=proxy.url)
    try:
        stack.start()
        plan = [Call(f"{scenario}-{i:04d}", rng.choice(MIX)) for i in range(profile.trips)]
        started = time.monotonic()
        with (
            Ingress(stack.ingress_url, concurrency=profile.concurrency) as api,
            Injector(scenario, stack, proxy, profile, rng) as injector,
            ThreadPoolExecutor(profile.concurrency) as pool,
        ):
            calls = list(pool.map(lambda call: ask([api], call, profile.answer_within_s), plan))
        seconds = time.monotonic() - started
        clean = sum(1 for call in calls if call.run_type is None)
        result = ScenarioResult(scenario, mode, len(calls), injector.faults, seconds, clean, len(calls) - clean)
        result.wrong_answers = [wrong for call in calls if (wrong := call.wrong)]
        ledgers = stack.ledgers()
        result.report = audit(ledgers, threshold_s=0, admin_url=stack.admin_url)
        log(format_result(result))
        return result
    finally:
        discard(stack)
        proxy.close()


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


# --- the node scenario -------------------------------------------------------------------------


class Gate:
    """How many of the planned trips the callers may start: the node scenario lets them go in waves."""

    def __init__(self) -> None:
        self._allowed = 0
        self._started = 0
        self._changed = threading.Condition()

    def open(self, upto: int) -> None:
        with self._changed:
            self._allowed = max(self._allowed, upto)
            self._changed.notify_all()

    def enter(self, index: int) -> None:
        """Wait until trip `index` may start."""
        with self._changed:
            self._changed.wait_for(lambda: index < self._allowed)
            self._started += 1
            self._changed.notify_all()

    def wait_started(self, count: int, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._started >= count, timeout)


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


class NodeKiller(Background):
    """Kills one node at a time, each in the middle of a wave of trips; restarts it, waits for the cluster.

    It ignores `_stop`: the end of the `with` block waits for its kills to end.
    """

    def __init__(self, cluster: ClusterView, profile: Profile, gate: Gate, rng: random.Random) -> None:
        self.cluster, self.profile, self.gate, self.rng = cluster, profile, gate, rng
        self.kills: list[Kill] = []
        self.problems: list[str] = []
        self.planned = min(profile.kills, profile.trips)
        super().__init__()

    def _run(self) -> None:
        trips = self.profile.trips
        wave = trips // self.planned if self.planned else trips
        try:
            for number in range(self.planned):
                # Half a wave in flight when the node dies (each trip at some step of its saga) ...
                half = number * wave + wave // 2
                self.gate.open(half)
                self.gate.wait_started(half, timeout=self.profile.answer_within_s)
                time.sleep(self.rng.uniform(0.3, 1.0))
                node, why = self._victim(number)
                kill = Kill(node, why, self.cluster.kill(node))
                self.kills.append(kill)
                # ... and the other half sent while it is down: the first of them answered ends its failover.
                self.gate.open((number + 1) * wave)
                time.sleep(self.profile.node_down_s)
                restarted = self.cluster.start(node)
                kill.down_s = restarted - kill.at
                self.cluster.wait_whole()
                kill.whole_s = time.monotonic() - restarted
        except (StackError, RestatectlError, httpx.HTTPError, OSError) as err:
            self.problems.append(f"kill {len(self.kills) + 1}: {err}")
            self.cluster.restart_all()
        finally:
            self.gate.open(trips)

    def _victim(self, number: int) -> tuple[str, str]:
        """In turn, the node leading the most partitions and the one leading the metadata; and what it leads."""
        busiest, led, metadata = self.cluster.leaders()
        partitions = f"the most partitions ({led} of {self.cluster.partitions})"
        if metadata == busiest:
            return busiest, f"leader of {partitions} and of the metadata: both on the same node"
        if number % 2 == 1 and metadata is not None:
            return metadata, "leader of the metadata"
        if number % 2 == 1:
            return busiest, f"leader of {partitions} (the metadata had no leader to kill)"
        return busiest, f"leader of {partitions}"


def run_node_scenario(
    mode: Mode, profile: Profile, project_dir: Path, seed: int = 0, log: Callable[[str], None] = print
) -> ScenarioResult:
    """Kill nodes of a 3-node cluster under load, one at a time; then two at once; then audit."""
    scenario = "node"
    rng = random.Random(f"{seed}-{scenario}-{mode}")
    stack = scenario_stack(scenario, mode, project_dir, CLUSTER_NODES)
    cluster = ClusterView(stack)
    try:
        stack.start()
        # Round robin: each caller starts at a node, and asks the next when its node fails it.
        calls = [Call(f"{scenario}-{i:04d}", rng.choice(MIX), first=i % CLUSTER_NODES) for i in range(profile.trips)]
        ingresses = node_ingresses(stack, profile.node_timeout_s, profile.concurrency)
        gate = Gate()
        try:

            def one(index: int) -> Call:
                gate.enter(index)
                return ask(ingresses, calls[index], profile.answer_within_s)

            started = time.monotonic()
            with NodeKiller(cluster, profile, gate, rng) as killer, ThreadPoolExecutor(profile.concurrency) as pool:
                list(pool.map(one, range(len(calls))))
            seconds = time.monotonic() - started
            try:
                two_down: TwoDown | None = _two_down(cluster, ingresses, profile, rng, stack.ledgers())
            except (StackError, RestatectlError, httpx.HTTPError) as err:
                two_down = None
                killer.problems.append(f"two of three down: {err}")
                cluster.restart_all()
                cluster.wait_whole()
        finally:
            for api in ingresses:
                api.close()
        clean = sum(1 for call in calls if call.run_type is None)
        result = ScenarioResult(scenario, mode, len(calls), len(killer.kills), seconds, clean, len(calls) - clean)
        result.wrong_answers = [wrong for call in calls if (wrong := call.wrong)]
        result.kills, result.problems, result.two_down = killer.kills, killer.problems, two_down
        right = [call for call in calls if call.wrong is None]
        for kill in result.kills:
            kill.first_answer_s = min((c.answered - kill.at for c in right if c.answered > kill.at), default=None)
            kill.failover_s = min((c.answered - kill.at for c in right if c.sent > kill.at), default=None)
            kill.after_s = kill.at - started
        result.report = audit(stack.ledgers(), threshold_s=0, admin_url=stack.admin_url)
        log(format_result(result))
        return result
    finally:
        discard(stack)


def _two_down(
    cluster: ClusterView,
    ingresses: Sequence[Ingress],
    profile: Profile,
    rng: random.Random,
    ledgers: Mapping[str, DynamoLedger],
) -> TwoDown:
    """Two of three nodes down: reservations get no answer and write nothing; one node back: each completes once."""
    busiest, _, metadata = cluster.leaders()
    first = metadata or busiest
    second = busiest if busiest != first else next(n for n in cluster.stack.restate_names if n != first)
    killed_at = min(cluster.kill(first), cluster.kill(second))
    failures = list(RunType)
    calls = [
        Call(f"node-two-down-{i}", None if i % 2 == 0 else rng.choice(failures), first=i % CLUSTER_NODES)
        for i in range(profile.two_down_calls)
    ]
    clean = sum(1 for call in calls if call.run_type is None)
    result = TwoDown([first, second], first, len(calls), clean, profile.two_down_wait_s)
    with ThreadPoolExecutor(max(1, len(calls))) as pool:
        futures = [pool.submit(ask, ingresses, call, profile.answer_within_s) for call in calls]
        try:
            time.sleep(profile.two_down_wait_s)
            result.answered_while_down = sum(1 for future in futures if future.done())
            result.rows_while_down = sum(len(ledger.rows(c.trip_id)) for c in calls for ledger in ledgers.values())
        finally:
            restarted = cluster.start(first)  # whatever happened: the calls wait for it
        for future in futures:
            future.result()
    result.met_while_down = Counter(what for call in calls for at, what in call.met if killed_at <= at < restarted)
    result.answered_after_s = max((call.answered for call in calls), default=restarted) - restarted
    result.wrong_answers = [wrong for call in calls if (wrong := call.wrong)]
    cluster.start(second)
    cluster.wait_whole()
    rows = {c.trip_id: {key: ledger.rows(c.trip_id) for key, ledger in ledgers.items()} for c in calls}
    result.report = check(rows, threshold_s=0)
    return result


# --- the report --------------------------------------------------------------------------------

RESULT_COLUMNS = (
    "scenario",
    "mode",
    "trips",
    "faults",
    "time",
    "failover",
    "booked",
    "undone",
    "wrong",
    "violated",
    "stuck",
    "result",
)


def format_result(r: ScenarioResult) -> str:
    """One scenario as it ends: a line, and what went wrong if anything did."""
    if r.scenario in ROLLING:
        from holiday_tools.rolling import RollingResult, format_rolling

        assert isinstance(r, RollingResult)
        return format_rolling(r)
    if r.scenario == FREEZE:
        from holiday_tools.freeze import FreezeResult, format_freeze

        assert isinstance(r, FreezeResult)
        return format_freeze(r)
    if r.scenario == UPGRADE:
        from holiday_tools.upgrade import UpgradeResult, format_upgrade

        assert isinstance(r, UpgradeResult)
        return format_upgrade(r)
    if r.scenario == "node":
        failover = "-" if r.failover_s is None else f"{r.failover_s:.1f} s"
        faults = f"{plural(r.faults, 'node')} killed, longest failover {failover}"
    else:
        faults = f"{plural(r.faults, 'fault')} injected"
    outcome = "ok" if r.ok else "FAILED"
    line = f"{r.scenario} ({r.mode}): {plural(r.trips, 'trip')} in {r.seconds:.1f} s, {faults}: {outcome}"
    details = [_describe_kill(number, kill) for number, kill in enumerate(r.kills, start=1)]
    if r.two_down is not None:
        details.append(_describe_two_down(r.two_down))
    details += problem_lines(r)
    details += [f"wrong answer: {w}" for w in (r.two_down.wrong_answers if r.two_down else [])]
    return "\n".join([line, *wrapped(details)])


def problem_lines(r: ScenarioResult) -> list[str]:
    """What went wrong in a scenario, for its report: problems, then (the first ten) wrong answers and violations."""
    return [
        *r.problems,
        *(f"wrong answer: {w}" for w in r.wrong_answers[:10]),
        *(f"violation: trip {v.trip_id}: [{v.rule}] {v.detail}" for v in r.report.violations[:10]),
    ]


def wrapped(details: Sequence[str]) -> list[str]:
    """A scenario's detail lines as its report shows them: indented under its line, within 100 columns."""
    return [part for d in details for part in wrap(d, "      ", "    ")]


def seconds_text(value: float | None, unknown: str = "none") -> str:
    """`4.8 s`; from 1000 s on, whole seconds (the table stays within 100 columns)."""
    if value is None:
        return unknown
    return f"{value:.0f} s" if value >= 999.95 else f"{value:.1f} s"


def _describe_kill(number: int, kill: Kill) -> str:
    whole = "" if kill.whole_s is None else f", every partition replicated again {kill.whole_s:.1f} s later"
    return (
        f"kill {number} at {kill.after_s:.1f} s: {kill.node}, {kill.why}; failover {seconds_text(kill.failover_s)} "
        f"(first answer to any trip: {seconds_text(kill.first_answer_s)}); back after {kill.down_s:.1f} s{whole}"
    )


def _describe_two_down(t: TwoDown) -> str:
    met = ", ".join(f"{count} {what}" for what, count in t.met_while_down.most_common()) or "nothing"
    written = "no row" if not t.rows_while_down else plural(t.rows_while_down, "row")
    answered = "none" if not t.answered_while_down else str(t.answered_while_down)
    right = t.calls - len(t.wrong_answers)
    after = f"{'all' if right == t.calls else right} {t.calls if right == t.calls else f'of {t.calls}'}"
    settled = f"{t.report.booked} booked and {t.report.undone} undone, each once"
    if t.report.violations:
        settled = plural(len(t.report.violations), "violation")
    return (
        f"two of three down: {' and '.join(t.killed)} killed; {plural(t.calls, 'reservation')} sent to the three "
        f"ingresses: {answered} answered in {t.wait_s:.1f} s (attempts: {met}), {written} written; "
        f"{t.restarted} back: {after} answered right {seconds_text(t.answered_after_s)} later, {settled}: "
        f"{'ok' if t.ok else 'FAILED'}"
    )


def format_results(results: Sequence[ScenarioResult]) -> str:
    """Every scenario side by side, with a total row when there are several."""
    rows = [_row(r.scenario, r.mode, [r]) for r in results]
    if len(results) > 1:
        rows.append(_row("in all", "", results))
    legend = [
        "booked: trips booked / clean trips; undone: trips undone / trips with an injected failure",
        "wrong: wrong answers; violated: invariant violations; stuck: invocations still retrying or paused",
    ]
    if any(r.scenario in ROLLING for r in results):
        legend.append("rolling, rolling1: faults are nodes upgraded; failover: the longest gap between two trips done")
    if any(r.scenario == FREEZE for r in results):
        legend.append("freeze: the fault is a node frozen; failover: the longest gap between two trips done around it")
    if any(r.scenario == UPGRADE for r in results):
        legend.append("upgrade: the fault is a new release deployed under load; the old one is pruned after it")
    if any(r.kills for r in results):
        legend.append("node: faults are nodes killed; failover: the longest from a kill to a trip sent after it done")
    return "\n".join([*format_table(RESULT_COLUMNS, rows, left=2), "", *legend])


def _row(scenario: str, mode: str, results: Sequence[ScenarioResult]) -> tuple[str, ...]:
    """The table's cells for `results`, summed."""
    reports = [r.report for r in results]
    failovers = [f for r in results if (f := r.failover_s) is not None]
    return (
        scenario,
        mode,
        str(sum(r.trips for r in results)),
        str(sum(r.faults for r in results)),
        seconds_text(sum(r.seconds for r in results)),
        seconds_text(max(failovers) if failovers else None, "-"),
        f"{sum(r.booked for r in results)}/{sum(r.clean for r in results)}",
        f"{sum(r.undone for r in results)}/{sum(r.failing for r in results)}",
        str(sum(len(r.wrong_answers) for r in results)),
        str(sum(len(a.violations) for a in reports)),
        str(sum(len(a.stuck_invocations) for a in reports)),
        "ok" if all(r.ok for r in results) else "FAILED",
    )
