"""The messages that travel between callers and services, and the trip's record.

Everything crossing a service boundary is a pydantic model, so the Restate
SDK serialises it by annotation and a wrong field fails loudly.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic import (
    Strict as StrictInput,
)

MAX_BODY_BYTES = 16 * 1024
CENT = Decimal("0.01")
TRIP_ID_RULE = "1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'"
TripId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


def _as_utc(value: datetime) -> datetime:
    """A time without an offset is taken as UTC, so any two times compare."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


# Strict: an ISO 8601 date-time string only, not a bare date or a number of seconds.
Time = Annotated[datetime, StrictInput(), AfterValidator(_as_utc)]


def _to_the_cent(value: Decimal) -> Decimal:
    """5, "5" and 5.0 are one amount, so it is stored and logged as 5.00 however it was written."""
    return value.quantize(CENT)


# A string or a JSON number, read from its digits (never through a binary float): see `TripRequest.parse`.
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


class Strict(BaseModel):
    """Unknown fields are mistakes (a typo in `run_type` must not pass silently)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TimesInOrder(Strict):
    """Arrival after departure, rental end after rental start (where both are known)."""

    depart_at: Time | None
    arrive_at: Time | None
    rental_from: Time | None
    rental_to: Time | None

    @model_validator(mode="after")
    def _times_in_order(self) -> TimesInOrder:
        if self.depart_at and self.arrive_at and self.arrive_at <= self.depart_at:
            raise ValueError("arrive_at must be after depart_at")
        if self.rental_from and self.rental_to and self.rental_to <= self.rental_from:
            raise ValueError("rental_to must be after rental_from")
        return self


class BadRequest(ValueError):
    """The request cannot be booked as sent; `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class TripRequest(TimesInOrder):
    """What a caller may send to `POST /trips/reserve`; every field is optional."""

    trip_id: TripId | None = None
    run_type: RunType | None = None
    depart_city: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "Dublin"
    arrive_city: Annotated[str, StringConstraints(min_length=1, max_length=64)] = "Lisbon"
    depart_at: Time | None = None
    arrive_at: Time | None = None
    car_class: Annotated[str, StringConstraints(min_length=1, max_length=32)] = "economy"
    rental_from: Time | None = None
    rental_to: Time | None = None
    amount: Amount = Decimal("450.00")
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "EUR"

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

    @classmethod
    def parse(cls, body: bytes | None) -> TripRequest:
        """Read a request body: `{}`, flat fields, or the `{"request": {...}}` wrapper.

        Raises `BadRequest` naming the problem, before anything is written. A body
        with nothing in it is refused: that is what a browser or a link preview
        sends, and it must not book a holiday.
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
        except BadRequest:
            raise
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
            return cls.model_validate_json(json.dumps(data, default=float))
        except ValidationError as err:
            raise BadRequest(describe(err)) from None


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: with a key twice, which one counts is anyone's guess."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise BadRequest(f"request body has the key {json.dumps(key)} more than once; send each key once")
        seen.add(key)
    return dict(pairs)


def describe(err: ValidationError) -> str:
    """One line per problem, each naming its field."""
    problems = []
    for e in err.errors(include_url=False):
        where = ".".join(str(part) for part in e["loc"]) or "request"
        problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
    return "invalid trip request: " + "; ".join(problems)


class TripPlan(TimesInOrder):
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


class BookingRef(Strict):
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


class BookingResult(Strict):
    """What a flights, cars or payments handler reports back to the saga."""

    trip_id: str
    booking_id: str
    status: RowStatus


class TripOutcome(BaseModel):
    """The 200 answer of a booked trip."""

    status: Literal["success"] = "success"
    trip_id: str
    flight_booking_id: str
    car_booking_id: str
    payment_id: str


StepStatus = Literal["running", "done", "failed"]
TripStatus = Literal["running", "compensating", "succeeded", "failed"]


class StepRecord(BaseModel):
    name: str
    id: str | None = None
    status: StepStatus
    error: str | None = None


class TripRecord(BaseModel):
    """The state of one trip, kept by Restate and returned by the trip lookup."""

    trip_id: str
    status: TripStatus
    run_type: RunType | None = None
    steps: list[StepRecord] = []
    compensations: list[StepRecord] = []
    failed_step: str | None = None
    error: str | None = None
    outcome: TripOutcome | None = None
