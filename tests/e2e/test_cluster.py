"""`holiday dev --nodes 3`: a replicated three-node Restate cluster on loopback, configured as the AWS hosts.

Each test talks to the nodes as a user would: through each node's ingress and admin API,
and to the local S3 stand-in where the partition snapshots go.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tomllib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from holiday_host.config import CLUSTER_PARTITIONS, Cluster, NodeLayout, restate_config
from holiday_tools.devstack import (
    RESTART_DELAY_S,
    RESTATE_STOP_GRACE_S,
    SNAPSHOT_BUCKET,
    LocalStack,
    Mode,
    NodePorts,
    Ports,
    StackError,
)
from holiday_tools.processes import Process
from tests.support import BOOKED, PROJECT_DIR, poll, statuses

NODES = 3


@pytest.fixture(scope="module", params=["http", "lambda"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    ports = Ports.free()
    mode: Mode = request.param
    # A long folder: restate-server's unix sockets in it would pass the system's 107-byte limit.
    data_dir = tmp_path_factory.mktemp(f"cluster-{mode}") / ("a-long-data-folder-" * 5)
    assert len(str(data_dir)) > 110
    stack = LocalStack(
        PROJECT_DIR,
        data_dir,
        ports,
        mode=mode,
        nodes=NODES,
        node_ports=NodePorts.free(ports, NODES),
    )
    stack.start()
    yield stack
    stack.stop()


def post(url: str, body: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(url, json=body, headers=headers or {}, timeout=60)


def test_a_trip_booked_through_one_node_is_looked_up_through_every_other(cluster: LocalStack, trip_id: str) -> None:
    first, *others = cluster.ingress_urls
    booked = post(f"{first}/trips/reserve", {"trip_id": trip_id})
    assert booked.status_code == 200, booked.text
    for ingress in cluster.ingress_urls:
        record = httpx.get(f"{ingress}/trip/{trip_id}/status", timeout=30)
        assert (record.status_code, record.json()["status"]) == (200, "succeeded"), ingress
        assert record.json()["steps"][0]["id"] == booked.json()["flight_booking_id"]
    assert statuses(cluster, trip_id) == BOOKED
    # The same trip id through another node: the same answer, nothing booked twice.
    again = post(f"{others[-1]}/trips/reserve", {"trip_id": trip_id})
    assert again.json() == booked.json()
    assert statuses(cluster, trip_id) == BOOKED


def test_every_node_gives_the_readmes_answers(cluster: LocalStack) -> None:
    for n, ingress in enumerate(cluster.ingress_urls, start=1):
        trip_id = f"readme-{uuid.uuid4().hex[:12]}"
        failed = post(f"{ingress}/trips/reserve", {"request": {"trip_id": trip_id, "run_type": "failPayment"}})
        assert failed.status_code == 409, (n, failed.text)
        record = httpx.get(f"{ingress}/trip/{trip_id}/status", timeout=30).json()
        assert [c["name"] for c in record["compensations"]] == ["refund payment", "cancel car", "cancel flight"]
        bad = post(f"{ingress}/trips/reserve", {"run_type": "failEverything"})
        assert bad.status_code == 400, (n, bad.text)
        assert "unknown run_type 'failEverything'" in bad.json()["message"]


def test_an_idempotency_key_holds_across_nodes(cluster: LocalStack, trip_id: str) -> None:
    key = {"idempotency-key": f"cluster-{trip_id}"}
    answers = [post(f"{ingress}/trips/reserve", {}, key).json() for ingress in cluster.ingress_urls]
    assert answers[0]["status"] == "success"
    assert answers == [answers[0]] * NODES  # one trip, whichever node is asked


def test_the_services_are_registered_once_and_every_node_knows_them(cluster: LocalStack) -> None:
    listed = [
        sorted(d["id"] for d in httpx.get(f"{admin}/deployments", timeout=10).json()["deployments"])
        for admin in cluster.admin_urls
    ]
    assert listed[0]
    assert listed == [listed[0]] * NODES
    expected = 1 if cluster.mode == "http" else 5  # one server, or the four functions and the null saga
    assert len(listed[0]) == expected


def test_partition_snapshots_go_to_the_s3_stand_in(cluster: LocalStack) -> None:
    cluster.restatectl.create_snapshots()  # on AWS they come every so many log records
    s3 = cluster.aws_client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=SNAPSHOT_BUCKET).get("Contents", [])]
    latest = {key for key in keys if key.endswith("/latest.json")}
    assert latest == {f"snapshots/{p}/latest.json" for p in range(CLUSTER_PARTITIONS)}
    assert json.loads(s3.get_object(Bucket=SNAPSHOT_BUCKET, Key="snapshots/0/latest.json")["Body"].read())


def aws_host_config(index: int) -> dict[str, Any]:
    """Node `index`'s restate.toml as RestateStack renders it for its host with `restateNodes=3`."""
    peers = tuple(f"http://node-{n}.restate-holiday.internal:5122" for n in range(1, NODES + 1))
    cluster = Cluster(peers, "s3://restatestack-snapshots/snapshots")
    return tomllib.loads(restate_config(NodeLayout(fabric_ip="0.0.0.0"), cluster, index))


