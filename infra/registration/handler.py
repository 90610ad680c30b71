"""CloudFormation custom resource: register one Lambda function version with Restate's admin API.

This is the `on_event` handler behind CDK's `custom_resources.Provider`. Returning
means SUCCESS; raising means FAILED, and the exception's message is the reason
CloudFormation shows, so every message names what failed, where, and why.

Every wait is bounded by the Lambda's own remaining time minus a safety margin:
the handler always fails with a reason before Lambda kills it, instead of
leaving CloudFormation waiting for an answer that never comes.

Create and Update leave the registered deployment serving its services. Restate
answers a repeated registration with the existing deployment but keeps routing
to a newer one, so when CloudFormation rolls back to an earlier function version
(an Update with the old properties), the handler registers that version again
with `force`, which makes it the newest revision of its services once more.

A rollback never fails the stack, since a failed rollback leaves it in
UPDATE_ROLLBACK_FAILED. CloudFormation marks no event as a rollback, and the
handler cannot ask (it has no route to the CloudFormation API), but function
versions only grow: an Update whose FunctionArn is an earlier version of the
function in OldResourceProperties can only be CloudFormation restoring earlier
properties (`is_rollback`). Such an Update gets at most ROLLBACK_BUDGET_S; when
Restate cannot be reached, refuses, or the properties or token are unusable, it
logs a warning with the `curl` command that makes Restate route to that version
by hand and reports success, keeping the resource's physical id. A rollback
that changes no version (only the role, say) looks like any other Update and is
handled as one.

Delete never fails the stack: with RemovalPolicy destroy it tries for at most
DELETE_BUDGET_S, and when Restate cannot be reached, refuses, or the properties
or token are unusable, it logs a warning with the `curl` command that removes the
deployment by hand and reports success.

Every code update registers a new deployment under a new physical id, so
CloudFormation deletes the previous registration at the end of each update (and
after a rollback, the one the failed update made). Invocations stay pinned to the
deployment they started on, and Restate deletes only by force, which breaks them:
so before deleting, the handler asks Restate (SQL introspection of sys_invocation)
how many unfinished invocations are pinned to it, and keeps the deployment when
any are, or when it cannot find out, with a warning that names `holiday prune`,
which removes it once they have finished.

The module needs only the standard library (and boto3, which the Lambda
runtime provides, for the optional token), so the asset is this file alone.
"""

from __future__ import annotations

import http.client
import json
import logging
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.message import Message
from typing import IO, Any, Protocol

LOG = logging.getLogger("restate.registration")
# Lambda's Python runtime shows only WARNING and above unless told otherwise.
LOG.setLevel(logging.INFO)

SAFETY_MARGIN_S = 15.0  # kept back from the Lambda timeout to report a failure in time
FIRST_DELAY_S = 1.0
MAX_DELAY_S = 10.0
MAX_REQUEST_TIMEOUT_S = 60.0  # discovery of a cold Lambda takes seconds, not minutes
# A Delete is best effort (a deployment left behind is harmless and removable by hand), so it
# gets this much time, within the Lambda's own deadline, instead of the ten minutes a Create
# may need to wait for a new Restate node: deleting a stack waits for each registration.
DELETE_BUDGET_S = 60.0
# A rollback must not fail (the stack would be stuck in UPDATE_ROLLBACK_FAILED), so it is best
# effort too and gets this much, within the Lambda's own deadline: Restate left routing to the
# later version is fixable by hand, as the warning says.
ROLLBACK_BUDGET_S = 60.0
MAX_MESSAGE_CHARS = 800  # CloudFormation refuses a response over 4 KiB, reason included
RETRYABLE_STATUSES = frozenset({408, 429})  # 4xx answers that mean "try again later"
REMOVAL_POLICIES = ("retain", "destroy")
# arn:<partition>:lambda:<region>:<account>:function:<name>:<version>, split into function and version.
VERSION_ARN = re.compile(r"(arn:[^:]+:lambda:[^:]+:[^:]+:function:[^:]+):([0-9]+)")
# The shape of the deployment ids Restate gives out; checked before one goes into an SQL query.
DEPLOYMENT_ID = re.compile(r"dp_[0-9A-Za-z]+")


