"""Everything the CDK app reads from its context (`--context key=value` or cdk.json), in one place.

Every key is checked before any resource is defined: an unknown key, an empty value, a key of the
other deployment mode, or a malformed value fails synthesis with one line that names the key and
says what would be valid. One key is also checked against the region the CDK CLI deploys to
(`CDK_DEFAULT_REGION`, which the CLI sets for the app from the AWS profile): `snapStart`, which
Lambda does not offer everywhere.
"""

from __future__ import annotations

import difflib
import ipaddress
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

DeploymentMode = Literal["self-hosted", "cloud"]
CLOUD_REGIONS = ("us", "eu")

_ARN_HEAD = r"arn:aws(?:-[a-z]+)*:{service}:[a-z]{{2,}}(?:-[a-z]+)+-\d+:\d{{12}}:"
_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_IPV4_CIDR = r"\d{1,3}(?:\.\d{1,3}){3}/\d{1,2}"
ANYWHERE = "0.0.0.0/0"
# How many Restate nodes a self-hosted RestateStack runs: one, or a replicated cluster of three.
RESTATE_NODES = (1, 3)
# A security group takes 60 inbound rules; the host's also admits the admin API's one client.
MAX_INGRESS_CIDRS = 50
# The hosts run the arm64 Amazon Linux 2023 image: the smallest arm64 type with the memory restate-server needs.
DEFAULT_INSTANCE_TYPE = "t4g.small"
# The public SSM parameter that names the newest Amazon Linux 2023 arm64 image of each region.
AMI_PARAMETER = "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
# A plain availability zone name: its region (us-east-1, us-gov-west-1) and one letter. Local and Wavelength
# zones (us-east-1-bos-1a) are not: they need opting in, and offer few instance types.
_ZONE = r"[a-z]{2}(?:-[a-z]+){1,2}-\d+[a-z]"
# An instance type of any architecture: family, then size (t3.small, m7g.2xlarge, u-6tb1.metal).
_ANY_INSTANCE_TYPE = r"(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9-]+)"
# Graviton (arm64) families have a 'g' right after the generation digit (t4g, m6gd, c7gn, im4gn, is4gen), or are a1.
_ARM64_FAMILY = r"a1|[a-z]+\d+g[a-z]*"
# Sizes small and larger (2 GiB and more); nano (0.5 GiB) and micro (1 GiB) are refused with the reason.
_SIZE = r"small|medium|large|xlarge|\d+xlarge|metal(?:-\d+xl)?"
_TOO_SMALL = ("nano", "micro")
_SECRET_NAME = r"[A-Za-z0-9/_+=.@-]+"
# Lambda SnapStart is offered "in all commercial Regions except Asia Pacific (New Zealand) and Asia Pacific (Taipei)"
# (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html#snapstart-supported-regions, read 2026-12-07): not in
# these two, nor in the other partitions (China, GovCloud, the ISO regions, the European Sovereign Cloud).
SNAP_START_ABSENT = {"ap-southeast-6": "Asia Pacific (New Zealand)", "ap-east-2": "Asia Pacific (Taipei)"}
OTHER_PARTITIONS = ("cn-", "us-gov-", "us-iso", "eu-isoe-", "eusc-")
# The region the CDK CLI deploys a stack of no explicit environment to (the AWS profile's), as the CLI tells the app.
DEPLOY_REGION = "CDK_DEFAULT_REGION"


@dataclass(frozen=True)
class ContextKey:
    """A context key of this app: the mode it belongs to, what a valid value is, what leaving it out means."""

    name: str
    mode: DeploymentMode | None  # None: either mode
    pattern: str  # a valid value, in full
    valid: str  # the same, for people: completes "must be ..."
    default: str | None  # completes "leave it out for ..."; None: required in its mode


