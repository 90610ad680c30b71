"""Synthesis of the CDK app in each deployment mode, as `npx cdk synth` does it, without the CLI.

The context is cdk.json's (its feature flags change what is synthesised) plus the
mode's keys, and each synthesis runs cdk-nag's AWS Solutions checks, so a violation
that is not acknowledged with a reason fails the test that asked for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aws_cdk import App
from aws_cdk.assertions import Template

from app import build_app
from tests.support import PROJECT_DIR

SECRET = "arn:aws:secretsmanager:us-east-1:111122223333:secret:/restate/env_abc123/auth-token-AbCdEf"
CERTIFICATE = "arn:aws:acm:us-east-1:111122223333:certificate/0c6e2d3a"
DOMAIN = "holiday.example.com"
HOSTED_ZONE = "Z0123456789ABCDEFGHIJ"
CLOUD = {"deploymentMode": "cloud", "clusterId": "env_abc123", "authTokenSecretArn": SECRET}
CALLERS = ("203.0.113.0/24", "198.51.100.7/32")  # documentation ranges (RFC 5737)
# Every mode the README documents, by the name the tests use.
MODES: dict[str, dict[str, str]] = {
    "default": {},
    "prefix": {"prefix": "alice"},
    "acm": {"certificateArn": CERTIFICATE},
    # A load balancer that admits only some callers.
    "domain": {
        "certificateArn": CERTIFICATE,
        "domainName": DOMAIN,
        "hostedZoneId": HOSTED_ZONE,
        "ingressCidrs": ",".join(CALLERS),
    },
    "cloud": CLOUD,
    "open": {"ingressAuth": "none"},
    "cidrs": {"ingressCidrs": ",".join(CALLERS)},
    # Three Restate nodes behind a load balancer that passes TLS through, or ends it with the certificate.
    "cluster": {"restateNodes": "3"},
    "cluster-acm": {"restateNodes": "3", "certificateArn": CERTIFICATE},
}

Templates = tuple[dict[str, Any], dict[str, Any]]  # RestateStack's, RestateHolidayStack's


def cdk_json_context() -> dict[str, Any]:
    """The context cdk.json gives every `cdk` command: the feature flags."""
    context: dict[str, Any] = json.loads((PROJECT_DIR / "cdk.json").read_text())["context"]
    return context


def synth(assets_dir: Path, context: dict[str, str]) -> Templates:
    app = App(context={**cdk_json_context(), **context})
    restate, holiday = build_app(app, assets_dir=assets_dir)
    app.synth()  # runs the cdk-nag checks; raises on a violation
    return dict(Template.from_stack(restate).to_json()), dict(Template.from_stack(holiday).to_json())


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    [resource] = resources(template, kind).values()
    return resource


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def joined(value: Any) -> str:
    """The text of a template value (an `Fn::Join` of strings and references), each reference as `<ref>`."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(joined(part) for part in parts)
    if isinstance(value, dict) and "Fn::Base64" in value:
        return joined(value["Fn::Base64"])
    return "<ref>"


def mentions(value: Any, logical_id: str) -> bool:
    """Whether a template value refers to the resource `logical_id`: a Ref or a GetAtt of it, alone or in a Join."""
    text = json.dumps(value)
    return f'{{"Ref": "{logical_id}"}}' in text or f'{{"Fn::GetAtt": ["{logical_id}", ' in text


def ingress_rules(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every inbound rule, inline in a security group or standalone."""
    rules = [r["Properties"] for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()]
    for group in resources(template, "AWS::EC2::SecurityGroup").values():
        rules += group["Properties"].get("SecurityGroupIngress", [])
    return rules


def statements_of_role(template: dict[str, Any], role_id: str) -> list[dict[str, Any]]:
    found = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"].get("Roles", []):
            found += policy["Properties"]["PolicyDocument"]["Statement"]
    return found


def host_role(template: dict[str, Any]) -> str:
    """The logical id of the Restate nodes' role: the one role of every instance profile."""
    profiles = resources(template, "AWS::IAM::InstanceProfile").values()
    [role] = {role["Ref"] for profile in profiles for role in profile["Properties"]["Roles"]}
    return str(role)


def node_groups(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The Restate hosts' Auto Scaling groups by logical id, node 1 first (`RestateNode1ASG...`)."""
    return dict(sorted(resources(template, "AWS::AutoScaling::AutoScalingGroup").items()))


def launch_data(template: dict[str, Any], group_id: str) -> dict[str, Any]:
    """What the group `group_id` launches: its launch template's LaunchTemplateData."""
    reference = template["Resources"][group_id]["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
    data: dict[str, Any] = template["Resources"][reference]["Properties"]["LaunchTemplateData"]
    return data


def hosts(template: dict[str, Any]) -> list[dict[str, Any]]:
    """What each Restate host launches (its LaunchTemplateData), node 1 first."""
    return [launch_data(template, group_id) for group_id in node_groups(template)]


def host_group(template: dict[str, Any]) -> str:
    """The logical id of the Restate nodes' security group: the one group of every host."""
    interfaces = [interface for data in hosts(template) for interface in data["NetworkInterfaces"]]
    [group] = {group["Fn::GetAtt"][0] for interface in interfaces for group in interface["Groups"]}
    return str(group)


def grants_on(templates: Templates, logical_id: str) -> dict[str, set[str]]:
    """Role logical id -> the actions any policy allows it on the resource `logical_id` (or on its parts)."""
    found: dict[str, set[str]] = {}
    for template in templates:
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if statement["Effect"] == "Allow" and mentions(statement["Resource"], logical_id):
                    for role in policy["Properties"]["Roles"]:
                        found.setdefault(role["Ref"], set()).update(as_list(statement["Action"]))
    return found


def only_host(template: dict[str, Any]) -> dict[str, Any]:
    """What the single Restate node launches (its LaunchTemplateData)."""
    [data] = hosts(template)
    return data


def node_interfaces(template: dict[str, Any]) -> list[str]:
    """Each node's own network interface (the one its boot script attaches), node 1 first."""
    found = []
    for data in hosts(template):
        [interface] = [i for i in resources(template, "AWS::EC2::NetworkInterface") if mentions(data["UserData"], i)]
        found.append(interface)
    return found


def host_policies(group: dict[str, Any]) -> dict[str, Any]:
    """How CloudFormation creates and updates a host's Auto Scaling group: its signal and rolling-update settings."""
    signal = group.get("CreationPolicy", {}).get("ResourceSignal", {})
    rolling = group.get("UpdatePolicy", {}).get("AutoScalingRollingUpdate", {})
    return {
        "Count": signal.get("Count"),
        "Timeout": signal.get("Timeout"),
        "WaitOnResourceSignals": rolling.get("WaitOnResourceSignals"),
        "PauseTime": rolling.get("PauseTime"),
        "MaxBatchSize": rolling.get("MaxBatchSize"),
        "MinInstancesInService": rolling.get("MinInstancesInService"),
    }
