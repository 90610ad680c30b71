"""The benchmark's baseline, the null saga, answers as the real saga does (every bench run starts with it)."""

from __future__ import annotations

from holiday_tools.bench.load import run_load
from holiday_tools.bench.report import NULL_LABEL
from holiday_tools.devstack import LocalStack


def test_the_null_saga_books_every_trip_it_is_sent(stack: LocalStack) -> None:
    result = run_load(stack.ingress_url, "/nulltrips/reserve", count=6, concurrency=3, mix=[None], label=NULL_LABEL)
    assert result.outcomes == {"success": 6}, result
