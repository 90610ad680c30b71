"""The CDK app's context checks (infra/settings.py), on a fake node: no Node.js, no synthesis, no Lambda assets.

A real CDK node, and app.py run as the CDK CLI runs it, are in tests/deploy/test_app.py (they start Node.js).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from infra.settings import (
    AMI_PARAMETER,
    CONTEXT_KEYS,
    DEFAULT_INSTANCE_TYPE,
    KEYS,
    DeploymentSettings,
    SettingsError,
    ami_command,
    zones_command,
)
from tests.support import documentation

SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:/restate/env_abc123/auth-token-AbCdEf"
CERTIFICATE = "arn:aws:acm:us-east-1:111122223333:certificate/0c6e2d3a-1b2c-4d5e-8f90-a1b2c3d4e5f6"
CLOUD = {"deploymentMode": "cloud", "clusterId": "env_abc123", "authTokenSecretArn": SECRET}
DOMAIN = {"certificateArn": CERTIFICATE, "domainName": "restate.example.com"}
ZONES = "us-east-1a,us-east-1b,us-east-1c"
AMI = "ami-0123456789abcdef0"
# What the CDK CLI passes besides our keys: cdk.json's feature flags, its own aws:cdk:* keys, and what
# `cdk acknowledge` and `cdk cli-telemetry` keep in cdk.context.json.
CDK_KEYS: dict[str, Any] = {
    "@aws-cdk/core:checkSecretUsage": True,
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
    "aws:cdk:enable-path-metadata": True,
    "aws:cdk:bundling-stacks": ["**"],
    "availability-zones:account=111122223333:region=us-east-1": ["us-east-1a"],
    "acknowledged-issue-numbers": [34892],
    "cli-telemetry": False,
}


class FakeNode:
    """The part of a constructs Node that settings read: all of its context."""

    def __init__(self, context: dict[str, Any]) -> None:
        self.context = context

    def get_all_context(self) -> object:
        return dict(self.context)


def settings(context: dict[str, Any]) -> DeploymentSettings:
    return DeploymentSettings.from_context(FakeNode(context))


def refusal(context: dict[str, Any]) -> str:
    with pytest.raises(SettingsError) as refused:
        settings(context)
    message = str(refused.value)
    assert "\n" not in message
    return message


# --- good context ----------------------------------------------------------------------------


def test_no_context_is_self_hosted_with_the_default_names() -> None:
    assert settings({}) == DeploymentSettings("", "self-hosted")
    assert settings({}).stack_name("RestateStack") == "RestateStack"


def test_the_cdks_own_keys_are_left_alone() -> None:
    assert settings(CDK_KEYS) == DeploymentSettings("", "self-hosted")


def test_a_json_null_is_as_if_the_key_were_left_out() -> None:
    assert settings({"prefix": None, "certificateArn": None}) == DeploymentSettings("", "self-hosted")


def test_a_prefix() -> None:
    alice = settings({"prefix": "alice", **CDK_KEYS})
    assert alice.prefix == "alice"
    assert alice.stack_name("RestateStack") == "alice-RestateStack"


@pytest.mark.parametrize(
    ("region", "host"), [(None, "abc123.env.us.restate.cloud"), ("eu", "abc123.env.eu.restate.cloud")]
)
def test_restate_cloud(region: str | None, host: str) -> None:
    cloud = settings({**CLOUD, **({"region": region} if region else {})})
    assert (cloud.mode, cloud.cluster_id, cloud.auth_token_secret_arn) == ("cloud", "env_abc123", SECRET)
    assert cloud.cloud_host == host
    assert (cloud.certificate_arn, cloud.domain_name, cloud.hosted_zone_id) == (None, None, None)


def test_a_certificate_alone() -> None:
    acm = settings({"certificateArn": CERTIFICATE})
    assert (acm.certificate_arn, acm.domain_name, acm.hosted_zone_id) == (CERTIFICATE, None, None)


def test_a_certificate_with_a_domain_name_and_a_hosted_zone() -> None:
    named = settings(
        {"certificateArn": CERTIFICATE, "domainName": "Restate.Example.COM", "hostedZoneId": "Z0123456789ABCDEFGHIJ"}
    )
    assert named.mode == "self-hosted"
    assert (named.certificate_arn, named.domain_name, named.hosted_zone_id) == (
        CERTIFICATE,
        "restate.example.com",
        "Z0123456789ABCDEFGHIJ",
    )


def test_a_certificate_in_another_partition() -> None:
    arn = "arn:aws-us-gov:acm:us-gov-west-1:111122223333:certificate/0c6e2d3a"
    assert settings({"certificateArn": arn}).certificate_arn == arn


@pytest.mark.parametrize(
    ("given", "deregister"), [("true", True), ("TRUE", True), ("false", False), (True, True), (False, False)]
)
def test_deregister_on_delete_as_text_or_a_json_boolean(given: str | bool, deregister: bool) -> None:
    assert settings({"deregisterOnDelete": given}).deregister_on_delete is deregister
    assert settings({**CLOUD, "deregisterOnDelete": given}).deregister_on_delete is deregister


def test_by_default_callers_need_the_key_and_may_call_from_anywhere() -> None:
    assert (settings({}).ingress_key, settings({}).ingress_cidrs, settings({}).warnings) == (True, ("0.0.0.0/0",), [])
    assert settings({"ingressAuth": "key"}) == settings({})


def test_ingress_cidrs_in_the_order_given_spaces_allowed() -> None:
    given = settings({"ingressCidrs": "203.0.113.0/24, 198.51.100.7/32,10.0.0.0/8"})
    assert given.ingress_cidrs == ("203.0.113.0/24", "198.51.100.7/32", "10.0.0.0/8")
    assert given.ingress_key


@pytest.mark.parametrize(
    ("cidrs", "who"),
    [(None, "anyone on the internet"), ("203.0.113.0/24,198.51.100.7/32", "anyone in 203.0.113.0/24,")],
)
def test_an_open_ingress_is_one_warning_line_saying_who_can_book(cidrs: str | None, who: str) -> None:
    opened = settings({"ingressAuth": "none", **({"ingressCidrs": cidrs} if cidrs else {})})
    assert not opened.ingress_key
    [warning] = opened.warnings
    assert warning.startswith(f"warning: ingressAuth=none: {who}")
    assert "with no key" in warning
    assert "\n" not in warning


@pytest.mark.parametrize(
    ("context", "nodes"),
    [
        ({}, 1),
        ({"restateNodes": "1"}, 1),
        ({"restateNodes": "3"}, 3),
        ({"restateNodes": 3}, 3),  # a JSON number, from cdk.json
        ({"restateNodes": "3", **DOMAIN, "ingressAuth": "none", "ingressCidrs": "10.0.0.0/8"}, 3),
    ],
)
def test_one_restate_node_or_a_cluster_of_three(context: dict[str, Any], nodes: int) -> None:
    assert settings(context).restate_nodes == nodes
    assert settings({**CDK_KEYS, **context}) == settings(context)


def test_by_default_a_small_graviton_in_the_regions_first_zones_with_the_newest_image() -> None:
    default = settings({})
    assert (default.availability_zones, default.instance_type, default.ami_id) == (None, "t4g.small", None)
    assert DEFAULT_INSTANCE_TYPE == "t4g.small"
    cloud = settings(CLOUD)
    assert (cloud.availability_zones, cloud.ami_id) == (None, None)


@pytest.mark.parametrize(
    ("context", "zones"),
    [
        ({"availabilityZones": "us-east-1b"}, ("us-east-1b",)),  # one node, in that zone
        ({"availabilityZones": "eu-west-1c,eu-west-1a"}, ("eu-west-1c", "eu-west-1a")),  # the node in the first
        ({"restateNodes": "3", "availabilityZones": ZONES}, ("us-east-1a", "us-east-1b", "us-east-1c")),
        (
            {"restateNodes": 3, "availabilityZones": "us-east-1c, us-east-1a ,us-east-1f"},
            ("us-east-1c", "us-east-1a", "us-east-1f"),
        ),
        (
            {"restateNodes": "3", "availabilityZones": "us-gov-west-1a,us-gov-west-1b,us-gov-west-1c"},
            ("us-gov-west-1a", "us-gov-west-1b", "us-gov-west-1c"),
        ),
        ({"availabilityZones": "ap-southeast-2a"}, ("ap-southeast-2a",)),
    ],
)
def test_availability_zones_in_node_order(context: dict[str, Any], zones: tuple[str, ...]) -> None:
    assert settings({**CDK_KEYS, **context}).availability_zones == zones


@pytest.mark.parametrize(
    "instance_type",
    [
        "t4g.small",
        "t4g.2xlarge",
        "a1.medium",
        "m6g.large",
        "m6gd.xlarge",
        "m7g.large",
        "c7g.2xlarge",
        "c7gn.16xlarge",
        "r8g.metal-24xl",
        "x2gd.metal",
        "im4gn.large",
        "is4gen.xlarge",
        "i4g.4xlarge",
        "g5g.xlarge",
    ],
)
def test_an_arm64_instance_type(instance_type: str) -> None:
    assert settings({"instanceType": instance_type}).instance_type == instance_type
    assert settings({"restateNodes": "3", "instanceType": instance_type}).instance_type == instance_type


@pytest.mark.parametrize("ami", ["ami-0123abcd", AMI])
def test_a_pinned_image(ami: str) -> None:
    assert settings({"amiId": ami}).ami_id == ami


def test_every_self_hosted_setting_at_once() -> None:
    given = settings({"restateNodes": "3", "availabilityZones": ZONES, "instanceType": "m7g.large", "amiId": AMI})
    assert (given.restate_nodes, given.availability_zones, given.instance_type, given.ami_id) == (
        3,
        ("us-east-1a", "us-east-1b", "us-east-1c"),
        "m7g.large",
        AMI,
    )


def test_the_commands_that_find_valid_zones_and_the_current_image() -> None:
    assert zones_command("m7g.large") == (
        "aws ec2 describe-instance-type-offerings --location-type availability-zone "
        '--filters Name=instance-type,Values=m7g.large --query "InstanceTypeOfferings[].Location" --output text'
    )
    assert AMI_PARAMETER == "/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
    assert ami_command() == (
        "aws ssm get-parameter --name /aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64 "
        "--query Parameter.Value --output text"
    )


def test_the_docs_give_the_same_commands() -> None:
    readme = re.sub(r" \\\n +", " ", documentation())  # shell lines joined
    assert zones_command("m7g.large") in readme
    assert f"--context amiId=$({ami_command()})" in readme
    for key in ("availabilityZones", "instanceType", "amiId"):
        assert f"| `{key}` | self-hosted |" in readme


# --- refusals ----------------------------------------------------------------------------------


def valid_for(key: str) -> dict[str, Any]:
    """A valid context of the mode that `key` belongs to, with every key of that mode."""
    mode = KEYS[key].mode
    self_hosted = {
        **DOMAIN,
        "hostedZoneId": "Z0123",
        "ingressAuth": "key",
        "ingressCidrs": "10.0.0.0/8",
        "restateNodes": "3",
        "availabilityZones": ZONES,
        "instanceType": "m7g.large",
        "amiId": AMI,
    }
    return {**CLOUD, "region": "eu"} if mode == "cloud" else self_hosted if mode else {}


@pytest.mark.parametrize("key", list(KEYS))
def test_every_key_given_empty_is_refused_naming_it(key: str) -> None:
    assert settings(valid_for(key))  # fine with a value
    message = refusal({**valid_for(key), key: ""})
    assert message.startswith(f"context '{key}' is empty; ")
    assert KEYS[key].valid in message
    assert ("leave it out for" in message) is (KEYS[key].default is not None)


def test_an_empty_prefix_says_to_leave_it_out_for_the_default_names() -> None:
    # `--context prefix=$USER` with USER unset would otherwise deploy the shared names.
    assert refusal({"prefix": ""}) == (
        "context 'prefix' is empty; leave it out for the unprefixed names (RestateStack, restate-holiday-*), "
        "or give 1-20 letters, digits or '-', starting with a letter"
    )


@pytest.mark.parametrize(
    ("context", "says"),
    [
        # unknown keys, with the closest valid key when there is one
        ({"prefx": "alice"}, "unknown context key 'prefx' (did you mean 'prefix'?); valid keys: prefix, "),
        ({"deploymentmode": "cloud"}, "unknown context key 'deploymentmode' (did you mean 'deploymentMode'?)"),
        ({"Region": "eu", **CLOUD}, "unknown context key 'Region' (did you mean 'region'?)"),
        ({"certificateARN": CERTIFICATE}, "(did you mean 'certificateArn'?)"),
        ({"colour": "blue"}, "unknown context key 'colour'; valid keys: prefix, deploymentMode, "),
        ({"prefix": "alice", "stage": "prod"}, "unknown context key 'stage'; valid keys: "),
        # keys of the other mode
        (
            {"region": "eu-west-1"},
            "context 'region' is the Restate Cloud region (us or eu), only for deploymentMode=cloud",
        ),
        ({"region": "eu"}, "the AWS region of your AWS profile"),
        ({"clusterId": "env_abc123"}, "context 'clusterId' is only for deploymentMode=cloud"),
        ({"authTokenSecretArn": SECRET}, "context 'authTokenSecretArn' is only for deploymentMode=cloud"),
        ({**CLOUD, "certificateArn": CERTIFICATE}, "context 'certificateArn' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "domainName": "restate.example.com"}, "context 'domainName' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "hostedZoneId": "Z0123"}, "context 'hostedZoneId' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "ingressAuth": "none"}, "context 'ingressAuth' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "ingressCidrs": "10.0.0.0/8"}, "context 'ingressCidrs' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "restateNodes": "3"}, "context 'restateNodes' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "restateNodes": "1"}, "context 'restateNodes' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "availabilityZones": "us-east-1a"}, "context 'availabilityZones' is only for deploymentMode=self-"),
        ({**CLOUD, "instanceType": "t4g.small"}, "context 'instanceType' is only for deploymentMode=self-hosted"),
        ({**CLOUD, "amiId": AMI}, "context 'amiId' is only for deploymentMode=self-hosted"),
        (
            {"availabilityZone": "us-east-1a"},
            "unknown context key 'availabilityZone' (did you mean 'availabilityZones'?)",
        ),
        ({"instancetype": "t4g.small"}, "unknown context key 'instancetype' (did you mean 'instanceType'?)"),
        ({"amiID": AMI}, "unknown context key 'amiID' (did you mean 'amiId'?)"),
        # the ingress: who needs the key, who may call
        ({"ingressAuth": "off"}, "context 'ingressAuth' must be 'key' (callers send the ingress key) or 'none' "),
        ({"ingressAuth": "None"}, "context 'ingressAuth' must be 'key'"),
        (
            {"ingressCidrs": "10.0.0.1/8"},
            "context 'ingressCidrs': '10.0.0.1/8' is not a valid IPv4 range (10.0.0.1/8 has host bits set); "
            "did you mean 10.0.0.0/8?",
        ),
        ({"ingressCidrs": "10.0.0.0/8,10.0.0.0/8"}, "context 'ingressCidrs': '10.0.0.0/8' is given twice"),
        ({"ingressCidrs": "300.0.0.0/8"}, "context 'ingressCidrs': '300.0.0.0/8' is not a valid IPv4 range (Octet"),
        ({"ingressCidrs": "10.0.0.0/33"}, "context 'ingressCidrs': '10.0.0.0/33' is not a valid IPv4 range"),
        ({"ingressCidrs": "203.0.113.7"}, "context 'ingressCidrs' must be IPv4 ranges in CIDR notation, separated"),
        ({"ingressCidrs": "::/0"}, "context 'ingressCidrs' must be IPv4 ranges in CIDR notation"),
        ({"ingressCidrs": "10.0.0.0/8,"}, "context 'ingressCidrs' must be IPv4 ranges"),
        ({"ingressCidrs": "10.0.0.0/8;10.1.0.0/16"}, "context 'ingressCidrs' must be IPv4 ranges"),
        (
            {"ingressCidrs": ",".join(f"10.0.{n}.0/24" for n in range(51))},
            "context 'ingressCidrs' has 51 ranges; a security group takes at most 50 here",
        ),
        # malformed values
        ({"availabilityZones": "us-east-1"}, "context 'availabilityZones' must be availability zone names of one "),
        ({"availabilityZones": "use1-az1"}, "context 'availabilityZones' must be availability zone names"),  # an id
        ({"availabilityZones": "us-east-1-bos-1a"}, "context 'availabilityZones' must be"),  # a Local Zone
        ({"availabilityZones": "US-EAST-1A"}, "context 'availabilityZones' must be"),
        ({"availabilityZones": "us-east-1a,"}, "context 'availabilityZones' must be"),
        ({"availabilityZones": "us-east-1a;us-east-1b"}, "context 'availabilityZones' must be"),
        ({"availabilityZones": ["us-east-1a"]}, "context 'availabilityZones' must be"),
        ({"instanceType": "t4g"}, "context 'instanceType' must be an arm64 (Graviton) EC2 instance type of size small"),
        ({"instanceType": "T4G.SMALL"}, "context 'instanceType' must be an arm64 (Graviton) EC2 instance type"),
        ({"instanceType": "t4g.huge"}, "context 'instanceType' must be an arm64 (Graviton) EC2 instance type"),
        ({"instanceType": "t4g.small "}, "context 'instanceType' must be an arm64 (Graviton) EC2 instance type"),
        ({"instanceType": 2}, "context 'instanceType' must be an arm64 (Graviton) EC2 instance type"),
        ({"amiId": "ami-123"}, "context 'amiId' must be an AMI id, 'ami-' and 8 or 17 hex digits"),
        ({"amiId": "ami-0123456789ABCDEF0"}, "context 'amiId' must be an AMI id"),
        ({"amiId": "ami-0123456789abcdef"}, "context 'amiId' must be an AMI id"),  # 16 digits
        ({"amiId": "0123456789abcdef0"}, "context 'amiId' must be an AMI id"),
        ({"amiId": AMI_PARAMETER}, "context 'amiId' must be an AMI id"),
        (
            {"deploymentMode": "serverless"},
            "context 'deploymentMode' must be 'self-hosted' or 'cloud', not 'serverless'",
        ),
        ({"prefix": "no spaces"}, "context 'prefix' must be 1-20 letters, digits or '-', starting with a letter"),
        ({"prefix": "a" * 21}, "context 'prefix' must be"),
        ({"prefix": "1st"}, "context 'prefix' must be"),
        (
            {"certificateArn": "not-an-arn"},
            "context 'certificateArn' must be an ACM certificate ARN: arn:<partition>:acm:",
        ),
        ({"certificateArn": SECRET}, "context 'certificateArn' must be an ACM certificate ARN"),
        ({"certificateArn": CERTIFICATE.replace("111122223333", "1111")}, "must be an ACM certificate ARN"),
        ({"certificateArn": CERTIFICATE + " "}, "must be an ACM certificate ARN"),
        (
            {**CLOUD, "authTokenSecretArn": "not-an-arn"},
            "context 'authTokenSecretArn' must be a Secrets Manager secret ARN",
        ),
        (
            {**CLOUD, "authTokenSecretArn": CERTIFICATE},
            "context 'authTokenSecretArn' must be a Secrets Manager secret ARN",
        ),
        (
            {**CLOUD, "clusterId": "bad id!"},
            "context 'clusterId' must be a Restate Cloud environment id: 'env_' followed by",
        ),
        ({**CLOUD, "clusterId": "abc123"}, "context 'clusterId' must be a Restate Cloud environment id"),
        ({**CLOUD, "clusterId": "env_"}, "context 'clusterId' must be"),
        ({**CLOUD, "region": "ap"}, "context 'region' must be one of us, eu (the Restate Cloud region), not 'ap'"),
        ({**CLOUD, "region": "US"}, "context 'region' must be one of us, eu"),
        ({"deregisterOnDelete": "yes"}, "context 'deregisterOnDelete' must be true or false, not 'yes'"),
        (
            {**DOMAIN, "domainName": "not a name"},
            "context 'domainName' must be the DNS host name that the certificate covers",
        ),
        ({**DOMAIN, "domainName": "localhost"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": "*.example.com"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": "-restate.example.com"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": "restate..example.com"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": "10.0.0.1"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": "https://restate.example.com"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": "a" * 64 + ".example.com"}, "context 'domainName' must be"),
        ({**DOMAIN, "domainName": ("a" * 60 + ".") * 5 + "com"}, "context 'domainName' must be"),
        (
            {**DOMAIN, "hostedZoneId": "/hostedzone/Z0123"},
            "context 'hostedZoneId' must be a Route 53 public hosted zone id",
        ),
        ({**DOMAIN, "hostedZoneId": "z0123abc"}, "context 'hostedZoneId' must be a Route 53 public hosted zone id"),
        ({**DOMAIN, "hostedZoneId": "Z" + "0" * 32}, "context 'hostedZoneId' must be"),
        # what a key needs
        ({"domainName": "restate.example.com"}, "context 'domainName' needs context 'certificateArn'"),
        ({"certificateArn": CERTIFICATE, "hostedZoneId": "Z0123"}, "context 'hostedZoneId' needs context 'domainName'"),
        ({"deploymentMode": "cloud"}, "deploymentMode=cloud needs context 'clusterId' and 'authTokenSecretArn'"),
        ({"deploymentMode": "cloud", "clusterId": "env_x"}, "needs context 'authTokenSecretArn'"),
        # values from cdk.json that are not strings
        (
            {"prefix": 5},
            "context 'prefix' must be 1-20 letters, digits or '-', starting with a letter, not the number 5",
        ),
        ({"certificateArn": True}, "context 'certificateArn' must be an ACM certificate ARN"),
        ({"certificateArn": True}, "not the boolean true"),
        (
            {**CLOUD, "region": ["us"]},
            "context 'region' must be one of us, eu (the Restate Cloud region), not the list [\"us\"]",
        ),
        ({**CLOUD, "clusterId": {"id": "env_abc123"}}, 'not the object {"id": "env_abc123"}'),
        ({"deploymentMode": 1}, "context 'deploymentMode' must be 'self-hosted' or 'cloud', not the number 1"),
        ({"deregisterOnDelete": 1}, "context 'deregisterOnDelete' must be true or false, not the number 1"),
    ],
)
def test_a_bad_context_is_refused_in_one_line_naming_the_key(context: dict[str, Any], says: str) -> None:
    assert says in refusal({**CDK_KEYS, **context})


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        *((text, repr(text)) for text in ("2", "three", "03", " 3", "5")),
        *((value, f"the number {value}") for value in (2, 3.0)),
        (True, "the boolean true"),
        ([3], "the list [3]"),
    ],
)
def test_restate_nodes_other_than_1_or_3_are_refused(given: object, shown: str) -> None:
    assert refusal({**CDK_KEYS, "restateNodes": given}) == (
        "context 'restateNodes' must be 1 (a single node) or 3 (a replicated cluster over three availability "
        f"zones), not {shown}"
    )


def zones_hint(instance_type: str = "t4g.small") -> str:
    return f"; list the zones that offer {instance_type} with: {zones_command(instance_type)}"


@pytest.mark.parametrize(
    ("context", "says"),
    [
        (
            {"restateNodes": "3", "availabilityZones": "us-east-1a,us-east-1b"},
            "context 'availabilityZones' names 2 zones; restateNodes=3 needs exactly 3, one for each node",
        ),
        (
            {"restateNodes": "3", "availabilityZones": "us-east-1a"},
            "context 'availabilityZones' names 1 zone; restateNodes=3 needs exactly 3, one for each node",
        ),
        (
            {"restateNodes": "3", "availabilityZones": "us-east-1a,us-east-1b,us-east-1c,us-east-1d"},
            "context 'availabilityZones' names 4 zones; restateNodes=3 needs exactly 3, one for each node",
        ),
        (
            {"availabilityZones": ZONES},
            "context 'availabilityZones' names 3 zones; a single node (restateNodes=1) needs 1 or 2: "
            "the node goes in the first, the VPC spans them",
        ),
        (
            {"restateNodes": "3", "availabilityZones": "us-east-1a,us-west-2a,us-east-1b"},
            "context 'availabilityZones' names zones of 2 regions (us-east-1, us-west-2); "
            "give zones of the one region you deploy to",
        ),
        (
            {"availabilityZones": "eu-west-1a,eu-west-2a"},
            "context 'availabilityZones' names zones of 2 regions (eu-west-1, eu-west-2); ",
        ),
        (
            {"restateNodes": "3", "availabilityZones": "us-east-1a,us-east-1b,us-east-1a"},
            "context 'availabilityZones': 'us-east-1a' is given twice",
        ),
        ({"availabilityZones": "us-east-1a, us-east-1a"}, "context 'availabilityZones': 'us-east-1a' is given twice"),
        (
            {"availabilityZones": "us-east-1"},
            "context 'availabilityZones' must be availability zone names of one region, separated by commas, "
            "in node order, such as us-east-1a,us-east-1b,us-east-1c, not 'us-east-1'",
        ),
        (
            {"availabilityZones": ""},
            "context 'availabilityZones' is empty; leave it out for the region's first zones, as CloudFormation "
            "lists them, or give availability zone names",
        ),
        ({"availabilityZones": 3}, "context 'availabilityZones' must be availability zone names"),
    ],
)
@pytest.mark.parametrize("instance_type", [None, "m7g.large"])
def test_a_zone_refusal_says_what_is_valid_and_how_to_list_the_zones_that_offer_the_type(
    context: dict[str, Any], says: str, instance_type: str | None
) -> None:
    typed = {"instanceType": instance_type} if instance_type else {}
    message = refusal({**CDK_KEYS, **context, **typed})
    assert message.startswith(says)
    assert message.endswith(zones_hint(instance_type or "t4g.small"))


def test_the_zones_command_is_given_in_full() -> None:
    assert refusal({"restateNodes": "3", "availabilityZones": "us-east-1a"}).endswith(
        "; list the zones that offer t4g.small with: aws ec2 describe-instance-type-offerings "
        "--location-type availability-zone --filters Name=instance-type,Values=t4g.small "
        '--query "InstanceTypeOfferings[].Location" --output text'
    )


def test_a_bad_instance_type_is_refused_before_the_zones_that_would_offer_it() -> None:
    assert refusal({"instanceType": "t3.small", "availabilityZones": "us-east-1"}).startswith(
        "context 'instanceType': "
    )


@pytest.mark.parametrize(
    ("instance_type", "like"),
    [
        ("t3.small", "t4g.small"),
        ("t3a.large", "t4g.large"),
        ("t2.micro", "t4g.small"),
        ("t3.nano", "t4g.small"),
        ("m7i.large", "m7g.large"),
        ("c6a.4xlarge", "c6g.4xlarge"),
        ("r6i.xlarge", "r6g.xlarge"),
        ("m6i.32xlarge", "t4g.small or m7g.large"),  # no m6g of that size
        ("m5.large", "t4g.small or m7g.large"),  # no m5g
        ("c7i-flex.large", "t4g.small or m7g.large"),
        ("g4dn.xlarge", "t4g.small or m7g.large"),  # a 'g' family, not a Graviton one
        ("p4d.24xlarge", "t4g.small or m7g.large"),
        ("u-6tb1.metal", "t4g.small or m7g.large"),
    ],
)
def test_an_x86_instance_type_is_refused_saying_the_hosts_are_arm64(instance_type: str, like: str) -> None:
    assert refusal({"instanceType": instance_type}) == (
        f"context 'instanceType': {instance_type!r} is not an arm64 (Graviton) type, and the Restate hosts run "
        "the arm64 Amazon Linux 2023 image; give an arm64 type, whose family has a 'g' after the generation "
        f"digit, such as {like}"
    )


@pytest.mark.parametrize("instance_type", ["t4g.nano", "t4g.micro"])
def test_a_tiny_instance_type_is_refused_saying_why(instance_type: str) -> None:
    assert refusal({"restateNodes": "3", "instanceType": instance_type}) == (
        f"context 'instanceType': {instance_type!r} has too little memory: restate-server's RocksDB alone is "
        "given 512 MiB; give size small or larger, such as t4g.small or t4g.medium"
    )


@pytest.mark.parametrize(
    ("ami", "says"),
    [
        # `--context amiId=$(aws ssm get-parameter ...)` without credentials passes an empty value
        ("", "context 'amiId' is empty; leave it out for the newest Amazon Linux 2023 arm64 image at each instance "),
        ("ami-123", "context 'amiId' must be an AMI id, 'ami-' and 8 or 17 hex digits: an Amazon Linux 2023 arm64 "),
        ("latest", "context 'amiId' must be an AMI id, "),
    ],
)
def test_a_bad_image_id_is_refused_saying_how_to_find_the_current_one(ami: str, says: str) -> None:
    message = refusal({"amiId": ami})
    assert message.startswith(says)
    assert message.endswith(f"; the newest image's id: {ami_command()}")


@pytest.mark.parametrize(
    ("arn", "name"),
    [
        (
            "arn:aws:secretsmanager:us-east-1:111122223333:secret:/restate/env_abc123/auth-token",
            "/restate/env_abc123/auth-token",
        ),
        ("arn:aws:secretsmanager:eu-west-1:111122223333:secret:RestateToken", "RestateToken"),
        ("arn:aws:secretsmanager:eu-west-1:111122223333:secret:token-AbCdE", "token-AbCdE"),  # 5 characters
        ("arn:aws:secretsmanager:eu-west-1:111122223333:secret:token-AbCdEfG", "token-AbCdEfG"),  # 7 characters
    ],
)
def test_a_partial_secret_arn_is_refused_saying_why_and_how_to_print_the_complete_one(arn: str, name: str) -> None:
    region = arn.split(":")[3]
    assert refusal({**CLOUD, "authTokenSecretArn": arn}) == (
        "context 'authTokenSecretArn' must be the complete ARN, with the '-' and 6 characters that Secrets Manager "
        "adds to the name: IAM policies that name a secret by ARN match only the complete ARN, so this one would "
        "deploy and then fail registration with AccessDenied; print the complete ARN with: "
        f"aws secretsmanager describe-secret --secret-id {name} --region {region} --query ARN --output text"
    )


@pytest.mark.parametrize(
    "arn",
    [
        SECRET,
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:RestateToken-a1B2c3",
        "arn:aws-us-gov:secretsmanager:us-gov-west-1:111122223333:secret:token-000000",
        # A partial ARN whose name ends like a suffix cannot be told apart: it passes.
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:restate-tokens",
    ],
)
def test_a_complete_secret_arn(arn: str) -> None:
    assert settings({**CLOUD, "authTokenSecretArn": arn}).auth_token_secret_arn == arn


def test_an_unknown_key_is_refused_listing_every_valid_key() -> None:
    listed = refusal({"colour": "blue"}).split("valid keys: ")[1]
    assert listed.split(", ") == [key.name for key in CONTEXT_KEYS]


def test_a_long_value_is_cut_short_in_the_message() -> None:
    message = refusal({"prefix": "x" * 500})
    assert len(message) < 200
    assert message.endswith("...")
