"""The `upgrade` chaos scenario: new code deployed under keyed load, and the old code pruned after it.

A deploy is the fault every stack meets most often. Restate pins each invocation to the deployment it
started on, so a trip whose saga began on the old code must finish on it (the new saga has one more step:
replayed on the new code, its journal would not match), while every trip that starts later runs the new
code. Once nothing runs on the old code, `holiday prune` removes it, and on Lambda its function versions.

On a fresh single-node stack (free ports, beside any `holiday dev`), callers send keyed reservations that
mix every `run_type` at a steady pace, retrying with the same idempotency key (load.reserve). Once half
of them are sent, release 2 (holiday_tools/release.py: one more saga step) is built and deployed beside the
running code, registered as the mode does it for real, with the stack's default removal policy ("retain":
every earlier registration stays); the trips keep flowing. After the last answer: the audit, then a prune
keeping one deployment per service. Reported: which release ran each trip's saga (SQL introspection), the
trips in flight across the deploy, and what the prune removed.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from holiday.functions import FUNCTIONS
from holiday_tools import prune as pruning
from holiday_tools import release
from holiday_tools.admin import AdminError, RestateAdmin
from holiday_tools.audit import audit
from holiday_tools.chaos import UPGRADE
from holiday_tools.chaos.load import (
    Background,
    Call,
    Profile,
    ScenarioResult,
    ask,
    discard,
    plan_calls,
    scenario_stack,
)
from holiday_tools.chaos.report import problem_lines, wrapped
from holiday_tools.devstack import LocalStack, Mode, StackError
from holiday_tools.ingress import Ingress
from holiday_tools.text import plural

SCENARIO = UPGRADE
OLD, NEW = "1", "2"  # the releases: the code the stack started with, and the one deployed under load
LOAD_S = 20.0  # the trips are sent over this long; release 2 is deployed halfway
KEEP = 1  # the prune keeps the newest deployment of each service: the current one
HOLIDAY_SERVICES = frozenset({"trips", "trip", "flights", "cars", "payments"})


@dataclass
class Deploy:
    """Release 2's deploy: when, how long, and the deployments on either side of it."""

    at_s: float  # from the start of the load to the start of the build
    seconds: float  # build, deploy and registration, until Restate sends new invocations to it
    old: list[str]  # the deployments registered before it
    new: list[str]  # the ones it registered
    versions: dict[str, str] = field(default_factory=dict)  # lambda mode: function -> its new version


@dataclass
class UpgradeResult(ScenarioResult):
    """A chaos ScenarioResult (it fits `report.format_results`' table: one fault, the deploy)."""

    deploy: Deploy | None = None
    sagas: dict[str, str] = field(default_factory=dict)  # trip id -> deployment its saga ran on ("": none seen)
    across: list[str] = field(default_factory=list)  # trips sent before the deploy began, answered after it ended
    # Trips whose saga ran on release 1 and completed after release 2 took the sagas over (its deployment of the
    # `trip` object registered): in flight at the switch, by Restate's clock.
    switched: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)  # trips sent after the deploy ended
    pruned: pruning.Outcome | None = None
    doomed: list[str] = field(default_factory=list)  # what the prune had to remove: old deployments of the services
    versions_left: dict[str, list[str]] = field(default_factory=dict)  # lambda mode: function -> versions after

    def release_of(self, trip_id: str) -> str | None:
        """The release that ran the trip's saga, None if its saga is on neither (or was not found)."""
        deployment = self.sagas.get(trip_id, "")
        if self.deploy is None or not deployment:
            return None
        return OLD if deployment in self.deploy.old else NEW if deployment in self.deploy.new else None

    @property
    def per_release(self) -> Counter[str | None]:
        return Counter(self.release_of(trip_id) for trip_id in self.sagas)

    @property
    def broken_rules(self) -> list[str]:
        """The version and prune rules this run broke, in words; empty when every one held."""
        if self.deploy is None:
            return ["no release deployed"]
        broken = []
        unknown = [t for t in self.sagas if self.release_of(t) is None]
        if unknown:
            broken.append(f"{plural(len(unknown), 'saga')} on neither release: {_some(unknown)}")
        idle = [label for label in (OLD, NEW) if not self.per_release[label]]
        if idle:
            broken.append(f"no saga ran on release {' or '.join(idle)}")
        if not self.after:
            broken.append("no trip was sent after the deploy: the load ended first")
        stale = [t for t in self.after if self.release_of(t) != NEW]
        if stale:
            broken.append(f"{plural(len(stale), 'trip')} sent after the deploy not on release {NEW}: {_some(stale)}")
        if self.pruned is not None and sorted(self.pruned.removed) != sorted(self.doomed):
            broken.append(f"the prune removed {_some(self.pruned.removed)}, not {_some(self.doomed)}")
        for function, versions in self.versions_left.items():
            expected = ["$LATEST", self.deploy.versions.get(function, "?")]
            if versions != expected:
                broken.append(f"{function} has versions {', '.join(versions)}, not {' and '.join(expected)}")
        return broken

    @property
    def ok(self) -> bool:
        counts = (self.report.trips, self.report.booked, self.report.undone)
        return (
            not self.wrong_answers
            and self.report.ok
            and counts == (self.trips, self.clean, self.failing)
            and not self.report.stuck_invocations
            and not self.problems
            and self.pruned is not None
            and not self.broken_rules
        )


