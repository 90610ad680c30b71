"""The cars function."""

import restate

from holiday.cars import service

SERVICES: list[restate.Service | restate.VirtualObject] = [service]
app = restate.app(services=SERVICES)
