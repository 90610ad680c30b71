"""The local stack: moto (the AWS stand-in), restate-server and the services, on loopback.

`holiday dev` runs it for people; the end-to-end tests run the very same
code with free ports and a temporary folder, so what the tests prove is what
a user starts.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import boto3
import httpx
from botocore.exceptions import BotoCoreError, ClientError

from holiday.config import Settings
from holiday.functions import FUNCTIONS, MEMORY_MB
from holiday.storage import DynamoLedger
from holiday_host.config import Cluster, NodeLayout, restate_config
from holiday_tools.processes import Process
from holiday_tools.restatectl import Restatectl, native_package, restatectl_binary

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
REGISTRATION_HANDLER = "infra.registration.handler.on_event"
TOPIC_NAME = "holiday-trips"
LOCAL_ACCOUNT = "123456789012"  # moto's account
Mode = Literal["http", "lambda"]
SNAPSHOT_BUCKET = "holiday-restate-snapshots"  # a cluster's partition snapshots, in the stand-in's S3
# A restate-server that exits is started again, as the host's systemd unit does (Restart=always). The
# unit waits RestartSec=5; locally 1 s is enough, and keeps a restart quick. And as systemd's start
# limit does, a node that keeps exiting is given up on: more than RESTART_LIMIT starts within
# RESTART_WINDOW_S seconds (its first start included) stops the stack.
RESTART_DELAY_S = 1.0
RESTART_LIMIT = 5
RESTART_WINDOW_S = 30.0


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
        """Ports nobody uses now and no other process of ours will hand out (for tests and tools, beside
        a running `holiday dev`): see `_free_ports`."""
        return cls(*_free_ports(len(fields(cls))))

    def check_free(self) -> None:
        """Fail early, naming the port, rather than half-start."""
        _check_free(vars(self))


def _free_ports(count: int, taken: frozenset[int] = frozenset()) -> list[int]:
    """`count` different ports nobody uses right now, none of them in `taken` (ports already handed out).

    A port is chosen now and bound later, by a server this process starts. Ports that the system hands
    out (bind to port 0) come from its ephemeral range, where any other process can take the same one
    meanwhile: another test worker choosing at the same moment, or any outgoing connection. So the ports
    come from below that range, from a block of `PORT_BLOCK` that this process alone holds (a lock file,
    held for its lifetime), one after another: no other process of ours hands out the same port (two
    pytest-xdist workers, two test runs, a bench beside the tests), and this one hands it out once (until
    its block wraps around). Each is checked free when chosen, for programs that are not ours.
    """
    with _block_lock:
        block = _claimed_block()
        if block is None:  # every block is held: more processes at once than blocks
            return _system_ports(count, taken)
        chosen: list[int] = []
        for _ in range(PORT_BLOCK):
            if len(chosen) == count:
                break
            port = block.take()
            if port not in taken and _bindable(port):
                chosen.append(port)
        if len(chosen) < count:
            raise StackError(f"no {count} free ports left in {block.first}-{block.first + PORT_BLOCK - 1}")
        return chosen


# Where `_free_ports` hands out ports: below Linux's ephemeral range (32768-60999 by default; macOS's
# starts at 49152), above the well-known ports and the stack's own defaults (`Ports`).
PORT_RANGE = (20000, 32000)
PORT_BLOCK = 400
PORT_LOCKS = Path(tempfile.gettempdir()) / f"holiday-ports-{os.getuid()}"


@dataclass
class _PortBlock:
    """The ports this process hands out: its lock file's descriptor keeps other processes off them."""

    pid: int
    fd: int
    first: int
    handed_out: int = 0

    def take(self) -> int:
        port = self.first + self.handed_out % PORT_BLOCK
        self.handed_out += 1
        return port


_block: _PortBlock | None = None
_block_lock = threading.Lock()