class LambdaContext(Protocol):
    """The one part of the Lambda context the handler uses."""

    def get_remaining_time_in_millis(self) -> int: ...


class RegistrationError(RuntimeError):
    """Fails the custom resource; the message is the reason CloudFormation shows."""


@dataclass(frozen=True)
class Answer:
    """An HTTP answer of any status, so the caller decides what counts as success."""

    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def message(self) -> str:
        """Restate's own error message when it sent one, else the body, shortened for CloudFormation."""
        text = self.body.decode("utf-8", errors="replace").strip()
        try:
            parsed = json.loads(text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("message"), str):
            text = parsed["message"]
        text = text or "(empty body)"
        return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "..."


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Surface a redirect as an error: urllib would replay a POST or DELETE as a GET."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        return None


class AdminApi:
    """Restate's admin API, every call retried on transient failures until one shared deadline."""

    def __init__(self, base_url: str, token: str | None, deadline: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.deadline = deadline  # time.monotonic() value
        self.opener = urllib.request.build_opener(_NoRedirects())

    def send(self, method: str, url: str, payload: Any, timeout: float) -> Answer:
        """One attempt. Raises OSError or HTTPException when no HTTP answer arrived."""
        headers = {"Accept": "application/json"}
        data = None
        if payload is not None:
            data = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return Answer(response.status, response.read())
        except urllib.error.HTTPError as err:
            try:
                return Answer(err.code, err.read())
            finally:
                err.close()

    def call(
        self,
        method: str,
        path: str,
        payload: Any = None,
        accept: Callable[[int], bool] = lambda status: 200 <= status < 300,
    ) -> Answer:
        """Retry connection failures and 5xx with capped exponential backoff; fail at once on other answers."""
        url = self.base_url + path
        started = time.monotonic()
        delay = FIRST_DELAY_S
        attempt = 0
        last_answer = ""  # kept apart: Restate's message says more than a later timeout
        while True:
            attempt += 1
            timeout = max(1.0, min(self.deadline - time.monotonic(), MAX_REQUEST_TIMEOUT_S))
            try:
                answer = self.send(method, url, payload, timeout)
            except (OSError, http.client.HTTPException) as err:
                reason = err.reason if isinstance(err, urllib.error.URLError) else err  # the socket's own error
                last_error = f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)
                LOG.info("%s %s: attempt %d got no answer (%s)", method, url, attempt, last_error)
            else:
                elapsed = time.monotonic() - started
                if accept(answer.status):
                    LOG.info("%s %s: attempt %d answered %d after %.1fs", method, url, attempt, answer.status, elapsed)
                    return answer
                last_error = last_answer = f"HTTP {answer.status}: {answer.message()}"
                LOG.info("%s %s: attempt %d answered %s", method, url, attempt, last_error)
                if answer.status < 500 and answer.status not in RETRYABLE_STATUSES:
                    raise RegistrationError(
                        f"Restate admin API refused {method} {url} with {last_error} "
                        f"(attempt {attempt}, {elapsed:.1f}s)"
                    )
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                elapsed = time.monotonic() - started
                earlier = f"; last answer: {last_answer}" if last_answer and last_answer != last_error else ""
                raise RegistrationError(
                    f"gave up on {method} {url} after {attempt} attempts in {elapsed:.1f}s, "
                    f"to answer CloudFormation before the Lambda times out; last error: {last_error}{earlier}"
                )
            pause = min(delay, remaining)
            LOG.info("%s %s: retrying in %.1fs (%.1fs left)", method, url, pause, remaining)
            time.sleep(pause)
            delay = min(delay * 2, MAX_DELAY_S)


