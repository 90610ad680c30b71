"""SnapStart's hooks: the slow work is done before the snapshot, and each restore makes its own clients."""

from __future__ import annotations

import importlib
import random

import snapshot_restore_py
from pydantic import BaseModel

from holiday import aws, snapstart


def _run(hooks: list[tuple[object, tuple[object, ...], dict[str, object]]]) -> None:
    """As Lambda's runtime runs them: each registered function with its arguments."""
    for func, args, kwargs in hooks:
        func(*args, **kwargs)  # type: ignore[operator]


def test_each_function_asks_for_the_clients_it_calls_to_be_made_before_the_snapshot() -> None:
    for function in ("flights", "trips"):
        importlib.import_module(f"holiday.functions.{function}")
    primed = {args for func, args, _ in snapshot_restore_py.get_before_snapshot() if func is snapstart.prime}
    assert {("dynamodb",), ("sns",)} <= primed


def test_before_the_snapshot_every_model_is_built_and_the_clients_made() -> None:
    aws.forget_clients()
    models = snapstart.models_of(BaseModel)
    assert {m.__name__ for m in models} >= {"TripRecord", "TripPlan", "BookingRef", "Announcement"}
    _run(snapshot_restore_py.get_before_snapshot())
    assert all(m.__pydantic_complete__ for m in models)
    assert aws.client.cache_info().currsize == 2  # dynamodb and sns, one each


def test_after_a_restore_the_clients_and_the_random_state_are_new() -> None:
    before = aws.client("sns")
    random.seed(42)
    snapshot_state = random.getstate()
    _run(snapshot_restore_py.get_after_restore())
    assert aws.client("sns") is not before
    assert random.getstate() != snapshot_state
