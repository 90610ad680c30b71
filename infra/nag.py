"""AWS Solutions checks (cdk-nag): every exception is acknowledged here with its reason."""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, CfnElement, Stack, Validations
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