# The context keys this app reads: the one list that the checks, the messages and the valid keys come from.
CONTEXT_KEYS = (
    ContextKey(
        "prefix",
        None,
        r"[A-Za-z][A-Za-z0-9-]{0,19}",
        "1-20 letters, digits or '-', starting with a letter",
        "the unprefixed names (RestateStack, restate-holiday-*)",
    ),
    ContextKey("deploymentMode", None, r"self-hosted|cloud", "'self-hosted' or 'cloud'", "the default, self-hosted"),
    ContextKey("deregisterOnDelete", None, r"(?i:true|false)", "true or false", "the default, false"),
    ContextKey(
        "snapStart",
        None,
        r"(?i:true|false)",
        "true (the functions' published versions start from a Lambda SnapStart snapshot) or false",
        "the default, false",
    ),
    ContextKey(
        "clusterId",
        "cloud",
        r"env_[A-Za-z0-9]+",
        "a Restate Cloud environment id: 'env_' followed by letters and digits",
        None,
    ),
    ContextKey(
        "authTokenSecretArn",
        "cloud",
        # Complete: the name, then the '-' and 6 random letters or digits that Secrets Manager appends.
        _ARN_HEAD.format(service="secretsmanager") + rf"secret:{_SECRET_NAME}-[A-Za-z0-9]{{6}}",
        "a Secrets Manager secret ARN, complete with the 6-character suffix that Secrets Manager adds: "
        "arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<suffix>",
        None,
    ),
    ContextKey(
        "region",
        "cloud",
        "|".join(CLOUD_REGIONS),
        f"one of {', '.join(CLOUD_REGIONS)} (the Restate Cloud region)",
        "the default, us",
    ),
    ContextKey(
        "certificateArn",
        "self-hosted",
        _ARN_HEAD.format(service="acm") + r"certificate/[A-Za-z0-9-]+",
        "an ACM certificate ARN: arn:<partition>:acm:<region>:<12-digit account>:certificate/<id>",
        "a self-signed certificate on the host",
    ),
    ContextKey(
        "domainName",
        "self-hosted",
        # Host name labels (letters, digits, '-'), at least two, 253 characters in all, not all digits at the end.
        rf"(?=.{{1,253}}\Z)(?:{_HOST_LABEL}\.)+(?![0-9]+\Z){_HOST_LABEL}",
        "the DNS host name that the certificate covers, such as restate.example.com",
        "the load balancer's own DNS name",
    ),
    ContextKey(
        "ingressAuth",
        "self-hosted",
        r"key|none",
        "'key' (callers send the ingress key) or 'none' (an open ingress, for a throwaway demo)",
        "the default, key",
    ),
    ContextKey(
        "ingressCidrs",
        "self-hosted",
        rf"{_IPV4_CIDR}(?:\s*,\s*{_IPV4_CIDR})*",
        "IPv4 ranges in CIDR notation, separated by commas, such as 203.0.113.0/24,198.51.100.7/32",
        f"the whole internet ({ANYWHERE}), with the ingress key required",
    ),
    ContextKey(
        "hostedZoneId",
        "self-hosted",
        r"Z[A-Z0-9]{1,31}",
        "a Route 53 public hosted zone id such as Z0123456789ABCDEFGHIJ",
        "no DNS record (you create it)",
    ),
    ContextKey(
        "restateNodes",
        "self-hosted",
        "|".join(str(n) for n in RESTATE_NODES),
        "1 (a single node) or 3 (a replicated cluster over three availability zones)",
        "the default, a single node",
    ),
    ContextKey(
        "availabilityZones",
        "self-hosted",
        rf"{_ZONE}(?:\s*,\s*{_ZONE})*",
        "availability zone names of one region, separated by commas, in node order, "
        "such as us-east-1a,us-east-1b,us-east-1c",
        "the region's first zones, as CloudFormation lists them",
    ),
    ContextKey(
        "instanceType",
        "self-hosted",
        rf"(?:{_ARM64_FAMILY})\.(?:{_SIZE})",
        "an arm64 (Graviton) EC2 instance type of size small or larger, such as t4g.small or m7g.large",
        f"the default, {DEFAULT_INSTANCE_TYPE}",
    ),
    ContextKey(
        "amiId",
        "self-hosted",
        r"ami-(?:[0-9a-f]{8}|[0-9a-f]{17})",
        "an AMI id, 'ami-' and 8 or 17 hex digits: an Amazon Linux 2023 arm64 image of the deploying region",
        "the newest Amazon Linux 2023 arm64 image at each instance launch",
    ),
)
KEYS = {key.name: key for key in CONTEXT_KEYS}
# Keys the CDK CLI keeps in cdk.context.json (`cdk acknowledge`, `cdk cli-telemetry`) and passes to every app.
CDK_CLI_KEYS = frozenset({"acknowledged-issue-numbers", "cli-telemetry"})


