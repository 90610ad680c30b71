"""The local stack: moto (the AWS stand-in), restate-server and the services, on loopback.

`holiday dev` runs it for people; the end-to-end tests run the very same
code with free ports and a temporary folder, so what the tests prove is what
a user starts.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import boto3
import httpx

from holiday.config import Settings
from holiday.functions import FUNCTIONS
from holiday.storage import DynamoLedger
from holiday_tools.processes import Process
from holiday_tools.restatectl import Restatectl, restatectl_binary
from infra.host.config import Cluster, NodeLayout, restate_config

HOST = "127.0.0.1"
# restate-server ends its invocations and flushes its state on SIGTERM; give it this long before SIGKILL.
RESTATE_STOP_GRACE_S = 30.0
LOCAL_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}

# restate-server's defaults suit a cluster; one node on one laptop, whose AWS
# stand-in keeps its state in memory, is better served by these. Each saga
# step is a log append, so they halve a call's latency here (see the README's
# performance section). Not for a production node: there the log is
# replicated and every append is synced to disk.
RESTATE_LOCAL_TUNING = {
    # The log in the node's own RocksDB, instead of the replicated loglet
    # that goes through the log-server role even with one node.
    "RESTATE_BIFROST__DEFAULT_PROVIDER": "local",
    # Appends reach the OS at once, so a crash of restate-server loses
    # nothing; only a crash of the machine could.
    "RESTATE_BIFROST__LOCAL__ROCKSDB_DISABLE_WAL_FSYNC": "true",
}
# The deployed functions, plus the null saga that `holiday bench` compares against.
LOCAL_FUNCTIONS = {**FUNCTIONS, "nullsaga": "holiday_tools.nullsaga.app"}
TOPIC_NAME = "holiday-trips"
LOCAL_ACCOUNT = "123456789012"  # moto's account
Mode = Literal["http", "lambda"]
SNAPSHOT_BUCKET = "holiday-restate-snapshots"  # a cluster's partition snapshots, in the stand-in's S3


class StackError(RuntimeError):
    """Something the user can act on: a busy port, a missing install, a process that died."""


@dataclass(frozen=True)
class Ports:
    """Every port the stack listens on, all bound to 127.0.0.1."""

    aws: int = 4566
    ingress: int = 8080
    admin: int = 9070
    services: int = 9080
    fabric: int = 5122
    functions: int = 9090  # the local Lambda runtime, in lambda mode

    @classmethod
    def free(cls) -> Ports:
        """Ports nobody uses right now (for tests, beside a running `holiday dev`)."""
        return cls(*_free_ports(len(fields(cls))))

    def check_free(self) -> None:
        """Fail early, naming the port, rather than half-start."""
        _check_free(vars(self))


def _free_ports(count: int, taken: frozenset[int] = frozenset()) -> list[int]:
    """`count` different ports nobody uses right now, none of them in `taken` (ports already handed out)."""
    socks: list[socket.socket] = []
    try:
        while len(socks) < count:
            s = socket.socket()
            socks.append(s)  # held open, so the system hands out a new port each time
            s.bind((HOST, 0))
        numbers = [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()
    clash = [n for n in numbers if n in taken]
    return [n for n in numbers if n not in taken] + (_free_ports(len(clash), taken | set(numbers)) if clash else [])


def _check_free(named: dict[str, int], node: int = 1) -> None:
    """Each port can be bound on loopback now; else a StackError naming the first that cannot."""
    for name, port in named.items():
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((HOST, port))
            except OSError:
                whose = name if node == 1 else f"{name} of node {node}, which is node 1's plus {node - 1}"
                choose = f"choose another with --{name}-port"
                raise StackError(f"port {port} ({whose}) is already in use; {choose}") from None


@dataclass(frozen=True)
class NodePorts:
    """The ports of one restate-server of a local cluster."""

    ingress: int
    admin: int
    fabric: int

    @classmethod
    def of_cluster(cls, ports: Ports, nodes: int) -> list[NodePorts]:
        """Node 1 has the stack's ports, node N those ports plus N-1 (8080, 8081, 8082 ...)."""
        return [cls(ports.ingress + i, ports.admin + i, ports.fabric + i) for i in range(nodes)]

    @classmethod
    def free(cls, ports: Ports, nodes: int) -> list[NodePorts]:
        """Node 1 on the stack's ports, the others on ports nobody uses right now (for tests)."""
        # All at once, and none of the stack's: ports handed out one call after another could repeat.
        numbers = iter(_free_ports(3 * (nodes - 1), frozenset(vars(ports).values())))
        more = [cls(next(numbers), next(numbers), next(numbers)) for _ in range(nodes - 1)]
        return [cls(ports.ingress, ports.admin, ports.fabric), *more]


