"""Lambda handlers for tests/tools/test_locallambda_coldstart.py: what a worker sees of its asset, CPU and SnapStart.

The SnapStart hooks are registered at import, as a function registers them: the before-snapshot
hook records which process ran it (the zygote) and how often; the after-restore hook records the
same in each worker restored from it. What a hook does beyond that depends on the function's name,
since the hooks of one module are the hooks of every function that imports it.
"""

from __future__ import annotations

import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

from snapshot_restore_py import register_after_restore, register_before_snapshot

from holiday_tools.locallambda.cgroups import find_controller

FUNCTION = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
BEFORE: list[int] = []  # the pid of each run of the before-snapshot hook, in this process's memory
AFTER: list[int] = []  # the same for the after-restore hook
IMPORTED_BY = os.getpid()


def _before_snapshot() -> None:
    BEFORE.append(os.getpid())
    if FUNCTION.endswith("snapshot-fails"):
        raise RuntimeError("no snapshot today")


def _after_restore() -> None:
    AFTER.append(os.getpid())
    if FUNCTION.endswith("restore-fails"):
        raise ConnectionError("the database is unreachable")
    if FUNCTION.endswith("reseeded"):
        random.seed()  # what the hooks are for: init-time randomness would be the same in every restored copy


register_before_snapshot(_before_snapshot)
register_after_restore(_after_restore)


def snapshot_state(event: Any, context: Any) -> dict[str, Any]:
    """Which process this is, which process imported the handler, and which ran each hook.

    With `meet` (a folder) and `count`, it first waits until `count` invocations are in it at once, each in a
    worker of its own: a worker runs one invocation at a time.
    """
    if "meet" in event:
        meet = Path(event["meet"])
        (meet / str(os.getpid())).touch()
        deadline = time.monotonic() + 30
        while len(list(meet.iterdir())) < event["count"] and time.monotonic() < deadline:
            time.sleep(0.01)
    return {
        "pid": os.getpid(),
        "imported_by": IMPORTED_BY,
        "before_snapshot": BEFORE,
        "after_restore": AFTER,
        "random": random.random(),
        "initialization_type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
    }


def asset_view(event: Any, context: Any) -> dict[str, Any]:
    """Imports a holiday function as its Lambda asset would; which tools-only modules that pulled in or may."""
    import holiday.functions.payments  # noqa: F401 -- what is imported along with it is the point

    refused = []
    for name in ("httpx", "click", "moto"):
        try:
            __import__(name)
        except ModuleNotFoundError:
            refused.append(name)
    import pydantic
    import restate.serde

    return {
        "loaded": sorted({"httpx", "click", "moto", "restate", "pydantic", "boto3"} & set(sys.modules)),
        "refused": refused,
        # restate serialises pydantic models only if it could import pydantic's BaseModel (which needs sysconfig).
        "restate_knows_pydantic": restate.serde.PydanticBaseModel is pydantic.BaseModel,
    }


def busy(event: Any, context: Any) -> dict[str, Any]:
    """Spin for `seconds`; the CPU it got, the wall time, and the time it waited to run (throttled or not)."""
    stat = _cpu_stat()
    wall0, cpu0, waited0, throttled0 = time.perf_counter(), time.thread_time(), _waited(), _throttled(stat)
    while time.perf_counter() - wall0 < event["seconds"]:
        pass
    return {
        "wall": time.perf_counter() - wall0,
        "cpu": time.thread_time() - cpu0,
        "waited": _waited() - waited0,
        "throttled": _throttled(stat) - throttled0,
        "threads": threading.active_count(),
    }


def _cpu_stat() -> Path | None:
    """The cpu.stat of this process's own cgroup (the worker's), if there is a cpu controller."""
    controller, _ = find_controller()
    return None if controller is None else controller.own / "cpu.stat"


def _throttled(stat: Path | None) -> float:
    """Seconds this cgroup has been held back by its quota (v1 throttled_time ns, v2 throttled_usec)."""
    if stat is None:
        return 0.0
    values = dict(line.split() for line in stat.read_text().splitlines())
    if "throttled_time" in values:
        return int(values["throttled_time"]) / 1e9
    return int(values.get("throttled_usec", 0)) / 1e6


def _waited() -> float:
    """Seconds this thread has been runnable but not running (Linux schedstat), throttled time included."""
    try:
        return int(Path("/proc/thread-self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, IndexError):
        return 0.0
