"""The `node` scenario: on a replicated 3-node cluster, nodes killed one at a time under load, in waves; then
two of the three at once."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from holiday.models import RunType
from holiday.storage import DynamoLedger
from holiday_tools.audit import audit, check
from holiday_tools.chaos.load import (
    CLUSTER_NODES,
    Background,
    Call,
    ClusterView,
    Kill,
    Profile,
    ScenarioResult,
    TwoDown,
    ask,
    discard,
    node_ingresses,
    plan_calls,
    scenario_stack,
)
from holiday_tools.chaos.report import format_result
from holiday_tools.devstack import Mode, StackError
from holiday_tools.ingress import Ingress
from holiday_tools.restatectl import RestatectlError


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
        calls = plan_calls(scenario, rng, profile.trips, CLUSTER_NODES)
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
