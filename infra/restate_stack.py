"""RestateStack: where Restate runs. A self-hosted node (or cluster of three) on EC2, or a Restate Cloud environment.

Either way it offers the services stack one `RestateEndpoint`: where to
register functions, which role Restate assumes to invoke them, and the
ingress URL for callers (output `RestateIngressEndpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import CfnOutput, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs.restate_cluster import RestateCluster
from infra.constructs.restate_host import RestateHost
from infra.nag import REDUNDANT_ROLE_DEPENDENCY, acknowledge_lint
from infra.settings import DeploymentSettings

RESTATE_CLOUD_ACCOUNT = "654654156625"
RESTATE_CLOUD_ROLE = f"arn:aws:iam::{RESTATE_CLOUD_ACCOUNT}:role/RestateCloud"


@dataclass(frozen=True)
class RestateEndpoint:
    """What the services stack needs to know about Restate."""

    admin_url: str
    ingress_url: str
    invoker_role: iam.IRole
    # Self-hosted: the registration function runs in this VPC, in this security group.
    vpc: ec2.IVpc | None = None
    admin_clients: ec2.ISecurityGroup | None = None
    # Restate Cloud: the admin API wants this bearer token.
    auth_token_secret_arn: str | None = None
    # Self-hosted: the secret that holds the key callers send to the ingress (None: an open ingress).
    ingress_key_secret_arn: str | None = None


class RestateStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, *, settings: DeploymentSettings, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.endpoint = self._cloud(settings) if settings.mode == "cloud" else self._self_hosted(settings)
        CfnOutput(
            self,
            "RestateIngressEndpoint",
            value=self.endpoint.ingress_url,
            description="POST <this>/trips/reserve",
        )
        if self.endpoint.ingress_key_secret_arn is not None:
            CfnOutput(
                self,
                "IngressKeySecretArn",
                value=self.endpoint.ingress_key_secret_arn,
                description="The secret that holds the ingress key: send Authorization: Bearer <its value>",
            )

    def _self_hosted(self, settings: DeploymentSettings) -> RestateEndpoint:
        # Public subnets for the nodes, isolated ones (no route out) for the registration function:
        # no NAT gateway to pay for. A cluster has a node in each of three zones. The zones are the ones
        # `availabilityZones` names, node 1's first; else, since this stack names no account and region,
        # the region's first ones as CloudFormation lists them at deploy (CDK alone would pick two).
        single = settings.restate_nodes == 1
        zones = list(settings.availability_zones) if settings.availability_zones else None
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2 if single and zones is None else None,
            availability_zones=zones or (None if single else _zones(settings.restate_nodes)),
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
        )
        # cdk.json's restrictDefaultSecurityGroup flag adds a custom resource that empties the default group.
        restrict_default = self.node.try_find_child("Custom::VpcRestrictDefaultSGCustomResourceProvider")
        if restrict_default is not None:
            acknowledge_lint(restrict_default.node.find_child("Handler"), "W3005", REDUNDANT_ROLE_DEPENDENCY)
        vpc.add_flow_log(
            "FlowLogs",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogGroup", retention=logs.RetentionDays.ONE_MONTH)
            ),
        )
        host: RestateHost | RestateCluster = (
            RestateHost(self, "Restate", vpc=vpc, settings=settings)
            if single
            else RestateCluster(self, "Restate", vpc=vpc, settings=settings, nodes=settings.restate_nodes)
        )
        invoker = iam.Role(
            self,
            "InvokerRole",
            assumed_by=iam.ArnPrincipal(host.role.role_arn),
            description=f"Assumed by the Restate {'node' if single else 'nodes'} to invoke the holiday functions",
        )
        host.role.add_to_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=[invoker.role_arn]))
        return RestateEndpoint(
            admin_url=host.admin_url,
            ingress_url=host.ingress_url,
            invoker_role=invoker,
            vpc=vpc,
            admin_clients=host.admin_clients,
            ingress_key_secret_arn=host.ingress_key.secret_arn if host.ingress_key else None,
        )

    def _cloud(self, settings: DeploymentSettings) -> RestateEndpoint:
        assert settings.cluster_id is not None
        invoker = iam.Role(
            self,
            "InvokerRole",
            assumed_by=iam.AccountPrincipal(RESTATE_CLOUD_ACCOUNT).with_conditions(
                {
                    "StringEquals": {"sts:ExternalId": settings.cluster_id},
                    "ArnEquals": {"aws:PrincipalArn": RESTATE_CLOUD_ROLE},
                }
            ),
            description=f"Assumed by Restate Cloud environment {settings.cluster_id} to invoke the holiday functions",
        )
        assert invoker.assume_role_policy is not None
        invoker.assume_role_policy.add_statements(
            iam.PolicyStatement(
                actions=["sts:TagSession"],
                principals=[iam.AccountPrincipal(RESTATE_CLOUD_ACCOUNT)],
                conditions={"ArnEquals": {"aws:PrincipalArn": RESTATE_CLOUD_ROLE}},
            )
        )
        host = settings.cloud_host
        return RestateEndpoint(
            admin_url=f"https://{host}:9070",
            ingress_url=f"https://{host}",
            invoker_role=invoker,
            auth_token_secret_arn=settings.auth_token_secret_arn,
        )


def _zones(count: int) -> list[str]:
    """The first `count` availability zones of the region the stack is deployed to, as CloudFormation lists them."""
    return [Fn.select(index, Fn.get_azs()) for index in range(count)]
