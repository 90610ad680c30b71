"""Cold starts in the local Lambda runtime as on Lambda: init time, the asset's modules only, CPU by memory, SnapStart.

The handlers are in tests/tools/coldstart_handlers.py. Each runtime runs in this process
(as in test_locallambda.py), but for the tests of what killing it leaves behind, which
start it as `holiday dev` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from botocore.exceptions import ClientError

from holiday_tools.devstack import HOST, Ports
from holiday_tools.locallambda import cgroups
from holiday_tools.locallambda.pool import Stats
from holiday_tools.locallambda.runtime import LocalLambda
from holiday_tools.locallambda.spec import FunctionSpec
from tests.support import PROJECT_DIR, alive, invoke, lambda_client, poll

HANDLERS = "tests.tools.coldstart_handlers"
ENV = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_DIR)}
# A Restate discovery request, which any holiday function answers without touching AWS.
DISCOVER = {"path": "/discover", "httpMethod": "GET", "headers": {}, "body": "", "isBase64Encoded": True}
linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SnapStart mode forks workers that die with the zygote")


def start(specs: list[FunctionSpec], **options: Any) -> LocalLambda:
    env = options.pop("env", ENV)
    local = LocalLambda(specs, HOST, Ports.free().functions, "eu-west-1", env=env, **options)
    threading.Thread(target=local.serve_forever, daemon=True).start()
    return local


def client_of(runtime: LocalLambda) -> Any:
    return lambda_client(runtime, read_timeout=60)


# --- init time ---------------------------------------------------------------------------------------------


def test_stats_add_sums_counts_and_keeps_the_largest_max() -> None:
    total = Stats(cold_starts=1, inits=1, init_ms=100.0, init_ms_max=100.0)
    total.add(
        Stats(cold_starts=2, inits=2, init_ms=90.0, init_ms_max=60.0, restores=1, restore_ms=5.0, restore_ms_max=5.0)
    )
    assert total == Stats(
        cold_starts=3, inits=3, init_ms=190.0, init_ms_max=100.0, restores=1, restore_ms=5.0, restore_ms_max=5.0
    )


def test_each_cold_start_reports_its_init_time_per_function_and_version(tmp_path: Path) -> None:
    runtime = start([FunctionSpec("state", f"{HANDLERS}.snapshot_state", max_workers=2)])
    client = client_of(runtime)
    try:
        two_at_once(client, "state:1", tmp_path)  # two cold starts
        invoke(client, "state:1")  # warm: no init
        stats = runtime.stats()["state"]
    finally:
        runtime.shutdown()
    version = stats["versions"]["1"]
    assert (version["cold_starts"], version["inits"], version["invocations"], version["restores"]) == (2, 2, 3, 0)
    assert 0 < version["init_ms_max"] <= version["init_ms"] <= 2 * version["init_ms_max"]
    assert {k: stats[k] for k in version} == version  # the only version that ran
    assert stats["memory_mb"] == 256
    assert (stats["cpu_limited"], stats["cpu_cores"], stats["snapstart"]) == (False, None, False)
    assert "--limit-cpu" in stats["cpu_note"]


# --- what the asset ships ----------------------------------------------------------------------------------


def test_a_worker_imports_only_what_the_lambda_asset_ships(tmp_path: Path) -> None:
    """A handler that needs httpx fails its cold start as on Lambda; a holiday function starts, without httpx."""
    (tmp_path / "uses_httpx.py").write_text("import httpx\n\n\ndef app(event, context):\n    return 'unreachable'\n")
    env = {**ENV, "PYTHONPATH": f"{PROJECT_DIR}:{tmp_path}"}
    specs = [
        FunctionSpec("uses-httpx", "uses_httpx.app", lambda_asset=True),
        FunctionSpec("asset-view", f"{HANDLERS}.asset_view", lambda_asset=True),
        FunctionSpec("unguarded-view", f"{HANDLERS}.asset_view"),  # a test's handler: the whole virtualenv
        FunctionSpec("payments", "holiday.functions.payments.app"),
        FunctionSpec("nullsaga", "holiday_tools.nullsaga.app"),
        FunctionSpec("registration", "infra.registration.handler.on_event"),
    ]
    runtime = start(specs, env=env)
    client = client_of(runtime)
    try:
        # The project's own functions are guarded by default, a test's handler module is not.
        assert set(runtime.launch.assets) == {"uses-httpx", "asset-view", "payments", "nullsaga", "registration"}
        shipped = runtime.launch.assets["payments"]
        assert {"holiday", "restate", "pydantic", "boto3", "botocore", "snapshot_restore_py"} <= shipped
        assert not {"httpx", "click", "moto", "granian", "holiday_tools", "pytest"} & shipped

        error, payload = invoke(client, "uses-httpx")
        assert error == "Unhandled"
        assert payload == {
            "errorMessage": "Unable to import module 'uses_httpx': No module named 'httpx'",
            "errorType": "Runtime.ImportModuleError",
            "stackTrace": [],
        }
        view = invoke(client, "asset-view")[1]
        assert view["refused"] == ["httpx", "click", "moto"]
        assert {"restate", "pydantic"} <= set(view["loaded"])
        assert "httpx" not in view["loaded"]  # restate's optional client stays out, as on Lambda
        assert view["restate_knows_pydantic"]
        assert invoke(client, "unguarded-view")[1]["refused"] == []
        for name in ("payments", "nullsaga"):
            error, answer = invoke(client, name, DISCOVER)
            assert error is None, answer
            assert answer["statusCode"], answer
        error, answer = invoke(client, "registration", {})  # imported; the event is not CloudFormation's
        assert (error, answer["errorType"]) == ("Unhandled", "RegistrationError")
        stats = runtime.stats()
    finally:
        runtime.shutdown()
    assert stats["uses-httpx"]["cold_starts"] == 0  # its init failed: no invocation ran
    assert stats["payments"]["init_ms"] > 0


# --- CPU in proportion to memory ---------------------------------------------------------------------------


def cpu_controller_mounted() -> bool:
    """Read apart from the runtime's own detection: a cgroup hierarchy with the cpu controller is mounted."""
    if sys.platform != "linux":
        return False
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        if fstype == "cgroup" and "cpu" in options.split(","):
            return True
        if fstype == "cgroup2" and "cpu" in (Path(point) / "cgroup.controllers").read_text().split():
            return True
    return False


