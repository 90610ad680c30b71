"""The EC2 host's boot script, run here as far as it can run off EC2: with the instance
metadata service served on loopback and the AWS CLI stubbed, so each guard is seen working.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from holiday_host import config
from holiday_host.__main__ import SAMPLE_CLUSTER
from tests.support import PROJECT_DIR

VOLUME = "vol-0123456789abcdef0"
IMDS = "http://169.254.169.254"
SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:RestateIngressKey-AbCdEf"
# Each way a host boots: TLS on the host or at a load balancer; with the ingress key, or open (ingressAuth=none);
# the single node (None), or node 3 of a cluster (cluster scripts differ by node only in restate.toml and log streams).
HOSTS = [
    (tls, secret, node)
    for tls in ("self-signed", "load-balancer")
    for secret in (SECRET, None)
    for node in (None, len(SAMPLE_CLUSTER.peers))
]


INTERFACE = "eni-0123456789abcdef0"
ADDRESS = "10.0.0.228"
SIGNAL = config.Signal("RestateStack", "RestateNodeASG550AE182")


def script(tls: config.TlsMode = "self-signed", secret: str | None = SECRET, node: int | None = None) -> str:
    return config.boot_script(
        tls=tls,
        ingress_key_secret=secret,
        volume_id=VOLUME,
        log_group="/restate/restate",
        interface=INTERFACE,
        address=ADDRESS,
        signal=SIGNAL,
        cluster=None if node is None else SAMPLE_CLUSTER,
        index=0 if node is None else node - 1,
    )


class Metadata(ThreadingHTTPServer):
    """Instance metadata on loopback: answers like IMDSv2, or 404 to everything when `broken`."""

    def __init__(self, broken: bool) -> None:
        answers = {"/latest/api/token": "token", "/latest/meta-data/instance-id": "i-0abc"}
        answers["/latest/meta-data/placement/region"] = "us-east-1"

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = None if broken else answers.get(self.path)
                self.send_response(404 if body is None else 200)
                data = (body or "<html>not found</html>").encode()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_PUT = do_GET

            def log_message(self, format: str, *args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()


# The folders the boot script writes to on a host, moved under the test's own root.
HOST_PATHS = ("/etc/", "/opt/aws/", "/usr/local/bin/", "/var/log/", config.DATA_MOUNT)
# Every command the script runs that would touch this machine, recorded instead (`aws` and `curl` have their own).
RECORDED = ("dnf", "docker", "systemctl", "journalctl", "mount", "mkfs.xfs", "openssl")
# Where the packages the script installs put their commands, on the host.
INSTALLED = {"cfn-signal": "opt/aws/bin", "amazon-cloudwatch-agent-ctl": "opt/aws/amazon-cloudwatch-agent/bin"}


@dataclass
class Boot:
    """The boot script run off EC2: host paths under `root`, commands stubbed and recorded in order in `calls`."""

    root: Path
    done: subprocess.CompletedProcess[str] | None = None

    @property
    def calls(self) -> list[str]:
        return (self.root / "calls.log").read_text().splitlines()

    def signals(self) -> list[str]:
        return [call for call in self.calls if call.startswith("cfn-signal ")]


def boot(
    tmp_path: Path,
    text: str,
    metadata: Metadata,
    *,
    attach: str = "exit 0",
    healthy: bool = True,
    timeout: float = 60,
) -> Boot:
    """Run `text` as the host would, with the instance metadata on `metadata`, the AWS CLI answering an attach
    with the shell of `attach`, Restate's health checks answering `healthy`, and one-tenth-second sleeps."""
    root = tmp_path / "root"
    stubs = tmp_path / "bin"
    for folder in (stubs, root / "etc/systemd/system", root / "opt/aws/bin", root / "usr/local/bin", root / "var/log"):
        folder.mkdir(parents=True, exist_ok=True)
    (root / "etc/fstab").touch()
    calls = root / "calls.log"
    calls.touch()
    record = f'echo "$(basename "$0") $*" >> {calls}'
    port = metadata.server_address[1]
    imds = IMDS.replace("/", "\\/")  # a literal pattern for bash's ${var//pattern/replacement}
    health = "exit 0" if healthy else "exit 7"
    stub_text = {
        "curl": f'case "$*" in *169.254.169.254*) exec /usr/bin/curl "${{@//{imds}/http://127.0.0.1:{port}}}" ;; '
        f"*127.0.0.1*) {record}; {health} ;; esac\nexit 99",
        "aws": f'{record}\ncase "$2" in attach-*) {attach} ;; esac',
        "sleep": "exec /bin/sleep 0.1",
        "ip": f'{record}\necho "3: ens6    inet {ADDRESS}/24 brd 10.0.0.255 scope global ens6"',
        "readlink": f"echo {block_device()}",
        "blkid": "exit 0",
        "mountpoint": "exit 1",
        **{name: record for name in (*RECORDED, *INSTALLED)},
    }
    for name, body in stub_text.items():
        path = root / INSTALLED[name] / name if name in INSTALLED else stubs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/bash\n{body}\n")
        path.chmod(0o755)
    # Each host path where it starts (not inside another, as /etc/ in /opt/aws/amazon-cloudwatch-agent/etc/).
    text = re.sub(f"(?<![\\w./-])({'|'.join(map(re.escape, HOST_PATHS))})", lambda m: f"{root}{m[1]}", text)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=timeout)
    return Boot(root, done)


