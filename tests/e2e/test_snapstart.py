"""The functions under SnapStart, as the local Lambda runtime imitates it: one import per version, whose hook
makes the slow parts before the snapshot, and workers forked from it, each of which makes its clients anew."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from holiday_tools.devstack import LocalStack, Ports
from tests.support import PROJECT_DIR

FUNCTIONS = ("trips", "flights", "cars", "payments")


@pytest.fixture(scope="module")
def snapstarted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    stack = LocalStack(
        PROJECT_DIR, tmp_path_factory.mktemp("snapstart"), Ports.free(), mode="lambda", lambda_snapstart=True
    )
    stack.start()
    yield stack
    stack.stop()


def test_trips_book_and_undo_on_restored_workers_whose_hooks_ran_as_lambda_runs_them(
    snapstarted: LocalStack,
) -> None:
    with httpx.Client(base_url=snapstarted.ingress_url, timeout=30) as ingress:
        booked = ingress.post("/trips/reserve", json={"trip_id": "snap-1"})
        undone = ingress.post("/trips/reserve", json={"trip_id": "snap-2", "run_type": "failPayment"})
    assert (booked.status_code, undone.status_code) == (200, 409)
    rows = {name: ledger.rows("snap-1") for name, ledger in snapstarted.ledgers().items()}
    assert sorted(row["transaction_status"] for found in rows.values() for row in found) == [
        "charged",
        "confirmed",
        "confirmed",
    ]

    stats = httpx.get(f"{snapstarted.services_url}/local/stats").json()
    restores = 0
    for name in FUNCTIONS:
        assert stats[f"holiday-{name}"]["snapstart"] is True
        registered = stats[f"holiday-{name}"]["versions"]["1"]
        # One import for the version, before its snapshot; every worker that served it was restored from it.
        assert registered["inits"] == 1, (name, registered)
        assert registered["restores"] == registered["cold_starts"] >= 1, (name, registered)
        restores += registered["restores"]

    log = (snapstarted.log_dir / "services.log").read_text()
    # The before-snapshot hook, once per function: the clients each calls, and every model built.
    assert log.count("ready for a snapshot: clients for dynamodb,") == 3  # flights, cars, payments
    assert log.count("ready for a snapshot: clients for sns,") == 1  # trips
    # The after-restore hook, once in each restored worker: its own AWS clients and random state.
    assert log.count("restored from a snapshot: new AWS clients and random state") == restores
