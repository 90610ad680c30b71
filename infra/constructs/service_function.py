"""One holiday service as a Lambda function: arm64, the packaged asset, a kept version, SnapStart if asked."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import Annotations, Duration, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from holiday.functions import FUNCTIONS, LAMBDA_PYTHON, MEMORY_MB
from infra.nag import REDUNDANT_ROLE_DEPENDENCY, acknowledge, acknowledge_lint, arn_finding

# CDK's own constant for the runtime the assets are built for (an AttributeError names a version CDK lacks).
RUNTIME: lambda_.Runtime = getattr(lambda_.Runtime, f"PYTHON_{LAMBDA_PYTHON.replace('.', '_')}")
# One invocation runs until the handler suspends on its next Restate call: normally a few
# milliseconds, at most one storage call with botocore's 2 s connect / 5 s read timeouts and
# 2 attempts. 30 s leaves room and stays well inside Restate's 1 minute inactivity timeout.
TIMEOUT = Duration.seconds(30)
# CDK warns that SnapStart applies to published versions only; this construct publishes one (current_version).
SNAP_START_NEEDS_VERSIONS = "@aws-cdk/aws-lambda:snapStartRequirePublish"


class ServiceFunction(Construct):
    """The Lambda function `name` ("trips", ...) from `assets_dir/<name>` (built by `make package`)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        name: str,
        function_name: str,
        assets_dir: Path,
        environment: dict[str, str],
        snap_start: bool,
    ) -> None:
        super().__init__(scope, construct_id)
        asset = assets_dir / name
        if not (asset / "holiday" / "functions" / f"{name}.py").is_file():
            raise FileNotFoundError(f"no Lambda asset at {asset}: run `make package` first")
        log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Our own role: the default one carries the AWS-managed basic execution policy.
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"))
        self.role.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:CreateLogStream", "logs:PutLogEvents"], resources=[f"{log_group.log_group_arn}:*"]
            )
        )
        self.function = lambda_.Function(
            self,
            "Function",
            function_name=function_name,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=FUNCTIONS[name],
            code=lambda_.Code.from_asset(str(asset)),
            memory_size=MEMORY_MB,
            timeout=TIMEOUT,
            tracing=lambda_.Tracing.ACTIVE,
            environment=environment,
            log_group=log_group,
            role=self.role,
            # Restate invokes a registered version; keep old versions for invocations in flight.
            current_version_options=lambda_.VersionOptions(removal_policy=RemovalPolicy.RETAIN),
            # Lambda snapshots each published version once its import has run, and restores new instances from it.
            # CDK itself refuses a runtime without SnapStart, EFS and more than 512 MB of ephemeral storage; no
            # provisioned concurrency is configured on the versions (SnapStart refuses that too).
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if snap_start else None,
        )
        if snap_start:
            Annotations.of(self.function).acknowledge_warning(
                SNAP_START_NEEDS_VERSIONS, "current_version publishes a version, and Restate registers only versions"
            )
        self.version = self.function.current_version
        acknowledge_lint(self.function, "W3005", REDUNDANT_ROLE_DEPENDENCY)
        acknowledge(
            self.role,
            "IAM5",
            "Log streams are created at run time under the function's own log group (:*); "
            "X-Ray's trace APIs accept no resource ARNs.",
            findings=["Resource::*", arn_finding(log_group)],
        )

    def all_versions_arn(self) -> str:
        """`arn:...:function:<name>:*`: every version of this function and no other function."""
        return f"{self.function.function_arn}:*"