def _some(items: Sequence[str], shown: int = 5) -> str:
    """The first few of `items`, and how many more: a report line stays readable."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return (", ".join(items[:shown]) or "none") + more


class Deployer(Background):
    """Once `halfway` is set: build release 2 and deploy it beside the running code, timed.

    It ignores `_stop`: the end of the `with` block waits for the deploy to end.
    """

    def __init__(self, stack: LocalStack, halfway: threading.Event, within_s: float) -> None:
        self.stack, self.halfway, self.within_s = stack, halfway, within_s
        self.deployed: release.Deployed | None = None
        self.began = self.ended = 0.0
        self.done = threading.Event()  # the deploy ended, or will not happen
        self.problems: list[str] = []
        super().__init__()

    def _run(self) -> None:
        if not self.halfway.wait(self.within_s):
            self.problems.append(f"half the trips were not sent within {self.within_s:.0f} s: nothing deployed")
            self.done.set()
            return
        self.began = time.monotonic()
        try:
            code = release.build(self.stack.project_dir, self.stack.data_dir / f"release-{NEW}", NEW)
            self.deployed = release.deploy(self.stack, code, NEW)
        except (StackError, AdminError, ValueError, OSError, BotoCoreError, ClientError) as err:
            self.problems.append(f"deploying release {NEW}: {err}")
        finally:
            self.ended = time.monotonic()
            self.done.set()


def run_upgrade_scenario(
    mode: Mode,
    profile: Profile,
    project_dir: Path,
    seed: int = 0,
    log: Callable[[str], None] = print,
    *,
    load_s: float = LOAD_S,
) -> UpgradeResult:
    """Deploy release 2 halfway through keyed load on a single node; audit; prune; say what ran where.

    From `profile`: `trips` (sent at a steady pace over `load_s`), `concurrency`, `answer_within_s`.
    """
    rng = random.Random(f"{seed}-{SCENARIO}-{mode}")
    stack = scenario_stack(SCENARIO, mode, project_dir)
    try:
        stack.start()
        with RestateAdmin(stack.admin_url) as admin:
            old = {d["id"]: {s["name"] for s in d["services"]} for d in admin.deployments()}
            calls = plan_calls(SCENARIO, rng, profile.trips)
            started = time.monotonic()
            deployer = _load(stack, calls, profile, started + load_s)
            clean = sum(1 for call in calls if call.run_type is None)
            seconds = max(call.answered for call in calls) - started if calls else 0.0
            result = UpgradeResult(SCENARIO, mode, len(calls), 0, seconds, clean, len(calls) - clean)
            result.wrong_answers = [wrong for call in calls if (wrong := call.wrong)]
            result.problems = deployer.problems
            result.report = audit(stack.ledgers(), threshold_s=0, admin_url=stack.admin_url)
            result.sagas = {c.trip_id: "" for c in calls} | release.saga_deployments(admin, [c.trip_id for c in calls])
            result.doomed = sorted(d for d, services in old.items() if services & HOLIDAY_SERVICES)
            if deployer.deployed is not None:
                result.faults = 1
                result.deploy = _deploy(deployer, deployer.deployed, sorted(old), started)
                result.across = [c.trip_id for c in calls if c.sent < deployer.began and c.answered > deployer.ended]
                result.after = [c.trip_id for c in calls if c.sent >= deployer.ended]
                result.switched = _finished_on_old(admin, deployer.deployed, result)
            _prune(stack, admin, result)
        log(format_upgrade(result))
        return result
    finally:
        discard(stack)


def _load(stack: LocalStack, calls: Sequence[Call], profile: Profile, until: float) -> Deployer:
    """Send `calls` at a steady pace from now `until` (monotonic), release 2 deployed once half are sent;
    wait for every answer, and for the deploy.

    The last quarter also waits for the deploy to end, so that some trips are sent after it however
    long it takes (on a busy machine a deploy can outlast the second half of the load)."""
    started = time.monotonic()
    pace_s = (until - started) / max(1, len(calls))
    halfway = threading.Event()

    def one(index: int) -> Call:
        time.sleep(max(0.0, started + index * pace_s - time.monotonic()))
        if index == len(calls) // 2:
            halfway.set()
        if index >= len(calls) * 3 // 4:
            deployer.done.wait(profile.answer_within_s)
        return ask([api], calls[index], profile.answer_within_s)

    with (
        Ingress(stack.ingress_url, concurrency=profile.concurrency) as api,
        Deployer(stack, halfway, profile.answer_within_s) as deployer,
        ThreadPoolExecutor(profile.concurrency) as pool,
    ):
        list(pool.map(one, range(len(calls))))
    return deployer


def _deploy(deployer: Deployer, deployed: release.Deployed, old: list[str], started: float) -> Deploy:
    versions = {
        version.name: version.version
        for endpoint in deployed.endpoints.values()
        if (version := pruning.FunctionVersion.of(endpoint)) is not None
    }
    at_s, seconds = deployer.began - started, deployer.ended - deployer.began
    return Deploy(at_s, seconds, old, sorted(deployed.deployments), versions)


def _finished_on_old(admin: RestateAdmin, deployed: release.Deployed, result: UpgradeResult) -> list[str]:
    """The trips whose saga ran on release 1 and completed after release 2's `trip` deployment was registered."""
    [saga_code] = [d for d, services in deployed.deployments.items() if "trip" in services]
    [registered] = admin.query(f"SELECT created_at FROM sys_deployment WHERE id = '{saga_code}'")
    rows = admin.query(
        "SELECT target_service_key AS trip_id FROM sys_invocation WHERE target_service_name = 'trip' "
        f"AND target_handler_name = 'run' AND completed_at > '{registered['created_at']}'"
    )
    return sorted(str(row["trip_id"]) for row in rows if result.release_of(str(row["trip_id"])) == OLD)


