"""What one trip uses, in the units each service bills: the Lambda measurement, the table writes and the
announcement, Restate Cloud's actions, the Step Functions sample's states, and the self-hosted stacks' parts.

Counts are derived from code and definitions kept here as data, so a test can recount them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from holiday.functions import FUNCTIONS

# `holiday bench --mode lambda --dates` on a 2-core x86_64 machine, as its JSON's `lambda` object (the four
# functions): one trip at a time, 100 trips, every answer right. Each request names its departure, as a booking
# form does; a request that leaves its dates out (the README's `{}`) costs one more invocation of trips, for the
# durable clock read. The local runtime counts handler time only, not a cold start's import (see
# docs/performance.md).
RECORDED_COMMAND = (
    ".venv/bin/holiday bench --mode lambda --dates --count 100 --concurrency 1 --no-baseline --warmup 10 --json"
)
RECORDED_ON = "2026-12-07"
RECORDED: dict[str, Any] = {
    "memory_mb": 1024,
    "functions": {
        "holiday-trips": {"invocations_per_1000_trips": 6660.0, "gb_seconds_per_1000_trips": 17.71},
        "holiday-flights": {"invocations_per_1000_trips": 2000.0, "gb_seconds_per_1000_trips": 21.9},
        "holiday-cars": {"invocations_per_1000_trips": 2000.0, "gb_seconds_per_1000_trips": 23.4},
        "holiday-payments": {"invocations_per_1000_trips": 1000.0, "gb_seconds_per_1000_trips": 7.82},
    },
}

# A clean trip's table writes, from holiday/booking.py, holiday/payments.py and holiday/storage.py: flights and
# cars each insert the booking `pending` (a conditional PutItem) and confirm it (a conditional UpdateItem);
# payments inserts the charge (a conditional PutItem). Rows are well under 1 KB, so each write is one write
# request unit, conditional or not. The trip's record lives in Restate's state, not in a table.
TABLE_WRITES_PER_TRIP = {"flights": 2, "cars": 2, "payments": 1}
# holiday/trips.py publishes the trip's outcome once, as the saga's last step.
SNS_PUBLISHES_PER_TRIP = 1

# The Step Functions functions that do what ours do: one table write each, no saga logic.
LEAF_FUNCTIONS = ("flights", "cars", "payments")


@dataclass(frozen=True)
class FunctionUsage:
    """One function's invocations and GB-seconds per trip."""

    invocations: float
    gb_seconds: float


@dataclass(frozen=True)
class LambdaUsage:
    """The four functions' use per trip at `memory_mb`, and where the figures come from."""

    memory_mb: int
    functions: dict[str, FunctionUsage]
    source: str

    @property
    def invocations(self) -> float:
        return sum(f.invocations for f in self.functions.values())

    @property
    def gb_seconds(self) -> float:
        return sum(f.gb_seconds for f in self.functions.values())

    def at_memory(self, memory_mb: int) -> LambdaUsage:
        """The same billed durations at another memory size: GB-seconds scale with it. Only an approximation:
        Lambda gives CPU in proportion to memory, so a run at less memory may take longer."""
        factor = memory_mb / self.memory_mb
        scaled = {n: FunctionUsage(f.invocations, f.gb_seconds * factor) for n, f in self.functions.items()}
        return LambdaUsage(memory_mb, scaled, self.source)

    def billed_ms(self, names: tuple[str, ...]) -> float:
        """The mean billed milliseconds of one invocation of the functions `names`."""
        invocations = sum(self.functions[n].invocations for n in names)
        gb_seconds = sum(self.functions[n].gb_seconds for n in names)
        return gb_seconds / (self.memory_mb / 1024) / invocations * 1000


def recorded() -> LambdaUsage:
    """The measurement kept above."""
    return lambda_usage(RECORDED, f"a recorded run of {RECORDED_COMMAND} ({RECORDED_ON})")