def zones_command(instance_type: str) -> str:
    """The AWS CLI command that lists the availability zones of the profile's region that offer `instance_type`."""
    return (
        "aws ec2 describe-instance-type-offerings --location-type availability-zone "
        f'--filters Name=instance-type,Values={instance_type} --query "InstanceTypeOfferings[].Location" --output text'
    )


def ami_command() -> str:
    """The AWS CLI command that prints the id of the newest Amazon Linux 2023 arm64 image of the profile's region."""
    return f"aws ssm get-parameter --name {AMI_PARAMETER} --query Parameter.Value --output text"


def is_cdk_key(key: str) -> bool:
    """Keys of the CDK itself: feature flags (`@aws-cdk/...:...`), `aws:cdk:...`, cached lookups (`...:account=...`)."""
    return ":" in key or key.startswith("@") or key in CDK_CLI_KEYS


class ContextReader(Protocol):
    """What is read of a construct's node (constructs' `Node`): all of its context, keys to values."""

    def get_all_context(self) -> object: ...


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
    # Self-hosted with certificate_arn only: the (lower-case) name the certificate covers; the ingress URL
    # is then https://<domain_name>. With hosted_zone_id, the stack creates its record in that public zone.
    domain_name: str | None = None
    hosted_zone_id: str | None = None
    # Self-hosted only: whether callers must send the ingress key (a generated secret), and from where they may call.
    ingress_key: bool = True
    ingress_cidrs: tuple[str, ...] = (ANYWHERE,)
    # Self-hosted only: one Restate node, or a cluster of three (one per availability zone).
    restate_nodes: int = 1
    # Self-hosted only: the zones of the nodes, in node order (3 for a cluster; 1 or 2 for one node, which goes in
    # the first); None: the region's first zones as CloudFormation lists them.
    availability_zones: tuple[str, ...] | None = None
    # Self-hosted only: the nodes' EC2 instance type, an arm64 (Graviton) one.
    instance_type: str = DEFAULT_INSTANCE_TYPE
    # Self-hosted only: the pinned image of the nodes; None: the newest one of AMI_PARAMETER at each launch.
    ami_id: str | None = None
    # What happens to Restate's registration of a function version when the stack is deleted
    deregister_on_delete: bool = False
    # Whether the four service functions publish their versions with Lambda SnapStart.
    snap_start: bool = False

    @classmethod
    def from_context(cls, node: ContextReader) -> DeploymentSettings:
        everything = node.get_all_context()
        if not isinstance(everything, Mapping):
            raise TypeError(f"get_all_context() returned a {type(everything).__name__}, not a mapping")
        context = {str(k): v for k, v in everything.items() if v is not None and not is_cdk_key(str(k))}
        for key in context:
            if key not in KEYS:
                raise SettingsError(_unknown_key(key))

        mode: DeploymentMode = "cloud" if _read(context, "deploymentMode") == "cloud" else "self-hosted"
        for key in context:
            if KEYS[key].mode not in (None, mode):
                raise SettingsError(_other_mode(key, mode))
        deregister = _flag(context, "deregisterOnDelete")
        snap_start = _snap_start(context, os.environ.get(DEPLOY_REGION, ""))
        prefix = _read(context, "prefix") or ""

        if mode == "self-hosted":
            certificate = _read(context, "certificateArn")
            domain = _read(context, "domainName")
            zone = _read(context, "hostedZoneId")
            if domain and not certificate:
                raise SettingsError(
                    "context 'domainName' needs context 'certificateArn': the ACM certificate that covers it"
                )
            if zone and not domain:
                raise SettingsError(
                    "context 'hostedZoneId' needs context 'domainName': the name to create a record for"
                )
            cidrs = _read(context, "ingressCidrs")
            nodes = _nodes(context)
            instance_type = _instance_type(context)
            return cls(
                prefix,
                "self-hosted",
                certificate_arn=certificate,
                domain_name=domain,
                hosted_zone_id=zone,
                ingress_key=_read(context, "ingressAuth") != "none",
                ingress_cidrs=(ANYWHERE,) if cidrs is None else _ranges(cidrs),
                restate_nodes=nodes,
                availability_zones=_zones(context, nodes, instance_type),
                instance_type=instance_type,
                ami_id=_read(context, "amiId", hint=f"the newest image's id: {ami_command()}"),
                deregister_on_delete=deregister,
                snap_start=snap_start,
            )

        missing = [key for key in ("clusterId", "authTokenSecretArn") if key not in context]
        if missing:
            raise SettingsError(
                f"deploymentMode=cloud needs context {' and '.join(repr(k) for k in missing)}: "
                "pass --context clusterId=<environment id> --context authTokenSecretArn=<secret ARN>"
            )
        return cls(
            prefix,
            "cloud",
            cluster_id=_read(context, "clusterId"),
            auth_token_secret_arn=_secret_arn(context),
            cloud_region=_read(context, "region") or "us",
            deregister_on_delete=deregister,
            snap_start=snap_start,
        )

    @property
    def warnings(self) -> list[str]:
        """What synthesis says on stderr, one line each, about a deployment that is open on purpose."""
        if self.mode != "self-hosted" or self.ingress_key:
            return []
        everyone = ANYWHERE in self.ingress_cidrs
        reach = "anyone on the internet" if everyone else f"anyone in {','.join(self.ingress_cidrs)}"
        return [
            f"warning: ingressAuth=none: {reach} can book and pay for trips and read any trip "
            "through this ingress, with no key; use it for a throwaway demo only"
        ]

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


