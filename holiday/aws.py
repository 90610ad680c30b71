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

from functools import cache
from typing import Any

from holiday.config import settings


@cache
def client(service: str) -> Any:
    """The shared low-level client for `service` ("dynamodb", "sns", ...)."""
    import botocore.session
    from botocore.config import Config

    cfg = settings()
    return botocore.session.get_session().create_client(
        service,
        region_name=cfg.aws_region,
        endpoint_url=cfg.aws_endpoint_url,
        # Fail fast on a dead endpoint so Restate's durable retry, not a socket
        # timeout, decides how long to keep trying.
        config=Config(
            connect_timeout=2,
            read_timeout=5,
            retries={"max_attempts": 2, "mode": "standard"},
            max_pool_connections=32,
        ),
    )
