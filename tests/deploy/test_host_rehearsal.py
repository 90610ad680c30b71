"""A rehearsal of the self-hosted Restate node on loopback, with the configuration the EC2 host gets.

restate-server reads the host's restate.toml and nginx the host's nginx.conf, both
rendered by holiday_host/config.py with only addresses and paths changed; the
certificate is made with the host's openssl command, and the ingress key is copied
from (the local stand-in's) Secrets Manager by the host's own script, with the AWS
CLI. The four functions run behind the local Lambda runtime and are registered by
the registration handler, called with the events CloudFormation sends. Then trips
are booked over HTTPS through nginx, as a user would with curl and the key.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from holiday.functions import FUNCTIONS
from holiday_host.config import (
    HEALTH_PATH,
    MAX_IDEMPOTENCY_KEY,
    UNAUTHORIZED,
    FrontLayout,
    NodeLayout,
    restate_config,
)
from holiday_tools.devstack import LOCAL_CREDENTIALS, LocalStack, Ports, http_ok, restate_server_binary, wait_until
from holiday_tools.processes import Process
from infra.registration.handler import on_event
from tests.front import Front, Secret
from tests.support import PROJECT_DIR, TABLES, FakeContext, documentation, event, poll, published_version, rows

# As Secrets Manager generates it for RestateStack: 48 letters and digits.
KEY = secrets.token_hex(24)


@dataclass
class Node:
    """The rehearsed node: its restate-server and nginx, beside the local stand-ins and functions."""

    stack: LocalStack
    layout: NodeLayout
    front: Front
    admin_url: str
    key: str  # the secret's current value
    work: Path  # every process's files: configuration, data and logs
    keys_used: set[str] = field(default_factory=set)  # every value the secret has had

    @property
    def https_url(self) -> str:
        return self.front.url

    @property
    def secret(self) -> Secret:
        """The key's secret in the stand-in's Secrets Manager."""
        assert self.front.secret is not None
        return self.front.secret

    def curl(self, path: str, *args: str, key: str | None = "") -> tuple[int, str, Any]:
        """`curl -k` through nginx with the key, as the README shows: (status, HTTP version, JSON body).

        `key`: the key to send (by default the current one), or None to send none.
        """
        header = [] if key is None else ["-H", f"Authorization: Bearer {key or self.key}"]
        argv = ["curl", "-sk", "--max-time", "60", "-o", "-", "-w", "\n%{http_code} %{http_version}", *header, *args]
        done = subprocess.run([*argv, f"{self.https_url}{path}"], capture_output=True, text=True, check=True)
        body, _, tail = done.stdout.rpartition("\n")
        status, version = tail.split()
        return int(status), version, json.loads(body) if body.startswith(("{", "[")) else body

    def serving(self, service: str) -> str:
        """The deployment Restate sends new calls of `service` to."""
        return str(httpx.get(f"{self.admin_url}/services/{service}", timeout=10).json()["deployment_id"])

    def headers(self, key: str | None = "") -> dict[str, str]:
        return {} if key is None else {"Authorization": f"Bearer {key or self.key}"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    work = tmp_path_factory.mktemp("host")
    ports, more = Ports.free(), Ports.free()
    stack = LocalStack(PROJECT_DIR, work / "stack", ports, mode="lambda")
    processes: list[Process] = []
    front: Front | None = None
    try:
        # The stand-ins for AWS: moto (tables, topic, STS, the key's secret) and the functions behind
        # the local Lambda runtime.
        stack.start_aws()
        stack.create_resources()
        stack.start_services()

        layout = replace(
            NodeLayout(),
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

        # nginx as on the host (TLS on the host, the self-signed mode), its key from the secret.
        secret = Secret.create(stack, "RestateIngressKey", KEY)
        front = Front.start(work / "front", more.ingress, layout.ingress, tls=True, secret=secret)

        # CloudFormation's first deploy: a Create for each function version.
        for name in FUNCTIONS:
            on_event(event("Create", admin_url, stack.function_arn(name)), FakeContext())
        yield Node(stack, layout, front, admin_url, KEY, work, {KEY})
    finally:
        if front is not None:
            front.stop()
        for process in reversed(processes):
            process.stop()
        stack.stop()


def test_the_rehearsal_runs_the_hosts_configuration_with_only_addresses_and_paths_changed(node: Node) -> None:
    host = restate_config(NodeLayout()).splitlines()
    here = restate_config(node.layout).splitlines()
    changed = {a.split(" = ")[0] for a, b in zip(host, here, strict=True) if a != b}
    assert changed == {"base-dir", "bind-port", "tracing-endpoint", "bind-address"}
    # On the host nginx forwards to exactly where Restate's ingress listens, in either TLS mode.
    for tls in ("self-signed", "load-balancer"):
        assert FrontLayout.for_host(tls).upstream == NodeLayout().ingress


@pytest.mark.parametrize(("flag", "version"), [("--http1.1", "1.1"), ("--http2", "2")])
def test_a_trip_books_over_https_through_nginx_and_is_looked_up(node: Node, flag: str, version: str) -> None:
    status, used, body = node.curl("/trips/reserve", flag, "--json", "{}")
    assert (status, used) == (200, version), body
    assert body["status"] == "success"
    status, used, trip = node.curl(f"/trip/{body['trip_id']}/status", flag)
    assert (status, used) == (200, version), trip
    assert (trip["trip_id"], trip["status"]) == (body["trip_id"], "succeeded")


def test_a_failing_trip_gets_its_409_through_nginx(node: Node, trip_id: str) -> None:
    status, _, _ = node.curl("/trips/reserve", "--json", json.dumps({"trip_id": trip_id, "run_type": "failPayment"}))
    assert status == 409
    status, _, trip = node.curl(f"/trip/{trip_id}/status")
    assert status == 200
    assert (trip["status"], trip["failed_step"]) == ("failed", "process payment")
    assert [c["name"] for c in trip["compensations"]] == ["refund payment", "cancel car", "cancel flight"]


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
    newer = published_version(node.stack, "flights", 2)  # a new version: Restate sees a new deployment
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
        headers={"idempotency-key": "k" * length, **node.headers()},
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


# --- the ingress key --------------------------------------------------------------------------

FLAGS = ["--http1.1", "--http2"]


def refused_header(kind: str, key: str) -> list[str]:
    """curl's header arguments for each way of not holding the key."""
    headers = {
        "no key": [],
        "a wrong key": [f"Authorization: Bearer {secrets.token_hex(24)}"],
        "the key cut short": [f"Authorization: Bearer {key[:-1]}"],
        "the key and more": [f"Authorization: Bearer {key}x"],
        "the key as a password": ["-u", f"holiday:{key}"],  # Basic, not Bearer
    }[kind]
    return [arg for header in headers for arg in (["-H", header] if header.startswith("Authorization") else [header])]


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize(
    "kind", ["no key", "a wrong key", "the key cut short", "the key and more", "the key as a password"]
)
def test_a_call_without_the_key_gets_401_and_nothing_is_written(node: Node, trip_id: str, kind: str, flag: str) -> None:
    body = json.dumps({"trip_id": trip_id})
    status, _, answer = node.curl("/trips/reserve", flag, *refused_header(kind, node.key), "--json", body, key=None)
    assert (status, answer) == (401, {"code": 401, "message": UNAUTHORIZED})
    # Nothing reached Restate: no rows, and the trip has no record.
    assert {table: rows(node.stack, table, trip_id) for table in TABLES} == {table: [] for table in TABLES}
    status, _, answer = node.curl(f"/trip/{trip_id}/status")
    assert status == 404, answer


