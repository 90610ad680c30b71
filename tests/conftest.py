"""Fixtures: a real local stack (moto + restate-server + services) per mode, for the whole session.

Every test that uses `stack` runs twice: with the services behind granian
("http") and as Lambda functions behind the local Lambda runtime ("lambda").

And how the suite runs: each test is marked with its tier (its folder under tests/: unit, e2e, tools,
deploy; `pytest -m unit`), grouped for pytest-xdist (`-n 2 --dist loadgroup`) so that a session's or a
module's stack starts once (see `xdist_group`), and a unit test fails if it starts a process (Node.js
for the CDK included).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from holiday.functions import FUNCTIONS
from holiday_tools.audit import audit, format_report
from holiday_tools.devstack import LocalStack, Mode, Ports
from holiday_tools.faultproxy import FaultProxy
from holiday_tools.packaging import AssetReport, build
from tests.support import PROJECT_DIR, Admin, Inbox

if TYPE_CHECKING:  # tests.synth imports aws_cdk, which starts Node.js: only the deploy tier needs it
    from tests.synth import Templates

TESTS_DIR = Path(__file__).resolve().parent
TIERS = ("unit", "e2e", "tools", "deploy")  # registered as markers in pyproject.toml
# What starting a process looks like to an audit hook (subprocess, os.exec*, os.spawn*, os.system, fork).
PROCESS_EVENTS = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.exec", "os.spawn", "os.system", "os.fork", "os.forkpty", "pty.spawn"}
)


def tier(path: Path) -> str | None:
    """A test's tier: the folder under tests/ it is in."""
    try:
        top = path.resolve().relative_to(TESTS_DIR).parts[0]
    except (ValueError, IndexError):
        return None
    return top if top in TIERS else None


def xdist_group(item: pytest.Item) -> str:
    """The tests that pytest-xdist runs on one worker (`--dist loadgroup`), so an expensive fixture starts once.

    Fixtures are per worker process: a session-scoped stack used on both workers would start twice. So
    the tests of a session-scoped parameter (`mode`: the http stack, the lambda stack) form one group
    each, across modules; the tests that use a module-scoped fixture form one group per module (and per
    value of its module-scoped parameters); any other test is a group of its own, run by whichever
    worker is free.
    """
    definitions = item._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined]

    def scope(name: str) -> str:
        found = definitions.get(name)
        return str(found[-1].scope) if found else "function"

    params: dict[str, object] = getattr(getattr(item, "callspec", None), "params", {})
    shared = sorted(f"{name}={value}" for name, value in params.items() if scope(name) == "session")
    if shared:
        return "session:" + ",".join(shared)
    if any(scope(name) in ("module", "class", "package") for name in getattr(item, "fixturenames", ())):
        scoped = sorted(f"{name}={value}" for name, value in params.items() if scope(name) != "function")
        return ":".join([str(item.path.relative_to(TESTS_DIR)), *scoped])
    return item.nodeid


# pytest-xdist's own loadgroup reads `xdist_group` marks into the test ids it sends to the controller,
# by a node attribute that pytest 9 no longer reads: its groups are lost. So the workers write each
# test's group to a file in this folder (the controller makes it and names it here, before it starts
# the workers), and the controller's scheduler (`pytest_xdist_make_scheduler`) reads them from there.
GROUPS_FOLDER = "HOLIDAY_TEST_GROUPS"


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and config.getoption("dist", "no") == "loadgroup":
        os.environ[GROUPS_FOLDER] = tempfile.mkdtemp(prefix="holiday-test-groups-")