def block_device() -> str:
    """A block device of this machine, for the script's check that the volume's device appeared."""
    found = next((str(p) for p in Path("/dev").iterdir() if p.is_block_device()), None)
    if found is None:
        pytest.skip("no block device here to stand for the data volume's")
    return found


@pytest.fixture
def metadata(request: pytest.FixtureRequest) -> Iterator[Metadata]:
    server = Metadata(broken=getattr(request, "param", False))
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("metadata", [True], indirect=True)
def test_an_instance_metadata_error_stops_the_boot_before_anything_uses_it(tmp_path: Path, metadata: Metadata) -> None:
    ran = boot(tmp_path, script(), metadata)
    assert ran.done is not None
    assert ran.done.returncode == 22, ran.done.stderr  # curl -f: an HTTP error is an error, not an instance id
    assert ran.calls == []  # nothing installed, attached or signalled with an error page as the id


def shortened(text: str, **deadlines: int) -> str:
    """The script with its deadlines (`ATTACH_DEADLINE_S=1`, ...) shortened, as a test can wait for them."""
    for name, seconds in deadlines.items():
        assert f"\n{name}=900" in text
        text = text.replace(f"\n{name}=900", f"\n{name}={seconds}")
    return text


def test_a_boot_installs_and_pulls_first_takes_over_interface_and_volume_then_signals_only_once_restate_serves(
    tmp_path: Path, metadata: Metadata
) -> None:
    ran = boot(tmp_path, script(), metadata)
    assert ran.done is not None
    assert ran.done.returncode == 0, ran.done.stderr
    calls = ran.calls

    def first(prefix: str) -> int:
        return next(i for i, call in enumerate(calls) if call.startswith(prefix))

    order = [
        "dnf install -y docker aws-cfn-bootstrap amazon-cloudwatch-agent",
        f"systemctl enable --now {config.JOURNAL_UNIT}",  # the boot's output and the units' journal go out early
        f"docker pull --quiet {config.RESTATE_IMAGE}",  # pulled before anything waits for the predecessor
        f"aws ec2 attach-network-interface --region us-east-1 --network-interface-id {INTERFACE} "
        "--instance-id i-0abc --device-index 1",
        f"aws ec2 attach-volume --region us-east-1 --volume-id {VOLUME} --instance-id i-0abc --device /dev/sdf",
        "mount ",
        "systemctl enable --now restate.service otel.service restate-ingress.service",
        "curl -fsS -o /dev/null --max-time 5 http://127.0.0.1:9070/health",  # restate-ready, as installed
        "cfn-signal --exit-code 0",
    ]
    assert [first(step) for step in order] == sorted(first(step) for step in order), calls
    assert {f"docker pull --quiet {image}" for image in (config.OTEL_IMAGE, config.NGINX_IMAGE)} <= set(calls)
    [signal] = ran.signals()
    assert signal == (
        "cfn-signal --exit-code 0 --reason Restate is ready on i-0abc "
        f"--stack {SIGNAL.stack} --resource {SIGNAL.resource} --region us-east-1"
    )
    # The check it ran is the one the local rolling rehearsal runs: restate_ready.sh, installed as it is.
    installed = (ran.root / config.READY_COMMAND.lstrip("/")).read_text().replace(str(ran.root), "")
    assert installed == config.READY_SCRIPT.read_text()


