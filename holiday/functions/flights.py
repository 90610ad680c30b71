"""The flights function."""

import restate

from holiday.flights import service
from holiday.snapstart import prime_before_snapshot

SERVICES: list[restate.Service | restate.VirtualObject] = [service]
app = restate.app(services=SERVICES)
prime_before_snapshot("dynamodb")
