"""The arithmetic: what a month of clean trips costs for each way of running the saga."""

from __future__ import annotations

from dataclasses import dataclass

from holiday_tools.cost.prices import (
    HOURS_PER_MONTH,
    PRICES,
    RESTATE_CLOUD_PLANS,
    SECONDS_PER_MONTH,
    Price,
    RestatePlan,
)
from holiday_tools.cost.usage import (
    EXPRESS_MEMORY_MB,
    LAMBDA_TASK,
    LEAF_FUNCTIONS,
    SAGA_STATE_MACHINE,
    SNS_PUBLISHES_PER_TRIP,
    SNS_TASK,
    TABLE_WRITES_PER_TRIP,
    Execution,
    FixedItem,
    LambdaUsage,
    execute,
    express_billed_ms,
    restate_actions_per_trip,
    self_hosted,
)

SELF_HOSTED_NODES = (1, 3)  # RestateStack's two self-hosted shapes (restateNodes)


@dataclass(frozen=True)
class Basis:
    """Everything the prices multiply, for every volume: the counts per trip and the assumptions."""

    measured: LambdaUsage
    usage: LambdaUsage  # the measured figures at the memory priced
    snapstart: bool
    cold_start_rate: float  # the share of invocations that start a new execution environment (SnapStart restores)
    clean: Execution  # the Step Functions sample's clean run
    failed_payment: Execution
    leaf_ms: float  # the billed ms assumed for each of the sample's Lambda tasks
    express_ms: int  # an Express execution's billed duration
    actions_per_trip: int  # Restate Cloud's


def basis(measured: LambdaUsage, memory_mb: int, snapstart: bool, cold_start_rate: float) -> Basis:
    """The counts once, for all volumes: the prices are the only thing a volume multiplies."""
    usage = measured.at_memory(memory_mb)
    clean = execute(SAGA_STATE_MACHINE)
    # Each task of the sample writes one row, as each of our flights, cars and payments handlers does: so each
    # bills their mean duration, and an Express execution lasts at least as long as its tasks together.
    leaf_ms = usage.billed_ms(LEAF_FUNCTIONS)
    return Basis(
        measured=measured,
        usage=usage,
        snapstart=snapstart,
        cold_start_rate=cold_start_rate,
        clean=clean,
        failed_payment=execute(SAGA_STATE_MACHINE, failing="ProcessPayment"),
        leaf_ms=leaf_ms,
        express_ms=express_billed_ms(clean.tasks(LAMBDA_TASK) * leaf_ms),
        actions_per_trip=restate_actions_per_trip(),
    )


@dataclass(frozen=True)
class Line:
    """One way of running the saga at one monthly volume, in US dollars a month. `priced` is False where a part
    has no public price; `note` says which plan, or why not."""

    option: str
    trips: int
    lambda_usd: float = 0.0
    workflow_usd: float = 0.0  # Step Functions, or Restate Cloud's actions beyond its plan
    tables_usd: float = 0.0  # DynamoDB writes and SNS publishes
    fixed_usd: float = 0.0  # instances and the like, a plan's fee, SnapStart's cache
    note: str = ""
    priced: bool = True

    @property
    def total_usd(self) -> float:
        return self.lambda_usd + self.workflow_usd + self.tables_usd + self.fixed_usd

    def per_million(self, usd: float) -> float:
        return usd / self.trips * 1e6


def estimate(b: Basis, trips: int, prices: dict[str, Price] = PRICES) -> list[Line]:
    """Each option's month at `trips` clean trips a month."""

    def usd(name: str, quantity: float) -> float:
        return prices[name].usd * quantity

    memory_gb = b.usage.memory_mb / 1024
    tables = trips * _tables_per_trip(prices, SNS_PUBLISHES_PER_TRIP)
    ours = trips * lambda_usd_per_trip(b.usage, prices)
    snapstart_cache = 0.0
    if b.snapstart:
        ours += trips * usd("snapstart_restore", b.usage.invocations * b.cold_start_rate * memory_gb)
        snapstart_cache = snapstart_cache_usd(b.usage, prices)

    lines = [
        Line(
            f"holiday, {nodes} node{'s' if nodes > 1 else ''}",
            trips,
            lambda_usd=ours,
            tables_usd=tables,
            fixed_usd=fixed_usd(self_hosted(nodes), prices) + snapstart_cache,
        )
        for nodes in SELF_HOSTED_NODES
    ]
    lines.append(_restate_cloud(b, trips, ours, tables, snapstart_cache))

    tasks = b.clean.tasks(LAMBDA_TASK)
    theirs = trips * tasks * (usd("lambda_request", 1) + usd("lambda_gb_second", b.leaf_ms / 1000 * memory_gb))
    their_tables = trips * _tables_per_trip(prices, b.clean.tasks(SNS_TASK))
    express = usd("sfn_express_request", 1) + usd(
        "sfn_express_gb_second", EXPRESS_MEMORY_MB / 1024 * b.express_ms / 1000
    )
    lines += [
        Line(
            "Step Functions Standard",
            trips,
            lambda_usd=theirs,
            workflow_usd=trips * usd("sfn_transition", b.clean.transitions),
            tables_usd=their_tables,
        ),
        Line("Step Functions Express", trips, lambda_usd=theirs, workflow_usd=trips * express, tables_usd=their_tables),
    ]
    return lines


