"""`holiday chaos --scenario rolling`: a rehearsal, on loopback, of a rolling replacement of the Restate hosts.

The AWS stack replaces its Restate hosts one at a time: a host stops (systemd stops the container:
SIGTERM), its replacement starts on the same data with the new version of restate-server, and only
once `restate-ready` (holiday_host/restate_ready.sh) exits 0 does CloudFormation go on to the next.
This scenario does the same to a fresh local stack under keyed load:

- the stack starts on the previous version of restate-server (npm's `restate-server-previous`, see
  package.json), as the cluster that a new release finds;
- callers book trips all along the roll, each with its own `idempotency-key`, asking the next node
  when theirs fails them (load's `reserve`);
- each node in turn is stopped gracefully and started again on its data with the pinned version;
  the readiness script, run against THAT node, must exit 0 before the next node is stopped;
- then the load ends, and every answer is judged and the tables audited, as in every chaos scenario.

On a 3-node cluster (`rolling`) the other two nodes keep serving: the longest gap between two trips
done is held to a target. On one node (`rolling1`) the same gap is the downtime of the
replacement, which is expected there: it is reported, not held to the target.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from holiday_host.config import READY_SCRIPT
from holiday_tools.audit import audit
from holiday_tools.chaos.load import (
    MIX,
    Call,
    Profile,
    ScenarioResult,
    ask,
    discard,
    longest_gap,
    node_ingresses,
    scenario_stack,
)
from holiday_tools.devstack import HOST, LocalStack, Mode, StackError, restate_server_binary
from holiday_tools.ingress import Ingress
from holiday_tools.restatectl import RestatectlError, native_package, restatectl_binary
from holiday_tools.text import plural, wrap

# The scenario names: the replicated cluster, and the single node (whose gap is its downtime).
ROLLING_NODES = {"rolling": 3, "rolling1": 1}
PREVIOUS_PACKAGE = "restate-server-previous"  # package.json's npm alias of the previous version


@dataclass(frozen=True)
class RollingProfile:
    """How hard the load pushes during the roll, and how long the roll may wait for a node."""

    trips: int = 200  # at least this many: the load goes on until the roll is done
    concurrency: int = 16  # callers, each booking one trip after another
    pause_s: float = 1.0  # a caller's pause between two trips (keeps the trip count to hundreds)
    answer_within_s: float = 180.0  # a caller gives up after this
    node_timeout_s: float = 5.0  # a caller asks the next node after this long without an answer
    warmup_s: float = 2.0  # load before the first node stops, and after the last is ready
    ready_timeout_s: float = 120.0  # a node that the readiness script does not pass in this long ends the roll
    ready_every_s: float = 0.5  # between two runs of the readiness script
    gap_target_s: float = 10.0  # on a cluster: the longest gap between two trips done must stay under this

    @classmethod
    def of(cls, profile: Profile) -> RollingProfile:
        """`holiday chaos`'s options (trips, concurrency, the callers' patience) on the rolling defaults."""
        return cls(
            trips=profile.trips,
            concurrency=profile.concurrency,
            answer_within_s=profile.answer_within_s,
            node_timeout_s=profile.node_timeout_s,
        )


@dataclass
class NodeRoll:
    """One node of the roll: stopped, started again on its data with the new version, found ready."""

    node: str
    before: str  # the version its admin API reported before the stop
    after: str = "-"  # and after the start
    stopped_at: float = 0.0  # time.monotonic() of the SIGTERM
    stop_s: float | None = None  # SIGTERM until it exited
    down_s: float | None = None  # SIGTERM until it answered its health checks again ("started")
    ready_s: float | None = None  # from its start until the readiness script exited 0
    ready_at: float | None = None  # time.monotonic() of that
    checks: int = 0  # runs of the readiness script
    not_ready: str = ""  # the script's last line before it passed (or when the roll gave up)


@dataclass
class RollingResult(ScenarioResult):
    """A chaos scenario result (trips, answers, audit) with the roll's own figures."""

    nodes: int = 1
    previous: str = ""  # the version the stack started on
    pinned: str = ""  # the version each node is started again on
    steps: list[NodeRoll] = field(default_factory=list)
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time.monotonic(), node, "stop"...)
    gap_s: float | None = None  # the longest time without a trip done, over the roll
    gap_after_s: float = 0.0  # when it began, from the first stop (negative: before it)
    gap_node: str = ""  # the node whose replacement it overlapped most
    gap_target_s: float | None = None  # None: not held to a target (a single node: the gap is its downtime)

    @property
    def failover_s(self) -> float | None:
        """The table's failover column: the longest gap between two trips done."""
        return self.gap_s

    @property
    def upgraded(self) -> bool:
        """Every node replaced, found ready, and running the pinned version."""
        return len(self.steps) == self.nodes and all(
            s.ready_at is not None and s.after == self.pinned for s in self.steps
        )

    @property
    def within_target(self) -> bool:
        return self.gap_target_s is None or (self.gap_s is not None and self.gap_s < self.gap_target_s)

    @property
    def ok(self) -> bool:
        return super().ok and self.upgraded and self.within_target


