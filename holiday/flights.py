"""The flights service: reserve, confirm and cancel a flight for a trip."""

from holiday.booking import booking_service
from holiday.config import settings
from holiday.models import FlightReservation, RunType

flights = booking_service(
    name="flights",
    noun="flight",
    reservation=FlightReservation,
    table_name=lambda: settings().flights_table,
    fail_reserve=RunType.FAIL_FLIGHTS_RESERVATION,
    fail_confirm=RunType.FAIL_FLIGHTS_CONFIRMATION,
)
service = flights.service
