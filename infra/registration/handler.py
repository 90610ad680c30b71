"""CloudFormation custom resource: register one Lambda function version with Restate's admin API.

This is the `on_event` handler behind CDK's `custom_resources.Provider`. Returning
means SUCCESS; raising means FAILED, and the exception's message is the reason
CloudFormation shows, so every message names what failed, where, and why.

Every wait is bounded by the Lambda's own remaining time minus a safety margin:
the handler always fails with a reason before Lambda kills it, instead of
leaving CloudFormation waiting for an answer that never comes.

The module needs only the standard library (and boto3, which the Lambda
runtime provides, for the optional token), so the asset is this file alone.
"""

from __future__ import annotations

import http.client
import json
import logging
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
MAX_MESSAGE_CHARS = 800  # CloudFormation refuses a response over 4 KiB, reason included
RETRYABLE_STATUSES = frozenset({408, 429})  # 4xx answers that mean "try again later"
REMOVAL_POLICIES = ("retain", "destroy")


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

    def check(self) -> None:
        """Refuse what Restate would only reject later, or accept and then misbehave on."""
        problems = []
        url = urllib.parse.urlsplit(self.admin_url)
        if url.scheme not in ("http", "https") or not url.netloc:
            problems.append(f"AdminUrl must be an http(s) URL such as http://10.0.1.5:9070, not {self.admin_url!r}")
        if not self.function_arn:
            problems.append("FunctionArn is required")
        elif self.function_arn.endswith(":$LATEST"):
            # Restate replays journals against the code it registered; $LATEST changes under it.
            problems.append(f"FunctionArn must name a published version, not $LATEST: {self.function_arn}")
        if self.removal_policy not in REMOVAL_POLICIES:
            problems.append(f"RemovalPolicy must be retain or destroy, not {self.removal_policy!r}")
        if problems:
            raise RegistrationError("invalid properties: " + "; ".join(problems))


def read_token(secret_arn: str) -> str:
    """The admin API's bearer token, from Secrets Manager (boto3 imported only when a token is used)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    parts = secret_arn.split(":")
    region = parts[3] if secret_arn.startswith("arn:") and len(parts) > 3 and parts[3] else None
    try:
        secret = boto3.client("secretsmanager", region_name=region).get_secret_value(SecretId=secret_arn)
    except (BotoCoreError, ClientError) as err:
        raise RegistrationError(f"reading the Restate admin token from secret {secret_arn} failed: {err}") from err
    token = str(secret.get("SecretString") or "").strip()
    if not token:
        raise RegistrationError(f"secret {secret_arn} has no SecretString to use as the Restate admin token")
    LOG.info("read the Restate admin token from secret %s", secret_arn)
    return token


def admin_api(props: Properties, deadline: float) -> AdminApi:
    token = read_token(props.token_secret_arn) if props.token_secret_arn else None
    return AdminApi(props.admin_url, token, deadline)


def register(props: Properties, deadline: float) -> dict[str, Any]:
    """Create and Update: wait for Restate, register the version, make its invoker role the one asked for."""
    props.check()
    api = admin_api(props, deadline)
    api.call("GET", "/health")
    request: dict[str, str] = {"arn": props.function_arn}
    if props.invoker_role_arn:
        request["assume_role_arn"] = props.invoker_role_arn
    # No "force": a new version ARN is a new deployment, and Restate keeps the old one
    # for the invocations still running on it.
    answer = api.call("POST", "/deployments", request)
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
    LOG.info(
        "%s %s as deployment %s serving %s",
        "registered" if answer.status == 201 else "already registered",
        props.function_arn,
        deployment_id,
        ", ".join(services),
    )
    if answer.status != 201:
        align_invoker_role(api, deployment_id, props)
    return {
        "PhysicalResourceId": deployment_id,
        "Data": {"DeploymentId": deployment_id, "Services": ",".join(services)},
    }


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
    """Delete: keep the deployment unless asked to destroy it, and never fail on one that is gone."""
    result = {"PhysicalResourceId": physical_id}
    if not physical_id.startswith("dp_"):
        # A Create that failed leaves an id of the framework's own; there is nothing in Restate to remove.
        LOG.info("%r is not a Restate deployment id; nothing to delete", physical_id)
        return result
    if props.removal_policy != "destroy":
        LOG.info("keeping deployment %s (RemovalPolicy %s)", physical_id, props.removal_policy)
        return result
    api = admin_api(props, deadline)
    path = f"/deployments/{urllib.parse.quote(physical_id, safe='')}?force=true"  # Restate 1.7 deletes only by force
    answer = api.call("DELETE", path, accept=lambda status: 200 <= status < 300 or status == 404)
    LOG.info("deployment %s %s", physical_id, "was already gone" if answer.status == 404 else "deleted")
    return result


def on_event(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """The Provider framework's entry point: return to succeed, raise to fail with a reason."""
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - SAFETY_MARGIN_S
    request_type = event.get("RequestType")
    props = Properties.parse(event.get("ResourceProperties") or {})
    LOG.info(
        "%s: %s at %s (%.0fs to answer)",
        request_type,
        props.function_arn,
        props.admin_url,
        deadline - time.monotonic(),
    )
    if request_type in ("Create", "Update"):
        return register(props, deadline)
    if request_type == "Delete":
        return deregister(str(event.get("PhysicalResourceId") or ""), props, deadline)
    raise RegistrationError(f"unknown RequestType {request_type!r}; expected Create, Update or Delete")