def lambda_usd_per_trip(usage: LambdaUsage, prices: dict[str, Price] = PRICES) -> float:
    """Lambda's requests and GB-seconds of one trip (arm64, no free tier)."""
    return lambda_usd(usage.invocations, usage.gb_seconds, prices)


def lambda_usd(invocations: float, gb_seconds: float, prices: dict[str, Price] = PRICES) -> float:
    """What `invocations` requests and `gb_seconds` of arm64 duration cost (no free tier)."""
    return prices["lambda_request"].usd * invocations + prices["lambda_gb_second"].usd * gb_seconds


def snapstart_cache_usd(usage: LambdaUsage, prices: dict[str, Price] = PRICES) -> float:
    """A month of SnapStart's cache: one active version of each function, cached all month."""
    return prices["snapstart_cache"].usd * len(usage.functions) * usage.memory_mb / 1024 * SECONDS_PER_MONTH


def _tables_per_trip(prices: dict[str, Price], publishes: int) -> float:
    writes = sum(TABLE_WRITES_PER_TRIP.values())
    return prices["dynamodb_write"].usd * writes + prices["sns_publish"].usd * publishes


def fixed_usd(items: tuple[FixedItem, ...], prices: dict[str, Price] = PRICES) -> float:
    """A stack's parts for a month."""
    return sum(prices[i.price].usd * i.quantity * (HOURS_PER_MONTH if i.hourly else 1) for i in items)


def _restate_cloud(b: Basis, trips: int, ours: float, tables: float, snapstart_cache: float) -> Line:
    option = "holiday, Restate Cloud"
    actions = trips * b.actions_per_trip
    bill = restate_cloud_bill(actions)
    if bill is None:
        rate = actions / SECONDS_PER_MONTH
        why = f"{_count(actions)} actions a month ({rate:,.1f}/s): no published plan; contact sales"
        return Line(option, trips, lambda_usd=ours, tables_usd=tables, note=why, priced=False)
    plan, extra = bill
    return Line(
        option,
        trips,
        lambda_usd=ours,
        workflow_usd=extra,
        tables_usd=tables,
        fixed_usd=plan.usd_per_month + snapstart_cache,
        note=f"{plan.name} plan, {_count(actions)} actions a month",
    )


def _count(actions: int) -> str:
    """`21,000` or `2.1 million`."""
    return f"{actions / 1e6:,.1f} million" if actions >= 1e6 else f"{actions:,}"


def restate_cloud_bill(actions: int) -> tuple[RestatePlan, float] | None:
    """The cheapest published plan for `actions` a month, and its price for actions beyond those it includes;
    None if no published plan takes them (or their rate, averaged over the month)."""
    rate = actions / SECONDS_PER_MONTH
    bills = []
    for plan in RESTATE_CLOUD_PLANS:
        extra = _extra(plan, actions)
        if extra is not None and rate <= plan.actions_per_second:
            bills.append((plan.usd_per_month + extra, plan, extra))
    if not bills:
        return None
    _, plan, extra = min(bills, key=lambda bill: bill[0])
    return plan, extra


def _extra(plan: RestatePlan, actions: int) -> float | None:
    """What `plan` charges for the actions beyond its own, tier by tier; None past its last tier."""
    if actions > plan.extra_per_million[-1][0]:
        return None
    usd, lower = 0.0, plan.included_actions
    for upper, per_million in plan.extra_per_million:
        usd += max(0, min(actions, upper) - lower) / 1e6 * per_million
        lower = max(lower, upper)
    return usd