def previous_restate_server_binary(project_dir: Path) -> Path:
    """The previous version's native binary, which npm nests under its alias `restate-server-previous`."""
    override = os.environ.get("RESTATE_SERVER_PREVIOUS_BIN")
    if override:
        return Path(override)
    package = native_package("restate-server")
    binary = project_dir / "node_modules" / PREVIOUS_PACKAGE / "node_modules" / package / "bin/restate-server"
    if not binary.exists():
        raise StackError(f"the previous restate-server not found at {binary}; run `make install` (it runs `npm ci`)")
    return binary


def restate_server_version(binary: Path) -> str:
    """`1.7.12`: what `<binary> --version` says."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as err:
        raise StackError(f"{binary} --version: {err}") from None
    found = re.search(r"\d+\.\d+\.\d+\S*", done.stdout)
    if done.returncode != 0 or not found:
        raise StackError(f"{binary} --version printed no version: {(done.stdout + done.stderr).strip()[:200]}")
    return found.group()


def running_version(admin_url: str) -> str:
    """The version a running node reports on its admin API ("-" if it does not answer)."""
    try:
        return str(httpx.get(f"{admin_url}/version", timeout=5).json()["version"])
    except (httpx.HTTPError, ValueError, KeyError):
        return "-"


def ready_check(stack: LocalStack, index: int) -> tuple[bool, str]:
    """Run the hosts' readiness script against node `index`; whether it passed, and its last line."""
    node = stack.node_ports[index]
    replication = stack.cluster.replication if stack.cluster else 1
    env = {
        **os.environ,
        "RESTATE_ADMIN": stack.admin_urls[index],
        "RESTATE_INGRESS": stack.ingress_urls[index],
        "RESTATE_FABRIC": f"http://{HOST}:{node.fabric}",
        "RESTATE_NODES": str(stack.nodes),
        "RESTATE_REPLICATION": str(replication),
    }
    try:
        env["RESTATECTL"] = str(restatectl_binary(stack.project_dir))
    except RestatectlError:
        if stack.nodes > 1:
            raise
    try:
        done = subprocess.run(
            ["bash", str(READY_SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
        )
    except subprocess.TimeoutExpired:
        return False, f"{READY_SCRIPT.name} gave no answer in 60 s"
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    return done.returncode == 0, lines[-1] if lines else f"exit {done.returncode}"


class Load:
    """Callers that book trips one after another, each with its own key, until told to stop."""

    def __init__(
        self, ingresses: Sequence[Ingress], profile: RollingProfile, scenario: str, rng: random.Random
    ) -> None:
        self.ingresses, self.profile, self.scenario, self.rng = ingresses, profile, scenario, rng
        self.calls: list[Call] = []
        self._lock = threading.Lock()
        self._enough = threading.Event()
        self._pool = ThreadPoolExecutor(profile.concurrency)
        self._callers = [self._pool.submit(self._caller, n) for n in range(profile.concurrency)]

    def _next(self) -> Call | None:
        with self._lock:
            number = len(self.calls)
            if self._enough.is_set() and number >= self.profile.trips:
                return None
            call = Call(f"{self.scenario}-{number:04d}", self.rng.choice(MIX), first=number % len(self.ingresses))
            self.calls.append(call)
            return call

    def _caller(self, number: int) -> None:
        # Staggered, and each pause a little different: trips done at any moment, not in bursts.
        pauses = random.Random(number)
        time.sleep(self.profile.pause_s * number / self.profile.concurrency)
        while (call := self._next()) is not None:
            ask(self.ingresses, call, self.profile.answer_within_s)
            if not self._enough.is_set():
                time.sleep(pauses.uniform(0.5, 1.5) * self.profile.pause_s)

    def done(self) -> list[float]:
        """When each trip answered right was answered, in order."""
        with self._lock:
            calls = list(self.calls)
        return sorted(c.answered for c in calls if c.answered and c.wrong is None)

    def outlast(self, moment: float) -> None:
        """Go on for `warmup_s`, and until a trip is done after `moment` (the roll's end): the longest gap
        is measured up to that first trip done after the roll."""
        time.sleep(self.profile.warmup_s)
        deadline = time.monotonic() + self.profile.answer_within_s
        while time.monotonic() < deadline and not any(t > moment for t in self.done()):
            time.sleep(0.1)

    def finish(self) -> list[Call]:
        """No new trip once `trips` are sent; every trip sent answered (or given up on)."""
        self._enough.set()
        for caller in self._callers:
            caller.result()
        self._pool.shutdown()
        return self.calls


def run_rolling_scenario(
    mode: Mode,
    profile: RollingProfile,
    project_dir: Path,
    seed: int = 0,
    log: Callable[[str], None] = print,
    nodes: int = 3,
    previous: Path | None = None,
) -> RollingResult:
    """Start a fresh stack of `nodes` nodes on the previous version; under load, replace each node in turn
    with the pinned version, waiting for the readiness script between two; then judge and audit."""
    from holiday_tools.chaos.report import format_result

    scenario = "rolling" if nodes > 1 else "rolling1"
    rng = random.Random(f"{seed}-{scenario}-{mode}")
    old = previous or previous_restate_server_binary(project_dir)
    new = restate_server_binary(project_dir)
    stack = scenario_stack(scenario, mode, project_dir, nodes, restate_binary=old)
    result = RollingResult(scenario, mode, 0, 0, 0.0, 0, 0, nodes=nodes)
    result.previous, result.pinned = restate_server_version(old), restate_server_version(new)
    result.gap_target_s = profile.gap_target_s if nodes > 1 else None
    try:
        stack.start()
        for index, name in enumerate(stack.restate_names):  # the roll starts from a ready cluster
            check = NodeRoll(name, "")
            if not _wait_ready(stack, index, profile, check):
                raise StackError(f"{name} not ready before the roll: {check.not_ready}")
        ingresses = node_ingresses(stack, profile.node_timeout_s, profile.concurrency)
        try:
            started = time.monotonic()
            load = Load(ingresses, profile, scenario, rng)
            try:
                time.sleep(profile.warmup_s)
                _roll(stack, new, profile, result)
                load.outlast(time.monotonic())
            finally:
                calls = load.finish()
            result.seconds = time.monotonic() - started
        finally:
            for api in ingresses:
                api.close()
        stack.restate_binary = new  # what a later start would run
        result.trips, result.faults = len(calls), len(result.steps)
        result.clean = sum(1 for call in calls if call.run_type is None)
        result.failing = result.trips - result.clean
        result.wrong_answers = [wrong for call in calls if (wrong := call.wrong)]
        if result.steps:
            end = result.steps[-1].ready_at or time.monotonic()
            measured = longest_gap(load.done(), result.steps[0].stopped_at, end)
            if measured is not None:
                result.gap_s, result.gap_after_s = measured
                began = result.steps[0].stopped_at + result.gap_after_s
                result.gap_node = _during(result.steps, began, began + result.gap_s)
        result.report = audit(stack.ledgers(), threshold_s=0, admin_url=stack.admin_url)
        log(format_result(result))
        return result
    finally:
        discard(stack)


def _roll(stack: LocalStack, binary: Path, profile: RollingProfile, result: RollingResult) -> None:
    """Each node in turn: stop, start on the new version, wait for the readiness script; the first failure
    ends the roll (the next node is never stopped while one is not ready), noted in `result.problems`."""
    for index, name in enumerate(stack.restate_names):
        step = NodeRoll(name, running_version(stack.admin_urls[index]))
        result.steps.append(step)
        try:
            step.stopped_at = time.monotonic()
            result.events.append((step.stopped_at, name, "stop"))
            stack.stop_node(index)
            step.stop_s = time.monotonic() - step.stopped_at
            start = time.monotonic()
            stack.start_node(index, binary=binary)
            stack.wait_for_node(index, timeout=profile.ready_timeout_s)
            step.down_s = time.monotonic() - step.stopped_at
            result.events.append((time.monotonic(), name, "started"))
            step.after = running_version(stack.admin_urls[index])
            if not _wait_ready(stack, index, profile, step):
                result.problems.append(
                    f"{name} not ready {profile.ready_timeout_s:.0f} s after its start ({step.not_ready}); "
                    "the roll stopped there"
                )
                return
            step.ready_s = (step.ready_at or start) - start
            result.events.append((step.ready_at or start, name, "ready"))
        except (StackError, RestatectlError, OSError) as err:
            result.problems.append(f"{name}: {err}; the roll stopped there")
            return


def _during(steps: Sequence[NodeRoll], began: float, ended: float) -> str:
    """The node whose replacement (from its stop until ready) overlapped the time from `began` to `ended` most."""

    def overlap(step: NodeRoll) -> float:
        ready = step.ready_at if step.ready_at is not None else ended
        return min(ready, ended) - max(step.stopped_at, began)

    return max(steps, key=overlap).node if steps else ""


def _wait_ready(stack: LocalStack, index: int, profile: RollingProfile, step: NodeRoll) -> bool:
    """Run the readiness script against node `index` until it passes (True) or `ready_timeout_s` is over."""
    deadline = time.monotonic() + profile.ready_timeout_s
    while True:
        passed, line = ready_check(stack, index)
        step.checks += 1
        if passed:
            step.ready_at = time.monotonic()
            return True
        step.not_ready = line
        if time.monotonic() > deadline:
            return False
        time.sleep(profile.ready_every_s)


# --- the report --------------------------------------------------------------------------------


def format_rolling(r: RollingResult) -> str:
    """The scenario as it ends: a line, each node's replacement, and what went wrong if anything did."""
    replaced = f"{len([s for s in r.steps if s.ready_at])} of {plural(r.nodes, 'node')} {r.previous} -> {r.pinned}"
    gap = "-" if r.gap_s is None else f"{r.gap_s:.1f} s"
    measure = f"downtime {gap}" if r.nodes == 1 else f"longest gap {gap}"
    outcome = "ok" if r.ok else "FAILED"
    line = f"{r.scenario} ({r.mode}): {plural(r.trips, 'trip')} in {r.seconds:.1f} s, {replaced}, {measure}: {outcome}"
    details = [_describe_step(step) for step in r.steps]
    if r.gap_s is not None:
        after = round(r.gap_after_s, 1)
        when = f"{abs(after):.1f} s {'after' if after >= 0 else 'before'}"  # abs: never "-0.0 s after"
        if r.nodes == 1:
            details.append(f"no trip done for {r.gap_s:.1f} s (the node's downtime), from {when} its stop")
        else:
            details.append(
                f"the longest without a trip done: {r.gap_s:.1f} s, from {when} the first stop, during "
                f"{r.gap_node}'s replacement"
            )
    if not r.within_target:
        details.append(f"the longest gap, {gap}, is not under the {r.gap_target_s:.0f} s target")
    details += r.problems
    details += [f"wrong answer: {w}" for w in r.wrong_answers[:10]]
    details += [f"violation: trip {v.trip_id}: [{v.rule}] {v.detail}" for v in r.report.violations[:10]]
    details += [
        f"still retrying: {s.get('id')} {s.get('target')}: {s.get('last_failure')}"
        for s in r.report.stuck_invocations[:10]
    ]
    details = [part for d in details for part in wrap(d, "      ", "    ")]
    return "\n".join([*wrap(line, "      "), *details])  # a long line's end on a second line


def _describe_step(s: NodeRoll) -> str:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    ready = f"ready {seconds(s.ready_s)} after its start" if s.ready_at else "never ready"
    waited = f" (readiness script run {plural(s.checks, 'time')}; last: {s.not_ready})" if s.not_ready else ""
    return (
        f"{s.node}: {s.before} -> {s.after}; stopped in {seconds(s.stop_s)}, down {seconds(s.down_s)} "
        f"(SIGTERM to started), {ready}{waited}"
    )
