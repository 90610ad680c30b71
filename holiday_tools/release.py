"""A new release of the code, deployed to the local stack beside the running one, as a deploy does on AWS.

`build` makes the rehearsal's release: a copy of `holiday/` whose saga has one
more step, `check release <label>`, before the reservations. The step shows in
each trip's record, so a trip tells which code ran its saga; and it changes the
saga's journal, so a trip that started on the old code and were replayed on the
new one would fail on a journal mismatch instead of finishing.

`deploy` puts a release beside the running code and registers it, the way each
mode does it for real:

- lambda: a new version of each of the four functions (UpdateFunctionCode with
  Publish, against the local Lambda runtime), registered by the project's
  registration handler, invoked as a Lambda with the Update event CloudFormation
  sends, then the Delete CloudFormation sends for the previous registration when
  the Update has replaced it.
- http: a second services process on its own port, registered by URL as a new
  deployment.

Either way the old code keeps serving the invocations pinned to it.
"""

from __future__ import annotations

import ast
import io
import json
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from holiday.functions import FUNCTIONS
from holiday_tools.admin import RestateAdmin
from holiday_tools.devstack import LOCAL_CREDENTIALS, LocalStack, StackError

SAGA_MODULE = Path("holiday") / "trips.py"
SAGA_FUNCTION = "run"  # the trip object's handler, whose `try` holds the saga's steps
REGISTRATION_FUNCTION = "holiday-registration"  # the local runtime's copy of the CDK registration handler
RESOURCE_TYPE = "Custom::RestateServiceDeployment"


def step_name(label: str) -> str:
    """The extra saga step of release `label`, as it shows in a trip's record."""
    return f"check release {label}"


def build(project_dir: Path, dest: Path, label: str) -> Path:
    """Copy `holiday/` into `dest` with the extra step in the saga; return `dest`.

    Raises ValueError when the saga no longer has the shape this edit expects, so
    the rehearsal never deploys a release identical to the running code.
    """
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(project_dir / "holiday", dest / "holiday", ignore=shutil.ignore_patterns("__pycache__"))
    module = dest / SAGA_MODULE
    source = module.read_text()
    lines = source.splitlines(keepends=True)
    saga_try = _saga_try(ast.parse(source))
    indent = " " * saga_try.body[0].col_offset
    name = step_name(label)
    step = f"{indent}await saga.step({name!r}, lambda: ctx.run_typed({name!r}, lambda: {label!r}))\n"
    lines.insert(saga_try.lineno, step)  # right after the `try:` line
    module.write_text("".join(lines))
    return dest


def _saga_try(tree: ast.Module) -> ast.Try:
    for node in tree.body:
        if isinstance(node, ast.AsyncFunctionDef) and node.name == SAGA_FUNCTION:
            for statement in node.body:
                if isinstance(statement, ast.Try):
                    return statement
    raise ValueError(f"{SAGA_MODULE} has no `try` in `async def {SAGA_FUNCTION}`: the release step has no place")


