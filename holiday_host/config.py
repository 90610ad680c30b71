"""What the self-hosted Restate node runs with, rendered in one place.

The boot script (`bootstrap.sh`) writes these files on the EC2 host, and the
rehearsal test runs restate-server and nginx on loopback with the very same
renderings, changing only the addresses and paths in `NodeLayout` and
`FrontLayout`. So what is tested here is what the host gets.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

RESTATE_IMAGE = "docker.io/restatedev/restate:1.7.12"
OTEL_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
NGINX_IMAGE = "public.ecr.aws/nginx/nginx:1.27"
INGRESS_PORT, ADMIN_PORT, HTTPS_PORT = 8080, 9070, 443
# Where nginx takes plain HTTP from a load balancer that ends TLS itself (Restate's own 8080 is on loopback).
BALANCER_TARGET_PORT = 8081
# restate-server takes up to a minute (its shutdown-timeout) to stop cleanly; so does an instance being replaced.
STOP_GRACE_S = 60
NODE_NAME = "restate-1"  # fixed: a replacement instance takes over the same node's data
CLUSTER_NAME = "restate-holiday"
CLUSTER_REPLICATION = 2  # of 3 nodes: any one may be lost
CLUSTER_PARTITIONS = 8  # enough to spread leaders over 3 nodes, few enough for a t4g.small (and a laptop)
PROVISIONED_MARKER = "cluster-created"  # beside the snapshots: node 1 has created the cluster
PROVISION_ENV = "/etc/restate/provision.env"  # on a cluster's hosts: RESTATE_AUTO_PROVISION=true, or nothing
SNAPSHOT_EVERY_RECORDS = 1000  # a partition snapshot per this many log records: the log is trimmed behind it
DATA_MOUNT = "/var/lib/restate"  # the data volume, on the host
BOOT_SCRIPT = Path(__file__).resolve().parent / "bootstrap.sh"
# What this module renders is the hosts' user data: any changed byte, a comment included, replaces every
# Restate host on the next deploy (a single node is down meanwhile). So the rendered comments still name
# infra/host/config.py, where this module used to live, and tests/deploy/test_host_boot.py pins a digest
# of every rendering: change it only with a change a host needs.
# Copies the ingress key from Secrets Manager into nginx's configuration; installed on the host as:
INGRESS_KEY_SCRIPT = Path(__file__).resolve().parent / "ingress_key.sh"
INGRESS_KEY_COMMAND = "/usr/local/bin/restate-ingress-key"
FRONT_DIR = "/etc/restate-ingress"  # nginx's configuration, certificate and ingress key on the host
FRONT_UNIT = "restate-ingress.service"  # nginx
KEY_UNIT = "restate-ingress-key"  # a timer and the service it runs: the key's copy
KEY_REFRESH_S = 60  # how often the host reads the key again: a rotated key is in use within about this
# Ready to serve: the check the boot script runs before it signals CloudFormation, and the local rolling rehearsal too.
READY_SCRIPT = Path(__file__).resolve().parent / "restate_ready.sh"
READY_COMMAND = "/usr/local/bin/restate-ready"
# The journal of the host's units, as a file that the CloudWatch agent sends to the log group.
JOURNAL_UNIT = "restate-journal.service"
JOURNAL_FILE = "/var/log/restate-units.log"
BOOT_LOG = "/var/log/cloud-init-output.log"  # the boot script's own output
CLOUDWATCH_AGENT_CONFIG = "/opt/aws/amazon-cloudwatch-agent/etc/restate-logs.json"
CLOUDWATCH_AGENT_CTL = "/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl"
# Where TLS ends: at nginx on the host with a self-signed certificate, or at a load balancer with an ACM
# certificate that passes plain HTTP to nginx. Either way nginx checks the key in front of Restate.
TlsMode = Literal["self-signed", "load-balancer"]
# Restate's ingress health check: the one path nginx serves without the ingress key (it tells nothing else).
HEALTH_PATH = "/restate/health"
# The longest idempotency-key the TLS front passes on (Restate itself keeps keys of any length).
MAX_IDEMPOTENCY_KEY = 256
# nginx's answer to a call without the ingress key, or with another (the CLI and the README quote it).
UNAUTHORIZED = (
    "missing or wrong ingress key: send the header Authorization: Bearer <key>, "
    "with the key from the secret in the stack output IngressKeySecretArn"
)
assert not set(UNAUTHORIZED) & set("'\"\\$"), "nginx's quoted string, and JSON, take it as it is"


@dataclass(frozen=True)
class NodeLayout:
    """Where restate-server listens and keeps its data. The defaults are the host's."""

    base_dir: str = "/restate-data"  # the data volume, as mounted into the container
    ingress: str = f"127.0.0.1:{INGRESS_PORT}"  # only nginx, beside it, reaches the ingress
    admin: str = f"0.0.0.0:{ADMIN_PORT}"  # the security group admits the registration function only
    fabric_ip: str = "127.0.0.1"  # node-to-node traffic: a single node has no peers
    fabric_port: int = 5122
    tracing_endpoint: str | None = "http://127.0.0.1:4317"  # the OpenTelemetry collector beside it; None: none


