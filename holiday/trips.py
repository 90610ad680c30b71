"""The trips service: the saga that books a flight, a car and a payment, or undoes them.

Two Restate components live here:

- `trips` (service), handler `reserve`: the public entry point,
  `POST /trips/reserve`. It validates the body, fills in defaults and hands
  the trip to its virtual object.
- `trip` (virtual object keyed by trip id), handler `run`: the saga itself.
  Restate runs one `run` per key at a time, so the same trip id sent twice
  (or fifty times at once) books once; later calls get the first outcome.
  Handler `status` reads the trip's record while or after it runs:
  `GET /trip/<id>/status`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import restate
from restate import TerminalError
from restate.serde import BytesSerde

from holiday.aws import off_loop
from holiday.booking import BookingHandler
from holiday.cars import cars
from holiday.faults import fail_if
from holiday.flights import flights
from holiday.models import (
    BookingRef,
    CarReservation,
    FlightReservation,
    PaymentRequest,
    RunType,
    StepName,
    StepRecord,
    TripOutcome,
    TripPlan,
    TripRecord,
)
from holiday.notify import Announcement, notifier
from holiday.payments import process, refund
from holiday.planning import parse_request, plan_trip
from holiday.retries import RETRY_POLICY
from holiday.saga import Compensation, Saga, Step
from holiday.sdk import pydantic_serde, replay_safe_logger

FAILED_TRIP_STATUS = 409
RECORD = "trip"
R = TypeVar("R", bound=BookingRef)  # what a flights, cars or payments handler takes
_record_serde = pydantic_serde(TripRecord)

log = replay_safe_logger("holiday.trips")

trips = restate.Service(
    "trips",
    description="Books a trip: flight, car and payment, all or nothing.",
    invocation_retry_policy=RETRY_POLICY,
)
trip = restate.VirtualObject(
    "trip",
    description="One trip's saga and its record, keyed by trip id.",
    invocation_retry_policy=RETRY_POLICY,
)


@trips.handler(input_serde=BytesSerde())
async def reserve(ctx: restate.Context, body: bytes | None) -> TripOutcome:
    """Validate the request, then run (or rejoin) the trip's saga and return its outcome."""
    plan = await plan_trip(ctx, parse_request(body))
    return await ctx.object_call(run, key=plan.trip_id, arg=plan)


class TripRecorder:
    """Keeps the trip's record in Restate state as the saga moves, and logs each step.

    The record is saved at the saga's checkpoints (before each round of steps
    or of undos is awaited), not at every change: each save is a journal
    entry, and a save that nothing awaited could observe would be wasted.
    """

    def __init__(self, ctx: restate.ObjectContext, record: TripRecord) -> None:
        self._ctx = ctx
        self.record = record

    def started(self, name: str, ref: str | None, compensating: bool) -> None:
        entries = self.record.compensations if compensating else self.record.steps
        entries.append(StepRecord(name=name, id=ref, status="running"))
        log.debug("trip=%s %s: started%s", self.record.trip_id, name, f" (id {ref})" if ref else "")

    def finished(self, name: str, error: str | None, compensating: bool) -> None:
        entries = self.record.compensations if compensating else self.record.steps
        entry = next(e for e in reversed(entries) if e.name == name)
        entry.status, entry.error = ("failed", error) if error else ("done", None)
        # A step done is in the service's own log line; what goes wrong, and the undo, is news here.
        level = logging.INFO if error or compensating else logging.DEBUG
        log.log(level, "trip=%s %s: %s", self.record.trip_id, name, f"failed: {error}" if error else "done")

    def checkpoint(self) -> None:
        self.save()

    def save(self) -> None:
        self._ctx.set(RECORD, self.record, serde=_record_serde)