def wait_until(check: Callable[[], bool], what: str, timeout: float = 30.0, interval: float = 0.05) -> None:
    """Poll `check` until it is true; raise `StackError` naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")


def http_ok(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def unrouted(response: httpx.Response) -> bool:
    """A 404 from the ingress itself, not from a handler: this node does not know the services.

    Before the registration has reached it, and for up to a second or so after a node has started
    again (while its health check already passes), the ingress answers so. The call reached no handler.
    """
    if response.status_code != 404:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("source") == "ingress"


def _serves_trips(ingress: str) -> Callable[[], bool]:
    """Whether the ingress gets an answer from the trips services: a trip nobody booked is a 404 from
    the handler, not the ingress's own (`unrouted`)."""

    def check() -> bool:
        try:
            response = httpx.get(f"{ingress}/trip/ready-check/status", timeout=5.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 404 and not unrouted(response)

    return check


def restate_server_binary(project_dir: Path) -> Path:
    """The native binary npm installed (not the node wrapper, so signals reach the server)."""
    override = os.environ.get("RESTATE_SERVER_BIN")
    if override:
        return Path(override)
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}[platform.machine().lower()]
    binary = project_dir / f"node_modules/@restatedev/restate-server-{sys.platform}-{arch}/bin/restate-server"
    if not binary.exists():
        raise StackError(f"restate-server not found at {binary}; run `make install` (it runs `npm ci`)")
    return binary