@dataclass(frozen=True)
class FrontLayout:
    """Where nginx listens (with TLS or without), what it forwards to, and its files. The defaults are the host's."""

    listen: str = str(HTTPS_PORT)
    tls: bool = True  # False: plain HTTP from a load balancer that ended TLS
    upstream: str = f"127.0.0.1:{INGRESS_PORT}"
    certificate: str = f"{FRONT_DIR}/cert.pem"
    key: str = f"{FRONT_DIR}/key.pem"
    ingress_key: str = f"{FRONT_DIR}/ingress-key.conf"  # written by INGRESS_KEY_SCRIPT, root only
    runtime_dir: str = "/var/cache/nginx"  # pid file and buffers; the nginx image owns this folder
    access_log: str = "/dev/stdout"  # the container's log, which goes to CloudWatch

    @classmethod
    def for_host(cls, tls: TlsMode) -> FrontLayout:
        return cls() if tls == "self-signed" else cls(listen=str(BALANCER_TARGET_PORT), tls=False)


@dataclass(frozen=True)
class Cluster:
    """Several restate-server nodes as one replicated cluster: the same for every node, whose place is its index.

    On AWS the peers are private DNS names that follow a replaced instance, and snapshots go to the
    stack's bucket with the host's role; in `holiday dev --nodes 3` the peers are loopback ports and the
    bucket is in the local S3 stand-in (`snapshot_endpoint`, plain HTTP).
    """

    peers: tuple[str, ...]  # each node's advertised fabric address (http://host:port), node 1 first
    snapshots: str  # s3://<bucket>/<prefix>: partition snapshots, from which a node that lost its data catches up
    snapshot_endpoint: str | None = None  # an S3 stand-in; None: AWS's S3 in the node's region
    name: str = CLUSTER_NAME
    replication: int = CLUSTER_REPLICATION
    partitions: int = CLUSTER_PARTITIONS

    def node_name(self, index: int) -> str:
        return f"restate-{index + 1}"

    @property
    def marker(self) -> tuple[str, str]:
        """(bucket, key) of the object that says the cluster exists: written once node 1 has created it."""
        bucket, _, prefix = self.snapshots.removeprefix("s3://").partition("/")
        return bucket, f"{prefix}/{PROVISIONED_MARKER}" if prefix else PROVISIONED_MARKER