def limited_runtime(specs: list[FunctionSpec]) -> LocalLambda:
    """A runtime with --limit-cpu, or a skip where this machine cannot (never as root with a cpu controller)."""
    runtime = start(specs, limit_cpu=True)
    if not runtime.cpu.limited:
        runtime.shutdown()
        assert not (os.geteuid() == 0 and cpu_controller_mounted()), f"CPU should be limited: {runtime.cpu.note}"
        pytest.skip(f"CPU cannot be limited here: {runtime.cpu.note}")
    return runtime


def bandwidth_slice() -> float:
    """Seconds of quota a CPU takes from its cgroup at a time (sched_cfs_bandwidth_slice_us, 5 ms by default)."""
    try:
        return int(Path("/proc/sys/kernel/sched_cfs_bandwidth_slice_us").read_text()) / 1e6
    except OSError:
        return 0.005


@pytest.mark.parametrize(("memory_mb", "share"), [(512, 512 / 1769), (1769, 1.0)])
def test_a_busy_handler_gets_cpu_in_proportion_to_its_memory(memory_mb: int, share: float) -> None:
    runtime = limited_runtime([FunctionSpec("busy", f"{HANDLERS}.busy", memory_mb=memory_mb)])
    client = client_of(runtime)
    try:
        error, got = invoke(client, "busy:1", {"seconds": 2.0})
        stats = runtime.stats()["busy"]
    finally:
        runtime.shutdown()
    assert error is None, got
    assert (stats["cpu_limited"], stats["cpu_cores"]) == (True, round(share, 3))
    # The quota is granted per 100 ms period: a window of `wall` seconds may start or end with up to one
    # period's quota more or less, plus one bandwidth slice taken ahead and one scheduler tick (HZ >= 100)
    # of accounting. Below the share, it may also lose the time it waited while other processes ran: its
    # wait to run, less the time its quota held it back.
    slack = share * cgroups.PERIOD_US / 1e6 + bandwidth_slice() + 0.01
    others = max(0.0, got["waited"] - got["throttled"])
    assert got["threads"] == 1
    assert share * got["wall"] - slack - others <= got["cpu"] <= share * got["wall"] + slack, got


