"""The payments function."""

import restate

from holiday.payments import service

SERVICES: list[restate.Service | restate.VirtualObject] = [service]
app = restate.app(services=SERVICES)