def restate_config(layout: NodeLayout, cluster: Cluster | None = None, index: int = 0) -> str:
    """restate-server's configuration file (TOML). Anything not set keeps Restate's production default.

    Without `cluster`: the single node of RestateStack. With it: node `index` of that cluster.
    """
    name = NODE_NAME if cluster is None else cluster.node_name(index)
    tracing = "" if layout.tracing_endpoint is None else f'tracing-endpoint = "{layout.tracing_endpoint}"\n'
    text = f"""\
# restate-server configuration of RestateStack's node, rendered by infra/host/config.py.
node-name = "{name}"
base-dir = "{layout.base_dir}"
bind-ip = "{layout.fabric_ip}"
bind-port = {layout.fabric_port}
disable-telemetry = true
{tracing}# The default (2 GiB) is all the memory of a t4g.small; leave room for Docker, nginx and the collector.
rocksdb-total-memory-size = "512 MiB"
"""
    if cluster is not None:
        peers = ", ".join(f'"{peer}"' for peer in cluster.peers)
        text += f"""\
cluster-name = "{cluster.name}"
advertised-address = "{cluster.peers[index]}"
# No node creates the cluster by itself: a node that lost its data would create a second one beside
# the first. Node 1 is told to (RESTATE_AUTO_PROVISION=true) at its first start only, while the
# cluster has never existed; a node that lost its data then refuses to start, saying why.
auto-provision = false
# Each log record and each partition on {cluster.replication} nodes: one node may be lost without losing anything.
default-replication = {cluster.replication}
default-num-partitions = {cluster.partitions}
# A node that misses 5 gossip ticks (0.5 s; Restate's default is 10) is taken for dead and its partitions
# fail over: with 10, callers that had waited 5 s on a frozen node's partitions gave up just before the
# cluster answered, and asked the frozen node next (10 s without a completed trip in lambda mode, 5 to
# 6 s with 5). The cost: a node starved of CPU for half a second loses its leaderships, which costs a
# pause, never an answer.
gossip-failure-threshold = 5

[metadata-client]
addresses = [{peers}]
# A peer that stops answering but keeps its connections open (a paused VM, a frozen process) would hold a
# metadata request until HTTP/2 keep-alive gives up, 5 s + 5 s by default, and the retry may pick it again:
# a frozen metadata leader stalled the cluster 11 to 14 s. With these a request gives such a peer about 3 s,
# then goes elsewhere (`holiday chaos --scenario freeze` measures it). The cost: a node whose process stalls
# for more than about 2 s has its connections dropped and redone; the failure detector already gave up on
# it after 1 s.
keep-alive-interval = "1s"
keep-alive-timeout = "2s"
connect-timeout = "1s"

[networking]
# The same bound for node-to-node connections (log appends, leader campaigns): 3 s each by default.
http2-keep-alive-timeout = "1s"
handshake-timeout = "1s"
connect-timeout = "1s"

[bifrost]
default-provider = "replicated"

[worker.snapshots]
destination = "{cluster.snapshots}"
snapshot-interval-num-records = {SNAPSHOT_EVERY_RECORDS}
"""
        if cluster.snapshot_endpoint is not None:
            text += f"""\
aws-endpoint-url = "{cluster.snapshot_endpoint}"
aws-allow-http = true
"""
    return (
        text
        + f"""\

[ingress]
bind-address = "{layout.ingress}"

[admin]
bind-address = "{layout.admin}"
"""
    )