def test_a_boot_whose_restate_never_serves_signals_failure_saying_why_and_never_success(
    tmp_path: Path, metadata: Metadata
) -> None:
    ran = boot(tmp_path, shortened(script(), READY_DEADLINE_S=1), metadata, healthy=False)
    assert ran.done is not None
    assert ran.done.returncode == 1
    why = "not ready: the admin API at http://127.0.0.1:9070 does not answer its health check"
    [signal] = ran.signals()
    assert signal.startswith(f"cfn-signal --exit-code 1 --reason Restate was not ready within 1s: {why} --stack")
    assert f"signalling FAILURE to CloudFormation ({SIGNAL.stack} {SIGNAL.resource})" in ran.done.stderr
    assert "journalctl -u restate.service -n 30 --no-pager" in ran.calls  # Restate's own last words, in the log


def test_a_step_that_fails_signals_failure_naming_the_command(tmp_path: Path, metadata: Metadata) -> None:
    text = script().replace(f"for image in {config.RESTATE_IMAGE} ", "for image in registry.invalid/nothing ")
    ran = boot(tmp_path, text.replace("docker pull --quiet", "false"), metadata)
    assert ran.done is not None
    assert ran.done.returncode != 0
    [signal] = ran.signals()
    assert signal.startswith("cfn-signal --exit-code 1 --reason giving up after 10 attempts: false registry.invalid/")
    assert not any(call.startswith("aws ec2 attach") for call in ran.calls)  # it stopped there


def test_a_volume_that_never_frees_up_fails_the_update_at_the_deadline_and_is_still_waited_for(
    tmp_path: Path, metadata: Metadata
) -> None:
    in_use = (
        '[ "$2" = attach-volume ] || exit 0; '
        'echo "An error occurred (VolumeInUse): $6 is already attached to an instance" >&2; exit 254'
    )
    with pytest.raises(subprocess.TimeoutExpired):  # it never gives up: a dead host's volume frees up in the end
        boot(tmp_path, shortened(script(), ATTACH_DEADLINE_S=1), metadata, attach=in_use, timeout=5)
    ran = Boot(tmp_path / "root")
    error = f"An error occurred (VolumeInUse): {VOLUME} is already attached to an instance"
    [signal] = ran.signals()
    assert signal.startswith(f"cfn-signal --exit-code 1 --reason could not attach {VOLUME} within 1s: {error}")
    attempts = [i for i, call in enumerate(ran.calls) if call.startswith("aws ec2 attach-volume")]
    assert attempts[-1] > ran.calls.index(signal)  # still trying after the update was told
    assert not any(call.startswith("systemctl enable --now restate.service") for call in ran.calls)


# The boot script's `signal`, as `retry` calls it when it gives up: said on stderr here.
SIGNAL_STUB = 'signal() { echo "$2" >&2; }'


def retry_function() -> str:
    text = script()
    start = text.index("retry() {")
    return text[start : text.index("\n}\n", start) + 3]


@pytest.mark.parametrize(("fail_times", "exit_code"), [(2, 0), (5, 1)])
def test_retry_gives_a_command_a_bounded_number_of_tries(tmp_path: Path, fail_times: int, exit_code: int) -> None:
    # As the boot script runs `dnf install`: `retry 3 <command>`.
    counter = tmp_path / "tries"
    flaky = f'echo x >> {counter}; [ "$(wc -l < {counter})" -gt {fail_times} ]'
    text = f"sleep() {{ :; }}\n{SIGNAL_STUB}\n{retry_function()}\nflaky() {{ {flaky}; }}\nretry 3 flaky"
    done = subprocess.run(["bash", "-c", text], capture_output=True, text=True, timeout=30)
    assert done.returncode == exit_code
    assert len(counter.read_text().splitlines()) == min(fail_times + 1, 3)
    assert ("giving up after 3 attempts: flaky" in done.stderr) == (exit_code == 1)
    assert "retry 10 dnf install -y docker" in script()