def code_zip(release_dir: Path) -> bytes:
    """The release's `holiday/` package as a Lambda code zip (dependencies come from the local runtime's Python)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted((release_dir / "holiday").rglob("*.py")):
            archive.write(path, path.relative_to(release_dir).as_posix())
    return buffer.getvalue()


@dataclass(frozen=True)
class Deployed:
    """What a deploy registered: each new deployment id with the services it serves, and its endpoint."""

    deployments: dict[str, list[str]]
    endpoints: dict[str, str]  # deployment id -> function version ARN or services URL


def deploy(stack: LocalStack, release_dir: Path, label: str, removal_policy: str = "retain") -> Deployed:
    """Put the release beside the running code and register it; the old code keeps its pinned invocations.

    `removal_policy` is the registration's (lambda mode): "retain", the stack's default, keeps
    every earlier registration; "destroy" deletes the replaced one unless invocations run on it.
    """
    with RestateAdmin(stack.admin_url) as admin:
        if stack.mode == "lambda":
            return _deploy_functions(stack, admin, release_dir, removal_policy)
        url = stack.start_extra_services(f"services-{label}", release_dir)
        body = admin.call("POST", "/deployments", {"uri": url})
    return Deployed({body["id"]: [s["name"] for s in body["services"]]}, {body["id"]: url})


def lambda_client(stack: LocalStack) -> Any:
    """boto3's Lambda client, against the local Lambda runtime."""
    return boto3.client(
        "lambda",
        endpoint_url=stack.services_url,
        region_name=stack.settings.aws_region,
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


def _deploy_functions(stack: LocalStack, admin: RestateAdmin, release_dir: Path, removal_policy: str) -> Deployed:
    client = lambda_client(stack)
    code = code_zip(release_dir)
    deployments: dict[str, list[str]] = {}
    endpoints: dict[str, str] = {}
    for name in FUNCTIONS:
        function = f"holiday-{name}"
        published = client.update_function_code(FunctionName=function, ZipFile=code, Publish=True)
        new_arn = published["FunctionArn"]
        old_id, old_arn = _serving(admin, new_arn)
        properties = {
            "AdminUrl": stack.admin_url,
            "FunctionArn": new_arn,
            "InvokerRoleArn": stack.invoker_role_arn,
            "RemovalPolicy": removal_policy,
        }
        answer = _custom_resource(
            client,
            "Update",
            old_id,
            properties,
            old={**properties, "FunctionArn": old_arn},
        )
        new_id = answer["PhysicalResourceId"]
        if new_id != old_id:
            # CloudFormation's cleanup after an update that replaced the resource.
            _custom_resource(client, "Delete", old_id, {**properties, "FunctionArn": old_arn})
        deployments[new_id] = answer["Data"]["Services"].split(",")
        endpoints[new_id] = new_arn
    return Deployed(deployments, endpoints)


def _serving(admin: RestateAdmin, function_arn: str) -> tuple[str, str]:
    """(deployment id, ARN) of the registration that serves the function's services now: the one being replaced."""
    function = function_arn.rsplit(":", 1)[0]
    current = {service["name"]: service.get("deployment_id") for service in admin.services()}
    for deployment in admin.deployments():
        serves = any(current.get(service["name"]) == deployment["id"] for service in deployment["services"])
        if serves and str(deployment.get("arn", "")).rsplit(":", 1)[0] == function:
            return deployment["id"], deployment["arn"]
    raise StackError(f"no deployment of {function} serves its services in Restate at {admin.url}")


def _custom_resource(
    client: Any, request_type: str, physical_id: str, properties: dict[str, str], old: dict[str, str] | None = None
) -> dict[str, Any]:
    """Invoke the registration handler with the event CloudFormation's provider framework passes on."""
    event: dict[str, Any] = {
        "RequestType": request_type,
        "PhysicalResourceId": physical_id,
        "ResourceType": RESOURCE_TYPE,
        "LogicalResourceId": "Registration",
        "ResourceProperties": properties,
    }
    if old is not None:
        event["OldResourceProperties"] = old
    reply = client.invoke(FunctionName=REGISTRATION_FUNCTION, Payload=json.dumps(event).encode())
    payload = json.loads(reply["Payload"].read() or b"null")
    if "FunctionError" in reply:
        raise StackError(f"the registration handler failed the {request_type}: {payload.get('errorMessage')}")
    return payload if isinstance(payload, dict) else {}


def saga_deployments(admin: RestateAdmin, trip_ids: list[str]) -> dict[str, str]:
    """Each trip's saga (`trip/<id>/run`) and the deployment it is pinned to, from SQL introspection.

    Completed invocations stay listed for the journal retention (a day by default), so this
    tells afterwards which code ran each trip. Trips not started yet are left out.
    """
    wanted = set(trip_ids)
    rows = admin.query(
        "SELECT target_service_key AS trip_id, pinned_deployment_id AS deployment FROM sys_invocation "
        "WHERE target_service_name = 'trip' AND target_handler_name = 'run' AND pinned_deployment_id IS NOT NULL"
    )
    return {str(r["trip_id"]): str(r["deployment"]) for r in rows if r["trip_id"] in wanted}