@dataclass(frozen=True)
class Properties:
    """The custom resource's ResourceProperties, checked (CloudFormation passes them all as strings)."""

    admin_url: str
    function_arn: str
    invoker_role_arn: str
    token_secret_arn: str
    removal_policy: str

    @classmethod
    def parse(cls, props: Mapping[str, Any]) -> Properties:
        def text(name: str) -> str:
            value = props.get(name)
            return value.strip() if isinstance(value, str) else ""

        return cls(
            admin_url=text("AdminUrl"),
            function_arn=text("FunctionArn"),
            invoker_role_arn=text("InvokerRoleArn"),
            token_secret_arn=text("AuthTokenSecretArn"),
            removal_policy=text("RemovalPolicy").lower() or "retain",
        )

    def admin_url_problem(self) -> str | None:
        """What is wrong with AdminUrl, if anything: the one property a Delete needs besides the policy."""
        url = urllib.parse.urlsplit(self.admin_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            return f"AdminUrl must be an http(s) URL such as http://10.0.1.5:9070, not {self.admin_url!r}"
        return None

    def check(self) -> None:
        """Refuse what Restate would only reject later, or accept and then misbehave on."""
        problems = []
        if url_problem := self.admin_url_problem():
            problems.append(url_problem)
        if not self.function_arn:
            problems.append("FunctionArn is required")
        elif self.function_arn.endswith(":$LATEST"):
            # Restate replays journals against the code it registered; $LATEST changes under it.
            problems.append(f"FunctionArn must name a published version, not $LATEST: {self.function_arn}")
        if self.removal_policy not in REMOVAL_POLICIES:
            problems.append(f"RemovalPolicy must be retain or destroy, not {self.removal_policy!r}")
        if problems:
            raise RegistrationError("invalid properties: " + "; ".join(problems))


def read_token(secret_arn: str, deadline: float) -> str:
    """The admin API's bearer token, from Secrets Manager (boto3 imported only when a token is used)."""
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    parts = secret_arn.split(":")
    region = parts[3] if secret_arn.startswith("arn:") and len(parts) > 3 and parts[3] else None
    # boto3's defaults (60 s to connect, 60 s to read, several attempts) would outlast a Delete's budget.
    timeout = max(1.0, min((deadline - time.monotonic()) / 4, MAX_REQUEST_TIMEOUT_S))
    config = Config(
        connect_timeout=timeout, read_timeout=timeout, retries={"mode": "standard", "total_max_attempts": 2}
    )
    try:
        secret = boto3.client("secretsmanager", region_name=region, config=config).get_secret_value(SecretId=secret_arn)
    except (BotoCoreError, ClientError) as err:
        raise RegistrationError(f"reading the Restate admin token from secret {secret_arn} failed: {err}") from err
    token = str(secret.get("SecretString") or "").strip()
    if not token:
        raise RegistrationError(f"secret {secret_arn} has no SecretString to use as the Restate admin token")
    LOG.info("read the Restate admin token from secret %s", secret_arn)
    return token


def admin_api(props: Properties, deadline: float) -> AdminApi:
    token = read_token(props.token_secret_arn, deadline) if props.token_secret_arn else None
    return AdminApi(props.admin_url, token, deadline)


def register(props: Properties, deadline: float) -> dict[str, Any]:
    """Create and Update: wait for Restate, register the version, make it current with the invoker role asked for."""
    props.check()
    api = admin_api(props, deadline)
    api.call("GET", "/health")
    request: dict[str, Any] = {"arn": props.function_arn}
    if props.invoker_role_arn:
        request["assume_role_arn"] = props.invoker_role_arn
    # No "force": a new version ARN is a new deployment, and Restate keeps the old one
    # for the invocations still running on it.
    answer = api.call("POST", "/deployments", request)
    deployment_id, services = registered_deployment(api, props, answer)
    LOG.info(
        "%s %s as deployment %s serving %s",
        "registered" if answer.status == 201 else "already registered",
        props.function_arn,
        deployment_id,
        ", ".join(services),
    )
    if answer.status != 201:
        # A new deployment (201) is the newest revision of every service it serves; a known
        # one may have been overtaken, as in a rollback to an earlier version.
        align_invoker_role(api, deployment_id, props)
        deployment_id, services = make_current(api, deployment_id, services, props, request)
    return {
        "PhysicalResourceId": deployment_id,
        "Data": {"DeploymentId": deployment_id, "Services": ",".join(services)},
    }


def registered_deployment(api: AdminApi, props: Properties, answer: Answer) -> tuple[str, list[str]]:
    """The deployment id and service names from Restate's answer to a registration."""
    try:
        body = answer.json()
        deployment_id = body["id"]
        services = [service["name"] for service in body["services"]]
    except (ValueError, KeyError, TypeError) as err:
        raise RegistrationError(
            f"Restate at {api.base_url} registered {props.function_arn} but its answer has no deployment id "
            f"and service names ({type(err).__name__}: {err}): {answer.message()}"
        ) from err
    if not isinstance(deployment_id, str) or not deployment_id:
        raise RegistrationError(f"Restate at {api.base_url} answered an unusable deployment id {deployment_id!r}")
    return deployment_id, services


def services_elsewhere(api: AdminApi, deployment_id: str, services: list[str]) -> dict[str, str]:
    """Each of `services` that Restate routes to another deployment, with that deployment's id."""
    elsewhere = {}
    for name in services:
        current = api.call("GET", f"/services/{urllib.parse.quote(name, safe='')}").json()
        serving = current.get("deployment_id") if isinstance(current, dict) else None
        if serving != deployment_id:
            elsewhere[name] = str(serving)
    return elsewhere


def make_current(
    api: AdminApi, deployment_id: str, services: list[str], props: Properties, request: dict[str, Any]
) -> tuple[str, list[str]]:
    """Route new invocations of every service to this deployment again, as a CloudFormation rollback expects.

    Restate answers a repeated registration with the existing deployment but keeps the newer
    one current; registering it again with `force` makes it the newest revision once more.
    """
    elsewhere = services_elsewhere(api, deployment_id, services)
    if not elsewhere:
        LOG.info("deployment %s is current for %s", deployment_id, ", ".join(services) or "(no services)")
        return deployment_id, services
    LOG.info(
        "deployment %s is not current for %s; registering %s again with force",
        deployment_id,
        ", ".join(f"{name} (served by {other})" for name, other in elsewhere.items()),
        props.function_arn,
    )
    answer = api.call("POST", "/deployments", {**request, "force": True})
    forced_id, services = registered_deployment(api, props, answer)
    if forced_id != deployment_id:
        LOG.info("Restate answered the forced registration with deployment %s, not %s", forced_id, deployment_id)
    still_elsewhere = services_elsewhere(api, forced_id, services)
    if still_elsewhere:
        raise RegistrationError(
            f"Restate at {api.base_url} still routes "
            + ", ".join(f"{name} to {other}" for name, other in still_elsewhere.items())
            + f" after registering {props.function_arn} (deployment {forced_id}) again with force, "
            "so new invocations would not run the version CloudFormation asked for"
        )
    LOG.info(
        "made deployment %s of %s current again for services %s",
        forced_id,
        props.function_arn,
        ", ".join(elsewhere),
    )
    return forced_id, services


def align_invoker_role(api: AdminApi, deployment_id: str, props: Properties) -> None:
    """Restate answers a repeated registration with the existing deployment and ignores a new role; fix that."""
    path = f"/deployments/{urllib.parse.quote(deployment_id, safe='')}"
    current = api.call("GET", path).json().get("assume_role_arn") or ""
    wanted = props.invoker_role_arn
    if current == wanted:
        LOG.info("deployment %s already uses invoker role %s", deployment_id, current or "(none)")
        return
    if not wanted:
        raise RegistrationError(
            f"deployment {deployment_id} of {props.function_arn} at {api.base_url} assumes role {current}, and "
            "Restate cannot remove the role of an existing deployment; publish a new function version instead"
        )
    api.call("PATCH", path, {"assume_role_arn": wanted})
    LOG.info("deployment %s: invoker role changed from %s to %s", deployment_id, current or "(none)", wanted)


def deregister(physical_id: str, props: Properties, deadline: float) -> dict[str, Any]:
    """Delete: keep the deployment unless asked to destroy it, and never fail, so Restate cannot block a deletion."""
    result = {"PhysicalResourceId": physical_id}
    if not physical_id.startswith("dp_"):
        # A Create that failed leaves an id of the framework's own; there is nothing in Restate to remove.
        LOG.info("%r is not a Restate deployment id; nothing to delete", physical_id)
        return result
    if props.removal_policy not in REMOVAL_POLICIES:
        LOG.warning(
            "keeping deployment %s: RemovalPolicy must be retain or destroy, not %r. %s",
            physical_id,
            props.removal_policy,
            removal_by_hand(physical_id, props),
        )
        return result
    if props.removal_policy != "destroy":
        LOG.info("keeping deployment %s (RemovalPolicy %s)", physical_id, props.removal_policy)
        return result
    try:
        if url_problem := props.admin_url_problem():
            raise RegistrationError(f"invalid properties: {url_problem}")
        api = admin_api(props, deadline)
        if pinned := pinned_invocations(api, physical_id):
            LOG.warning(
                "keeping deployment %s: %s on it, and deleting it would break %s (Restate pins each "
                "invocation to the deployment it started on). CloudFormation deletes the previous registration "
                "after every code update; `holiday prune` removes it once they have finished. %s",
                physical_id,
                "1 invocation still runs" if pinned == 1 else f"{pinned} invocations still run",
                "it" if pinned == 1 else "them",
                removal_by_hand(physical_id, props),
            )
            return result
        # Restate 1.7 deletes only by force, which breaks the invocations pinned to it: none, just checked.
        path = f"/deployments/{urllib.parse.quote(physical_id, safe='')}?force=true"
        answer = api.call("DELETE", path, accept=lambda status: 200 <= status < 300 or status == 404)
    except Exception as err:
        # Whatever went wrong, failing would leave the stack stuck in DELETE_FAILED over a
        # registration that is harmless to keep; say so and how to remove it instead.
        LOG.warning(
            "could not delete deployment %s from Restate at %s, so it stays registered; the stack deletion "
            "goes on. Reason: %s. %s",
            physical_id,
            props.admin_url,
            err if isinstance(err, RegistrationError) else f"{type(err).__name__}: {err}",
            removal_by_hand(physical_id, props),
            exc_info=not isinstance(err, RegistrationError),  # a traceback only for the unexpected
        )
        return result
    LOG.info("deployment %s %s", physical_id, "was already gone" if answer.status == 404 else "deleted")
    return result


def pinned_invocations(api: AdminApi, deployment_id: str) -> int:
    """How many unfinished invocations are pinned to the deployment; raises when Restate cannot say.

    Completed invocations stay listed (with status completed) for the journal retention, so they are left out.
    """
    try:
        if not DEPLOYMENT_ID.fullmatch(deployment_id):
            raise RegistrationError(f"{deployment_id!r} is not shaped like a Restate deployment id")
        query = (
            "SELECT COUNT(*) AS pinned FROM sys_invocation "
            f"WHERE pinned_deployment_id = '{deployment_id}' AND status <> 'completed'"
        )
        answer = api.call("POST", "/query", {"query": query})
        try:
            [row] = answer.json()["rows"]
            pinned = row["pinned"]
        except (ValueError, KeyError, TypeError) as err:
            raise RegistrationError(f"unexpected answer ({type(err).__name__}: {err}): {answer.message()}") from err
        if not isinstance(pinned, int) or isinstance(pinned, bool):
            raise RegistrationError(f"unexpected count {pinned!r}: {answer.message()}")
    except RegistrationError as err:
        raise RegistrationError(
            f"could not check whether invocations still run on it, and deleting it would break them: {err}"
        ) from err
    return pinned


def removal_by_hand(physical_id: str, props: Properties) -> str:
    """The command that deletes the deployment, for whoever reads the warning."""
    admin = props.admin_url.rstrip("/") or "<admin URL>"
    url = f"{admin}/deployments/{urllib.parse.quote(physical_id, safe='')}?force=true"
    command = f"curl -X DELETE '{url}'"
    if props.token_secret_arn:
        return (
            f"To remove it by hand, with TOKEN the SecretString of {props.token_secret_arn}: "
            f'{command} -H "Authorization: Bearer $TOKEN"'
        )
    return f"To remove it by hand: {command}"


def function_version(arn: str) -> tuple[str, int] | None:
    """The function's own ARN and the version number, from a version ARN; None for anything else."""
    match = VERSION_ARN.fullmatch(arn.strip())
    return (match[1], int(match[2])) if match else None


def is_rollback(function_arn: str, old_function_arn: str) -> bool:
    """Whether an Update to `function_arn` from `old_function_arn` can only be CloudFormation rolling back.

    Every code change publishes a new, higher version, so an update never asks for an earlier
    version of the same function, except when CloudFormation restores the last good properties.
    """
    new, old = function_version(function_arn), function_version(old_function_arn)
    return new is not None and old is not None and new[0] == old[0] and new[1] < old[1]


def describe_update(function_arn: str, old_function_arn: str) -> str:
    """'rollback to version 5 from 6', or 'forward update to version 7 from 6', for the log."""
    kind = "rollback" if is_rollback(function_arn, old_function_arn) else "forward update"
    new, old = function_version(function_arn), function_version(old_function_arn)
    if new is not None and old is not None and new[0] == old[0]:
        return f"{kind} to version {new[1]} from {old[1]}"
    return f"{kind} from {old_function_arn or '(no FunctionArn)'}"


def roll_back(physical_id: str, props: Properties, deadline: float) -> dict[str, Any]:
    """A rollback Update: make Restate route to the earlier version as `register` does, and never fail."""
    try:
        return register(props, deadline)
    except Exception as err:
        # Whatever went wrong, failing would leave the stack in UPDATE_ROLLBACK_FAILED, which only
        # an operator can get out of; keep the resource as it was and say how to finish by hand.
        LOG.warning(
            "the rollback could not make Restate at %s route new invocations to %s, so they may still run the "
            "later version; the stack rollback goes on. Reason: %s. %s",
            props.admin_url,
            props.function_arn,
            err if isinstance(err, RegistrationError) else f"{type(err).__name__}: {err}",
            rollback_by_hand(props),
            exc_info=not isinstance(err, RegistrationError),  # a traceback only for the unexpected
        )
        # Without an id the Provider framework keeps the one CloudFormation sent.
        return {"PhysicalResourceId": physical_id} if physical_id else {}


def rollback_by_hand(props: Properties) -> str:
    """The command that makes the rollback's version current in Restate, for whoever reads the warning."""
    admin = props.admin_url.rstrip("/") or "<admin URL>"
    request: dict[str, Any] = {"arn": props.function_arn or "<version ARN>"}
    if props.invoker_role_arn:
        request["assume_role_arn"] = props.invoker_role_arn
    request["force"] = True  # registers it again as the newest revision of its services, as `make_current` does
    command = f"curl -X POST '{admin}/deployments' -H 'Content-Type: application/json' -d '{json.dumps(request)}'"
    if props.token_secret_arn:
        return (
            f"To make Restate route to it by hand, with TOKEN the SecretString of {props.token_secret_arn}: "
            f'{command} -H "Authorization: Bearer $TOKEN"'
        )
    return f"To make Restate route to it by hand: {command}"


def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Provider framework's entry point: return to succeed, raise to fail with a reason."""
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_S
    request_type = event.get("RequestType")
    props = Properties.parse(event.get("ResourceProperties") or {})
    kind = str(request_type)
    rollback = False
    if request_type == "Update":
        old_props = event.get("OldResourceProperties")
        old_function_arn = Properties.parse(old_props if isinstance(old_props, Mapping) else {}).function_arn
        rollback = is_rollback(props.function_arn, old_function_arn)
        kind = f"Update ({describe_update(props.function_arn, old_function_arn)})"
    if request_type == "Delete":
        deadline = min(deadline, time.monotonic() + DELETE_BUDGET_S)
    if rollback:
        deadline = min(deadline, time.monotonic() + ROLLBACK_BUDGET_S)
    LOG.info(
        "%s: %s at %s (%.0fs to answer)",
        kind,
        props.function_arn,
        props.admin_url,
        deadline - time.monotonic(),
    )
    physical_id = str(event.get("PhysicalResourceId") or "")
    if rollback:
        return roll_back(physical_id, props, deadline)
    if request_type in ("Create", "Update"):
        return register(props, deadline)
    if request_type == "Delete":
        return deregister(physical_id, props, deadline)
    raise RegistrationError(f"unknown RequestType {request_type!r}; expected Create, Update or Delete")
