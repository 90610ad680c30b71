"""One AWS Lambda function per service; each module's `app` is that function's handler.

`FUNCTIONS` maps a function's short name to its handler, for the local Lambda
runtime, the packaging command and the CDK app. Nothing here imports the
services: a function's container imports only its own module.
"""

import logging

# Lambda's Python runtime logs WARNING and above unless told otherwise; each
# saga step logs one INFO line with its trip id, and those lines are wanted.
logging.getLogger("holiday").setLevel(logging.INFO)

FUNCTIONS: dict[str, str] = {
    "trips": "holiday.functions.trips.app",
    "flights": "holiday.functions.flights.app",
    "cars": "holiday.functions.cars.app",
    "payments": "holiday.functions.payments.app",
}