def pytest_unconfigure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput") and GROUPS_FOLDER in os.environ:
        shutil.rmtree(os.environ.pop(GROUPS_FOLDER), ignore_errors=True)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    if config.getoption("dist", "no") != "loadgroup":
        return None
    from xdist.scheduler import LoadScopeScheduling  # type: ignore[import-untyped]

    class GroupScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """Load scope scheduling, with the groups the workers wrote (each test its own, if none)."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                folder = Path(os.environ[GROUPS_FOLDER])
                self.groups = {k: v for f in folder.glob("*.json") for k, v in json.loads(f.read_text()).items()}
            return self.groups.get(nodeid, nodeid)

    return GroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        found = tier(item.path)
        if found is not None:
            item.add_marker(found)
    worker = getattr(config, "workerinput", {}).get("workerid")
    if worker is not None and getattr(config.option, "loadgroup", False) and GROUPS_FOLDER in os.environ:
        written = Path(os.environ[GROUPS_FOLDER]) / f"{worker}.json"
        partial = written.with_suffix(".partial")
        partial.write_text(json.dumps({item.nodeid: xdist_group(item) for item in items}))
        partial.rename(written)  # whole, before this worker reports its collection


# --- the unit tier starts no process -------------------------------------------------------------

_unit_at_work: list[str] = []  # what of the unit tier runs now: a test's id or a module's path
_processes_started: list[str] = []


def _refuse_processes(event: str, args: tuple[object, ...]) -> None:
    if _unit_at_work and event in PROCESS_EVENTS:
        what = f"{event} {str(args[:2])[:200]}"
        _processes_started.append(what)
        raise RuntimeError(f"a unit test starts no process, and {_unit_at_work[-1]} started one: {what}")


sys.addaudithook(_refuse_processes)


def _no_processes(what: str) -> Generator[None, object, object]:
    """Around a unit test's setup and call: refuse a process, and fail even if the code swallowed the refusal."""
    _unit_at_work.append(what)
    _processes_started.clear()
    try:
        result = yield
    finally:
        _unit_at_work.pop()
    if _processes_started:
        started = ", ".join(_processes_started)
        pytest.fail(f"{what} started a process ({started}): move it to another tier, or give it a stand-in")
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    if tier(item.path) != "unit":
        return (yield)
    return (yield from _no_processes(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    if tier(item.path) != "unit":
        return (yield)
    return (yield from _no_processes(item.nodeid))


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    """Importing a unit test module starts no process either (`import aws_cdk` starts Node.js)."""
    if not isinstance(collector, pytest.Module) or tier(collector.path) != "unit":
        return (yield)
    _unit_at_work.append(collector.nodeid)
    _processes_started.clear()
    try:
        report = yield
    finally:
        _unit_at_work.pop()
    if _processes_started and report.passed:
        report.outcome = "failed"
        report.longrepr = f"importing it started a process ({', '.join(_processes_started)})"
    return report


# --- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session", params=["http", "lambda"])
def mode(request: pytest.FixtureRequest) -> Mode:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def ports(mode: Mode) -> Ports:
    """Free ports, so the tests run beside a `holiday dev` on the default ones."""
    return Ports.free()


@pytest.fixture(scope="session")
def aws_proxy(ports: Ports) -> Iterator[FaultProxy]:
    """Sits between the services and moto, to hold a request while a test crashes the services."""
    proxy = FaultProxy(f"http://127.0.0.1:{ports.aws}")
    yield proxy
    proxy.close()


@pytest.fixture(scope="session")
def stack(
    mode: Mode, ports: Ports, aws_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """The same stack `holiday dev` runs, on free ports, with the services' AWS calls proxied."""
    local = LocalStack(
        PROJECT_DIR, tmp_path_factory.mktemp(mode), ports, services_aws_endpoint=aws_proxy.url, mode=mode
    )
    local.start()
    yield local
    try:
        # Once the mode's tests are done: every trip they booked is fully booked or fully undone.
        report = audit(local.ledgers(), threshold_s=0, admin_url=local.admin_url)
        assert report.ok, format_report(report, threshold_s=0)
    finally:
        local.stop()


@pytest.fixture
def admin(stack: LocalStack) -> Iterator[Admin]:
    admin = Admin(stack)
    yield admin
    admin.client.close()


@pytest.fixture
def background() -> Iterator[ThreadPoolExecutor]:
    """One thread for a request that a test lets run while it does something else."""
    with ThreadPoolExecutor(1) as pool:
        yield pool


@pytest.fixture(scope="session")
def inbox(stack: LocalStack) -> Inbox:
    return Inbox(stack)


@pytest.fixture(scope="session")
def ingress(stack: LocalStack) -> Iterator[httpx.Client]:
    # A fresh connection per request. The ingress closes a connection after it refuses a
    # request early (wrong content type, private service) without reading its body. A next
    # request sent down that closing connection fails with "server disconnected" before the
    # server has seen it: a race in the client, not an answer.
    limits = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=stack.ingress_url, timeout=60, limits=limits) as client:
        yield client


@pytest.fixture(scope="session")
def lambda_assets(tmp_path_factory: pytest.TempPathFactory) -> list[AssetReport]:
    """The four Lambda assets, built once per session, as `make package` builds them."""
    return build(PROJECT_DIR, tmp_path_factory.mktemp("lambda"))


@pytest.fixture
def trip_id(request: pytest.FixtureRequest) -> str:
    """A fresh trip id per test, readable in logs."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name.removeprefix("test_"))[:50].strip("-")
    return f"{readable}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def assets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in for the built Lambda assets, for synthesis: a folder per function shaped as `make package`
    builds it, with its handler's module (infra/constructs/service_function.py checks for it) and nothing
    else. Synthesis only hashes and copies an asset; tests/deploy/test_packaging.py tests the real build."""
    root = tmp_path_factory.mktemp("assets")
    for name, handler in FUNCTIONS.items():
        module = root / name / Path(*handler.split(".")[:-1]).with_suffix(".py")
        module.parent.mkdir(parents=True)
        module.write_text(f"# A stand-in for the built asset's handler module ({handler}).\n")
    return root


@pytest.fixture(scope="session")
def synthesized(assets_dir: Path) -> Callable[[str], Templates]:
    """`synthesized("acm")`: the two templates of a mode in tests/synth.py, synthesised once per session."""
    from tests.synth import MODES, synth

    done: dict[str, Templates] = {}
    # Under pytest-xdist, once per run rather than once per worker: the first worker to need a mode
    # synthesises it (the others wait on its lock) and leaves the templates for the others.
    shared = Path(os.environ[GROUPS_FOLDER]) if GROUPS_FOLDER in os.environ else None

    def synthesised_once(mode: str) -> Templates:
        if shared is None:
            return synth(assets_dir, MODES[mode])
        kept = shared / f"synth-{mode}.json"
        with (shared / f"synth-{mode}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not kept.exists():
                kept.write_text(json.dumps(synth(assets_dir, MODES[mode])))
            restate, holiday = json.loads(kept.read_text())
        return restate, holiday

    def get(mode: str) -> Templates:
        if mode not in done:
            done[mode] = synthesised_once(mode)
        return done[mode]

    return get
