"""From a caller's request body to the trip the saga books: all the parsing, and the defaults.

Apart from the saga, so that whatever else takes trip requests (the benchmark's
null saga) parses them the same way without importing the saga.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import restate
from pydantic import ValidationError
from restate import TerminalError

from holiday.models import TripPlan, TripRequest

MAX_BODY_BYTES = 16 * 1024


class BadRequest(TerminalError):
    """The request cannot be booked as sent: a 4xx answer, never retried, before anything is written."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(message, status_code=status_code)


def parse_request(body: bytes | None) -> TripRequest:
    """Read a request body: `{}`, flat fields, or the `{"request": {...}}` wrapper.

    Raises `BadRequest` naming the problem. A body with nothing in it is refused:
    that is what a browser or a link preview sends, and it must not book a holiday.
    """
    if body and len(body) > MAX_BODY_BYTES:
        raise BadRequest(f"request body is {len(body)} bytes; the limit is {MAX_BODY_BYTES}", 413)
    if not body or not body.strip(b" \t\r\n"):  # JSON's own whitespace, nothing else
        raise BadRequest("request body is empty; send a JSON object, {} for all defaults")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BadRequest(f"request body is not valid UTF-8: {err.reason} at byte {err.start}") from None
    try:
        # Decimal, not float: 19.999999999999999999 must be refused, not rounded to 20.
        data = json.loads(text, object_pairs_hook=_once_each, parse_float=Decimal)
    except RecursionError:
        raise BadRequest("request body is nested too deeply") from None
    except ValueError as err:
        raise BadRequest(f"request body is not valid JSON: {err}") from None
    if isinstance(data, dict) and set(data) == {"request"}:
        data = data["request"] if data["request"] is not None else {}
    if not isinstance(data, dict):
        raise BadRequest(f"request must be a JSON object, not {type(data).__name__}")
    if isinstance(data.get("amount"), Decimal):
        data["amount"] = str(data["amount"])  # its exact digits; a decimal string is read the same way
    try:
        # Any other fractional number is in a field that takes none: float() only serves its message.
        return TripRequest.model_validate_json(json.dumps(data, default=float))
    except ValidationError as err:
        raise BadRequest(_describe(err)) from None


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a key twice, which one counts is anyone's guess."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadRequest(f"request body has the key {json.dumps(key)} more than once; send each key once")
        seen.add(key)
    return dict(pairs)


def _describe(err: ValidationError) -> str:
    """One line per problem, each naming its field."""
    problems = []
    for e in err.errors(include_url=False):
        where = ".".join(str(part) for part in e["loc"]) or "request"
        problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "invalid trip request: " + "; ".join(problems)


async def plan_trip(ctx: restate.Context, request: TripRequest) -> TripPlan:
    """Fill in what the caller left out; ids and clock come from Restate, so a retry sees the same."""
    trip_id = request.trip_id or str(ctx.uuid())
    now = None
    if request.depart_at is None and request.arrive_at is None:
        now = datetime.fromtimestamp(await ctx.time(), UTC)
    try:
        times = default_times(request, now)
    except OverflowError:
        raise BadRequest(
            "trip dates out of range: a date filled in by default (3 hours of flight, 7 days of rental) "
            "would fall outside the years 1 to 9999"
        ) from None
    try:
        return TripPlan(
            **request.model_dump(exclude={"trip_id", "depart_at", "arrive_at", "rental_from", "rental_to"}),
            trip_id=trip_id,
            **times,
        )
    except ValidationError as err:
        raise BadRequest(_describe(err)) from None


def default_times(request: TripRequest, now: datetime | None) -> dict[str, datetime]:
    """Departure in 14 days at 09:00 UTC, a 3-hour flight, a 7-day rental from arrival."""
    depart_at, arrive_at = request.depart_at, request.arrive_at
    if depart_at is None:
        if arrive_at is not None:
            depart_at = arrive_at - timedelta(hours=3)
        else:
            assert now is not None
            depart_at = now.replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=14)
    arrive_at = arrive_at or depart_at + timedelta(hours=3)
    rental_from = request.rental_from or arrive_at
    rental_to = request.rental_to or rental_from + timedelta(days=7)
    return {"depart_at": depart_at, "arrive_at": arrive_at, "rental_from": rental_from, "rental_to": rental_to}
