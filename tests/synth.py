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
