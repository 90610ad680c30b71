"""Everything the CDK app reads from its context (`--context key=value` or cdk.json), in one place.

A missing or malformed key fails synthesis with a message that names it,
before any resource is defined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, Protocol

DeploymentMode = Literal["self-hosted", "cloud"]
CLOUD_REGIONS = ("us", "eu")


class ContextReader(Protocol):
    def try_get_context(self, key: str) -> object: ...


class SettingsError(ValueError):
    """A context key is missing or wrong; the message names it and says what would be right."""


@dataclass(frozen=True)
class DeploymentSettings:
    prefix: str
    mode: DeploymentMode
    # Restate Cloud only
    cluster_id: str | None = None
    auth_token_secret_arn: str | None = None
    cloud_region: str = "us"
    # Self-hosted only: an ACM certificate for the ingress (default: self-signed on the host)
    certificate_arn: str | None = None
    # What happens to Restate's registration of a function version when the stack is deleted
    deregister_on_delete: bool = False

    @classmethod
    def from_context(cls, node: ContextReader) -> DeploymentSettings:
        def get(key: str) -> str | None:
            value = node.try_get_context(key)
            return None if value in (None, "") else str(value)

        prefix = get("prefix") or ""
        if prefix and not re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,19}", prefix):
            raise SettingsError(
                f"context 'prefix' must be 1-20 letters, digits or '-', starting with a letter: {prefix!r}"
            )
        mode = get("deploymentMode") or "self-hosted"
        if mode not in ("self-hosted", "cloud"):
            raise SettingsError(f"context 'deploymentMode' must be 'self-hosted' or 'cloud', not {mode!r}")
        deregister = (get("deregisterOnDelete") or "false").lower()
        if deregister not in ("true", "false"):
            raise SettingsError(f"context 'deregisterOnDelete' must be true or false, not {deregister!r}")
        if mode == "self-hosted":
            return cls(
                prefix, "self-hosted", certificate_arn=get("certificateArn"), deregister_on_delete=deregister == "true"
            )

        missing = [key for key in ("clusterId", "authTokenSecretArn") if not get(key)]
        if missing:
            raise SettingsError(
                f"deploymentMode=cloud needs context {' and '.join(repr(k) for k in missing)}: "
                "pass --context clusterId=<environment id> --context authTokenSecretArn=<secret ARN>"
            )
        region = get("region") or "us"
        if region not in CLOUD_REGIONS:
            raise SettingsError(
                f"context 'region' must be one of {', '.join(CLOUD_REGIONS)} for Restate Cloud, not {region!r}"
            )
        secret = get("authTokenSecretArn") or ""
        if not secret.startswith("arn:"):
            raise SettingsError(f"context 'authTokenSecretArn' must be a Secrets Manager ARN, not {secret!r}")
        return cls(
            prefix,
            "cloud",
            cluster_id=get("clusterId"),
            auth_token_secret_arn=secret,
            cloud_region=region,
            deregister_on_delete=deregister == "true",
        )

    def stack_name(self, base: str) -> str:
        """`RestateStack`, or `<prefix>-RestateStack` with a prefix."""
        return f"{self.prefix}-{base}" if self.prefix else base

    def resource_name(self, name: str) -> str:
        """Names that must be unique in an account: `restate-holiday-<name>`, prefixed if asked."""
        return f"{self.prefix}-restate-holiday-{name}" if self.prefix else f"restate-holiday-{name}"

    def export_name(self, name: str) -> str:
        """CloudFormation export names are per region: prefixed when a prefix is given."""
        return f"{self.prefix}-{name}" if self.prefix else name

    @property
    def log_group_name(self) -> str:
        return f"/restate/{self.prefix}/restate" if self.prefix else "/restate/restate"

    @property
    def cloud_host(self) -> str:
        """`<id without env_>.env.<us|eu>.restate.cloud`, the environment's host name."""
        assert self.cluster_id is not None
        return f"{self.cluster_id.removeprefix('env_')}.env.{self.cloud_region}.restate.cloud"