def test_a_401_says_how_to_authenticate_and_reading_a_trip_needs_the_key_too(node: Node) -> None:
    status, _, booked = node.curl("/trips/reserve", "--json", "{}")
    assert status == 200, booked
    answer = httpx.get(f"{node.https_url}/trip/{booked['trip_id']}/status", verify=False, timeout=10)
    assert answer.status_code == 401
    assert answer.headers["www-authenticate"] == 'Bearer realm="restate-holiday"'
    assert answer.json()["message"] == UNAUTHORIZED
    assert answer.headers["server"] == "nginx"  # and no version


def test_a_value_that_is_no_usable_key_is_refused_and_the_current_key_kept(node: Node) -> None:
    before = Path(node.front.layout.ingress_key).read_text()
    for bad in ("short", f'{"x" * 40}"; return 200;', f"{'y' * 40} z"):
        node.secret.rotate(bad)
        done = node.front.copy_key(reload=True)
        assert done.returncode == 1
        assert "is not 32 to 512 of" in done.stderr
        assert "keeping the current key" in done.stderr
        assert bad not in done.stderr + done.stdout  # a key is never printed, not even a bad one
        assert Path(node.front.layout.ingress_key).read_text() == before
    node.secret.rotate(node.key)
    assert node.front.copy_key(reload=True).returncode == 0
    assert Path(node.front.layout.ingress_key).stat().st_mode & 0o077 == 0  # root's only on the host
    assert node.curl("/trips/reserve", "--json", "{}")[0] == 200


