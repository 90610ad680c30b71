"""The payments service: charge a trip, and refund it when the trip is undone.

A payment row is written `charged` by process and set `refunded` by refund.
Refund accepts "never charged" and leaves a `refunded` tombstone, so a late
retry of the charge cannot take the money again.
"""

from __future__ import annotations

import restate

from holiday.config import settings
from holiday.faults import fail_if
from holiday.models import BookingRef, BookingResult, PaymentRequest, RowStatus, RunType
from holiday.retries import RETRY_POLICY
from holiday.sdk import replay_safe_logger
from holiday.storage import Ledger, ledger, write_or_refuse

CHARGED, REFUNDED = RowStatus.CHARGED, RowStatus.REFUNDED

service = restate.Service(
    "payments",
    description="Charges and refunds trips.",
    ingress_private=True,
    invocation_retry_policy=RETRY_POLICY,
)
log = replay_safe_logger("holiday.payments")


def _ledger() -> Ledger:
    return ledger(settings().payments_table)


@service.handler()
async def process(ctx: restate.Context, req: PaymentRequest) -> BookingResult:
    """Charge the trip's amount once, however often this is retried."""
    fail_if(req.run_type, RunType.FAIL_PAYMENT, "payment")
    details = {"amount": req.amount, "currency": req.currency}
    await write_or_refuse(_ledger().insert, req.trip_id, req.booking_id, CHARGED, details)
    log.info("trip=%s payment %s charged %s %s", req.trip_id, req.booking_id, req.amount, req.currency)
    return BookingResult(trip_id=req.trip_id, booking_id=req.booking_id, status=CHARGED)


@service.handler()
async def refund(ctx: restate.Context, req: BookingRef) -> BookingResult:
    """Give the money back; never fails on purpose."""
    await write_or_refuse(_ledger().set_final_status, req.trip_id, req.booking_id, REFUNDED)
    log.info("trip=%s payment %s refunded", req.trip_id, req.booking_id)
    return BookingResult(trip_id=req.trip_id, booking_id=req.booking_id, status=REFUNDED)