def _read(context: Mapping[str, object], name: str, hint: str = "") -> str | None:
    """The value of a string key, None when it is absent; refuses an empty, non-string or malformed value.

    A `hint` (such as the command that finds a valid value) ends each refusal, after a ';'.
    """
    if name not in context:
        return None
    key = KEYS[name]
    value = context[name]
    hint = f"; {hint}" if hint else ""
    if value == "":
        leave_out = f"leave it out for {key.default}, or give" if key.default else "give"
        raise SettingsError(f"context {name!r} is empty; {leave_out} {key.valid}{hint}")
    if not isinstance(value, str):
        raise SettingsError(f"context {name!r} must be {key.valid}, not the {_json_kind(value)} {_shown(value)}{hint}")
    if name == "domainName":
        value = value.lower()
    if not re.fullmatch(key.pattern, value):
        raise SettingsError(f"context {name!r} must be {key.valid}, not {_shown(value)}{hint}")
    return value


def _flag(context: Mapping[str, object], name: str) -> bool:
    """A true/false key: text from the command line (any case), or a JSON boolean from cdk.json; False when absent."""
    value = context.get(name, False)
    if isinstance(value, bool):
        return value
    return (_read(context, name) or "false").lower() == "true"


def snap_start_offered(region: str) -> bool:
    """Whether Lambda offers SnapStart in `region` (as far as AWS's documentation says)."""
    return region not in SNAP_START_ABSENT and not region.startswith(OTHER_PARTITIONS)