def read_bench(path: Path, concurrency: int | None) -> LambdaUsage:
    """The Lambda figures of a `holiday bench --mode lambda --json` output: its first run of the saga, or the one
    at `concurrency`. ValueError says what is missing."""
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        runs = report["runs"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not the JSON of `holiday bench --json` ({err})") from err
    # A run with Lambda figures for the saga's functions: not a null saga's run, not a running ingress's.
    measured = [r for r in runs if _saga_figures(r.get("lambda"))]
    if not measured:
        raise ValueError(f"{path} has no Lambda figures of the saga: run `holiday bench --mode lambda --json`")
    if concurrency is not None:
        measured = [r for r in measured if r.get("concurrency") == concurrency]
        if not measured:
            levels = sorted({r.get("concurrency") for r in runs if _saga_figures(r.get("lambda"))})
            raise ValueError(f"{path} has no Lambda run at concurrency {concurrency} (it has {levels})")
    run = measured[0]
    return lambda_usage(run["lambda"], f"{path} (its run of {run['count']} trips, {run['concurrency']} at once)")


def _saga_figures(stats: Any) -> bool:
    """Lambda figures in which the trips function was invoked."""
    if not isinstance(stats, dict):
        return False
    trips = _function(stats.get("functions", {}), "trips")
    return trips is not None and trips.get("invocations_per_1000_trips", 0) > 0


def _function(functions: dict[str, Any], name: str) -> dict[str, Any] | None:
    """The figures of function `name`, which the local runtime names `holiday-<name>`."""
    return next((f for key, f in functions.items() if key == name or key.endswith(f"-{name}")), None)


def lambda_usage(stats: dict[str, Any], source: str) -> LambdaUsage:
    """The four functions' use per trip, from a bench report's `lambda` object."""
    functions = {}
    for name in FUNCTIONS:
        figures = _function(stats["functions"], name)
        if figures is None:
            raise ValueError(f"the Lambda figures name no {name} function ({', '.join(stats['functions'])})")
        functions[name] = FunctionUsage(
            figures["invocations_per_1000_trips"] / 1000, figures["gb_seconds_per_1000_trips"] / 1000
        )
    return LambdaUsage(int(stats["memory_mb"]), functions, source)


# --- Restate Cloud ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Invocation:
    """One invocation of a clean trip, with its journaled steps (`ctx.run`) and the calls it makes."""

    handler: str
    runs: int = 0
    calls: int = 0

    @property
    def actions(self) -> int:
        """Restate Cloud counts an invocation, its completion, each step and each call as an action; state
        reads and writes are free."""
        return 2 + self.runs + self.calls


# holiday/trips.py: `trips.reserve` calls `trip.run`, which calls the five booking handlers (two reserves, the
# payment, two confirms). A request without dates adds a step to `trips.reserve`: the clock (`ctx.time()`).
CLEAN_TRIP_INVOCATIONS = (
    Invocation("trips.reserve", calls=1),
    Invocation("trip.run", calls=5),
    Invocation("flights.reserve"),
    Invocation("cars.reserve"),
    Invocation("payments.process"),
    Invocation("flights.confirm"),
    Invocation("cars.confirm"),
)


def restate_actions_per_trip() -> int:
    return sum(i.actions for i in CLEAN_TRIP_INVOCATIONS)


# --- AWS Step Functions -------------------------------------------------------------------------------------
SAGA_SAMPLE_URL = "https://github.com/aws-samples/step-functions-workflows-collection/tree/main/saga-pattern-cdk"
LAMBDA_TASK = "arn:aws:states:::lambda:invoke"
SNS_TASK = "arn:aws:states:::sns:publish"


def _task(resource: str, then: str, on_error: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, "Next": then}
    if on_error:
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": on_error}]
    return state


# The travel booking saga of AWS's sample (saga-pattern-cdk/resources/statemachine.asl.json), its states' types,
# resources, transitions and catches; retries and parameters left out. Every step is a Lambda task, the
# announcements SNS publishes.
SAGA_STATE_MACHINE: dict[str, Any] = {
    "StartAt": "ReserveFlight",
    "States": {
        "ReserveFlight": _task(LAMBDA_TASK, "ReserveCarRental", "CancelFlightReservation"),
        "ReserveCarRental": _task(LAMBDA_TASK, "ProcessPayment", "CancelRentalReservation"),
        "ProcessPayment": _task(LAMBDA_TASK, "ConfirmFlight", "RefundPayment"),
        "ConfirmFlight": _task(LAMBDA_TASK, "ConfirmCarRental", "RefundPayment"),
        "ConfirmCarRental": _task(LAMBDA_TASK, "SendingSMSSuccess", "RefundPayment"),
        "SendingSMSSuccess": _task(SNS_TASK, "Reservation Successful!"),
        "Reservation Successful!": {"Type": "Succeed"},
        "RefundPayment": _task(LAMBDA_TASK, "CancelRentalReservation"),
        "CancelRentalReservation": _task(LAMBDA_TASK, "CancelFlightReservation"),
        "CancelFlightReservation": _task(LAMBDA_TASK, "SendingSMSFailure"),
        "SendingSMSFailure": _task(SNS_TASK, "Reservation Failed"),
        "Reservation Failed": {"Type": "Fail"},
    },
}


@dataclass(frozen=True)
class Execution:
    """One execution of a state machine: the states it enters, in order."""

    states: tuple[str, ...]
    definition: dict[str, Any]

    @property
    def transitions(self) -> int:
        """Step Functions counts a transition for each state executed (a retry would be one more)."""
        return len(self.states)

    def tasks(self, resource: str) -> int:
        return sum(self.definition["States"][s].get("Resource") == resource for s in self.states)


def execute(definition: dict[str, Any], failing: str | None = None) -> Execution:
    """The states an execution enters when every task succeeds but `failing`, whose first catch is taken."""
    states = definition["States"]
    path, name = [], definition["StartAt"]
    while True:
        path.append(name)
        state = states[name]
        if state["Type"] in ("Succeed", "Fail"):
            return Execution(tuple(path), definition)
        name = state["Catch"][0]["Next"] if name == failing else state["Next"]


# Express bills memory in 64 MB steps (50 MB plus the definition and the execution's data: 64 MB here) and
# duration rounded up to 100 ms.
EXPRESS_MEMORY_MB = 64
EXPRESS_STEP_MS = 100


def express_billed_ms(duration_ms: float) -> int:
    return max(1, math.ceil(duration_ms / EXPRESS_STEP_MS)) * EXPRESS_STEP_MS


# --- the self-hosted stacks ---------------------------------------------------------------------------------
# RestateStack's defaults: infra/settings.py (DEFAULT_INSTANCE_TYPE) and infra/constructs/restate_host.py (each
# node's data volume and root volume, gp3). The unit tests check them against the CDK app's sources.
INSTANCE_TYPE = "t4g.small"
DATA_VOLUME_GB = 20
ROOT_VOLUME_GB = 8


@dataclass(frozen=True)
class FixedItem:
    """A part of a stack billed by the hour or the month whatever the trips: `quantity` of `price`."""

    what: str
    quantity: float
    price: str  # a key of PRICES
    hourly: bool


def self_hosted(nodes: int) -> tuple[FixedItem, ...]:
    """RestateStack's billed parts with one node or a cluster. One node: the instance's own public address and
    the node's Elastic IP. A cluster: each instance's public address, and a network load balancer with an
    address in each of the three zones."""
    addresses = 2 if nodes == 1 else 2 * nodes
    items = [
        FixedItem(f"{nodes} x {INSTANCE_TYPE}", nodes, "ec2_t4g_small", hourly=True),
        FixedItem(
            f"{nodes} x {DATA_VOLUME_GB + ROOT_VOLUME_GB} GB gp3",
            nodes * (DATA_VOLUME_GB + ROOT_VOLUME_GB),
            "ebs_gp3",
            hourly=False,
        ),
        FixedItem(f"{addresses} public IPv4 addresses", addresses, "public_ipv4", hourly=True),
    ]
    if nodes > 1:
        items.append(FixedItem("a network load balancer", 1, "nlb", hourly=True))
    items += [
        FixedItem("a private hosted zone", 1, "hosted_zone", hourly=False),
        FixedItem("the ingress key's secret", 1, "secret", hourly=False),
    ]
    return tuple(items)
