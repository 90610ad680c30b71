"""The Restate ingress as every local tool calls it: book a trip, read its record, judge the answer.

`holiday reserve` and `holiday trip`, `holiday bench` and `holiday chaos` (with its freeze, rolling and
upgrade scenarios) all go through `Ingress`: one client, which sends the ingress key as a bearer token,
accepts a self-signed certificate when asked to (`insecure`), and sends an `idempotency-key` when given one.

A trip's outcome is read as data, never from the wording of an answer: a booked trip's 200 carries its
ids, and a failed trip's 409 is followed by its record (`GET /trip/<id>/status`, `TripRecord`), whose
`status`, `failed_step` and `compensations` say where it failed and what was undone.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import httpx

from holiday.models import FAILED_STEP, RunType, TripRecord

RESERVE_PATH = "/trips/reserve"
FAILED_TRIP_STATUS = 409  # how holiday/trips.py answers a trip that failed and was undone
# A trip's record by id: None if the ingress knows no such trip.
RecordLookup = Callable[[str], TripRecord | None]


class IngressRefused(Exception):
    """What every request would meet, so a caller stops at the first: a 401 (no key, or not the right one),
    or, with `certificate`, a TLS certificate that cannot be verified."""

    def __init__(self, certificate: ssl.SSLCertVerificationError | None = None, ingress: str = "") -> None:
        what = "the ingress answered 401" if certificate is None else f"unverified certificate: {certificate}"
        super().__init__(what)
        self.certificate = certificate
        self.ingress = ingress  # which one, when there are several


def unverified_certificate(err: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate check that `err` (an httpx error) comes from, if it does: a self-signed one, say."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class Ingress:
    """One Restate ingress, and how to get in: its key (a bearer token) and whether to accept a self-signed
    certificate. A 401 or an unverified certificate raises `IngressRefused`; any other failure to get an
    answer raises the httpx error. Close it, or use it in a `with` block."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        insecure: bool = False,
        *,
        timeout: float | httpx.Timeout = 60.0,
        concurrency: int | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url
        self.token = token  # the ingress key: never to be shown
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self._client = httpx.Client(
            base_url=url,
            timeout=timeout,
            limits=limits,
            headers=headers,
            verify=not insecure,
            transport=transport,
        )

    def reserve(
        self,
        trip_id: str | None = None,
        run_type: RunType | None = None,
        *,
        idempotency_key: str | None = None,
        path: str = RESERVE_PATH,
        depart_at: str | None = None,
    ) -> httpx.Response:
        """Ask for a trip (`path`: the saga's, or another that takes the same body, such as the null saga's).

        Without `depart_at` (ISO 8601) the saga fills in the trip's dates from the clock."""
        body: dict[str, Any] = {"trip_id": trip_id, "run_type": run_type.value if run_type else None}
        if trip_id is None:
            del body["trip_id"]
        if depart_at is not None:
            body["depart_at"] = depart_at
        headers = {"idempotency-key": idempotency_key} if idempotency_key else {}
        return self.request("POST", path, json=body, headers=headers)

    def record(self, trip_id: str) -> TripRecord | None:
        """The trip's record, None if the ingress knows no such trip (httpx.HTTPStatusError for any other
        answer than 200 or 404)."""
        response = self.status(trip_id)
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return TripRecord.model_validate(response.json())

    def status(self, trip_id: str) -> httpx.Response:
        """The ingress's answer to `GET /trip/<id>/status`, whatever it is."""
        return self.request("GET", f"/trip/{trip_id}/status")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as err:
            if (certificate := unverified_certificate(err)) is not None:
                raise IngressRefused(certificate, self.url) from err
            raise
        if response.status_code == 401:
            raise IngressRefused(ingress=self.url)
        return response

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def message(response: httpx.Response) -> str:
    """The `message` of an error answer (Restate's `{"code": ..., "message": ...}`), else its text."""
    try:
        body = response.json()
    except ValueError:
        return response.text
    return str(body.get("message", response.text)) if isinstance(body, dict) else response.text


def undone(record: TripRecord) -> list[str]:
    """The compensations that ran, in the order they ran."""
    return [step.name for step in record.compensations if step.status == "done"]


def failure_reason(record: TripRecord) -> str | None:
    """Why a failed trip failed: its failed step's error (None if no step failed: it was stopped between two)."""
    step = next((s for s in record.steps if s.name == record.failed_step and s.status == "failed"), None)
    return step.error if step is not None else None


# --- judging answers ----------------------------------------------------------------------------


def judge(trip_id: str, run_type: RunType | None, answer: httpx.Response | str, lookup: RecordLookup) -> str | None:
    """None if `answer` is what this trip should get, else what is wrong with it.

    A clean trip must be booked: 200, naming the trip. A trip with an injected failure must be refused
    (409), and its record (from `lookup`, asked only then) must say it failed at the step `run_type`
    names.
    """
    if isinstance(answer, str):
        return f"{trip_id}: {answer}"
    if run_type is None:
        if answer.status_code == 200 and _trip_id(answer) == trip_id:
            return None
    elif answer.status_code == FAILED_TRIP_STATUS:
        record = lookup(trip_id)
        expected = FAILED_STEP[run_type]
        if record is not None and record.status == "failed" and record.failed_step == expected:
            return None
        found = "no record" if record is None else f"record {record.status}, failed step {record.failed_step}"
        return f"{trip_id} ({run_type}): HTTP {answer.status_code}, {found}; expected failed at {expected}"
    return wrong_answer(trip_id, run_type, answer)


def judge_status(trip_id: str, run_type: RunType | None, answer: httpx.Response | str) -> str | None:
    """Only the HTTP status: 200 for a clean trip, any 4xx or 5xx for an injected failure.

    For a saga that words its answers otherwise than this project's and keeps no record: the TypeScript
    original answers an injected failure with a 500 and its own message.
    """
    if isinstance(answer, str):
        return f"{trip_id}: {answer}"
    if (answer.status_code == 200) if run_type is None else (400 <= answer.status_code < 600):
        return None
    return wrong_answer(trip_id, run_type, answer)


def wrong_answer(trip_id: str, run_type: RunType | None, answer: httpx.Response) -> str:
    """A wrong answer, as a report shows it: the trip, what it asked for, the status and the start of the body."""
    return f"{trip_id} ({run_type or 'clean'}): HTTP {answer.status_code} {answer.text[:200]}"


def _trip_id(answer: httpx.Response) -> object:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body.get("trip_id") if isinstance(body, dict) else None