def nginx_config(layout: FrontLayout, *, keyed: bool) -> str:
    """nginx in front of the ingress, and nothing else: the ingress key (when `keyed`), then TLS (1.2 and 1.3,
    HTTP/1.1 and HTTP/2) unless a load balancer ended it."""
    run = layout.runtime_dir
    if layout.tls:
        # "listen ... http2" works on nginx 1.22 (tested here) and 1.27 (the image), where it is deprecated but kept.
        listen = f"""listen {layout.listen} ssl http2;
    ssl_certificate {layout.certificate};
    ssl_certificate_key {layout.key};
    ssl_protocols TLSv1.2 TLSv1.3;"""
    else:
        listen = f"listen {layout.listen};  # plain HTTP: the load balancer in front ended TLS"
    key_setting = key_check = ""
    if keyed:
        key_setting = f"""
    # `set $ingress_key "Bearer <key>";`, copied from Secrets Manager by {INGRESS_KEY_COMMAND}.
    include {layout.ingress_key};"""
        # An exact, case-sensitive comparison; refused before anything reaches Restate.
        key_check = f"""
      if ($http_authorization != $ingress_key) {{
        add_header WWW-Authenticate 'Bearer realm="restate-holiday"' always;
        return 401 '{{"code":401,"message":"{UNAUTHORIZED}"}}';
      }}"""
    return f"""\
# nginx in front of the Restate ingress on RestateStack's node, rendered by infra/host/config.py.
worker_processes auto;
pid {run}/nginx.pid;
error_log stderr warn;
events {{
  worker_connections 1024;
}}
http {{
  access_log {layout.access_log};
  server_tokens off;
  client_body_temp_path {run}/client_temp;
  proxy_temp_path {run}/proxy_temp;
  fastcgi_temp_path {run}/fastcgi_temp;
  uwsgi_temp_path {run}/uwsgi_temp;
  scgi_temp_path {run}/scgi_temp;
  server {{
    {listen}
    client_max_body_size 1m;
    default_type application/json;{key_setting}
    # Restate's own health, without the key: a load balancer asks it to know whether this node's Restate answers.
    location = {HEALTH_PATH} {{
      limit_except GET {{
        deny all;
      }}
      proxy_pass http://{layout.upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Authorization "";
    }}
    location / {{{key_check}
      # Restate stores an idempotency key as sent, and the services never see it: its length is capped here.
      if ($http_idempotency_key ~ "^.{{{MAX_IDEMPOTENCY_KEY + 1}}}") {{
        return 400 '{{"code":400,"message":"idempotency-key is longer than {MAX_IDEMPOTENCY_KEY} characters"}}';
      }}
      # Only the ingress: the admin API (9070) is never reachable through here.
      proxy_pass http://{layout.upstream};
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      # The key stops here: Restate would pass it on to the services and keep it with the invocation.
      proxy_set_header Authorization "";
      proxy_read_timeout 300s;
    }}
  }}
}}
"""


def self_signed_certificate_command(certificate: str, key: str) -> list[str]:
    """The openssl command that makes the host's certificate (curl -k accepts it)."""
    return [
        "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "825",
        "-subj", "/CN=restate-ingress", "-keyout", key, "-out", certificate,
    ]  # fmt: skip


OTEL_CONFIG = """\
# OpenTelemetry collector on RestateStack's node: Restate's traces (OTLP) to AWS X-Ray.
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:4317
processors:
  batch: {}
exporters:
  awsxray: {}
service:
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [awsxray]
"""


def container_unit(
    name: str,
    description: str,
    docker_args: list[str],
    *,
    needs_data: bool = False,
    environment: Mapping[str, str] | None = None,
    prepare: str | None = None,
    reload_signal: str | None = None,
) -> str:
    """A systemd unit that runs one container.

    With `needs_data`, it starts only on the mounted data volume; `prepare` runs before each start (a
    failure does not stop the start); `reload_signal` is sent to the container by `systemctl reload`.
    """
    mount = ""
    pre = ""
    if needs_data:
        # The volume is mounted `nofail` (a missing volume must not stop the boot), which does
        # not order it before anything; this does, and the check refuses an unmounted folder.
        mount = f"RequiresMountsFor={DATA_MOUNT}\n"
        pre = f"ExecStartPre=/usr/bin/mountpoint -q {DATA_MOUNT}\n"
    env = "".join(f"Environment={key}={value}\n" for key, value in (environment or {}).items())
    if prepare:
        pre += f"ExecStartPre=-{prepare}\n"
    reload = f"ExecReload=/usr/bin/docker kill --signal {reload_signal} {name}\n" if reload_signal else ""
    run = shlex.join(["/usr/bin/docker", "run", "--rm", "--name", name, "--network", "host", *docker_args])
    return f"""\
[Unit]
Description={description}
Requires=docker.service
After=docker.service network-online.target
Wants=network-online.target
{mount}
[Service]
{env}{pre}ExecStartPre=-/usr/bin/docker rm -f {name}
ExecStart={run}
{reload}ExecStop=/usr/bin/docker stop --time {STOP_GRACE_S} {name}
TimeoutStopSec={STOP_GRACE_S + 30}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def _awslogs(stream: str) -> list[str]:
    """Docker's options that send a container's output to the node's log group."""
    return [
        "--log-driver", "awslogs", "--log-opt", "awslogs-region=${REGION}",
        "--log-opt", "awslogs-group=${LOG_GROUP}", "--log-opt", f"awslogs-stream={stream}",
    ]  # fmt: skip