@dataclass
class LocalStack:
    """moto server + restate-server + the services, started and stopped together.

    In "http" mode the four services run in one granian process, registered by
    URL. In "lambda" mode each runs as a Lambda function behind the local
    Lambda runtime, registered by function version ARN with an invoker role,
    and restate-server invokes them through the AWS SDK, as on AWS.
    """

    project_dir: Path
    data_dir: Path
    ports: Ports = field(default_factory=Ports)
    # Where the services send their AWS calls; tests put a fault-injecting proxy here.
    services_aws_endpoint: str | None = None
    services_log_to_terminal: bool = False  # and to services.log, as every process logs to log_dir
    partitions: int = 1
    mode: Mode = "http"
    # More than one: a replicated cluster of this many restate-server nodes, configured as on AWS.
    nodes: int = 1
    node_ports: list[NodePorts] = field(default_factory=list)  # by default `NodePorts.of_cluster`
    settings: Settings = field(init=False)
    processes: dict[str, Process] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.settings = replace(Settings.from_env({}), aws_endpoint_url=self.aws_url, aws_region="us-east-1")
        if not self.node_ports:
            self.node_ports = NodePorts.of_cluster(self.ports, self.nodes)
        if len(self.node_ports) != self.nodes or self.node_ports[0].ingress != self.ports.ingress:
            raise ValueError("node_ports: one per node, node 1's being the stack's own ports")

    @property
    def aws_url(self) -> str:
        return f"http://{HOST}:{self.ports.aws}"

    @property
    def ingress_url(self) -> str:
        return f"http://{HOST}:{self.ports.ingress}"

    @property
    def admin_url(self) -> str:
        return f"http://{HOST}:{self.ports.admin}"

    @property
    def ingress_urls(self) -> list[str]:
        """Every node's ingress, node 1's first."""
        return [f"http://{HOST}:{node.ingress}" for node in self.node_ports]

    @property
    def admin_urls(self) -> list[str]:
        return [f"http://{HOST}:{node.admin}" for node in self.node_ports]

    @property
    def restate_names(self) -> list[str]:
        """The names of the restate-server processes: "restate", or "restate-1" ... in a cluster."""
        return ["restate"] if self.nodes == 1 else [f"restate-{i + 1}" for i in range(self.nodes)]

    @property
    def cluster(self) -> Cluster | None:
        """The local cluster, rendered with infra/host/config.py as the AWS hosts' is: only addresses differ."""
        if self.nodes == 1:
            return None
        peers = tuple(f"http://{HOST}:{node.fabric}" for node in self.node_ports)
        return Cluster(peers, f"s3://{SNAPSHOT_BUCKET}/snapshots", snapshot_endpoint=self.aws_url)

    @property
    def restatectl(self) -> Restatectl:
        """restatectl for this cluster: which node leads what, snapshots on demand."""
        assert self.cluster is not None, "restatectl is for a cluster (nodes > 1)"
        return Restatectl(restatectl_binary(self.project_dir), self.cluster.peers)

    @property
    def services_url(self) -> str:
        """Where the services answer: granian, or the local Lambda runtime."""
        port = self.ports.functions if self.mode == "lambda" else self.ports.services
        return f"http://{HOST}:{port}"

    def function_arn(self, name: str) -> str:
        """The version ARN Restate invokes for function `name` ("trips", ...) in lambda mode."""
        return f"arn:aws:lambda:{self.settings.aws_region}:{LOCAL_ACCOUNT}:function:holiday-{name}:1"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"

    def aws_client(self, service: str) -> Any:
        """A boto3 client for the stand-in, for setup, tests and inspection."""
        return boto3.client(
            service,
            endpoint_url=self.aws_url,
            region_name=self.settings.aws_region,
            aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def ledgers(self) -> dict[str, DynamoLedger]:
        """The three tables, by key ("flights", "cars", "payments"), for the audit."""
        client = self.aws_client("dynamodb")
        cfg = self.settings
        names = {"flights": cfg.flights_table, "cars": cfg.cars_table, "payments": cfg.payments_table}
        return {key: DynamoLedger(name, client) for key, name in names.items()}

    def start(self, register: bool = True) -> None:
        """Bring everything up in dependency order; on any failure, take it all down.

        `register=False` leaves registration to the caller (the test of the CDK
        registration handler does it the way CloudFormation would).
        """
        self.ports.check_free()
        for number, node in enumerate(self.node_ports[1:], start=2):
            _check_free({"ingress": node.ingress, "admin": node.admin, "fabric": node.fabric}, number)
        try:
            self.start_aws()
            self.create_resources()
            self.start_restate(fresh=True)
            self.start_services()
            if register:
                self.register()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> list[str]:
        """Stop everything; return the names of processes that had to be killed.

        restate-server goes first, while the services and the stand-in still answer: it
        then ends its invocations cleanly and exits by itself (callers cut off mid-call
        can ask again with their idempotency key). Then the rest, newest first.
        """
        restate = set(self.restate_names)
        order = sorted(self.processes, key=lambda name: (name not in restate, -list(self.processes).index(name)))
        killed = []
        for name in order:
            grace = RESTATE_STOP_GRACE_S if name in restate else 5.0
            if not self.processes[name].stop(grace):
                killed.append(name)
        return killed

    def dead(self) -> list[str]:
        """Names of processes that have exited on their own."""
        return [name for name, p in self.processes.items() if not p.alive]

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], log: Path, echo: bool = False) -> Process:
        process = Process(name, argv, env, log, echo)
        process.start()
        self.processes[name] = process
        return process

    def start_aws(self) -> None:
        argv = [sys.executable, "-m", "holiday_tools.localaws", "--host", HOST, "--port", str(self.ports.aws)]
        self._spawn("aws", argv, dict(os.environ), self.log_dir / "moto.log")
        wait_until(http_ok(f"{self.aws_url}/moto-api/"), f"moto server on {self.aws_url}")

    def create_resources(self) -> None:
        """The three tables and the topic, as the CDK stack creates them on AWS."""
        dynamodb = self.aws_client("dynamodb")
        cfg = self.settings
        for table in (cfg.flights_table, cfg.cars_table, cfg.payments_table):
            dynamodb.create_table(
                TableName=table,
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                KeySchema=[
                    {"AttributeName": "pk", "KeyType": "HASH"},
                    {"AttributeName": "sk", "KeyType": "RANGE"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        topic_arn = self.aws_client("sns").create_topic(Name=TOPIC_NAME)["TopicArn"]
        self.settings = replace(self.settings, topic_arn=topic_arn)
        if self.cluster is not None:
            self.aws_client("s3").create_bucket(Bucket=SNAPSHOT_BUCKET)  # on AWS, RestateStack's bucket

    def _restate_env(self) -> dict[str, str]:
        """What every restate-server gets from its environment: the local stand-ins instead of AWS."""
        return {
            **os.environ,
            # Its Lambda client, the STS call for the invoker role and (in a cluster) the snapshots' S3.
            **LOCAL_CREDENTIALS,
            "AWS_REGION": self.settings.aws_region,
            "AWS_ENDPOINT_URL_LAMBDA": f"http://{HOST}:{self.ports.functions}",
            "AWS_ENDPOINT_URL_STS": self.aws_url,
        }

    def start_restate(self, fresh: bool = False) -> None:
        """Start restate-server on loopback (each node of a cluster); `fresh` wipes its data first."""
        if self.cluster is not None:
            for index in range(self.nodes):
                # As on AWS: node 1 creates the cluster at its very first start, and never again.
                self.start_node(index, fresh, provision=fresh and index == 0)
            for index in range(self.nodes):
                self._wait_for_node(index)
            return
        data = self.data_dir / "restate"
        if fresh and data.exists():
            shutil.rmtree(data)
        env = {
            **self._restate_env(),
            "RESTATE_BIND_IP": HOST,
            "RESTATE_BIND_PORT": str(self.ports.fabric),
            "RESTATE_INGRESS__BIND_ADDRESS": f"{HOST}:{self.ports.ingress}",
            "RESTATE_ADMIN__BIND_ADDRESS": f"{HOST}:{self.ports.admin}",
            "RESTATE_DISABLE_TELEMETRY": "true",
            "RESTATE_DEFAULT_NUM_PARTITIONS": str(self.partitions),
            "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "64 MB",
            **RESTATE_LOCAL_TUNING,
        }
        argv = [str(restate_server_binary(self.project_dir)), "--base-dir", str(data)]
        argv += ["--node-name", "holiday", "--no-logo"]
        self._spawn("restate", argv, env, self.log_dir / "restate.log")
        self._wait_for_node(0)

    def node_config(self, index: int) -> str:
        """Node `index`'s restate.toml: the AWS host's rendering, with loopback addresses and local folders."""
        assert self.cluster is not None
        node = self.node_ports[index]
        layout = NodeLayout(
            base_dir=str(self.data_dir / self.restate_names[index]),
            ingress=f"{HOST}:{node.ingress}",
            admin=f"{HOST}:{node.admin}",
            fabric_ip=HOST,
            fabric_port=node.fabric,
            tracing_endpoint=None,  # no collector on a laptop
        )
        return restate_config(layout, self.cluster, index)

    def start_node(self, index: int, fresh: bool = False, provision: bool = False) -> None:
        """Start node `index` of the cluster (again, after a kill: on the same data unless `fresh`).

        `provision`: create the cluster (node 1's first start only). A node that lost its data and is
        started again refuses to start, as Restate detects the loss, rather than create a second cluster.
        """
        name = self.restate_names[index]
        data = self.data_dir / name
        if fresh and data.exists():
            shutil.rmtree(data)
        config = self.data_dir / f"{name}.toml"
        config.parent.mkdir(parents=True, exist_ok=True)
        config.write_text(self.node_config(index))
        # Only the memory differs from a host's: three nodes share one laptop.
        env = {**self._restate_env(), "RESTATE_CONFIG": str(config), "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "64 MB"}
        env["RESTATE_AUTO_PROVISION"] = "true" if provision else "false"
        argv = [str(restate_server_binary(self.project_dir)), "--no-logo"]
        self._spawn(name, argv, env, self.log_dir / f"{name}.log")

    def kill_node(self, index: int) -> None:
        """SIGKILL node `index`, as a lost host."""
        self.processes[self.restate_names[index]].kill()

    def _wait_for_node(self, index: int) -> None:
        admin, ingress = self.admin_urls[index], self.ingress_urls[index]
        name = self.restate_names[index]
        wait_until(http_ok(f"{admin}/health"), f"{name} admin on {admin}", timeout=60)
        wait_until(http_ok(f"{ingress}/restate/health"), f"{name} ingress on {ingress}", timeout=60)

    def start_services(self) -> None:
        env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            **self.settings.as_env(),
            "AWS_ENDPOINT_URL": self.services_aws_endpoint or self.aws_url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("AWS_LAMBDA_FUNCTION_NAME", None)  # would turn restate.app into a Lambda handler
        if self.mode == "lambda":
            argv = [
                sys.executable,
                "-m",
                "holiday_tools.locallambda",
                "--host",
                HOST,
                "--port",
                str(self.ports.functions),
            ]
            argv += [f"--function=holiday-{name}={handler}" for name, handler in LOCAL_FUNCTIONS.items()]
            health = f"{self.services_url}/local/stats"
        else:
            argv = [sys.executable, "-m", "holiday_tools.server", "--host", HOST, "--port", str(self.ports.services)]
            health = f"{self.services_url}/health"
        self._spawn("services", argv, env, self.log_dir / "services.log", echo=self.services_log_to_terminal)
        wait_until(http_ok(health), f"services on {self.services_url}")

    def restart_services(self, kill: bool = True) -> None:
        """Crash (SIGKILL) or stop the services and start them again on the same port."""
        process = self.processes["services"]
        if kill:
            process.kill()
        else:
            process.stop()
        self.start_services()

    def crash_services(self) -> None:
        """SIGKILL what runs the handlers mid-invocation; it comes back as it would in production.

        http mode: the services process dies and is started again. lambda mode:
        every busy function worker dies; the runtime reports the failure as
        Lambda does, and starts fresh workers on the retry.
        """
        if self.mode == "http":
            self.restart_services(kill=True)
            return
        busy = [w["pid"] for w in httpx.get(f"{self.services_url}/local/workers").json() if w["busy"]]
        if not busy:
            raise StackError("no function worker is busy, so there is nothing to crash")
        for pid in busy:
            os.kill(pid, signal.SIGKILL)

    def crash_restate(self) -> None:
        """SIGKILL restate-server and start it again on the same data, as after a host crash."""
        self.processes["restate"].kill()
        self.start_restate(fresh=False)

    def register(self) -> None:
        """Tell Restate where the services are (force: replace an earlier registration)."""
        if self.mode == "lambda":
            role = f"arn:aws:iam::{LOCAL_ACCOUNT}:role/holiday-restate-invoker"
            targets = [{"arn": self.function_arn(name), "assume_role_arn": role} for name in LOCAL_FUNCTIONS]
        else:
            targets = [{"uri": self.services_url}]
        for target in targets:
            response = httpx.post(f"{self.admin_url}/deployments", json={**target, "force": True}, timeout=30)
            if response.status_code >= 300:
                raise StackError(f"registering {target} failed: {response.status_code} {response.text}")
        # Registered once, at node 1; every node's ingress serves it once its partitions have leaders.
        for ingress in self.ingress_urls:
            wait_until(_serves_trips(ingress), f"the services through {ingress}", timeout=60)