def flat(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"worker.snapshots.destination": ..., ...}`: every setting by its dotted name."""
    found: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            found |= flat(value, f"{prefix}{key}.")
        else:
            found[f"{prefix}{key}"] = value
    return found


# What a laptop's node may set differently from a host's: where it listens, its folder, where its
# peers and the snapshot store are, and that it has no trace collector. Nothing about the cluster.
LOCAL_ONLY = {
    "base-dir",
    "bind-ip",
    "bind-port",
    "advertised-address",
    "tracing-endpoint",
    "ingress.bind-address",
    "admin.bind-address",
    "metadata-client.addresses",
    "worker.snapshots.destination",
    "worker.snapshots.aws-endpoint-url",
    "worker.snapshots.aws-allow-http",
}


@pytest.mark.parametrize("index", range(NODES))
def test_each_node_runs_the_aws_hosts_configuration_but_for_addresses_and_folders(
    cluster: LocalStack, index: int
) -> None:
    host, here = flat(aws_host_config(index)), flat(tomllib.loads(cluster.node_config(index)))
    differ = {key for key in host.keys() | here.keys() if host.get(key) != here.get(key)}
    assert differ <= LOCAL_ONLY, differ - LOCAL_ONLY
    # And what makes it a cluster is the same on both.
    for key in ("node-name", "cluster-name", "auto-provision", "default-replication", "bifrost.default-provider"):
        assert here[key] == host[key], key
    assert here["auto-provision"] is False  # node 1 is told to create the cluster at its first start only
    assert len(here["metadata-client.addresses"]) == NODES
    assert cluster.cluster is not None
    assert here["advertised-address"] == cluster.cluster.peers[index]


def test_any_data_folder_works_as_nodes_listen_on_tcp_only(cluster: LocalStack) -> None:
    assert len(str(cluster.data_dir)) > 110  # the fixture's: the nodes started in it, and every test uses them
    assert not list(cluster.data_dir.rglob("*.sock"))


def restarted_by_supervisor(cluster: LocalStack, index: int, old: Process) -> Process:
    """The node's new process, once `supervise` (what `holiday dev` runs) has started it again."""

    def tick() -> Process:
        assert cluster.supervise(lambda _line: None) is None
        return cluster.processes[cluster.restate_names[index]]

    # A node stopped with SIGTERM may take up to its grace to exit (longer on a busy machine, the suite running
    # in parallel), and the supervisor waits RESTART_DELAY_S after it sees the exit.
    within = RESTATE_STOP_GRACE_S + RESTART_DELAY_S + 5
    return poll(tick, lambda process: process is not old, "the supervisor to start the node again", timeout=within)


def environment(process: Process) -> dict[str, str]:
    entries = Path(f"/proc/{process.pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def test_a_node_that_lost_its_data_refuses_to_start_rather_than_create_a_second_cluster(cluster: LocalStack) -> None:
    # Runs last in this module: node 1 stays down. It is the node that created the cluster, at its first start.
    assert cluster.cluster is not None
    bucket, key = cluster.cluster.marker
    cluster.aws_client("s3").head_object(Bucket=bucket, Key=key)  # written once node 1 answered
    assert all(p.env.get("RESTATE_AUTO_PROVISION") != "true" for p in cluster.processes.values())
    # Node 1 exits by itself: started again as `holiday dev` does, it is not told to create the cluster.
    first = cluster.processes[cluster.restate_names[0]]
    assert first.pid is not None
    os.kill(first.pid, signal.SIGTERM)
    second = restarted_by_supervisor(cluster, 0, first)
    assert environment(second)["RESTATE_AUTO_PROVISION"] == "false"
    cluster.wait_for_node(0)
    # Then it crashes and its disk is lost: started again, it refuses to, saying why.
    assert second.pid is not None
    os.kill(second.pid, signal.SIGKILL)
    poll(lambda: second.alive, lambda alive: not alive, "node 1 to die")
    shutil.rmtree(cluster.node_data(0))
    third = restarted_by_supervisor(cluster, 0, second)
    assert environment(third)["RESTATE_AUTO_PROVISION"] == "false"
    with pytest.raises(StackError, match="restate-1 exited"):  # at once, not after a minute
        cluster.wait_for_node(0)
    log = cluster.node_log(0).read_text(errors="replace")
    assert "lost its data" in log
    # The other two nodes go on serving, and know every trip.
    booked = post(f"{cluster.ingress_urls[1]}/trips/reserve", {})
    assert booked.status_code == 200, booked.text
    looked_up = httpx.get(f"{cluster.ingress_urls[2]}/trip/{booked.json()['trip_id']}/status", timeout=30)
    assert looked_up.json()["status"] == "succeeded"
    cluster.stop_node(0)  # not started again by the supervisor, nor by anyone
