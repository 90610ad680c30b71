"""One AWS Lambda function per service; each module's `app` is that function's handler.

`FUNCTIONS` maps a function's short name to its handler, for the local Lambda
runtime, the packaging command and the CDK app, which also read `MEMORY_MB` and
`LAMBDA_PYTHON` here, so `infra/` never imports a build tool. Nothing here imports the
services: a function's container imports only its own module.
"""

import logging
import os

# The functions use no pydantic plugin, and looking for one reads the metadata of every installed
# distribution (about 10 ms of a cold start). `setdefault`: whoever runs a function may still turn them on.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# Lambda's Python runtime logs WARNING and above unless told otherwise; each
# saga step logs one INFO line with its trip id, and those lines are wanted.
logging.getLogger("holiday").setLevel(logging.INFO)

# Each function's memory, for the CDK app and for the bench's Lambda cost model. CPU is
# allotted in proportion to memory. A saga step is light, but a cold start imports
# restate-sdk, pydantic and botocore (about 0.45 s on one full core, see `make package`);
# 1024 MB gives about 0.6 of a vCPU, so a cold start stays under a second.
MEMORY_MB = 1024
# The Lambda Python runtime the functions run on (the newest; restate-sdk and pydantic ship arm64
# wheels for it), for the CDK app and for the packaging that builds the assets.
LAMBDA_PYTHON = "3.14"

FUNCTIONS: dict[str, str] = {
    "trips": "holiday.functions.trips.app",
    "flights": "holiday.functions.flights.app",
    "cars": "holiday.functions.cars.app",
    "payments": "holiday.functions.payments.app",
}
