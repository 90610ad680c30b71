"""The flights function."""

import restate

from holiday.flights import service

SERVICES: list[restate.Service | restate.VirtualObject] = [service]
app = restate.app(services=SERVICES)
