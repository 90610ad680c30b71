"""Fixtures: a real local stack (moto + restate-server + services) per mode, for the whole session.

Every test that uses `stack` runs twice: with the services behind granian
("http") and as Lambda functions behind the local Lambda runtime ("lambda").
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from holiday_tools.audit import audit, format_report
from holiday_tools.devstack import LocalStack, Mode, Ports
from holiday_tools.faultproxy import FaultProxy
from holiday_tools.packaging import AssetReport, build
from tests.support import PROJECT_DIR, Admin, Inbox
from tests.synth import MODES, Templates, synth


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
def synthesized(lambda_assets: list[AssetReport]) -> Callable[[str], Templates]:
    """`synthesized("acm")`: the two templates of a mode in tests/synth.py, synthesised once per session."""
    done: dict[str, Templates] = {}

    def get(mode: str) -> Templates:
        if mode not in done:
            done[mode] = synth(lambda_assets[0].path.parent, MODES[mode])
        return done[mode]

    return get