def _claimed_block() -> _PortBlock | None:
    """This process's block, claimed on first use (again in a forked child); None if all are held."""
    global _block
    if _block is not None and _block.pid == os.getpid():
        return _block
    PORT_LOCKS.mkdir(parents=True, exist_ok=True)
    for first in range(PORT_RANGE[0], PORT_RANGE[1] - PORT_BLOCK + 1, PORT_BLOCK):
        fd = os.open(PORT_LOCKS / f"{first}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _block = _PortBlock(os.getpid(), fd, first)
        return _block
    return None


def _bindable(port: int) -> bool:
    """Whether a server could bind `port` on loopback now (a port left in TIME_WAIT can be)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _system_ports(count: int, taken: frozenset[int]) -> list[int]:
    """`count` ports the system hands out now, none in `taken`: free now, but anyone may take them next."""
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
    return [n for n in numbers if n not in taken] + (_system_ports(len(clash), taken | set(numbers)) if clash else [])


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


def describe_exit(returncode: int | None) -> str:
    """How a process ended, from its return code: `exited (code 1)`, `exited (SIGTERM)`."""
    if returncode is None:
        return "is running"
    if returncode < 0:
        try:
            return f"exited ({signal.Signals(-returncode).name})"
        except ValueError:
            return f"exited (signal {-returncode})"
    return f"exited (code {returncode})"


def last_line(log: Path, limit: int = 300) -> str:
    """The last non-empty line of a log, without terminal colours, cut to `limit` characters."""
    try:
        with log.open("rb") as file:
            file.seek(max(0, file.seek(0, os.SEEK_END) - 16384))
            tail = file.read().decode(errors="replace")
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in re.sub(r"\x1b\[[0-9;]*m", "", tail).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else "(its log is empty)"


def restate_server_binary(project_dir: Path) -> Path:
    """The native binary npm installed (not the node wrapper, so signals reach the server)."""
    override = os.environ.get("RESTATE_SERVER_BIN")
    if override:
        return Path(override)
    binary = project_dir / "node_modules" / native_package("restate-server") / "bin/restate-server"
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
    # The restate-server executable a start uses unless told another (`start_node`'s `binary`); None: the one
    # npm installed. A rolling upgrade starts the stack on the previous version.
    restate_binary: Path | None = None
    # Lambda mode: each function's memory (the runtime's --memory; by default the deployed functions'), CPU held
    # to that memory's share as on Lambda (--limit-cpu), and workers forked from one import per version
    # (--snapstart).
    lambda_memory_mb: int = MEMORY_MB
    lambda_limit_cpu: bool = False
    lambda_snapstart: bool = False
    settings: Settings = field(init=False)
    processes: dict[str, Process] = field(default_factory=dict, init=False)
    # The nodes' supervision (`supervise`): nodes stopped on purpose, nodes seen exited (when, since
    # when), each node's start times, and whether node 1 was told to create the cluster and the
    # marker is still to write.
    _lock: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _held: set[int] = field(default_factory=set, init=False, repr=False)
    _exited: dict[int, float] = field(default_factory=dict, init=False, repr=False)
    _starts: dict[int, list[float]] = field(default_factory=dict, init=False, repr=False)
    _provisioning: bool = field(default=False, init=False, repr=False)

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
        """The local cluster, rendered with holiday_host/config.py as the AWS hosts' is: only addresses differ."""
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
    def invoker_role_arn(self) -> str:
        """The role Restate assumes to invoke the functions (lambda mode), as RestateStack's invoker role."""
        return f"arn:aws:iam::{LOCAL_ACCOUNT}:role/holiday-restate-invoker"

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

    def supervise(self, say: Callable[[str], None] = print) -> str | None:
        """One round of what systemd does for a host's node: start again each restate-server that exited.

        Call it every half second or so (`holiday dev` does). A node seen exited is started again on
        its data after RESTART_DELAY_S, saying so in one line through `say`; nodes stopped on purpose
        (`stop_node`, `kill_node`) are left down. Returns what is fatal, in one line, or None: moto or
        the services exited, or a node exceeded the start limit.
        """
        restate = set(self.restate_names)
        others = [name for name in self.dead() if name not in restate]
        if others:
            return f"{', '.join(others)} stopped unexpectedly; see the logs in {self.log_dir}"
        with self._lock:
            if self._provisioning and http_ok(f"{self.admin_urls[0]}/health")():
                self._provisioned()
            now = time.monotonic()
            for index, name in enumerate(self.restate_names):
                process = self.processes.get(name)
                if process is None or process.alive or index in self._held:
                    continue
                since = self._exited.setdefault(index, now)
                if now - since < RESTART_DELAY_S:
                    continue
                recent = [t for t in self._starts.get(index, []) if now - t < RESTART_WINDOW_S]
                if len(recent) >= RESTART_LIMIT:
                    return (
                        f"{self._exit_message(index)}; it started {len(recent)} times within "
                        f"{RESTART_WINDOW_S:.0f} s, so it is not started again"
                    )
                how = describe_exit(process.returncode)
                process.stop()  # closes its log
                self.start_node(index, binary=Path(process.argv[0]))  # the version it ran, as after an upgrade
                say(f"{name} {how}; started it again on its data, as systemd does on a host (log: {process.log})")
        return None

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
        for index in range(self.nodes):
            self.start_node(index, fresh)
        for index in range(self.nodes):
            self.wait_for_node(index)

    def node_config(self, index: int) -> str:
        """Node `index`'s restate.toml: the AWS host's rendering, with loopback addresses and local folders."""
        assert self.cluster is not None
        node = self.node_ports[index]
        layout = NodeLayout(
            base_dir=str(self.node_data(index)),
            ingress=f"{HOST}:{node.ingress}",
            admin=f"{HOST}:{node.admin}",
            fabric_ip=HOST,
            fabric_port=node.fabric,
            tracing_endpoint=None,  # no collector on a laptop
        )
        return restate_config(layout, self.cluster, index)

    def node_data(self, index: int) -> Path:
        """Node `index`'s base folder: `<data>/restate`, or `<data>/restate-1` ... in a cluster."""
        return self.data_dir / self.restate_names[index]

    def node_log(self, index: int) -> Path:
        return self.log_dir / f"{self.restate_names[index]}.log"

    def start_node(self, index: int, fresh: bool = False, binary: Path | None = None) -> None:
        """Start restate-server node `index` (0 for the single node), on its data unless `fresh`.

        Every start goes through here: the stack's first, a restart by `supervise`, the chaos
        scenarios'. `binary`: the restate-server executable (by default the one npm installed), so
        that a rolling upgrade can start a node on another version. Whether node 1 creates the
        cluster is decided here, as on the AWS hosts: only while the marker object is not in the
        local S3 stand-in (see `_provisions`). A node that lost its data and is started again then
        refuses to start, as Restate detects the loss, rather than create a second cluster.
        """
        with self._lock:
            name = self.restate_names[index]
            data = self.node_data(index)
            if fresh and data.exists():
                shutil.rmtree(data)
            argv = [str(binary or self.restate_binary or restate_server_binary(self.project_dir)), "--no-logo"]
            env = {
                **self._restate_env(),
                # TCP only: by default restate-server also binds unix sockets inside its base folder,
                # whose paths fail beyond 107 bytes (a long data folder). Nothing local uses them.
                "RESTATE_LISTEN_MODE": "tcp",
                "RESTATE_ROCKSDB_TOTAL_MEMORY_SIZE": "64 MB",  # several nodes, or the tests, share one laptop
            }
            if self.cluster is None:
                env |= {
                    "RESTATE_BIND_IP": HOST,
                    "RESTATE_BIND_PORT": str(self.ports.fabric),
                    "RESTATE_INGRESS__BIND_ADDRESS": f"{HOST}:{self.ports.ingress}",
                    "RESTATE_ADMIN__BIND_ADDRESS": f"{HOST}:{self.ports.admin}",
                    "RESTATE_DISABLE_TELEMETRY": "true",
                    "RESTATE_DEFAULT_NUM_PARTITIONS": str(self.partitions),
                    **RESTATE_LOCAL_TUNING,
                }
                argv += ["--base-dir", str(data), "--node-name", "holiday"]
            else:
                config = self.data_dir / f"{name}.toml"
                config.parent.mkdir(parents=True, exist_ok=True)
                config.write_text(self.node_config(index))
                # Only the memory differs from a host's (above), and node 1's flag, decided as a host decides it.
                provision = index == 0 and self._provisions()
                if index == 0:
                    self._provisioning = provision  # the marker is to be written once node 1 answers
                env |= {"RESTATE_CONFIG": str(config), "RESTATE_AUTO_PROVISION": str(provision).lower()}
            self._held.discard(index)
            self._exited.pop(index, None)
            self._starts.setdefault(index, []).append(time.monotonic())
            self._spawn(name, argv, env, self.node_log(index))

    def _provisions(self) -> bool:
        """Whether node 1 is to create the cluster: only if the marker (`Cluster.marker`) is not in the bucket.

        As on the hosts (holiday_host/config.py's `provision_steps`): if the stand-in cannot say, node 1
        joins and does not create a cluster.
        """
        assert self.cluster is not None
        bucket, key = self.cluster.marker
        try:
            self.aws_client("s3").head_object(Bucket=bucket, Key=key)
        except ClientError as err:
            return str(err.response.get("Error", {}).get("Code")) in ("404", "NoSuchKey", "NotFound")
        except BotoCoreError:
            return False
        return False

    def _provisioned(self) -> None:
        """Node 1 answers after creating the cluster: write the marker, so that no start creates it again."""
        if not self._provisioning or self.cluster is None:
            return
        bucket, key = self.cluster.marker
        self.aws_client("s3").put_object(Bucket=bucket, Key=key, Body=b"")
        self._provisioning = False
        # And the running process's record says what a start now gets: a restart never carries the flag.
        process = self.processes.get(self.restate_names[0])
        if process is not None:
            process.env["RESTATE_AUTO_PROVISION"] = "false"

    def stop_node(self, index: int) -> None:
        """Stop node `index` (0 for the single node) as systemd stops its container on a host: SIGTERM,
        then SIGKILL after RESTATE_STOP_GRACE_S. `supervise` leaves it down until `start_node`."""
        with self._lock:
            self._held.add(index)
        process = self.processes.get(self.restate_names[index])
        if process is not None:
            process.stop(RESTATE_STOP_GRACE_S)

    def kill_node(self, index: int) -> None:
        """SIGKILL node `index`, as a lost host. `supervise` leaves it down until `start_node`."""
        with self._lock:
            self._held.add(index)
        self.processes[self.restate_names[index]].kill()

    def wait_for_node(self, index: int, timeout: float = 60) -> None:
        """Until node `index` answers on its admin and ingress ports; a StackError at `timeout`, or at once
        (with the end of its log) if the node exits meanwhile."""
        admin, ingress = self.admin_urls[index], self.ingress_urls[index]
        name = self.restate_names[index]
        wait_until(self._answers(index, f"{admin}/health"), f"{name} admin on {admin}", timeout=timeout)
        if index == 0:
            self._provisioned()
        wait_until(self._answers(index, f"{ingress}/restate/health"), f"{name} ingress on {ingress}", timeout)

    def _answers(self, index: int, url: str) -> Callable[[], bool]:
        """`http_ok(url)`, failing at once if node `index` has exited."""
        ok = http_ok(url)
        process = self.processes[self.restate_names[index]]

        def check() -> bool:
            if not process.alive:
                raise StackError(self._exit_message(index))
            return ok()

        return check

    def _exit_message(self, index: int) -> str:
        """Why node `index` is not running: `restate-2 exited (code 1): <its log's last line> (see <log>)`."""
        process, log = self.processes[self.restate_names[index]], self.node_log(index)
        return f"{process.name} {describe_exit(process.returncode)}: {last_line(log)} (see {log})"

    def _services_env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **LOCAL_CREDENTIALS,
            **self.settings.as_env(),
            "AWS_ENDPOINT_URL": self.services_aws_endpoint or self.aws_url,
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("AWS_LAMBDA_FUNCTION_NAME", None)  # would turn restate.app into a Lambda handler
        return env

    def start_services(self) -> None:
        if self.mode == "lambda":
            argv = [
                sys.executable,
                "-m",
                "holiday_tools.locallambda",
                "--host",
                HOST,
                "--port",
                str(self.ports.functions),
                # Published versions survive a restart of the runtime, as on Lambda.
                "--state-dir",
                str(self.data_dir / "lambda"),
            ]
            argv += ["--memory", str(self.lambda_memory_mb)]
            argv += ["--limit-cpu"] if self.lambda_limit_cpu else []
            argv += ["--snapstart"] if self.lambda_snapstart else []
            argv += [f"--function=holiday-{name}={handler}" for name, handler in LOCAL_FUNCTIONS.items()]
            # The CDK app's registration handler, so a deploy can be rehearsed as CloudFormation runs it.
            argv.append(f"--function=holiday-registration={REGISTRATION_HANDLER}")
            health = f"{self.services_url}/local/stats"
        else:
            argv = [sys.executable, "-m", "holiday_tools.server", "--host", HOST, "--port", str(self.ports.services)]
            health = f"{self.services_url}/health"
        log = self.log_dir / "services.log"
        self._spawn("services", argv, self._services_env(), log, echo=self.services_log_to_terminal)
        wait_until(http_ok(health), f"services on {self.services_url}")

    def start_extra_services(self, name: str, code_dir: Path) -> str:
        """Another services process (http mode) running the code in `code_dir` on a free port; its URL.

        A new release beside the running one: Restate keeps sending the invocations pinned to
        the old deployment to the old process. Stopped with the stack.
        """
        port = _free_ports(1, frozenset(vars(self.ports).values()))[0]
        # The release's packages first; PYTHONSAFEPATH keeps `-m` from putting the working directory (the
        # project, with the running code's `holiday/`) ahead of them. The tools come from the install.
        env = {**self._services_env(), "PYTHONPATH": str(code_dir), "PYTHONSAFEPATH": "1"}
        argv = [sys.executable, "-m", "holiday_tools.server", "--host", HOST, "--port", str(port)]
        url = f"http://{HOST}:{port}"
        self._spawn(name, argv, env, self.log_dir / f"{name}.log", self.services_log_to_terminal)
        wait_until(http_ok(f"{url}/health"), f"{name} on {url}")
        return url

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
        self.kill_node(0)
        self.start_node(0)
        self.wait_for_node(0)

    def register(self) -> None:
        """Tell Restate where the services are (force: replace an earlier registration)."""
        if self.mode == "lambda":
            role = self.invoker_role_arn
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
