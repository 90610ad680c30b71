"""From a caller's request to the trip the saga books: parsing and the defaults.

Apart from the saga, so that whatever else takes trip requests (the benchmark's
null saga) parses them the same way without importing the saga.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import restate
from pydantic import ValidationError
from restate import TerminalError

from holiday.models import BadRequest, TripPlan, TripRequest, describe


def parse_request(body: bytes | None) -> TripRequest:
    """The request, or a terminal 4xx naming what is wrong with it (never retried)."""
    try:
        return TripRequest.parse(body)
    except BadRequest as bad:
        raise TerminalError(str(bad), status_code=bad.status) from None


async def plan_trip(ctx: restate.Context, request: TripRequest) -> TripPlan:
    """Fill in what the caller left out; ids and clock come from Restate, so a retry sees the same."""
    trip_id = request.trip_id or str(ctx.uuid())
    now = None
    if request.depart_at is None and request.arrive_at is None:
        now = datetime.fromtimestamp(await ctx.time(), UTC)
    try:
        times = default_times(request, now)
    except OverflowError:
        raise TerminalError(
            "trip dates out of range: a date filled in by default (3 hours of flight, 7 days of rental) "
            "would fall outside the years 1 to 9999",
            status_code=400,
        ) from None
    try:
        return TripPlan(
            **request.model_dump(exclude={"trip_id", "depart_at", "arrive_at", "rental_from", "rental_to"}),
            trip_id=trip_id,
            **times,
        )
    except ValidationError as err:
        raise TerminalError(describe(err), status_code=400) from None


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
