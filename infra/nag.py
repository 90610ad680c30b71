"""AWS Solutions checks (cdk-nag): every exception is acknowledged here with its reason."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, CfnElement, CfnResource, Stack, Validations
from constructs import IConstruct


def acknowledge(scope: IConstruct, rule: str, reason: str, findings: Iterable[str] = ()) -> None:
    """Accept `rule` (e.g. "EC23") for `scope` and everything under it, saying why.

    Rules that report each offending value (IAM4, IAM5) must be accepted per
    finding, e.g. `Resource::*`: a wildcard accepted once is not accepted everywhere.
    """
    ids = [f"AwsSolutions-{rule}[{f}]" for f in findings] or [f"AwsSolutions-{rule}"]
    Validations.of(scope).acknowledge(*(Acknowledgment(id=f"AwsSolutions::{i}", reason=reason) for i in ids))


def arn_finding(resource: IConstruct, suffix: str = ":*") -> str:
    """How cdk-nag names a policy resource `<ARN of resource><suffix>`, e.g. a log group's streams."""
    cfn = resource.node.default_child
    assert isinstance(cfn, CfnElement)
    return f"Resource::<{Stack.of(resource).get_logical_id(cfn)}.Arn>{suffix}"


def acknowledge_lint(resource: IConstruct, rule: str, reason: str) -> None:
    """Accept cfn-lint's `rule` (e.g. "W3005") on this one resource, with the reason kept in its metadata."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    assert isinstance(cfn, CfnResource), f"{resource.node.path} is not a CloudFormation resource"
    config = cfn.get_metadata("cfn-lint") or {"config": {"ignore_checks": []}, "reasons": {}}
    config["config"]["ignore_checks"].append(rule)
    config["reasons"][rule] = reason
    cfn.add_metadata("cfn-lint", config)


# CDK writes `DependsOn: <role>` on a function whose `Role` already refers to that role.
REDUNDANT_ROLE_DEPENDENCY = (
    "CDK lists the role in the function's DependsOn beside the GetAtt that already orders them; "
    "harmless, and CDK's to change."
)