def test_each_worker_has_a_cgroup_of_its_own_removed_when_it_ends(tmp_path: Path) -> None:
    specs = [FunctionSpec("state", f"{HANDLERS}.snapshot_state", memory_mb=1024, max_workers=2)]
    runtime = limited_runtime(specs)
    assert runtime.cpu.base is not None
    base = runtime.cpu.base
    client = client_of(runtime)
    try:
        pids = {answer["pid"] for answer in two_at_once(client, "state:1", tmp_path)}
        groups = {pid: worker_cgroup(pid) for pid in pids}
        assert len(set(groups.values())) == 2
        assert all(group.parent == base for group in groups.values())
        assert all((group / "cgroup.procs").read_text().split() == [str(pid)] for pid, group in groups.items())
        assert {quota_us(group) for group in groups.values()} == {round(1024 / 1769 * cgroups.PERIOD_US)}
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)  # a worker that dies: its cgroup goes when the runtime finds it gone
        poll(lambda: alive({victim}), lambda left: not left, "the worker to die")
        (tmp_path / "again").mkdir()
        assert victim not in {answer["pid"] for answer in two_at_once(client, "state:1", tmp_path / "again")}
        poll(groups[victim].exists, lambda exists: not exists, "the dead worker's cgroup to be removed")
    finally:
        runtime.shutdown()
    assert not base.exists()


def worker_cgroup(pid: int) -> Path:
    """The directory of the cgroup `pid` is in, in the hierarchy with the cpu controller."""
    controller, why = cgroups.find_controller()
    assert controller is not None, why
    for line in Path("/proc/self/mounts").read_text().splitlines():
        _, point, fstype, options, *_ = line.split()
        v1 = fstype == "cgroup" and "cpu" in options.split(",")
        if v1 if controller.version == 1 else fstype == "cgroup2":
            mount = Path(point)
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" if controller.version == 2 else "cpu" in controllers.split(","):
            return mount / path.lstrip("/")
    raise AssertionError(f"no cpu cgroup for {pid}")


def quota_us(group: Path) -> int:
    if (group / "cpu.max").exists():
        return int((group / "cpu.max").read_text().split()[0])
    return int((group / "cpu.cfs_quota_us").read_text())


# --- SnapStart ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def snapstart() -> Iterator[LocalLambda]:
    specs = [
        FunctionSpec(name, f"{HANDLERS}.snapshot_state", max_workers=2)
        for name in ("state", "random-plain", "random-reseeded", "restore-fails", "snapshot-fails")
    ]
    runtime = start(specs, snapstart=True)
    yield runtime
    runtime.shutdown()


def two_at_once(client: Any, name: str, meet: Path) -> list[dict[str, Any]]:
    """Two invocations that wait for each other, so two workers serve them."""
    meet = meet / f"meet-{name.replace(':', '-')}"
    meet.mkdir()
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: invoke(client, name, {"meet": str(meet), "count": 2}), range(2)))
    assert [error for error, _ in results] == [None, None], results
    answers = [answer for _, answer in results]
    assert answers[0]["pid"] != answers[1]["pid"]
    return answers


@linux_only
def test_snapstart_runs_the_init_once_and_restores_each_worker_from_it(snapstart: LocalLambda, tmp_path: Path) -> None:
    client = client_of(snapstart)
    answers = two_at_once(client, "state:1", tmp_path)
    zygote = answers[0]["imported_by"]
    assert zygote not in {a["pid"] for a in answers}  # forks, not the zygote itself
    for answer in answers:
        assert answer["imported_by"] == zygote  # the import ran once, in the zygote
        assert answer["before_snapshot"] == [zygote]  # once, in the zygote, before any fork
        assert answer["after_restore"] == [answer["pid"]]  # once in each worker, by itself
        assert answer["initialization_type"] == "snap-start"
        assert psutil.Process(answer["pid"]).ppid() == zygote
    stats = snapstart.stats()["state"]["versions"]["1"]
    assert (stats["cold_starts"], stats["restores"], stats["inits"]) == (2, 2, 1)  # one init: the zygote's
    assert 0 < stats["init_ms"] == stats["init_ms_max"]
    assert 0 < stats["restore_ms_max"] <= stats["restore_ms"]


