"""A cluster created the way CloudFormation creates RestateStack's: one node at a time.

The nodes' Auto Scaling groups depend on each other in a chain (so that an update replaces one
node at a time), so CloudFormation also creates node 2's group only once node 1 has signalled,
and node 3's once node 2 has. Each host signals once the readiness check passes
(holiday_host/restate_ready.sh, run here as the rolling rehearsal runs it). So the check must pass
for node 1 alone, while the cluster is still forming, and for each next node once the partitions
are replicated: else the first deploy of a cluster would never finish.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

import httpx

from holiday_tools.chaos.rolling import ready_check
from holiday_tools.devstack import LocalStack, NodePorts, Ports
from tests.support import PROJECT_DIR, poll

NODES = 3


def test_a_cluster_created_one_node_at_a_time_is_ready_at_each_step_and_serves(tmp_path: Path) -> None:
    ports = Ports.free()
    stack = LocalStack(PROJECT_DIR, tmp_path, ports, nodes=NODES, node_ports=NodePorts.free(ports, NODES))
    said: list[str] = []
    try:
        stack.start_aws()
        stack.create_resources()
        for index in range(NODES):
            stack.start_node(index)
            stack.wait_for_node(index)
            ready, last = poll(
                partial(ready_check, stack, index),
                lambda answer: answer[0],
                f"restate-{index + 1}'s readiness check, with {index + 1} of {NODES} nodes started",
                timeout=90,
            )
            said.append(last)
            assert ready
            # The later nodes are not started yet: what the check passed on is the cluster so far.
            assert [stack.processes.get(name) is not None for name in stack.restate_names] == [
                n <= index for n in range(NODES)
            ]
        stack.start_services()
        stack.register()
        booked = httpx.post(f"{stack.ingress_urls[-1]}/trips/reserve", json={}, timeout=60)
        assert booked.status_code == 200, booked.text
        # And every node passes the same check (a busy machine may move a leadership meanwhile: asked again).
        for index in range(NODES):
            poll(partial(ready_check, stack, index), lambda answer: answer[0], f"restate-{index + 1} ready", 60)
    finally:
        stack.stop()