def _prune(stack: LocalStack, admin: RestateAdmin, result: UpgradeResult) -> None:
    """Prune as `holiday prune --keep 1` does; then, in lambda mode, list what versions each function has left."""
    versions_api = pruning.Boto3Versions(stack.services_url, local=True)
    try:
        deployments = pruning.plan(pruning.read(admin), KEEP)
        versions = pruning.plan_versions(deployments, versions_api, KEEP)
        result.pruned = pruning.prune(admin, deployments, versions, versions_api, say=lambda _: None)
    except (AdminError, pruning.VersionError) as err:
        result.problems.append(f"prune: {err}")
        return
    result.problems += [f"prune: {problem}" for problem in result.pruned.problems]
    if stack.mode != "lambda":
        return
    client = release.lambda_client(stack)
    for name in FUNCTIONS:
        function = f"holiday-{name}"
        try:
            listed = client.list_versions_by_function(FunctionName=function)["Versions"]
        except (BotoCoreError, ClientError) as err:
            result.problems.append(f"listing the versions of {function}: {err}")
            continue
        result.versions_left[function] = [v["Version"] for v in listed]


def format_upgrade(r: UpgradeResult) -> str:
    """A line, then which release ran which trips and what the prune removed, then what went wrong if anything."""
    d = r.deploy
    what = "no release deployed" if d is None else f"release {NEW} deployed in {d.seconds:.1f} s at {d.at_s:.1f} s"
    outcome = "ok" if r.ok else "FAILED"
    line = f"{r.scenario} ({r.mode}): {plural(r.trips, 'trip')} in {r.seconds:.1f} s, {what}: {outcome}"
    figures = []
    if d is not None:
        per = r.per_release
        across = Counter(r.release_of(t) for t in r.across)
        ran = ", ".join(f"{n} ran on release {label}" for label, n in sorted(across.items(), key=str) if label)
        after = Counter(r.release_of(t) for t in r.after)
        figures += [
            f"sagas on release {OLD}: {per[OLD]} ({len(r.switched)} still running when release {NEW} took over), "
            f"on release {NEW}: {per[NEW]}",
            f"{len(r.across)} in flight across the deploy" + (f" ({ran})" if ran else ""),
            f"{len(r.after)} sent after it, {after[NEW]} on release {NEW}",
        ]
    if r.pruned is not None:
        pruned = f"pruned {plural(len(r.pruned.removed), 'deployment')}"
        if r.mode == "lambda":
            pruned += f" and {plural(len(r.pruned.versions_deleted), 'Lambda version')}"
        figures.append(pruned)
    details = ["; ".join(figures)] if figures else []
    if r.report.stuck_invocations:
        details.append(f"{plural(len(r.report.stuck_invocations), 'invocation')} still retrying or paused")
    rules = r.broken_rules if d is not None else []  # without a deploy, the problems say why
    return "\n".join([line, *wrapped([*details, *rules, *problem_lines(r)])])
