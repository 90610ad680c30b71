"""`holiday prune`: remove the registrations, and the Lambda versions, that no trip runs on any more.

Restate pins every invocation to the deployment it started on, so each deploy
leaves the previous registration (and, on Lambda, the function version behind
it) in place for the trips still in flight. Nothing removes them, so they pile up.

A deployment is removed only when all of these hold:

- it is not the current one of any of its services (new invocations go there);
- no invocation that has not completed is pinned to it (SQL introspection of
  `sys_invocation`);
- it is not among the newest `keep` deployments of any of its services (kept for
  a quick rollback: the registration handler makes an earlier one current again).

Both checks are made again just before each removal; a superseded deployment
gains no new invocations, so no trip can start on it in between. Then each
function's versions that no remaining deployment uses are deleted, except the
newest `keep` and any newer than the current one (a deploy may be under way).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from holiday_tools.admin import AdminError, RestateAdmin
from holiday_tools.text import format_table, plural, wrap

# arn:aws:lambda:<region>:<account>:function:<name>:<version>
VERSION_ARN = re.compile(
    r"arn:[^:]+:lambda:(?P<region>[^:]+):(?P<account>[^:]+):function:(?P<name>[^:]+):(?P<version>[0-9]+)"
)
DEPLOYMENT_ID = re.compile(r"dp_[A-Za-z0-9]+")
PINNED_SQL = (
    "SELECT pinned_deployment_id AS deployment, COUNT(*) AS invocations FROM sys_invocation "
    "WHERE status <> 'completed' AND pinned_deployment_id IS NOT NULL GROUP BY pinned_deployment_id"
)


@dataclass(frozen=True)
class FunctionVersion:
    """A Lambda function version, from the ARN a deployment is registered with."""

    region: str
    account: str
    name: str
    version: str

    @classmethod
    def of(cls, endpoint: str) -> FunctionVersion | None:
        match = VERSION_ARN.fullmatch(endpoint)
        return cls(match["region"], match["account"], match["name"], match["version"]) if match else None

    def __str__(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass
class Deployment:
    """One registration in Restate, with what decides its fate."""

    id: str
    endpoint: str  # a function version ARN, or the services' URL
    services: list[str]
    created_at: str
    current_for: list[str]
    pinned: int
    keep: str = ""  # why it stays; empty: it goes

    @property
    def function(self) -> FunctionVersion | None:
        return FunctionVersion.of(self.endpoint)

    @property
    def shown_endpoint(self) -> str:
        return str(self.function or self.endpoint)


def read(admin: RestateAdmin) -> list[Deployment]:
    """Every deployment Restate knows, newest first, with the services it is current for and its pins."""
    current = {service["name"]: service.get("deployment_id") for service in admin.services()}
    pinned = {str(row["deployment"]): int(row["invocations"]) for row in admin.query(PINNED_SQL)}
    found = [
        Deployment(
            id=d["id"],
            endpoint=str(d.get("arn") or d.get("uri") or "?"),
            services=sorted(s["name"] for s in d.get("services", [])),
            created_at=str(d.get("created_at", "")),
            current_for=sorted(name for name, serving in current.items() if serving == d["id"]),
            pinned=pinned.get(d["id"], 0),
        )
        for d in admin.deployments()
    ]
    return sorted(found, key=lambda d: d.created_at, reverse=True)


def plan(deployments: list[Deployment], keep: int) -> list[Deployment]:
    """Mark what stays and why; newest first.

    `keep` counts per service: its current deployment first (after a rollback, an older one),
    then the others newest first.
    """
    if keep < 1:
        raise ValueError("keep at least the current deployment (keep >= 1)")
    ranked: dict[str, list[str]] = {}
    for deployment in sorted(deployments, key=lambda d: not d.current_for):  # stable: newest first after current
        for service in deployment.services:
            ranked.setdefault(service, []).append(deployment.id)
    for deployment in deployments:
        if deployment.current_for:
            deployment.keep = "current"
        elif deployment.pinned:
            deployment.keep = f"{plural(deployment.pinned, 'invocation')} pinned"
        elif any(deployment.id in ranked[service][:keep] for service in deployment.services):
            deployment.keep = f"one of the newest {keep}"
    return deployments


def lambda_endpoint(deployments: list[Deployment], given: str | None, local_account: str, local: str) -> str | None:
    """Where to list and delete versions: `given`, else the local runtime for the local stack's functions, else AWS.

    Not from the admin URL: a deployed admin API forwarded through Session Manager is on loopback too.
    """
    if given is not None:
        return given
    accounts = {d.function.account for d in deployments if d.function is not None}
    return local if accounts == {local_account} else None


def still_removable(admin: RestateAdmin, deployment: Deployment) -> str | None:
    """Why `deployment` must stay after all, asked again just before removing it; None if it may go."""
    if not DEPLOYMENT_ID.fullmatch(deployment.id):
        return f"unexpected deployment id {deployment.id!r}"
    serving = [s["name"] for s in admin.services() if s.get("deployment_id") == deployment.id]
    if serving:
        return f"it became current for {', '.join(serving)}"
    rows = admin.query(
        f"SELECT COUNT(*) AS invocations FROM sys_invocation WHERE pinned_deployment_id = '{deployment.id}' "
        "AND status <> 'completed'"
    )
    count = int(rows[0]["invocations"]) if rows else 0
    return f"{plural(count, 'invocation')} pinned to it now" if count else None


@dataclass(frozen=True)
class FunctionRef:
    region: str
    name: str


class LambdaVersions(Protocol):
    """The two Lambda API calls a prune makes: ListVersionsByFunction and DeleteFunction with a Qualifier."""

    def published(self, function: FunctionRef) -> list[int]: ...

    def delete(self, function: FunctionRef, version: int) -> None: ...


@dataclass
class VersionPlan:
    """One function's published versions: those that stay, and those to delete."""

    function: FunctionRef
    kept: list[int]
    doomed: list[int]


