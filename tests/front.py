"""The host's nginx (its TLS front and key check) on loopback, rendered by holiday_host/config.py.

`Front.start` runs nginx with the host's nginx.conf, changing only addresses and paths, in
front of any upstream (a Restate ingress). With a key, the key file is written by the host's
own script, `holiday_host/ingress_key.sh`, reading the secret from the local AWS stand-in's
Secrets Manager with the AWS CLI, as the host does with its role.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from holiday_host.config import INGRESS_KEY_SCRIPT, FrontLayout, nginx_config, self_signed_certificate_command
from holiday_tools.devstack import LOCAL_CREDENTIALS, LocalStack, wait_until
from holiday_tools.processes import Process
from tests.support import PROJECT_DIR

NGINX_UNPACKED = PROJECT_DIR / "build" / "host-tools" / "usr" / "sbin" / "nginx"  # `make host-tools`


def nginx_binary() -> str:
    if NGINX_UNPACKED.exists():
        return str(NGINX_UNPACKED)
    installed = shutil.which("nginx")
    if installed is None:
        pytest.skip("no nginx: `make host-tools` unpacks Debian's package; elsewhere install nginx")
    return installed


def answers(url: str) -> bool:
    """Whether `url` answers below 500, accepting a self-signed certificate (curl -k)."""
    try:
        return httpx.get(url, timeout=1.0, verify=False).status_code < 500
    except httpx.HTTPError:
        return False


@dataclass
class Secret:
    """The ingress key's secret in the local stand-in's Secrets Manager, as RestateStack makes it on AWS."""

    stack: LocalStack
    arn: str

    @classmethod
    def create(cls, stack: LocalStack, name: str, value: str) -> Secret:
        created = stack.aws_client("secretsmanager").create_secret(Name=name, SecretString=value)
        return cls(stack, created["ARN"])

    def rotate(self, value: str) -> None:
        """What the README's rotation command does: a new current value."""
        self.stack.aws_client("secretsmanager").put_secret_value(SecretId=self.arn, SecretString=value)

    def environment(self) -> dict[str, str]:
        """The AWS CLI's environment: on the host, its role and region; here the stand-in (and the venv's CLI)."""
        path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
        region = self.stack.settings.aws_region
        # AWS_DEFAULT_REGION for the CLI of version 1 (in the venv); version 2 (on the host) reads either.
        regions = {"AWS_REGION": region, "AWS_DEFAULT_REGION": region}
        return {**LOCAL_CREDENTIALS, **regions, "AWS_ENDPOINT_URL": self.stack.aws_url, "PATH": path}


@dataclass
class Front:
    """nginx with the host's configuration, listening on loopback."""

    layout: FrontLayout
    url: str
    process: Process
    secret: Secret | None

    @classmethod
    def start(cls, work: Path, port: int, upstream: str, *, tls: bool = True, secret: Secret | None = None) -> Front:
        work.mkdir(parents=True, exist_ok=True)
        (work / "run").mkdir(exist_ok=True)
        layout = replace(
            FrontLayout(),
            listen=f"127.0.0.1:{port}",
            tls=tls,
            upstream=upstream,
            certificate=str(work / "cert.pem"),
            key=str(work / "key.pem"),
            ingress_key=str(work / "ingress-key.conf"),
            runtime_dir=str(work / "run"),
            access_log=str(work / "access.log"),
        )
        if tls:
            command = self_signed_certificate_command(layout.certificate, layout.key)
            subprocess.run(command, check=True, capture_output=True)
        Path(layout.runtime_dir, "nginx.conf").write_text(nginx_config(layout, keyed=secret is not None))
        process = Process("nginx", [*_nginx(layout), "-g", "daemon off;"], dict(os.environ), work / "nginx.log")
        front = cls(layout, f"{'https' if tls else 'http'}://{layout.listen}", process, secret)
        if secret is not None:
            copied = front.copy_key()  # as nginx's unit does before it starts nginx
            assert copied.returncode == 0, copied.stderr
        process.start()
        wait_until(lambda: front.process.alive and answers(f"{front.url}/restate/health"), "nginx on loopback")
        return front

    def copy_key(self, *, reload: bool = False) -> subprocess.CompletedProcess[str]:
        """Run the host's key script once, as its timer does (then with nginx's reload)."""
        assert self.secret is not None
        then = [*_nginx(self.layout), "-s", "reload"] if reload else []
        return subprocess.run(
            ["bash", str(INGRESS_KEY_SCRIPT), self.secret.arn, self.layout.ingress_key, *then],
            env={**os.environ, **self.secret.environment()},
            capture_output=True,
            text=True,
            check=False,
        )

    def stop(self) -> None:
        self.process.stop()


def _nginx(layout: FrontLayout) -> list[str]:
    """nginx with the rendered configuration, its prefix being the runtime folder."""
    return [nginx_binary(), "-p", layout.runtime_dir, "-c", str(Path(layout.runtime_dir, "nginx.conf"))]
