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
  partitions for a while (freeze.py);
- `rolling`, `rolling1`: upgrade restate-server node by node, on a 3-node
  cluster and on a single node (rolling.py);
- `upgrade`: deploy a new release of the code halfway through the load,
  beside the running one, and prune the old one after the last answer
  (upgrade.py).

Callers behave as callers should: each reservation has its own
`idempotency-key`, and a caller that loses its connection asks again with it
(on a cluster: the next node, which also gets a call that one node leaves
unanswered for a few seconds). Afterwards every answer must be the expected
one (success for clean trips, 409 naming the injected step for the others),
and `holiday audit` must find every trip fully booked or fully undone,
nothing duplicated and nothing lost.

The scenario names and the dispatch are here; the callers, their load and the cluster view are in `load`, the
single-node faults in `faults`, the node scenario in `node`, the report in `report`, and the freeze, rolling and
upgrade scenarios in their own modules, each imported only when it runs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from holiday_tools.chaos.load import Profile, ScenarioResult
    from holiday_tools.devstack import Mode

SCENARIOS = ("services", "restate", "dynamodb", "node")
# A rolling upgrade under load (rolling.py): of a 3-node cluster, and of a single node (its
# downtime). Short names: the report's table stays within 100 columns.
ROLLING = ("rolling", "rolling1")
# A cluster node frozen (SIGSTOP) under load (freeze.py).
FREEZE = "freeze"
# A new release of the code deployed under load, the old one pruned after it (upgrade.py).
UPGRADE = "upgrade"
EVERY_SCENARIO = (*SCENARIOS, FREEZE, *ROLLING, UPGRADE)


def run_scenario(
    scenario: str, mode: Mode, profile: Profile, project_dir: Path, seed: int = 0, log: Callable[[str], None] = print
) -> ScenarioResult:
    if scenario == "node":
        from holiday_tools.chaos.node import run_node_scenario

        return run_node_scenario(mode, profile, project_dir, seed, log)
    if scenario == FREEZE:
        from holiday_tools.chaos.freeze import run_freeze_scenario

        return run_freeze_scenario(mode, profile, project_dir, seed, log)
    if scenario == UPGRADE:
        from holiday_tools.chaos.upgrade import run_upgrade_scenario

        return run_upgrade_scenario(mode, profile, project_dir, seed, log)
    if scenario in ROLLING:
        from holiday_tools.chaos.rolling import ROLLING_NODES, RollingProfile, run_rolling_scenario

        nodes = ROLLING_NODES[scenario]
        return run_rolling_scenario(mode, RollingProfile.of(profile), project_dir, seed, log, nodes)
    from holiday_tools.chaos.faults import run_fault_scenario

    return run_fault_scenario(scenario, mode, profile, project_dir, seed, log)
