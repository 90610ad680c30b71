"""The messages that travel between callers and services, and the trip's record.

Everything crossing a service boundary is a pydantic model, so the Restate
SDK serialises it by annotation and a wrong field fails loudly. Reading a
caller's request body into a `TripRequest` is `holiday.planning`'s job.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

CENT = Decimal("0.01")
TRIP_ID_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
TripId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _as_utc(value: datetime) -> datetime:
    """A time without an offset is taken as UTC, so any two times compare."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# pydantic's strict mode: an ISO 8601 date-time string only, not a bare date or a number of seconds.
Time = Annotated[datetime, Field(strict=True), AfterValidator(_as_utc)]


def _to_the_cent(value: Decimal) -> Decimal:
    """5, "5" and 5.0 are one amount, so it is stored and logged as 5.00 however it was written."""
    return value.quantize(CENT)


# A string or a JSON number, read from its digits (never through a binary float): see `holiday.planning.parse_request`.
Amount = Annotated[Decimal, Field(gt=0, le=100_000, decimal_places=2), AfterValidator(_to_the_cent)]


class RowStatus(StrEnum):
    """A table row's status: what the services write, and what `holiday audit` judges them by."""

    PENDING = "pending"  # a booking held, not yet confirmed
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"  # also the tombstone of a booking cancelled before it was written
    CHARGED = "charged"
    REFUNDED = "refunded"  # also the tombstone of a payment refunded before it was charged

    @property
    def live(self) -> bool:
        """Whether the row still holds something: a booking or money."""
        return self in (RowStatus.PENDING, RowStatus.CONFIRMED, RowStatus.CHARGED)


class RunType(StrEnum):
    """The failures a caller can inject, named as in the TypeScript original."""

    FAIL_FLIGHTS_RESERVATION = "failFlightsReservation"
    FAIL_FLIGHTS_CONFIRMATION = "failFlightsConfirmation"
    FAIL_CAR_RENTAL_RESERVATION = "failCarRentalReservation"
    FAIL_CAR_RENTAL_CONFIRMATION = "failCarRentalConfirmation"
    FAIL_PAYMENT = "failPayment"
    FAIL_NOTIFICATION = "failNotification"


class StepName(StrEnum):
    """The saga's steps and undos, as a trip's record, its announcements and its errors name them."""

    RESERVE_FLIGHT = "reserve flight"
    RESERVE_CAR = "reserve car"
    PROCESS_PAYMENT = "process payment"
    CONFIRM_FLIGHT = "confirm flight"
    CONFIRM_CAR = "confirm car"
    SEND_NOTIFICATION = "send notification"
    CANCEL_FLIGHT = "cancel flight"
    CANCEL_CAR = "cancel car"
    REFUND_PAYMENT = "refund payment"


# The step each injected failure makes fail: the trip's record names it as `failed_step`.
FAILED_STEP: dict[RunType, StepName] = {
    RunType.FAIL_FLIGHTS_RESERVATION: StepName.RESERVE_FLIGHT,
    RunType.FAIL_CAR_RENTAL_RESERVATION: StepName.RESERVE_CAR,
    RunType.FAIL_PAYMENT: StepName.PROCESS_PAYMENT,
    RunType.FAIL_FLIGHTS_CONFIRMATION: StepName.CONFIRM_FLIGHT,
    RunType.FAIL_CAR_RENTAL_CONFIRMATION: StepName.CONFIRM_CAR,
    RunType.FAIL_NOTIFICATION: StepName.SEND_NOTIFICATION,
}


# Each function uses a few of these models: the others' validators are built only if used, not at
# import, which a cold start waits for.
LAZY = ConfigDict(defer_build=True)


class SealedModel(BaseModel):
    """A message that refuses unknown fields and cannot change once made.

    Unknown fields are mistakes (a typo in `run_type` must not pass silently).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, **LAZY)


class TripTimes(SealedModel):
    """A trip's four times, each optional here, refused unless in order.

    Arrival after departure, rental end after rental start (where both are known).
    """

    depart_at: Time | None
    arrive_at: Time | None
    rental_from: Time | None
    rental_to: Time | None

    @model_validator(mode="after")
    def _times_in_order(self) -> TripTimes:
        if self.depart_at and self.arrive_at and self.arrive_at <= self.depart_at:
            raise ValueError("arrive_at must be after depart_at")
        if self.rental_from and self.rental_to and self.rental_to <= self.rental_from:
            raise ValueError("rental_to must be after rental_from")
        return self


class TripRequest(TripTimes):
    """What a caller may send to `POST /trips/reserve`; every field is optional."""

    trip_id: TripId | None = None
    run_type: RunType | None = None
    depart_city: Annotated[str, Field(min_length=1, max_length=64)] = "Dublin"
    arrive_city: Annotated[str, Field(min_length=1, max_length=64)] = "Lisbon"
    depart_at: Time | None = None
    arrive_at: Time | None = None
    car_class: Annotated[str, Field(min_length=1, max_length=32)] = "economy"
    rental_from: Time | None = None
    rental_to: Time | None = None
    amount: Amount = Decimal("450.00")
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")] = "EUR"

    @field_validator("trip_id", mode="wrap")
    @classmethod
    def _trip_id_rule(cls, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"must be {TRIP_ID_RULE}") from None

    @field_validator("run_type", mode="wrap")
    @classmethod
    def _run_type_rule(cls, value: Any, handler: Any) -> Any:
        try:
            return handler(value)
        except ValidationError:
            valid = ", ".join(r.value for r in RunType)
            raise ValueError(f"unknown run_type {value!r}; valid values: {valid}") from None


class TripPlan(TripTimes):
    """A request with every default resolved: the input of the saga itself."""

    trip_id: TripId
    run_type: RunType | None
    depart_city: str
    arrive_city: str
    depart_at: Time
    arrive_at: Time
    car_class: str
    rental_from: Time
    rental_to: Time
    amount: Decimal
    currency: str


class BookingRef(SealedModel):
    """Names one booking (or payment) row: the trip is the partition, the id the sort key."""

    trip_id: TripId
    booking_id: str
    run_type: RunType | None = None


class FlightReservation(BookingRef):
    depart_city: str
    arrive_city: str
    depart_at: Time
    arrive_at: Time


class CarReservation(BookingRef):
    car_class: str
    city: str
    rental_from: Time
    rental_to: Time


class PaymentRequest(BookingRef):
    amount: Decimal
    currency: str


class BookingResult(SealedModel):
    """What a flights, cars or payments handler reports back to the saga."""

    trip_id: str
    booking_id: str
    status: RowStatus


class TripOutcome(BaseModel):
    """The 200 answer of a booked trip."""

    model_config = LAZY

    status: Literal["success"] = "success"
    trip_id: str
    flight_booking_id: str
    car_booking_id: str
    payment_id: str


StepStatus = Literal["running", "done", "failed"]
TripStatus = Literal["running", "compensating", "succeeded", "failed"]


class StepRecord(BaseModel):
    model_config = LAZY

    name: str
    id: str | None = None
    status: StepStatus
    error: str | None = None


class TripRecord(BaseModel):
    """The state of one trip, kept by Restate and returned by the trip lookup."""

    model_config = LAZY

    trip_id: str
    status: TripStatus
    run_type: RunType | None = None
    steps: list[StepRecord] = []
    compensations: list[StepRecord] = []
    failed_step: str | None = None
    error: str | None = None
    outcome: TripOutcome | None = None