def plan_versions(deployments: list[Deployment], lambda_api: LambdaVersions, keep: int) -> list[VersionPlan]:
    """For each function Restate knows, the versions to delete: those no kept deployment uses.

    Never a version a kept deployment uses, nor one newer than the current one (a deploy
    may be under way), nor one of the newest `keep` up to the current one. So versions
    left behind by a registration removed elsewhere (the registration handler's destroy
    policy, a prune cut short) go too.
    """
    used: dict[FunctionRef, set[int]] = {}
    current: dict[FunctionRef, int] = {}
    for d in deployments:
        if (version := d.function) is None:
            continue
        ref = FunctionRef(version.region, version.name)
        used.setdefault(ref, set())
        if d.keep:
            used[ref].add(int(version.version))
        if d.current_for:
            current[ref] = max(current.get(ref, 0), int(version.version))
    plans = []
    for ref in sorted(used, key=lambda r: r.name):
        published = sorted(lambda_api.published(ref))
        newest = current.get(ref, max(published, default=0))
        recent = [v for v in published if v <= newest][-keep:]
        stays = used[ref] | set(recent) | {v for v in published if v > newest}
        plans.append(VersionPlan(ref, [v for v in published if v in stays], [v for v in published if v not in stays]))
    return plans


def format_plan(deployments: list[Deployment], versions: list[VersionPlan], admin_url: str, keep: int) -> str:
    """The table of deployments, newest first, each with its fate and its services; then each function's versions."""
    header = ("deployment", "endpoint", "current", "pinned", "plan")
    rows = [
        (d.id, d.shown_endpoint, _current(d), str(d.pinned), f"keep: {d.keep}" if d.keep else "remove")
        for d in deployments
    ]
    lines = wrap(f"Deployments at {admin_url}, newest first (kept: the newest {keep} of each service):")
    title, *table = format_table(header, rows, left=len(header))
    lines.append("  " + title)
    for line, d in zip(table, deployments, strict=True):
        lines += ["  " + line, *wrap(f"services: {', '.join(d.services)}", " " * 6, " " * 4)]
    if versions:
        lines += ["", "Lambda function versions:"]
        cells = [(v.function.name, _numbers(v.kept), _numbers(v.doomed)) for v in versions]
        lines += ["  " + line for line in format_table(("function", "keep", "delete"), cells, left=3)]
    return "\n".join(lines)


