"""RestateHolidayStack: the tables, the topic, the four functions and their registration with Restate."""

from __future__ import annotations

from pathlib import Path

from aws_cdk import CfnOutput, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from constructs import Construct

from infra.constructs.registration import RestateRegistration
from infra.constructs.service_function import ServiceFunction
from infra.nag import acknowledge, arn_finding
from infra.restate_stack import RestateEndpoint
from infra.settings import DeploymentSettings

# Function -> (its table's display name, the environment variable naming it), as holiday/config.py reads them.
TABLES = {
    "flights": ("Flights", "FLIGHTS_TABLE_NAME"),
    "cars": ("Cars", "CARS_TABLE_NAME"),
    "payments": ("Payments", "PAYMENTS_TABLE_NAME"),
}
# Registered in this order: the saga's callees before the saga.
FUNCTION_ORDER = ("flights", "cars", "payments", "trips")


class RestateHolidayStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: DeploymentSettings,
        restate: RestateEndpoint,
        assets_dir: Path,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        topic = sns.Topic(
            self,
            "TripsTopic",
            topic_name=settings.resource_name("trips"),
            enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
        )
        functions: dict[str, ServiceFunction] = {}
        for name in FUNCTION_ORDER:
            environment = {"TRIPS_TOPIC_ARN": topic.topic_arn} if name == "trips" else {}
            table = None
            if name in TABLES:
                title, variable = TABLES[name]
                table = self._table(settings, title)
                environment[variable] = table.table_name
                CfnOutput(
                    self,
                    f"{name}TableName",
                    value=table.table_name,
                    export_name=settings.export_name(f"{name}TableName"),
                )
            function = ServiceFunction(
                self,
                name.capitalize(),
                name=name,
                function_name=settings.resource_name(name),
                assets_dir=assets_dir,
                environment=environment,
                snap_start=settings.snap_start,
            )
            if table is not None:
                # Exactly the two writes the service makes, on its own table only.
                function.role.add_to_policy(
                    iam.PolicyStatement(
                        actions=["dynamodb:PutItem", "dynamodb:UpdateItem"], resources=[table.table_arn]
                    )
                )
            else:
                function.role.add_to_policy(iam.PolicyStatement(actions=["sns:Publish"], resources=[topic.topic_arn]))
            functions[name] = function

        invoke = iam.Policy(
            self,
            "RestateMayInvoke",
            roles=[restate.invoker_role],
            statements=[
                iam.PolicyStatement(
                    actions=["lambda:InvokeFunction"],
                    resources=[f.all_versions_arn() for f in functions.values()],
                )
            ],
        )
        acknowledge(
            invoke,
            "IAM5",
            "Restate may invoke every version of each holiday function (and nothing else): "
            "invocations in flight on an older registered version must keep working after a deploy.",
            findings=[arn_finding(f.function) for f in functions.values()],
        )
        registration = RestateRegistration(
            self, "Registration", endpoint=restate, deregister_on_delete=settings.deregister_on_delete
        )
        previous = None
        for name, function in functions.items():
            registered = registration.register(f"Register{name.capitalize()}", function.version)
            # Discovery invokes the function, so the permission must exist first.
            registered.node.add_dependency(invoke)
            if previous is not None:
                registered.node.add_dependency(previous)
            previous = registered

    def _table(self, settings: DeploymentSettings, title: str) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            f"{title}Table",
            table_name=settings.resource_name(title),
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # An example app: `cdk destroy` removes everything it made.
            removal_policy=RemovalPolicy.DESTROY,
        )