def _snap_start(context: Mapping[str, object], region: str) -> bool:
    """`snapStart`, refused at synthesis for a region without SnapStart rather than left to the deploy."""
    wanted = _flag(context, "snapStart")
    if wanted and region and not snap_start_offered(region):
        name = f"{region} ({SNAP_START_ABSENT[region]})" if region in SNAP_START_ABSENT else region
        raise SettingsError(
            f"context 'snapStart': Lambda offers no SnapStart in {name}, the region this deploys to "
            f"({DEPLOY_REGION}, from your AWS profile); leave snapStart out (or false) there, or deploy to "
            "another commercial region"
        )
    return wanted


def _nodes(context: Mapping[str, object]) -> int:
    """`restateNodes`: text from the command line, or a JSON number from cdk.json."""
    value = context.get("restateNodes")
    if isinstance(value, int) and not isinstance(value, bool) and value in RESTATE_NODES:
        return value
    return int(_read(context, "restateNodes") or RESTATE_NODES[0])


def _instance_type(context: Mapping[str, object]) -> str:
    """`instanceType`: an arm64 type with the memory restate-server needs; an x86 or tiny one is told why not."""
    value = context.get("instanceType")
    shape = re.fullmatch(_ANY_INSTANCE_TYPE, value) if isinstance(value, str) else None
    if shape and not re.fullmatch(_ARM64_FAMILY, shape["family"]):
        counterpart = _arm64_counterpart(shape["family"], shape["size"])
        like = counterpart or f"{DEFAULT_INSTANCE_TYPE} or m7g.large"
        raise SettingsError(
            f"context 'instanceType': {shape[0]!r} is not an arm64 (Graviton) type, and the Restate hosts run the "
            "arm64 Amazon Linux 2023 image; give an arm64 type, whose family has a 'g' after the generation digit, "
            f"such as {like}"
        )
    if shape and shape["size"] in _TOO_SMALL:
        raise SettingsError(
            f"context 'instanceType': {shape[0]!r} has too little memory: restate-server's RocksDB alone is given "
            f"512 MiB; give size small or larger, such as {shape['family']}.small or {shape['family']}.medium"
        )
    return _read(context, "instanceType") or DEFAULT_INSTANCE_TYPE


def _arm64_counterpart(family: str, size: str) -> str | None:
    """The Graviton type that plainly stands for an x86 one, when there is one in that size; else None.

    t2 and t3(a) have the sizes of t4g (small at least, here). The Intel and AMD m, c and r families of
    generations 6 to 8 have a Graviton family of the same generation, with every size from large to 16xlarge.
    """
    if re.fullmatch(r"t[23]a?", family):
        return f"t4g.{'small' if size in _TOO_SMALL else size}"
    same_generation = re.fullmatch(r"([mcr][678])[ia]?", family)
    if same_generation and re.fullmatch(r"large|xlarge|(?:2|4|8|12|16)xlarge", size):
        return f"{same_generation[1]}g.{size}"
    return None


def _zones(context: Mapping[str, object], nodes: int, instance_type: str) -> tuple[str, ...] | None:
    """`availabilityZones`: one region's zones, none twice, as many as the nodes need; None when absent.

    Their region cannot be checked here: the stacks name no region, so a zone of another one fails the deploy.
    """
    hint = f"list the zones that offer {instance_type} with: {zones_command(instance_type)}"
    value = _read(context, "availabilityZones", hint=hint)
    if value is None:
        return None
    zones = tuple(part.strip() for part in value.split(","))
    for index, zone in enumerate(zones):
        if zone in zones[:index]:
            raise SettingsError(f"context 'availabilityZones': {zone!r} is given twice; {hint}")
    regions = list(dict.fromkeys(zone[:-1] for zone in zones))
    if len(regions) > 1:
        raise SettingsError(
            f"context 'availabilityZones' names zones of {len(regions)} regions ({', '.join(regions)}); "
            f"give zones of the one region you deploy to; {hint}"
        )
    if nodes == 3 and len(zones) != 3:
        raise SettingsError(
            f"context 'availabilityZones' names {_count(len(zones), 'zone')}; restateNodes=3 needs exactly 3, "
            f"one for each node; {hint}"
        )
    if nodes == 1 and len(zones) > 2:
        raise SettingsError(
            f"context 'availabilityZones' names {_count(len(zones), 'zone')}; a single node (restateNodes=1) "
            f"needs 1 or 2: the node goes in the first, the VPC spans them; {hint}"
        )
    return zones