def log_stream(container: str, node: int | None = None) -> str:
    """A container's log stream in the node's log group: `restate`, or `restate-2` on node 2 of a cluster."""
    return container if node is None else f"{container}-{node}"


def units(tls: TlsMode, ingress_key_secret: str | None, node: int | None = None) -> dict[str, str]:
    """The host's systemd units by file name. `${REGION}` and `${LOG_GROUP}` are filled in at boot.

    `ingress_key_secret`: the ARN of the secret that holds the ingress key, or None for an open ingress.
    `node`: the host's number (1, 2, 3) in a cluster, which names its log streams; None for the single node.
    """
    restate = container_unit(
        "restate",
        "Restate server",
        [
            "-v", f"{DATA_MOUNT}:{NodeLayout().base_dir}",
            "-v", "/etc/restate/restate.toml:/etc/restate/restate.toml:ro",
            "-e", "RESTATE_CONFIG=/etc/restate/restate.toml",
            "-e", "AWS_REGION=${REGION}",
            *([] if node is None else ["--env-file", PROVISION_ENV]),
            *_awslogs(log_stream("restate", node)),
            RESTATE_IMAGE,
        ],
        needs_data=True,
    )  # fmt: skip
    otel = container_unit(
        "otel",
        "OpenTelemetry collector: Restate's traces to X-Ray",
        [
            "-e", "AWS_REGION=${REGION}",
            "-v", "/etc/otel/config.yaml:/etc/otel/config.yaml:ro",
            OTEL_IMAGE, "--config", "/etc/otel/config.yaml",
        ],
    )  # fmt: skip
    copy_key = None
    if ingress_key_secret is not None:
        # Not shlex.join: the ARN is a CloudFormation reference until deploy, and has nothing to quote after.
        copy_key = f"{INGRESS_KEY_COMMAND} {ingress_key_secret} {FrontLayout().ingress_key}"
    front = container_unit(
        FRONT_UNIT.removesuffix(".service"),
        "nginx: the ingress key and TLS in front of the Restate ingress",
        [
            "-v", f"{FRONT_DIR}:{FRONT_DIR}:ro",
            "-v", f"{FRONT_DIR}/nginx.conf:/etc/nginx/nginx.conf:ro",
            *_awslogs(log_stream("nginx", node)),
            NGINX_IMAGE,
        ],
        environment={"AWS_REGION": "${REGION}"} if copy_key else None,
        prepare=copy_key,  # the key is in place before nginx reads its configuration
        reload_signal="HUP",  # nginx reloads its configuration gracefully
    )  # fmt: skip
    found = {
        "restate.service": restate,
        "otel.service": otel,
        FRONT_UNIT: front,
    }
    if copy_key is not None:
        found[f"{KEY_UNIT}.service"] = f"""\
[Unit]
Description=Copy the Restate ingress key from Secrets Manager to nginx, and reload nginx when it changed
After=network-online.target
Wants=network-online.target

[Service]
Type=oneshot
Environment=AWS_REGION=${{REGION}}
ExecStart={copy_key} /usr/bin/systemctl try-reload-or-restart {FRONT_UNIT}
"""
        found[f"{KEY_UNIT}.timer"] = f"""\
[Unit]
Description=Pick up a rotated Restate ingress key within a minute

[Timer]
OnBootSec={KEY_REFRESH_S}s
OnUnitActiveSec={KEY_REFRESH_S}s
AccuracySec=5s

[Install]
WantedBy=timers.target
"""
    # First: the script writes and starts it early, so the journal of every other unit is sent from the start.
    return {JOURNAL_UNIT: journal_unit(list(found)), **found}