def test_restate_starts_only_on_the_mounted_data_volume(tmp_path: Path) -> None:
    unit = config.units("self-signed", SECRET)["restate.service"]
    assert f"RequiresMountsFor={config.DATA_MOUNT}\n" in unit  # ordered after the mount, and needs it
    [check] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStartPre=/")]
    # The check itself, run as systemd would: refuses a plain folder, accepts a mounted one.
    command = check.split()[:-1]
    assert subprocess.run([*command, str(tmp_path)]).returncode != 0
    assert subprocess.run([*command, "/proc"]).returncode == 0
    assert f"-v {config.DATA_MOUNT}:{config.NodeLayout().base_dir}" in unit


@pytest.mark.parametrize(("tls", "secret", "node"), HOSTS)
def test_shellcheck_finds_nothing_in_the_boot_script(tls: config.TlsMode, secret: str | None, node: int | None) -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    done = subprocess.run([str(shellcheck), "-"], input=script(tls, secret, node), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize("installed", [config.INGRESS_KEY_SCRIPT, config.READY_SCRIPT], ids=lambda p: p.name)
def test_shellcheck_finds_nothing_in_the_scripts_the_host_installs(installed: Path) -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    done = subprocess.run([str(shellcheck), str(installed)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout


@pytest.mark.parametrize(("tls", "secret", "node"), HOSTS)
def test_systemd_accepts_the_hosts_units(
    tls: config.TlsMode, secret: str | None, node: int | None, tmp_path: Path
) -> None:
    analyze = shutil.which("systemd-analyze")
    system_units = Path("/usr/lib/systemd/system")
    if analyze is None or not system_units.is_dir():
        pytest.skip("no systemd-analyze and system units here to check the units against")
    # A root with what the units need on the host: the system's own units, docker.service, the binaries.
    root = tmp_path / "root"
    shutil.copytree(system_units, root / "usr/lib/systemd/system", symlinks=True)
    (root / "usr/lib/systemd/system/docker.service").write_text("[Service]\nExecStart=/usr/bin/docker\n")
    (root / "usr/bin").mkdir(parents=True)
    (root / "usr/bin/docker").write_text("#!/bin/sh\n")
    (root / "usr/bin/docker").chmod(0o755)
    shutil.copy("/usr/bin/mountpoint", root / "usr/bin/mountpoint")
    shutil.copy(shutil.which("journalctl") or "/usr/bin/journalctl", root / "usr/bin/journalctl")
    shutil.copy(shutil.which("systemctl") or "/usr/bin/systemctl", root / "usr/bin/systemctl")
    key_command = root / config.INGRESS_KEY_COMMAND.lstrip("/")
    key_command.parent.mkdir(parents=True)
    shutil.copy(config.INGRESS_KEY_SCRIPT, key_command)  # as the boot script installs it, and
    key_command.chmod(0o755)
    assert (f"chmod 755 {config.INGRESS_KEY_COMMAND}" in script(tls, secret, node)) == (secret is not None)
    written = root / "etc/systemd/system"
    written.mkdir(parents=True)
    found = config.units(tls, secret, node)
    quoted = "'EOF_UNIT'"  # the journal's unit is written first, as it is: it has nothing to fill in
    # The units the script writes are these, for this node.
    assert all(
        f"cat > /etc/systemd/system/{name} <<{'EOF_UNIT' if name != config.JOURNAL_UNIT else quoted}\n{text}"
        in script(tls, secret, node)
        for name, text in found.items()
    )
    assert (f"{config.KEY_UNIT}.timer" in found) == (secret is not None)
    for name, text in found.items():
        # As the boot script's heredoc fills them in.
        (written / name).write_text(text.replace("${REGION}", "us-east-1").replace("${LOG_GROUP}", "/restate/restate"))
    units = [f"etc/systemd/system/{name}" for name in found]
    done = subprocess.run(
        [analyze, "verify", "--man=no", f"--root={root}", *units], cwd=root, capture_output=True, text=True
    )
    assert (done.returncode, done.stderr) == (0, ""), done.stderr


# --- a cluster's node 1 creates the cluster once, and never again -----------------------------

CLUSTER = config.Cluster(
    tuple(f"http://node-{n}.restate-holiday-restate.internal:5122" for n in (1, 2, 3)),
    "s3://restatestack-snapshots/snapshots",
)


@pytest.mark.parametrize(
    ("answer", "creates"),
    [
        ("", True),  # the marker is not there: the cluster never existed
        ("exists", False),  # node 1 created it before, then lost its instance (or its data)
        ("denied", False),  # cannot tell: joining is safe, creating a second cluster is not
    ],
)
def test_node_1_creates_the_cluster_only_while_the_bucket_says_it_never_existed(
    tmp_path: Path, answer: str, creates: bool
) -> None:
    before, after = config.provision_steps(CLUSTER, 0)
    env_file = tmp_path / "provision.env"
    stubs = tmp_path / "bin"
    stubs.mkdir()
    says = {
        "": 'echo "An error occurred (404) when calling the HeadObject operation: Not Found" >&2; exit 254',
        "exists": "exit 0",
        "denied": 'echo "An error occurred (403) when calling the HeadObject operation: Forbidden" >&2; exit 254',
    }[answer]
    (stubs / "aws").write_text(
        f'#!/bin/bash\necho "$*" >> "{tmp_path}/aws.log"\nif [ "$2" = head-object ]; then {says}; fi\n'
    )
    (stubs / "curl").write_text("#!/bin/bash\nexit 0\n")  # node 1's admin API answers
    (stubs / "sleep").write_text("#!/bin/bash\n:\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    text = f"REGION=eu-west-1\n{SIGNAL_STUB}\n{retry_function()}\n{before}\n"
    text += f'grep -c . "{env_file}" > "{tmp_path}/during" || true\n{after}\n'
    text = text.replace(config.PROVISION_ENV, str(env_file))
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", text], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "aws.log").read_text().splitlines()
    bucket, key = CLUSTER.marker
    assert calls[0] == f"s3api head-object --region eu-west-1 --bucket {bucket} --key {key}"
    # While Restate starts, node 1 is told to create the cluster, or not.
    assert (tmp_path / "during").read_text().strip() == ("1" if creates else "0")
    # Once it answers, the marker is written, and the instruction taken back.
    assert calls[-1].startswith("s3api put-object") is creates
    assert env_file.read_text() == ""
    if answer == "denied":
        assert len(calls) == 30  # asked again and again, then joined rather than created
        assert "node 1 joins it and does not create one" in done.stderr


def test_only_node_1_may_ever_create_the_cluster() -> None:
    for index in (1, 2):
        before, after = config.provision_steps(CLUSTER, index)
        assert "RESTATE_AUTO_PROVISION" not in before + after
    assert config.provision_steps(None, 0) == ("", "")
    # Every node's restate.toml says no; only node 1's first start is told otherwise.
    for index in range(3):
        assert "auto-provision = false" in config.restate_config(config.NodeLayout(), CLUSTER, index)
    assert f"--env-file {config.PROVISION_ENV}" in config.units("self-signed", None, 2)["restate.service"]
    assert "--env-file" not in config.units("self-signed", None)["restate.service"]


# The boot script as `python -m holiday_host` renders it (sample ids), per TLS mode and node. It is the hosts'
# user data: a changed byte, a comment included, replaces every Restate host on the next deploy, and a single
# node is down meanwhile. Change a digest here only together with a change that the hosts need.
RENDERED_DIGESTS = {
    ("self-signed", ""): "b64017c359fb1d59adcea86fcebcf0181b12e9a32d307990a1122a1a30666ad9",
    ("self-signed", "2"): "8d41b1a7d4d61ce43c61cc90549f073e58de6fb960ad8b9d52555e94e5024679",
    ("load-balancer", ""): "cf4e3c9e4ba92e3ffc8f9fae4103dc1967c8a2a6743b353b3e010bf23dbf8b57",
    ("load-balancer", "2"): "b693761e851440e8d9808f0d2bae902b746292de040d339b7d614ed813aaca79",
}


@pytest.mark.parametrize(("tls", "node"), list(RENDERED_DIGESTS))
def test_the_hosts_user_data_changes_only_on_purpose(tls: str, node: str) -> None:
    argv = [sys.executable, "-m", "holiday_host", tls, *(["--node", node] if node else [])]
    rendered = subprocess.run(argv, capture_output=True, check=True, cwd=PROJECT_DIR).stdout
    assert hashlib.sha256(rendered).hexdigest() == RENDERED_DIGESTS[tls, node], (
        "the hosts' boot script changed: the next deploy replaces every Restate host; if that is meant, "
        "update RENDERED_DIGESTS"
    )
