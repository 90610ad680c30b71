"""AWS clients, made once per process and shared by every invocation.

boto3 clients are thread-safe; creating one costs milliseconds, so doing it per
request would dominate a saga step. `AWS_ENDPOINT_URL` (read by `config`) points
them at the local stand-in; in production it is unset.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

from holiday.config import settings

# Fail fast on a dead endpoint so Restate's durable retry, not a socket
# timeout, decides how long to keep trying.
_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=5,
    retries={"max_attempts": 2, "mode": "standard"},
    max_pool_connections=32,
)


@cache
def client(service: str) -> Any:
    """The shared low-level client for `service` ("dynamodb", "sns", ...)."""
    cfg = settings()
    return boto3.session.Session().client(
        service,
        region_name=cfg.aws_region,
        endpoint_url=cfg.aws_endpoint_url,
        config=_CLIENT_CONFIG,
    )
