"""Every setting the services read from their environment, in one place.

The same variables are set by the CDK stack on Lambda and by `holiday dev`
on a laptop, so the services never need to know where they run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Settings:
    """What the services need to reach their tables and topic."""

    flights_table: str
    cars_table: str
    payments_table: str
    # Unset means "announce nothing": notifications are logged and skipped.
    topic_arn: str | None
    # Unset in production; the local stack points it at its AWS stand-in.
    aws_endpoint_url: str | None
    aws_region: str

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Read the settings from `env` (the process environment by default)."""
        env = dict(os.environ if env is None else env)
        return cls(
            flights_table=env.get("FLIGHTS_TABLE_NAME", "flights"),
            cars_table=env.get("CARS_TABLE_NAME", "cars"),
            payments_table=env.get("PAYMENTS_TABLE_NAME", "payments"),
            topic_arn=env.get("TRIPS_TOPIC_ARN") or None,
            aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            aws_region=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        )

    def as_env(self) -> dict[str, str]:
        """The environment that makes `from_env` return these settings again."""
        env = {
            "FLIGHTS_TABLE_NAME": self.flights_table,
            "CARS_TABLE_NAME": self.cars_table,
            "PAYMENTS_TABLE_NAME": self.payments_table,
            "AWS_REGION": self.aws_region,
        }
        if self.topic_arn:
            env["TRIPS_TOPIC_ARN"] = self.topic_arn
        if self.aws_endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.aws_endpoint_url
        return env


@cache
def settings() -> Settings:
    """The settings of this process, read once: a container serves many invocations."""
    return Settings.from_env()