def journal_unit(followed: list[str]) -> str:
    """Follows the journal of the host's units `followed` (and Docker's) into JOURNAL_FILE, for the agent."""
    units = " ".join(f"--unit={name}" for name in ["docker.service", *followed])
    return f"""\
[Unit]
Description=The journal of the Restate host's units, in {JOURNAL_FILE} for the CloudWatch agent

[Service]
ExecStart=/usr/bin/journalctl --boot --follow --lines=all --output=short-iso {units}
StandardOutput=append:{JOURNAL_FILE}
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""


def cloudwatch_agent_config(node: int | None) -> str:
    """What the CloudWatch agent sends to the node's log group: the boot's output and the units' journal.

    Streams are per instance (`cloud-init-2-i-0abc...`), so a replaced host's boot stays beside its successor's.
    `${LOG_GROUP}` is filled in at boot.
    """
    files = [
        {
            "file_path": path,
            "log_group_name": "${LOG_GROUP}",
            "log_stream_name": f"{log_stream(name, node)}-{{instance_id}}",
        }
        for path, name in ((BOOT_LOG, "cloud-init"), (JOURNAL_FILE, "units"))
    ]
    return json.dumps({"logs": {"logs_collected": {"files": {"collect_list": files}}}}, indent=2) + "\n"


def log_shipping(node: int | None, journal: str) -> str:
    """Shell that starts sending the boot's output and the units' journal (the unit `journal` follows it) to
    the log group, as early as it can."""
    return "\n".join(
        [
            f"cat > {CLOUDWATCH_AGENT_CONFIG} <<EOF_FILE\n{cloudwatch_agent_config(node)}EOF_FILE",
            f"cat > /etc/systemd/system/{JOURNAL_UNIT} <<'EOF_UNIT'\n{journal}EOF_UNIT",
            "systemctl daemon-reload",
            f"systemctl enable --now {JOURNAL_UNIT}",
            f"retry 10 {CLOUDWATCH_AGENT_CTL} -a fetch-config -m ec2 -s -c file:{CLOUDWATCH_AGENT_CONFIG}",
        ]
    )


def _heredoc(path: str, content: str) -> str:
    """Shell that writes `content` to `path` verbatim (quoted delimiter: no expansion)."""
    assert "\nEOF_FILE\n" not in content
    return f"cat > {path} <<'EOF_FILE'\n{content}EOF_FILE"


def provision_steps(cluster: Cluster | None, index: int) -> tuple[str, str]:
    """Shell run on a cluster's host before Restate starts, and after: only node 1, only if the cluster never
    existed, is told to create it; once it has, a marker in the bucket (which outlives the instances) says so.

    Nothing for a single node, whose boot script stays as it was.
    """
    if cluster is None:
        return "", ""
    if index != 0:
        return f"\n: > {PROVISION_ENV}  # only node 1 ever creates the cluster", ""
    bucket, key = cluster.marker
    before = f"""
: > {PROVISION_ENV}
created=unknown
for _ in $(seq 1 30); do
  if found=$(aws s3api head-object --region "$REGION" --bucket '{bucket}' --key '{key}' 2>&1 >/dev/null); then
    created=yes
    break
  fi
  case "$found" in
    *"(404)"*|*"Not Found"*) created=no; break ;;
  esac
  echo "cannot tell whether the cluster exists yet: $found" >&2
  sleep 10
done
if [ "$created" = no ]; then
  echo RESTATE_AUTO_PROVISION=true > {PROVISION_ENV}
elif [ "$created" = unknown ]; then
  echo "could not tell whether the cluster exists: node 1 joins it and does not create one" >&2
fi"""
    after = f"""
# Once node 1 answers, the cluster exists: say so in the bucket, so that no start ever creates it again.
if [ "$created" = no ]; then
  retry 180 curl -fsS -o /dev/null http://127.0.0.1:{ADMIN_PORT}/health
  retry 10 aws s3api put-object --region "$REGION" --bucket '{bucket}' --key '{key}' >/dev/null
  : > {PROVISION_ENV}
fi"""
    return before, after


@dataclass(frozen=True)
class Signal:
    """Where the host reports that it is healthy: its stack, and its Auto Scaling group's logical id."""

    stack: str
    resource: str


def ready_command(cluster: Cluster | None) -> str:
    """The host's readiness check as the boot script runs it (the defaults of restate_ready.sh are the host's)."""
    if cluster is None:
        return READY_COMMAND
    return f"RESTATE_NODES={len(cluster.peers)} RESTATE_REPLICATION={cluster.replication} {READY_COMMAND}"


