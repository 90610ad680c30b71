"""Reserve, confirm and cancel: the one booking lifecycle that flights and cars share.

A booking row is written `pending` by reserve, moved to `confirmed` by
confirm, and set `cancelled` by cancel. Cancel accepts any state, including
"never written", and leaves a `cancelled` row behind so that a late retry of
reserve cannot bring the booking back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import restate

from holiday.faults import fail_if
from holiday.models import BookingRef, BookingResult, RowStatus, RunType
from holiday.retries import RETRY_POLICY
from holiday.sdk import pydantic_serde, replay_safe_logger
from holiday.storage import ledger, write_or_refuse

PENDING, CONFIRMED, CANCELLED = RowStatus.PENDING, RowStatus.CONFIRMED, RowStatus.CANCELLED
_REF_FIELDS = set(BookingRef.model_fields)
R = TypeVar("R", bound=BookingRef)
# A flights, cars or payments handler, as `ctx.service_call` takes it: `R` is the request it takes
# (`BookingHandler[FlightReservation]`, say), so mypy checks what the saga passes to each.
BookingHandler = Callable[[restate.Context, R], Awaitable[BookingResult]]


@dataclass(frozen=True)
class BookingService:
    """A Restate service and its handlers, which callers pass to `ctx.service_call`."""

    service: restate.Service
    reserve: BookingHandler[BookingRef]
    confirm: BookingHandler[BookingRef]
    cancel: BookingHandler[BookingRef]


def booking_service(
    name: str,
    noun: str,
    reservation: type[BookingRef],
    table_name: Callable[[], str],
    fail_reserve: RunType,
    fail_confirm: RunType,
) -> BookingService:
    """Build the service `name` booking `noun`s in the table `table_name()` names."""
    service = restate.Service(
        name,
        description=f"Reserves, confirms and cancels {noun} bookings.",
        ingress_private=True,
        invocation_retry_policy=RETRY_POLICY,
    )
    log = replay_safe_logger(f"holiday.{name}")

    @service.handler(input_serde=pydantic_serde(reservation))
    async def reserve(ctx: restate.Context, req: BookingRef) -> BookingResult:
        """Hold a booking as `pending` until the trip is paid for."""
        fail_if(req.run_type, fail_reserve, f"{noun} reservation")
        details = req.model_dump(mode="json", exclude=_REF_FIELDS)
        table = ledger(table_name())
        await write_or_refuse(table.insert, req.trip_id, req.booking_id, PENDING, details)
        log.info("trip=%s %s %s reserved (pending)", req.trip_id, noun, req.booking_id)
        return BookingResult(trip_id=req.trip_id, booking_id=req.booking_id, status=PENDING)

    @service.handler()
    async def confirm(ctx: restate.Context, req: BookingRef) -> BookingResult:
        """Turn a pending booking into a confirmed one; a cancelled one stays cancelled."""
        fail_if(req.run_type, fail_confirm, f"{noun} confirmation")
        table = ledger(table_name())
        await write_or_refuse(table.advance, req.trip_id, req.booking_id, CONFIRMED, [PENDING])
        log.info("trip=%s %s %s confirmed", req.trip_id, noun, req.booking_id)
        return BookingResult(trip_id=req.trip_id, booking_id=req.booking_id, status=CONFIRMED)

    @service.handler()
    async def cancel(ctx: restate.Context, req: BookingRef) -> BookingResult:
        """Undo a booking in whatever state it is; never fails on purpose."""
        table = ledger(table_name())
        await write_or_refuse(table.set_final_status, req.trip_id, req.booking_id, CANCELLED)
        log.info("trip=%s %s %s cancelled", req.trip_id, noun, req.booking_id)
        return BookingResult(trip_id=req.trip_id, booking_id=req.booking_id, status=CANCELLED)

    return BookingService(service, reserve, confirm, cancel)
