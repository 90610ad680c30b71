"""A rehearsal of the self-hosted Restate node on loopback, with the configuration the EC2 host gets.

restate-server reads the host's restate.toml and nginx the host's nginx.conf, both
rendered by infra/host/config.py with only addresses and paths changed; the
certificate is made with the host's openssl command. The four functions run behind
the local Lambda runtime and are registered by the registration handler, called
with the events CloudFormation sends. Then trips are booked over HTTPS through
nginx, as a user would with curl.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import pytest

from holiday.functions import FUNCTIONS
from holiday_tools.devstack import LOCAL_CREDENTIALS, LocalStack, Ports, http_ok, restate_server_binary, wait_until
from holiday_tools.processes import Process
from infra.host.config import (
    MAX_IDEMPOTENCY_KEY,
    NodeLayout,
    TlsLayout,
    nginx_config,
    restate_config,
    self_signed_certificate_command,
)
from infra.registration.handler import on_event
from tests.support import PROJECT_DIR, TABLES, FakeContext, event, poll, rows

NGINX_UNPACKED = PROJECT_DIR / "build" / "host-tools" / "usr" / "sbin" / "nginx"  # `make host-tools`


def nginx_binary() -> str:
    if NGINX_UNPACKED.exists():
        return str(NGINX_UNPACKED)
    installed = shutil.which("nginx")
    if installed is None:
        pytest.skip("no nginx: `make host-tools` unpacks Debian's package; elsewhere install nginx")
    return installed


@dataclass
class Node:
    """The rehearsed node: its restate-server and nginx, beside the local stand-ins and functions."""

    stack: LocalStack
    layout: NodeLayout
    https_url: str
    admin_url: str
    processes: list[Process]

    def curl(self, path: str, *args: str) -> tuple[int, str, Any]:
        """`curl -k` through nginx, as the README shows: (status, HTTP version, JSON body)."""
        argv = ["curl", "-sk", "--max-time", "60", "-o", "-", "-w", "\n%{http_code} %{http_version}", *args]
        done = subprocess.run([*argv, f"{self.https_url}{path}"], capture_output=True, text=True, check=True)
        body, _, tail = done.stdout.rpartition("\n")
        status, version = tail.split()
        return int(status), version, json.loads(body) if body.startswith(("{", "[")) else body

    def serving(self, service: str) -> str:
        """The deployment Restate sends new calls of `service` to."""
        return str(httpx.get(f"{self.admin_url}/services/{service}", timeout=10).json()["deployment_id"])


def answers(url: str) -> bool:
    """Whether `url` answers below 500, accepting a self-signed certificate (curl -k)."""
    try:
        return httpx.get(url, timeout=1.0, verify=False).status_code < 500
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    nginx = nginx_binary()
    work = tmp_path_factory.mktemp("host")
    ports, more = Ports.free(), Ports.free()
    stack = LocalStack(PROJECT_DIR, work / "stack", ports, mode="lambda")
    processes: list[Process] = []
    try:
        # The stand-ins for AWS: moto (tables, topic, STS) and the functions behind the local Lambda runtime.
        stack.start_aws()
        stack.create_resources()
        stack.start_services()

        layout = replace(
            NodeLayout.for_host("self-signed"),
            base_dir=str(work / "restate-data"),
            ingress=f"127.0.0.1:{ports.ingress}",
            admin=f"127.0.0.1:{ports.admin}",  # 0.0.0.0 on the host; nothing here listens beyond loopback
            fabric_port=ports.fabric,
            tracing_endpoint=f"http://127.0.0.1:{more.aws}",  # no collector: traces are dropped, calls go on
        )
        config = work / "restate.toml"
        config.write_text(restate_config(layout))
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTATE_")}
        env |= {
            "RESTATE_CONFIG": str(config),  # as the host's container is told
            # On AWS these are the real endpoints; here the stand-ins.
            **LOCAL_CREDENTIALS,
            "AWS_REGION": stack.settings.aws_region,
            "AWS_ENDPOINT_URL_LAMBDA": stack.services_url,
            "AWS_ENDPOINT_URL_STS": stack.aws_url,
        }
        restate = Process("restate", [str(restate_server_binary(PROJECT_DIR)), "--no-logo"], env, work / "restate.log")
        restate.start()
        processes.append(restate)
        admin_url = f"http://{layout.admin}"
        wait_until(http_ok(f"{admin_url}/health"), "restate-server with the host's configuration", timeout=60)

        tls = replace(
            TlsLayout(),
            listen=f"127.0.0.1:{more.ingress}",
            certificate=str(work / "cert.pem"),
            key=str(work / "key.pem"),
            runtime_dir=str(work / "nginx"),
            access_log=str(work / "nginx" / "access.log"),
            upstream=layout.ingress,
        )
        subprocess.run(self_signed_certificate_command(tls.certificate, tls.key), check=True, capture_output=True)
        (work / "nginx").mkdir()
        (work / "nginx.conf").write_text(nginx_config(tls))
        argv = [nginx, "-p", str(work / "nginx"), "-c", str(work / "nginx.conf"), "-g", "daemon off;"]
        front = Process("nginx", argv, dict(os.environ), work / "nginx.log")
        front.start()
        processes.append(front)
        https_url = f"https://{tls.listen}"
        wait_until(lambda: front.alive and answers(f"{https_url}/restate/health"), "nginx in front of the ingress")

        # CloudFormation's first deploy: a Create for each function version.
        for name in FUNCTIONS:
            on_event(event("Create", admin_url, stack.function_arn(name)), FakeContext())
        yield Node(stack, layout, https_url, admin_url, processes)
    finally:
        for process in reversed(processes):
            process.stop()
        stack.stop()


def test_the_rehearsal_runs_the_hosts_configuration_with_only_addresses_and_paths_changed(node: Node) -> None:
    host = restate_config(NodeLayout.for_host("self-signed")).splitlines()
    here = restate_config(node.layout).splitlines()
    changed = {a.split(" = ")[0] for a, b in zip(host, here, strict=True) if a != b}
    assert changed == {"base-dir", "bind-port", "tracing-endpoint", "bind-address"}
    # On the host nginx forwards to exactly where Restate's ingress listens.
    assert TlsLayout().upstream == NodeLayout.for_host("self-signed").ingress


@pytest.mark.parametrize(("flag", "version"), [("--http1.1", "1.1"), ("--http2", "2")])
def test_a_trip_books_over_https_through_nginx_and_is_looked_up(node: Node, flag: str, version: str) -> None:
    status, used, body = node.curl("/trips/reserve", flag, "--json", "{}")
    assert (status, used) == (200, version), body
    assert body["status"] == "success"
    status, used, trip = node.curl(f"/trip/{body['trip_id']}/status", flag)
    assert (status, used) == (200, version), trip
    assert (trip["trip_id"], trip["status"]) == (body["trip_id"], "succeeded")


def test_a_failing_trip_gets_its_409_through_nginx(node: Node) -> None:
    status, _, body = node.curl("/trips/reserve", "--json", '{"run_type": "failPayment"}')
    assert status == 409
    assert "compensated: refund payment, cancel car, cancel flight" in body["message"]


def test_the_admin_api_is_not_reachable_through_nginx(node: Node) -> None:
    def deployments() -> Any:
        return httpx.get(f"{node.admin_url}/deployments", timeout=10).json()

    before = deployments()  # the admin API is there, directly
    for path in ("/deployments", "/services", "/health"):
        status, _, body = node.curl(path)
        assert (status, body["source"]) == (400, "ingress"), (path, body)  # the ingress: "bad path"
    # Nor can a caller register a deployment of their own through it.
    status, _, body = node.curl("/deployments", "--json", '{"uri": "http://127.0.0.1:1", "force": true}')
    assert (status, body["source"]) == (400, "ingress"), body
    assert deployments() == before


def test_cloudformation_updates_rollbacks_and_deletes_keep_trips_booking(node: Node) -> None:
    first = node.stack.function_arn("flights")
    original = node.serving("flights")
    newer = first.rsplit(":", 1)[0] + ":2"  # the local runtime serves any version; Restate sees a new one
    updated = on_event(
        event("Update", node.admin_url, newer, original, old_props={"FunctionArn": first}), FakeContext()
    )
    assert node.serving("flights") == updated["PhysicalResourceId"] != original
    assert node.curl("/trips/reserve", "--json", "{}")[0] == 200

    # The rollback of that update: the old properties again, sent as an Update.
    back = on_event(
        event("Update", node.admin_url, first, updated["PhysicalResourceId"], old_props={"FunctionArn": newer}),
        FakeContext(),
    )
    assert back["PhysicalResourceId"] == original
    assert node.serving("flights") == original
    assert node.curl("/trips/reserve", "--json", "{}")[0] == 200

    # CloudFormation's clean-up deletes the resource the rollback left behind; by default Restate keeps it.
    on_event(event("Delete", node.admin_url, newer, updated["PhysicalResourceId"]), FakeContext())
    listed = poll(
        lambda: httpx.get(f"{node.admin_url}/deployments", timeout=10).json()["deployments"],
        lambda deployments: len(deployments) == len(FUNCTIONS) + 1,
        "the kept deployment to be listed",
    )
    assert updated["PhysicalResourceId"] in {d["id"] for d in listed}
    assert node.curl("/trips/reserve", "--json", "{}")[0] == 200


@pytest.mark.parametrize(
    ("length", "status"), [(MAX_IDEMPOTENCY_KEY, 200), (MAX_IDEMPOTENCY_KEY + 1, 400), (10_000, 400)]
)
def test_nginx_refuses_an_overlong_idempotency_key_and_nothing_is_written(
    node: Node, trip_id: str, length: int, status: int
) -> None:
    # Restate would keep a key of any length (the services never see it), so the host's TLS front caps it.
    response = httpx.post(
        f"{node.https_url}/trips/reserve",
        json={"trip_id": trip_id},
        headers={"idempotency-key": "k" * length},
        verify=False,  # the host's self-signed certificate, as curl -k
        timeout=60,
    )
    assert response.status_code == status, response.text
    booked = {table: len(rows(node.stack, table, trip_id)) for table in TABLES}
    assert booked == ({"flights": 1, "cars": 1, "payments": 1} if status == 200 else dict.fromkeys(TABLES, 0))
    if length == MAX_IDEMPOTENCY_KEY + 1:
        assert response.json() == {
            "code": 400,
            "message": f"idempotency-key is longer than {MAX_IDEMPOTENCY_KEY} characters",
        }