def boot_script(
    *,
    tls: TlsMode,
    ingress_key_secret: str | None,
    volume_id: str,
    log_group: str,
    interface: str,
    address: str,
    signal: Signal,
    cluster: Cluster | None = None,
    index: int = 0,
) -> str:
    """The host's user data: bootstrap.sh with its placeholders (between at-signs) filled, every file above in place.

    `ingress_key_secret` is the ARN of the key's secret, never the key: the host reads the key at boot.
    `interface`: the id of the node's own network interface, which holds its fixed private address (and a
    single node's Elastic IP) and which each of its instances attaches; `address`: that fixed address;
    `signal`: whom to tell that it is healthy.
    With `cluster`, the host is node `index` of that cluster: its fabric listens for the other nodes,
    and its containers log to streams named after it (`restate-2`, `nginx-2`).
    """
    front = FrontLayout.for_host(tls)
    layout = NodeLayout() if cluster is None else NodeLayout(fabric_ip="0.0.0.0")
    files = [
        _heredoc("/etc/restate/restate.toml", restate_config(layout, cluster, index)),
        _heredoc("/etc/otel/config.yaml", OTEL_CONFIG),
        _heredoc(f"{FRONT_DIR}/nginx.conf", nginx_config(front, keyed=ingress_key_secret is not None)),
    ]
    if ingress_key_secret is not None:
        files += [_heredoc(INGRESS_KEY_COMMAND, INGRESS_KEY_SCRIPT.read_text()), f"chmod 755 {INGRESS_KEY_COMMAND}"]
    files += [_heredoc(READY_COMMAND, READY_SCRIPT.read_text()), f"chmod 755 {READY_COMMAND}"]
    tls_setup = ":"
    if front.tls:
        make_cert = shlex.join(self_signed_certificate_command(front.certificate, front.key))
        tls_setup = f"[ -f {front.certificate} ] || {make_cert}"
    node = None if cluster is None else index + 1
    host_units = units(tls, ingress_key_secret, node)
    provision_before, provision_after = provision_steps(cluster, index)
    # An unquoted heredoc: the shell fills in ${REGION} and ${LOG_GROUP} at boot.
    unit_files = [
        f"cat > /etc/systemd/system/{name} <<EOF_UNIT\n{text}EOF_UNIT"
        for name, text in host_units.items()
        if name != JOURNAL_UNIT  # written earlier, with the log shipping
    ]
    values = {
        "VOLUME_ID": volume_id,
        "LOG_GROUP": log_group,
        "DATA_MOUNT": DATA_MOUNT,
        "NODE_INTERFACE": interface,
        "NODE_ADDRESS": address,
        "SIGNAL_STACK": signal.stack,
        "SIGNAL_RESOURCE": signal.resource,
        "CONFIG_DIRS": f"/etc/restate /etc/otel {FRONT_DIR} {Path(CLOUDWATCH_AGENT_CONFIG).parent}",
        "LOG_SHIPPING": log_shipping(node, host_units[JOURNAL_UNIT]),
        "IMAGES": " ".join((RESTATE_IMAGE, OTEL_IMAGE, NGINX_IMAGE)),
        "CONFIG_FILES": "\n".join(files),
        "TLS_SETUP": tls_setup,
        "UNIT_FILES": "\n".join(unit_files),
        "PROVISION": provision_before,
        "PROVISIONED": provision_after,
        # What starts once the data volume is mounted: the services and the timer (the key's copy runs from them).
        "UNITS": " ".join(name for name, text in host_units.items() if "[Install]" in text and name != JOURNAL_UNIT),
        "READY": ready_command(cluster),
    }
    script = BOOT_SCRIPT.read_text()
    for name, value in values.items():
        script = script.replace(f"@{name}@", value)
    left = re.findall(r"@[A-Z_]+@", script)
    if left:
        raise ValueError(f"{BOOT_SCRIPT.name} has placeholders nobody fills: {left}")
    return script
