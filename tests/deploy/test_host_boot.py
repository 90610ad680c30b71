"""The EC2 host's boot script, run here as far as it can run off EC2: with the instance
metadata service served on loopback and the AWS CLI stubbed, so each guard is seen working.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infra.host import config
from infra.host.__main__ import SAMPLE_CLUSTER

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


def script(tls: config.TlsMode = "self-signed", secret: str | None = SECRET, node: int | None = None) -> str:
    return config.boot_script(
        tls=tls,
        ingress_key_secret=secret,
        volume_id=VOLUME,
        log_group="/restate/restate",
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


def run_boot(tmp_path: Path, text: str, metadata: Metadata) -> subprocess.CompletedProcess[str]:
    """Run the script with `curl` sent to `metadata`, `aws` refusing the attach, and quick sleeps."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    port = metadata.server_address[1]
    imds = IMDS.replace("/", "\\/")  # a literal pattern for bash's ${var//pattern/replacement}
    (stubs / "curl").write_text(f'#!/bin/bash\nexec /usr/bin/curl "${{@//{imds}/http://127.0.0.1:{port}}}"\n')
    (stubs / "aws").write_text(
        '#!/bin/bash\necho "$*" >> "$STUB_LOG"\n'
        'echo "An error occurred (VolumeInUse): $6 is already attached to an instance" >&2\nexit 254\n'
    )
    (stubs / "sleep").write_text("#!/bin/bash\nexec /bin/sleep 0.1\n")
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    env = {**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}", "STUB_LOG": str(tmp_path / "aws.log")}
    (tmp_path / "aws.log").touch()
    return subprocess.run(["bash", "-c", text], env=env, capture_output=True, text=True, timeout=30)


@pytest.fixture
def metadata(request: pytest.FixtureRequest) -> Iterator[Metadata]:
    server = Metadata(broken=getattr(request, "param", False))
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("metadata", [True], indirect=True)
def test_an_instance_metadata_error_stops_the_boot_before_anything_uses_it(tmp_path: Path, metadata: Metadata) -> None:
    done = run_boot(tmp_path, script(), metadata)
    assert done.returncode == 22, done.stderr  # curl -f: an HTTP error is an error, not an instance id
    assert (tmp_path / "aws.log").read_text() == ""  # no attach was tried with an error page as the id


def test_a_volume_that_never_frees_up_fails_the_boot_at_the_deadline_saying_why(
    tmp_path: Path, metadata: Metadata
) -> None:
    text = script().replace("ATTACH_DEADLINE_S=1800", "ATTACH_DEADLINE_S=1")  # the deadline, shortened
    assert text != script()
    done = run_boot(tmp_path, text, metadata)
    assert done.returncode == 1
    attempts = (tmp_path / "aws.log").read_text().splitlines()
    assert len(attempts) >= 2
    assert attempts[0].startswith(f"ec2 attach-volume --region us-east-1 --volume-id {VOLUME} --instance-id i-0abc")
    error = f"An error occurred (VolumeInUse): {VOLUME} is already attached to an instance"
    assert f"waiting to attach {VOLUME}: {error}" in done.stderr
    assert done.stderr.rstrip().endswith(f"could not attach {VOLUME} within 1s: {error}")


def retry_function() -> str:
    text = script()
    start = text.index("retry() {")
    return text[start : text.index("\n}\n", start) + 3]


@pytest.mark.parametrize(("fail_times", "exit_code"), [(2, 0), (5, 1)])
def test_retry_gives_a_command_a_bounded_number_of_tries(tmp_path: Path, fail_times: int, exit_code: int) -> None:
    # As the boot script runs `dnf install`: `retry 3 <command>`.
    counter = tmp_path / "tries"
    flaky = f'echo x >> {counter}; [ "$(wc -l < {counter})" -gt {fail_times} ]'
    text = f"sleep() {{ :; }}\n{retry_function()}\nflaky() {{ {flaky}; }}\nretry 3 flaky"
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


def test_shellcheck_finds_nothing_in_the_ingress_key_script() -> None:
    shellcheck = Path(sys.executable).parent / "shellcheck"
    done = subprocess.run([str(shellcheck), str(config.INGRESS_KEY_SCRIPT)], capture_output=True, text=True)
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
    shutil.copy(shutil.which("systemctl") or "/usr/bin/systemctl", root / "usr/bin/systemctl")
    key_command = root / config.INGRESS_KEY_COMMAND.lstrip("/")
    key_command.parent.mkdir(parents=True)
    shutil.copy(config.INGRESS_KEY_SCRIPT, key_command)  # as the boot script installs it, and
    key_command.chmod(0o755)
    assert (f"chmod 755 {config.INGRESS_KEY_COMMAND}" in script(tls, secret, node)) == (secret is not None)
    written = root / "etc/systemd/system"
    written.mkdir(parents=True)
    found = config.units(tls, secret, node)
    # The units the script writes are these, for this node.
    assert all(
        f"cat > /etc/systemd/system/{name} <<EOF_UNIT\n{text}" in script(tls, secret, node)
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
    text = f"REGION=eu-west-1\n{retry_function()}\n{before}\n"
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
