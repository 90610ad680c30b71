"""The single-node fault scenarios: `services`, `restate` and `dynamodb`, one kind of fault injected at random
moments under load."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from holiday_tools.audit import audit
from holiday_tools.chaos.load import (
    Background,
    Profile,
    ScenarioResult,
    ask,
    discard,
    plan_calls,
    scenario_stack,
)
from holiday_tools.chaos.report import format_result
from holiday_tools.devstack import LocalStack, Mode, Ports, StackError
from holiday_tools.faultproxy import FaultProxy
from holiday_tools.ingress import Ingress


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
        limit = self.profile.max_faults
        while not self._stop.wait(wait) and (limit is None or self.faults < limit):
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


def run_fault_scenario(
    scenario: str, mode: Mode, profile: Profile, project_dir: Path, seed: int = 0, log: Callable[[str], None] = print
) -> ScenarioResult:
    rng = random.Random(f"{seed}-{scenario}-{mode}")
    ports = Ports.free()
    proxy = FaultProxy(f"http://127.0.0.1:{ports.aws}")
    stack = scenario_stack(scenario, mode, project_dir, ports=ports, services_aws_endpoint=proxy.url)
    try:
        stack.start()
        plan = plan_calls(scenario, rng, profile.trips)
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
