"""AWS clients, made once per process and shared by every invocation.

Clients are thread-safe; creating one costs milliseconds, so doing it per
request would dominate a saga step. `AWS_ENDPOINT_URL` (read by `config`) points
them at the local stand-in; in production it is unset.

They are botocore clients, the layer under boto3: the same calls, without
boto3's S3 transfer machinery. botocore itself is imported at the first
client, not with the handler module: that keeps a function's import (and so
Restate's discovery call to it) about 120 ms shorter, and the first
invocation pays it instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import Any, TypeVar

from holiday.config import settings

T = TypeVar("T")

# As many threads as each client keeps connections: a blocking AWS call never
# waits for a thread, and never opens a connection the pool would then drop.
POOL_SIZE = 32
_threads = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="aws")


@cache
def _session() -> Any:
    """One botocore session per process: it loads each AWS API's model once, for all its clients."""
    import botocore.session

    return botocore.session.get_session()


@cache
def client(service: str) -> Any:
    """The shared low-level client for `service` ("dynamodb", "sns", ...)."""
    from botocore.config import Config

    cfg = settings()
    return _session().create_client(
        service,
        region_name=cfg.aws_region,
        endpoint_url=cfg.aws_endpoint_url,
        # Fail fast on a dead endpoint so Restate's durable retry, not a socket
        # timeout, decides how long to keep trying.
        config=Config(
            connect_timeout=2,
            read_timeout=5,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=POOL_SIZE,
        ),
    )


async def off_loop(call: Callable[..., T], *args: object) -> T:
    """Run a blocking AWS call in the shared threads, so the event loop keeps serving other invocations."""
    return await asyncio.get_running_loop().run_in_executor(_threads, call, *args)


def forget_clients() -> None:
    """Make the next `client` call build a new session and client: they hold credentials and connections
    that belong to one execution environment (see `holiday.snapstart`)."""
    client.cache_clear()
    _session.cache_clear()