def readme_shell(containing: str) -> str:
    """The docs' shell block that contains `containing`."""
    blocks = re.findall(r"```shell\n(.*?)```", documentation(), re.DOTALL)
    [block] = [str(block) for block in blocks if containing in block]
    return block


def run_readme(node: Node, text: str) -> str:
    """Run README commands with bash, as a user with AWS credentials would (here against the stand-in)."""
    env = {**os.environ, **node.secret.environment(), "KEY_SECRET": node.secret.arn}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_rotating_the_key_keeps_the_call_in_flight_and_then_only_the_new_key_books(node: Node, trip_id: str) -> None:
    # The README's commands: read the key, rotate it, read the new one.
    [read] = [line for line in readme_shell("get-secret-value").splitlines() if line.startswith("export INGRESS_KEY=")]
    assert run_readme(node, f'{read}\nprintf %s "$INGRESS_KEY"') == node.key
    # A call that holds its connection open through the rotation: its body arrives in two parts.
    sent_first_part, rotated = threading.Event(), threading.Event()

    def body() -> Iterator[bytes]:
        yield json.dumps({"trip_id": trip_id})[:-1].encode()
        sent_first_part.set()
        rotated.wait(timeout=60)
        yield b"}"

    old = node.key
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            httpx.post,
            f"{node.https_url}/trips/reserve",
            content=body(),
            headers={**node.headers(), "content-type": "application/json"},
            verify=False,
            timeout=60,
        )
        assert sent_first_part.wait(timeout=30)
        run_readme(node, readme_shell("put-secret-value"))
        new = run_readme(node, f'{read}\nprintf %s "$INGRESS_KEY"')
        assert re.fullmatch(r"[A-Za-z0-9]{48}", new)
        assert new != old
        # The host's timer: copy the key, and reload nginx as it changed.
        done = node.front.copy_key(reload=True)
        assert done.returncode == 0, done.stderr
        assert new not in done.stderr + done.stdout
        poll(lambda: node.curl("/trips/reserve", "--json", "{}", key=old)[0], lambda s: s == 401, "the old key refused")
        rotated.set()
        answer = in_flight.result(timeout=60)
    node.key = new
    node.keys_used.add(new)
    assert answer.status_code == 200, answer.text  # begun with the old key, finished on the old workers
    assert answer.json()["trip_id"] == trip_id
    for flag in FLAGS:
        assert node.curl("/trips/reserve", flag, "--json", "{}")[0] == 200
        assert node.curl("/trips/reserve", flag, "--json", "{}", key=old)[0] == 401


def test_restates_health_is_the_one_path_served_without_the_key(node: Node) -> None:
    # A load balancer asks it to know whether this node's Restate answers; it tells nothing else.
    status, _, _ = node.curl(HEALTH_PATH, key=None)
    assert status == 200
    assert node.curl(HEALTH_PATH, "-X", "POST", key=None)[0] == 403
    assert node.curl(f"{HEALTH_PATH}/x", key=None)[0] == 401
    assert node.curl("/restate/awakeables/x/resolve", "-X", "POST", key=None)[0] == 401


def test_no_log_holds_a_key(node: Node) -> None:
    # Runs last in this module: by now every key has been sent, refused, copied and rotated.
    assert len(node.keys_used) >= 2
    logs = [path for path in node.work.rglob("*.log") if path.is_file()]
    assert {path.name for path in logs} >= {"access.log", "nginx.log", "restate.log"}
    for path in logs:
        text = path.read_text(errors="replace")
        assert not [key for key in node.keys_used if key in text], path
