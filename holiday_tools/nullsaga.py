"""The null saga: the trip saga's call graph through Restate, with no storage and no notification.

`holiday bench --baseline` drives it beside the real saga, so every figure can
be read as a ratio to what Restate itself allows on that machine at that
moment. Only the local stack serves it: in the HTTP server, and in lambda mode
as a fifth function of the local Lambda runtime (`app`). It is never deployed.

Per trip, as the real saga: `nulltrips/reserve` parses the body and calls the
`nulltrip` object keyed by trip id, which makes five service calls in the
saga's three rounds (reserve flight and car at once, process payment, confirm
flight and car at once) and keeps its record in state. It reads no clock (the
saga reads one when a request leaves out its dates) and sends no announcement
(the saga's takes no journal entry of its own).
"""

from __future__ import annotations

import restate
from restate.serde import BytesSerde

from holiday.models import BookingRef, BookingResult, RowStatus, StepName, TripOutcome
from holiday.planning import parse_request
from holiday.sdk import pydantic_serde

# The saga's rounds: steps in one round run at once; (name, which booking id).
ROUNDS = (
    ((StepName.RESERVE_FLIGHT, 0), (StepName.RESERVE_CAR, 1)),
    ((StepName.PROCESS_PAYMENT, 2),),
    ((StepName.CONFIRM_FLIGHT, 0), (StepName.CONFIRM_CAR, 1)),
)
_outcome_serde = pydantic_serde(TripOutcome)

nulltrips = restate.Service("nulltrips", description="Benchmark baseline: the trip saga's shape, doing nothing.")
nulltrip = restate.VirtualObject("nulltrip", description="Benchmark baseline: one null trip.")
nullsteps = restate.Service("nullsteps", description="Benchmark baseline: a step that does nothing.")


@nullsteps.handler()
async def step(ctx: restate.Context, req: BookingRef) -> BookingResult:
    # No row is written: the status only has to be one the saga's steps answer with.
    return BookingResult(trip_id=req.trip_id, booking_id=req.booking_id, status=RowStatus.CONFIRMED)


@nulltrips.handler(input_serde=BytesSerde())
async def reserve(ctx: restate.Context, body: bytes | None) -> TripOutcome:
    trip_id = parse_request(body).trip_id or str(ctx.uuid())
    return await ctx.object_call(run, key=trip_id, arg=trip_id)


@nulltrip.handler(ingress_private=True)
async def run(ctx: restate.ObjectContext, trip_id: str) -> TripOutcome:
    ids = [str(ctx.uuid()) for _ in range(3)]
    for steps in ROUNDS:
        calls = [ctx.service_call(step, arg=BookingRef(trip_id=trip_id, booking_id=ids[i])) for _, i in steps]
        for call in reversed(calls):  # the last started first, as the saga waits (holiday/saga.py)
            await call
        ctx.set("last_step", steps[-1][0])
    outcome = TripOutcome(trip_id=trip_id, flight_booking_id=ids[0], car_booking_id=ids[1], payment_id=ids[2])
    ctx.set("outcome", outcome, serde=_outcome_serde)
    return outcome


SERVICES: list[restate.Service | restate.VirtualObject] = [nulltrips, nulltrip, nullsteps]
app = restate.app(services=SERVICES)