def _current(deployment: Deployment) -> str:
    """yes, no, or for which of its services: new invocations of a service go to its current deployment."""
    if not deployment.current_for:
        return "no"
    return "yes" if deployment.current_for == deployment.services else ", ".join(deployment.current_for)


def _numbers(versions: list[int]) -> str:
    return ", ".join(map(str, versions)) or "-"


@dataclass
class Outcome:
    removed: list[str] = field(default_factory=list)
    versions_deleted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def prune(
    admin: RestateAdmin,
    deployments: list[Deployment],
    versions: list[VersionPlan],
    lambda_api: LambdaVersions,
    say: Callable[[str], None],
) -> Outcome:
    """Remove the deployments the plan marked, then delete the versions no deployment uses any more.

    Restate first: a version is deleted only if no deployment still registered uses it (asked
    again after the removals), so a deployment that had to stay keeps its version, and a
    prune cut short between the two leaves versions that the next one deletes.
    """
    outcome = Outcome()
    for deployment in (d for d in deployments if not d.keep):
        try:
            if (reason := still_removable(admin, deployment)) is not None:
                say(f"kept {deployment.id}: {reason}")
                continue
            admin.delete_deployment(deployment.id)
        except AdminError as err:
            outcome.problems.append(f"{deployment.id}: {err}")
            say(f"could not remove {deployment.id}: {err}")
            continue
        outcome.removed.append(deployment.id)
        say(f"removed {deployment.id} ({deployment.shown_endpoint}) from Restate")
    doomed = [(plan.function, v) for plan in versions for v in plan.doomed]
    if not doomed:
        return outcome
    try:
        registered = {str(d.function) for d in read(admin) if d.function is not None}
    except AdminError as err:
        outcome.problems.append(f"no Lambda version deleted: cannot list the deployments again: {err}")
        return outcome
    for function, version in doomed:
        name = f"{function.name}:{version}"
        if name in registered:
            say(f"kept Lambda version {name}: a deployment still uses it")
            continue
        try:
            lambda_api.delete(function, version)
        except VersionError as err:
            outcome.problems.append(str(err))
            say(str(err))
            continue
        outcome.versions_deleted.append(name)
        say(f"deleted Lambda version {name}")
    return outcome


class VersionError(RuntimeError):
    """A Lambda call failed; the message says which and why."""


class Boto3Versions:
    """LambdaVersions with boto3: your AWS credentials, or the local runtime's at `endpoint`.

    A version already gone counts as deleted, so a prune cut short can be run again.
    """

    def __init__(self, endpoint: str | None, local: bool) -> None:
        self.endpoint = endpoint
        self.local = local
        self._clients: dict[str, Any] = {}

    def _client(self, region: str) -> Any:
        if region not in self._clients:
            import boto3

            options: dict[str, Any] = {"region_name": region, "endpoint_url": self.endpoint}
            if self.local:
                options.update(aws_access_key_id="local", aws_secret_access_key="local")
            self._clients[region] = boto3.client("lambda", **options)
        return self._clients[region]

    def published(self, function: FunctionRef) -> list[int]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            pages = self._client(function.region).get_paginator("list_versions_by_function")
            listed = [v["Version"] for page in pages.paginate(FunctionName=function.name) for v in page["Versions"]]
        except (BotoCoreError, ClientError) as err:
            raise VersionError(f"listing the versions of Lambda function {function.name} failed: {err}") from err
        return [int(v) for v in listed if v.isdigit()]

    def delete(self, function: FunctionRef, version: int) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client(function.region).delete_function(FunctionName=function.name, Qualifier=str(version))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
                raise VersionError(f"deleting Lambda version {function.name}:{version} failed: {err}") from err
        except BotoCoreError as err:
            raise VersionError(f"deleting Lambda version {function.name}:{version} failed: {err}") from err
