"""Registers function versions with Restate, as a CloudFormation custom resource written in Python.

The handler (`infra/registration/handler.py`) waits for Restate's health with
bounded retries, registers a version ARN with the invoker role, and fails with
a clear reason inside its timeout instead of hanging the stack. A new function
version changes the resource's properties, so CloudFormation registers again;
a rollback registers the earlier version again and Restate routes to it. On
delete the registration is kept unless `deregister_on_delete`, and a delete
never fails because Restate cannot be reached. CloudFormation deletes the
previous registration after every code update; even with `deregister_on_delete`
it stays while invocations that started on it have not finished (Restate pins
them to it, and deleting it would break them) or while Restate cannot tell, and
`holiday prune` removes it later.
"""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CustomResource, Duration, RemovalPolicy
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import custom_resources as cr
from constructs import Construct

from infra.constructs.service_function import RUNTIME
from infra.nag import REDUNDANT_ROLE_DEPENDENCY, acknowledge, acknowledge_lint, arn_finding
from infra.restate_stack import RestateEndpoint

HANDLER_DIR = Path(__file__).resolve().parents[1] / "registration"
# A fresh EC2 node needs a few minutes to install Docker and start Restate; the handler
# waits for its health until 15 s before this timeout, then fails with the reason.
TIMEOUT = Duration.minutes(10)


class RestateRegistration(Construct):
    def __init__(
        self, scope: Construct, construct_id: str, *, endpoint: RestateEndpoint, deregister_on_delete: bool
    ) -> None:
        super().__init__(scope, construct_id)
        self.endpoint = endpoint
        self.deregister_on_delete = deregister_on_delete
        log_group = logs.LogGroup(
            self, "Logs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group.log_group_arn}:*"]
            )
        )
        if endpoint.auth_token_secret_arn:
            role.add_to_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"], resources=[endpoint.auth_token_secret_arn]
                )
            )
        network: dict[str, object] = {}
        if endpoint.vpc is not None and endpoint.admin_clients is not None:
            # Lambda refuses to create a function in a VPC whose role cannot manage its network
            # interfaces; CDK grants that only to roles it makes itself, so this one gets it here.
            role.add_managed_policy(
                iam.ManagedPolicy.from_aws_managed_policy_name("service-role/AWSLambdaVPCAccessExecutionRole")
            )
            acknowledge(
                role,
                "IAM4",
                "AWS's own policy for a function in a VPC: the network-interface actions Lambda checks "
                "for at creation (they accept no resource ARNs), plus log writes.",
                findings=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"],
            )
            # Inside the VPC, in the one security group the Restate node accepts admin calls from.
            network = {
                "vpc": endpoint.vpc,
                "vpc_subnets": ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
                "security_groups": [endpoint.admin_clients],
            }
        self.handler = lambda_.Function(
            self,
            "Handler",
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler="handler.on_event",
            code=lambda_.Code.from_asset(str(HANDLER_DIR), exclude=["__pycache__", "*.pyc"]),
            timeout=TIMEOUT,
            memory_size=256,
            role=role,
            log_group=log_group,
            description="Registers holiday function versions with Restate",
            **network,  # type: ignore[arg-type]
        )
        provider_logs = logs.LogGroup(
            self, "ProviderLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=RemovalPolicy.DESTROY
        )
        self.provider = cr.Provider(self, "Provider", on_event_handler=self.handler, log_group=provider_logs)
        acknowledge_lint(self.handler, "W3005", REDUNDANT_ROLE_DEPENDENCY)
        acknowledge_lint(self.provider.node.find_child("framework-onEvent"), "W3005", REDUNDANT_ROLE_DEPENDENCY)
        acknowledge(
            self.provider,
            "IAM4",
            "The CDK provider framework's own function comes with the basic execution policy.",
            findings=["Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"],
        )
        acknowledge(
            self,
            "IAM5",
            "Log streams are created at run time under the handler's own log group (:*); the "
            "provider framework invokes every version of the handler function and no other.",
            findings=[arn_finding(log_group), arn_finding(self.handler)],
        )

    def register(self, construct_id: str, version: lambda_.IVersion) -> CustomResource:
        """Register `version` (its ARN changes with every code change, which registers it again)."""
        properties = {
            "AdminUrl": self.endpoint.admin_url,
            "FunctionArn": version.function_arn,
            "InvokerRoleArn": self.endpoint.invoker_role.role_arn,
            "RemovalPolicy": "destroy" if self.deregister_on_delete else "retain",
        }
        if self.endpoint.auth_token_secret_arn:
            properties["AuthTokenSecretArn"] = self.endpoint.auth_token_secret_arn
        return CustomResource(
            self,
            construct_id,
            service_token=self.provider.service_token,
            resource_type="Custom::RestateServiceDeployment",
            properties=properties,
        )