@linux_only
def test_latest_is_not_snapstarted_as_on_lambda(snapstart: LocalLambda) -> None:
    answer = invoke(client_of(snapstart), "state")[1]  # unqualified: $LATEST
    assert answer["imported_by"] == answer["pid"]
    assert answer["after_restore"] == []
    assert answer["initialization_type"] == "on-demand"


@linux_only
def test_restored_workers_share_the_init_randomness_unless_a_hook_reseeds(
    snapstart: LocalLambda, tmp_path: Path
) -> None:
    """Why the hooks exist: each restored copy starts from one memory, its random generator's state included."""
    client = client_of(snapstart)
    plain = two_at_once(client, "random-plain:1", tmp_path)
    assert plain[0]["random"] == plain[1]["random"]
    reseeded = two_at_once(client, "random-reseeded:1", tmp_path)
    assert reseeded[0]["random"] != reseeded[1]["random"]


@linux_only
def test_an_after_restore_hook_that_raises_fails_the_invocation_as_lambda_does(snapstart: LocalLambda) -> None:
    with pytest.raises(ClientError) as caught:
        invoke(client_of(snapstart), "restore-fails:1")
    error = caught.value.response
    assert (error["ResponseMetadata"]["HTTPStatusCode"], error["Error"]["Code"]) == (400, "SnapStartException")
    assert "ConnectionError: the database is unreachable" in error["Error"]["Message"]


@linux_only
def test_a_before_snapshot_hook_that_raises_fails_the_init(snapstart: LocalLambda) -> None:
    error, payload = invoke(client_of(snapstart), "snapshot-fails:1")
    assert error == "Unhandled"
    assert payload["errorType"] == "Runtime.BeforeSnapshotError"
    assert payload["errorMessage"] == "RuntimeError: no snapshot today"


# --- what a runtime leaves behind --------------------------------------------------------------------------


def start_process(*options: str) -> tuple[subprocess.Popen[str], str]:
    """The runtime in a process of its own, as `holiday dev` starts it; and its URL once it answers."""
    port = Ports.free().functions
    argv = [sys.executable, "-m", "holiday_tools.locallambda", "--port", str(port), *options]
    argv.append(f"--function=state={HANDLERS}.snapshot_state")
    process = subprocess.Popen(argv, env=ENV, stdout=subprocess.PIPE, text=True)
    url = f"http://{HOST}:{port}"
    poll(lambda: answers(url) or process.poll() is not None, bool, "the runtime to answer")
    assert process.poll() is None
    return process, url


def answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/local/stats", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def busy_workers(url: str, meet: Path) -> set[int]:
    """Start two workers (each holding one invocation, waiting for a third that never comes), and their pids."""
    body = json.dumps({"meet": str(meet), "count": 3})

    def call() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the runtime is stopped under it
            httpx.post(f"{url}/2015-03-31/functions/state:1/invocations", content=body, timeout=30)

    for _ in range(2):
        threading.Thread(target=call, daemon=True).start()
    poll(lambda: len(list(meet.iterdir())), lambda n: n == 2, "two busy workers")
    return {int(path.name) for path in meet.iterdir()}


@linux_only
@pytest.mark.parametrize("stop", ["SIGKILL", "SIGTERM"])
def test_stopping_the_runtime_ends_zygote_workers_and_cgroups(stop: str, tmp_path: Path) -> None:
    """SIGTERM: the runtime removes its cgroups itself. SIGKILL: the next runtime to start removes them."""
    process, url = start_process("--snapstart", "--limit-cpu", "--memory", "1024")
    try:
        workers = busy_workers(url, tmp_path)
        zygotes = {psutil.Process(pid).ppid() for pid in workers}
        assert len(zygotes) == 1
        assert zygotes != {process.pid}
        # Where CPU cannot be limited (not as root with a cpu controller) the cgroups are not looked at.
        limiting = os.geteuid() == 0 and cpu_controller_mounted()
        base = worker_cgroup(next(iter(workers))).parent if limiting else None
        if base is not None:
            assert base.name == f"{cgroups.PREFIX}{process.pid}"
        process.send_signal(getattr(signal, stop))
        process.wait(timeout=10)
        poll(lambda: alive(workers | zygotes), lambda left: left == set(), "the zygote and its workers to die")
        if base is not None and stop == "SIGKILL":  # nobody was left to remove it: the next runtime does
            start([], limit_cpu=True).shutdown()
        assert base is None or not base.exists()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()
