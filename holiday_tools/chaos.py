"""`holiday chaos`: book trips under load while breaking things, then count what came out.

Each scenario starts a fresh local stack (on free ports, beside any `holiday
dev`), sends concurrent reservations that mix every `run_type`, and keeps
injecting one kind of fault until the load is done:

- `services`: SIGKILL what runs the handlers (the services process, or in
  lambda mode the busy function workers), at random moments;
- `restate`: SIGKILL restate-server and start it again on the same data;
- `dynamodb`: make DynamoDB unreachable for a few seconds (the proxy in
  front of the AWS stand-in drops every request), again and again.

Callers behave as callers should: each reservation has its own
`idempotency-key`, and a caller that loses its connection asks again with it.
Afterwards every answer must be the expected one (success for clean trips,
409 naming the injected step for the others), and `holiday audit` must find
every trip fully booked or fully undone, nothing duplicated and nothing lost.
"""

from __future__ import annotations

import random
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from holiday.models import RunType
from holiday_tools.audit import AuditReport, audit
from holiday_tools.devstack import LocalStack, Mode, Ports, StackError
from holiday_tools.faultproxy import FaultProxy
from holiday_tools.text import format_table, plural, wrap

SCENARIOS = ("services", "restate", "dynamodb")
FAILED_STEP = {
    RunType.FAIL_FLIGHTS_RESERVATION: "reserve flight",
    RunType.FAIL_CAR_RENTAL_RESERVATION: "reserve car",
    RunType.FAIL_PAYMENT: "process payment",
    RunType.FAIL_FLIGHTS_CONFIRMATION: "confirm flight",
    RunType.FAIL_CAR_RENTAL_CONFIRMATION: "confirm car",
    RunType.FAIL_NOTIFICATION: "send notification",
}
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

    @property
    def ok(self) -> bool:
        counts = (self.report.trips, self.report.booked, self.report.undone)
        return (
            not self.wrong_answers
            and self.report.ok
            and counts == (self.trips, self.clean, self.failing)
            and not self.report.stuck_invocations
        )


def reserve(client: httpx.Client, trip_id: str, run_type: RunType | None, within_s: float) -> httpx.Response | str:
    """Ask until answered, with one idempotency key; return the answer, or why there was none."""
    body = {"trip_id": trip_id, "run_type": run_type.value if run_type else None}
    headers = {"idempotency-key": f"chaos-{trip_id}"}
    deadline = time.monotonic() + within_s
    last = ""
    while time.monotonic() < deadline:
        try:
            response = client.post("/trips/reserve", json=body, headers=headers)
        except httpx.TransportError as err:
            last = f"{type(err).__name__}: {err}"
        else:
            if response.status_code < 500:
                return response
            last = f"HTTP {response.status_code}: {response.text[:200]}"
        time.sleep(0.2)
    return f"no answer within {within_s:.0f}s; last: {last}"


def judge(trip_id: str, run_type: RunType | None, answer: httpx.Response | str) -> str | None:
    """None if `answer` is what this trip should get, else what is wrong with it."""
    if isinstance(answer, str):
        return f"{trip_id}: {answer}"
    if run_type is None:
        if answer.status_code == 200 and answer.json().get("trip_id") == trip_id:
            return None
    elif answer.status_code == 409 and f"trip {trip_id} failed at {FAILED_STEP[run_type]}" in answer.text:
        return None
    return f"{trip_id} ({run_type or 'clean'}): HTTP {answer.status_code} {answer.text[:200]}"


class Injector:
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
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Injector:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

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


def run_scenario(
    scenario: str, mode: Mode, profile: Profile, project_dir: Path, seed: int = 0, log: Callable[[str], None] = print
) -> ScenarioResult:
    rng = random.Random(f"{seed}-{scenario}-{mode}")
    data_dir = Path(tempfile.mkdtemp(prefix=f"holiday-chaos-{scenario}-"))
    ports = Ports.free()
    proxy = FaultProxy(f"http://127.0.0.1:{ports.aws}")
    stack = LocalStack(project_dir, data_dir, ports, services_aws_endpoint=proxy.url, mode=mode)
    try:
        stack.start()
        plan = [(f"{scenario}-{i:04d}", rng.choice(MIX)) for i in range(profile.trips)]
        started = time.monotonic()
        limits = httpx.Limits(max_connections=profile.concurrency)
        with (
            httpx.Client(base_url=stack.ingress_url, timeout=60, limits=limits) as client,
            Injector(scenario, stack, proxy, profile, rng) as injector,
            ThreadPoolExecutor(profile.concurrency) as pool,
        ):
            answers = list(pool.map(lambda p: reserve(client, p[0], p[1], profile.answer_within_s), plan))
        seconds = time.monotonic() - started
        clean = sum(1 for _, run_type in plan if run_type is None)
        result = ScenarioResult(scenario, mode, len(plan), injector.faults, seconds, clean, len(plan) - clean)
        result.wrong_answers = [w for (t, r), a in zip(plan, answers, strict=True) if (w := judge(t, r, a))]
        ledgers = stack.ledgers()
        result.report = audit(ledgers, threshold_s=0, admin_url=stack.admin_url)
        log(format_result(result))
        return result
    finally:
        stack.stop()
        proxy.close()
        shutil.rmtree(data_dir, ignore_errors=True)


RESULT_COLUMNS = (
    "scenario",
    "mode",
    "trips",
    "faults",
    "time",
    "booked",
    "undone",
    "wrong",
    "violations",
    "retrying",
    "result",
)


def format_result(r: ScenarioResult) -> str:
    """One scenario as it ends: a line, and what went wrong if anything did."""
    line = (
        f"{r.scenario} ({r.mode}): {plural(r.trips, 'trip')} in {r.seconds:.1f} s, "
        f"{plural(r.faults, 'fault')} injected: {'ok' if r.ok else 'FAILED'}"
    )
    details = [f"wrong answer: {w}" for w in r.wrong_answers[:10]]
    details += [f"violation: trip {v.trip_id}: [{v.rule}] {v.detail}" for v in r.report.violations[:10]]
    return "\n".join([line, *(part for d in details for part in wrap(d, "      ", "    "))])


def format_results(results: Sequence[ScenarioResult]) -> str:
    """Every scenario side by side, with a total row when there are several."""
    rows = [_row(r.scenario, r.mode, [r]) for r in results]
    if len(results) > 1:
        rows.append(_row("in all", "", results))
    legend = [
        "booked: trips booked / clean trips; undone: trips undone / trips with an injected failure",
        "wrong: wrong answers; retrying: invocations still retrying or paused",
    ]
    return "\n".join([*format_table(RESULT_COLUMNS, rows, left=2), "", *legend])


def _row(scenario: str, mode: str, results: Sequence[ScenarioResult]) -> tuple[str, ...]:
    """The table's cells for `results`, summed."""
    reports = [r.report for r in results]
    return (
        scenario,
        mode,
        str(sum(r.trips for r in results)),
        str(sum(r.faults for r in results)),
        f"{sum(r.seconds for r in results):.1f} s",
        f"{sum(a.booked for a in reports)}/{sum(r.clean for r in results)}",
        f"{sum(a.undone for a in reports)}/{sum(r.failing for r in results)}",
        str(sum(len(r.wrong_answers) for r in results)),
        str(sum(len(a.violations) for a in reports)),
        str(sum(len(a.stuck_invocations) for a in reports)),
        "ok" if all(r.ok for r in results) else "FAILED",
    )