@trip.handler(ingress_private=True)
async def run(ctx: restate.ObjectContext, plan: TripPlan) -> TripOutcome:
    """The saga. Any terminal failure undoes what was done, newest first, then fails the call."""
    earlier = await ctx.get(RECORD, serde=_record_serde)
    if earlier is not None:
        return _earlier_outcome(earlier)

    recorder = TripRecorder(ctx, TripRecord(trip_id=plan.trip_id, status="running", run_type=plan.run_type))
    saga = Saga(recorder)
    flight = BookingRef(trip_id=plan.trip_id, booking_id=str(ctx.uuid()), run_type=plan.run_type)
    car = BookingRef(trip_id=plan.trip_id, booking_id=str(ctx.uuid()), run_type=plan.run_type)
    payment = BookingRef(trip_id=plan.trip_id, booking_id=str(ctx.uuid()), run_type=plan.run_type)

    def call(handler: BookingHandler[R], arg: R) -> Callable[[], Awaitable[object]]:
        return lambda: ctx.service_call(handler, arg=arg)

    try:
        # Flight and car do not depend on each other: both are held at once. The
        # payment waits for both, so nobody is charged for a trip that cannot be held.
        await saga.together(
            Step(
                StepName.RESERVE_FLIGHT,
                call(flights.reserve, FlightReservation(**flight.model_dump(), **_flight_details(plan))),
                Compensation(StepName.CANCEL_FLIGHT, call(flights.cancel, flight), flight.booking_id),
                flight.booking_id,
            ),
            Step(
                StepName.RESERVE_CAR,
                call(cars.reserve, CarReservation(**car.model_dump(), **_car_details(plan))),
                Compensation(StepName.CANCEL_CAR, call(cars.cancel, car), car.booking_id),
                car.booking_id,
            ),
        )
        await saga.step(
            StepName.PROCESS_PAYMENT,
            call(process, PaymentRequest(**payment.model_dump(), amount=plan.amount, currency=plan.currency)),
            undo=Compensation(StepName.REFUND_PAYMENT, call(refund, payment), payment.booking_id),
            ref=payment.booking_id,
        )
        # A failed confirmation is undone by the cancel registered at reservation.
        await saga.together(
            Step(StepName.CONFIRM_FLIGHT, call(flights.confirm, flight), ref=flight.booking_id),
            Step(StepName.CONFIRM_CAR, call(cars.confirm, car), ref=car.booking_id),
        )
        outcome = TripOutcome(
            trip_id=plan.trip_id,
            flight_booking_id=flight.booking_id,
            car_booking_id=car.booking_id,
            payment_id=payment.booking_id,
        )
        success = Announcement(trip_id=plan.trip_id, outcome="success", message=f"trip {plan.trip_id} is booked")
        await saga.step(StepName.SEND_NOTIFICATION, lambda: _announce(success, plan.run_type))
    except TerminalError as err:
        raise await _undo(ctx, saga, recorder, err) from err

    recorder.record.status, recorder.record.outcome = "succeeded", outcome
    recorder.save()
    log.info("trip=%s booked", plan.trip_id)
    return outcome


async def _undo(ctx: restate.ObjectContext, saga: Saga, recorder: TripRecorder, err: TerminalError) -> TerminalError:
    """Compensate, announce the failure, record it; return the error to fail the call with."""
    record = recorder.record
    # Kept by the saga's checkpoint before the first undo is awaited.
    record.status, record.failed_step = "compensating", saga.failed_step
    undone = await saga.compensate()
    recorder.save()  # the last round's news, before the announcement is awaited
    where = f"failed at {saga.failed_step}" if saga.failed_step else "was stopped"
    message = f"trip {record.trip_id} {where}: {err.message}; compensated: {', '.join(undone) or 'nothing'}"
    failure = Announcement(
        trip_id=record.trip_id,
        outcome="failure",
        message=message,
        failed_step=saga.failed_step,
        compensations=undone,
    )
    await _announce(failure)
    record.status, record.error = "failed", message
    recorder.save()
    log.info("trip=%s failed and compensated", record.trip_id)
    return TerminalError(message, status_code=FAILED_TRIP_STATUS)


async def _announce(announcement: Announcement, run_type: RunType | None = None) -> None:
    """Publish the trip's outcome: the saga's last effect, so it needs no `ctx.run` of its own.

    Nothing after it can fail, so no replay comes back to it once it has been
    sent, except when the attempt that sent it dies before Restate has the
    answer: a `ctx.run` would not help then either, its result being lost with
    the attempt. On Lambda a `ctx.run` would cost the trip one more invocation
    (a suspension for Restate to acknowledge it). A failed publish raises, and
    Restate retries the invocation, which resumes here.
    """
    fail_if(run_type, RunType.FAIL_NOTIFICATION, "success notification")
    await off_loop(notifier().announce, announcement)


def _earlier_outcome(record: TripRecord) -> TripOutcome:
    """A trip id already used: answer with that trip's outcome, never book again."""
    if record.outcome is not None:
        return record.outcome
    if record.status == "failed" and record.error:
        raise TerminalError(record.error, status_code=FAILED_TRIP_STATUS)
    raise TerminalError(
        f"trip {record.trip_id} was interrupted while {record.status}; see GET /trip/{record.trip_id}/status",
        status_code=FAILED_TRIP_STATUS,
    )


def _flight_details(plan: TripPlan) -> dict[str, object]:
    return plan.model_dump(include={"depart_city", "arrive_city", "depart_at", "arrive_at"})


def _car_details(plan: TripPlan) -> dict[str, object]:
    return {
        "car_class": plan.car_class,
        "city": plan.arrive_city,
        "rental_from": plan.rental_from,
        "rental_to": plan.rental_to,
    }


@trip.handler(kind="shared")
async def status(ctx: restate.ObjectSharedContext) -> TripRecord:
    """The trip's record: each step with its id and status, compensations, outcome."""
    record = await ctx.get(RECORD, serde=_record_serde)
    if record is None:
        raise TerminalError(f"no trip with id {ctx.key()!r}", status_code=404)
    return record
