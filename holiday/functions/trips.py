"""The trips function: the `trips` entry point and the `trip` saga object.

It calls flights, cars and payments through Restate, so it needs their
handler names, not their code paths at run time.
"""

import restate

from holiday.snapstart import prime_before_snapshot
from holiday.trips import trip, trips

SERVICES: list[restate.Service | restate.VirtualObject] = [trips, trip]
app = restate.app(services=SERVICES)
prime_before_snapshot("sns")
