"""The cars service: reserve, confirm and cancel a rental car for a trip.

It confirms through its own table (the TypeScript original confirmed cars
through the flights service, leaving every car `pending`).
"""

from holiday.booking import booking_service
from holiday.config import settings
from holiday.models import CarReservation, RunType

cars = booking_service(
    name="cars",
    noun="car",
    reservation=CarReservation,
    table_name=lambda: settings().cars_table,
    fail_reserve=RunType.FAIL_CAR_RENTAL_RESERVATION,
    fail_confirm=RunType.FAIL_CAR_RENTAL_CONFIRMATION,
)
service = cars.service