def _secret_arn(context: Mapping[str, object]) -> str | None:
    """`authTokenSecretArn`, complete: a partial ARN is told why not, and how to print the complete one.

    A secret whose name itself ends with '-' and 6 letters or digits (`.../my-secret`) cannot be told apart from
    a complete ARN here; such a partial ARN passes, and registration says AccessDenied.
    """
    value = context.get("authTokenSecretArn")
    partial = _ARN_HEAD.format(service="secretsmanager") + rf"secret:(?P<name>{_SECRET_NAME})"
    found = re.fullmatch(partial, value) if isinstance(value, str) else None
    if found and not re.fullmatch(KEYS["authTokenSecretArn"].pattern, found[0]):
        region = found[0].split(":")[3]
        raise SettingsError(
            "context 'authTokenSecretArn' must be the complete ARN, with the '-' and 6 characters that Secrets "
            "Manager adds to the name: IAM policies that name a secret by ARN match only the complete ARN, so "
            "this one would deploy and then fail registration with AccessDenied; print the complete ARN with: "
            f"aws secretsmanager describe-secret --secret-id {found['name']} --region {region} "
            "--query ARN --output text"
        )
    return _read(context, "authTokenSecretArn")


def _ranges(value: str) -> tuple[str, ...]:
    """The ranges of `ingressCidrs`, each a valid IPv4 network given by its first address, none twice."""
    found: list[str] = []
    for text in (part.strip() for part in value.split(",")):
        try:
            network = ipaddress.IPv4Network(text)
        except ValueError as err:
            loose = ipaddress.IPv4Network(text, strict=False) if "has host bits set" in str(err) else None
            hint = f"; did you mean {loose}?" if loose else ""
            raise SettingsError(f"context 'ingressCidrs': {text!r} is not a valid IPv4 range ({err}){hint}") from None
        if str(network) in found:
            raise SettingsError(f"context 'ingressCidrs': {text!r} is given twice")
        found.append(str(network))
    if len(found) > MAX_INGRESS_CIDRS:
        raise SettingsError(
            f"context 'ingressCidrs' has {len(found)} ranges; a security group takes at most {MAX_INGRESS_CIDRS} here"
        )
    return tuple(found)


def _unknown_key(key: str) -> str:
    by_lower = {name.lower(): name for name in KEYS}
    close = difflib.get_close_matches(key.lower(), by_lower, n=1)
    guess = f" (did you mean {by_lower[close[0]]!r}?)" if close else ""
    return f"unknown context key {_shown(key)}{guess}; valid keys: {', '.join(KEYS)}"


def _other_mode(key: str, mode: DeploymentMode) -> str:
    if key == "region":
        return (
            "context 'region' is the Restate Cloud region (us or eu), only for deploymentMode=cloud; "
            "a self-hosted Restate goes to the AWS region of your AWS profile (or AWS_REGION)"
        )
    if mode == "self-hosted":
        return (
            f"context {key!r} is only for deploymentMode=cloud, and this deployment is self-hosted: "
            f"add --context deploymentMode=cloud, or leave {key!r} out"
        )
    return f"context {key!r} is only for deploymentMode=self-hosted; leave it out with deploymentMode=cloud"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _json_kind(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    return "object" if isinstance(value, Mapping) else type(value).__name__


def _shown(value: object, limit: int = 80) -> str:
    """A value as it appears in a message: quoted, on one line, cut short when long."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."
