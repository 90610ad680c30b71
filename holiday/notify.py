"""Announcing a trip's outcome, behind one small interface.

With a topic configured the announcement goes to SNS; without one it is only
logged, so a missing topic never makes a trip hang on endless retries (a
defect of the TypeScript original).
"""

from __future__ import annotations

import logging
from functools import cache
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from holiday import aws
from holiday.config import settings
from holiday.models import LAZY

log = logging.getLogger(__name__)


class Announcement(BaseModel):
    """The message body: every announcement names the trip and its outcome."""

    model_config = LAZY

    trip_id: str
    outcome: Literal["success", "failure"]
    message: str
    failed_step: str | None = None
    compensations: list[str] = []


class Notifier(Protocol):
    def announce(self, announcement: Announcement) -> None:
        """Deliver `announcement`; raise on a failure worth retrying."""


class SnsNotifier:
    """Publishes to one SNS topic; the message body is the announcement as JSON."""

    def __init__(self, topic_arn: str, client: Any = None) -> None:
        self.topic_arn = topic_arn
        self._given = client

    def announce(self, announcement: Announcement) -> None:
        # The shared client is looked up each time: after a SnapStart restore it is a new one.
        client = self._given if self._given is not None else aws.client("sns")
        client.publish(
            TopicArn=self.topic_arn,
            Subject=f"Trip {announcement.trip_id}: {announcement.outcome}",
            Message=announcement.model_dump_json(),
            MessageAttributes={
                "trip_id": {"DataType": "String", "StringValue": announcement.trip_id},
                "outcome": {"DataType": "String", "StringValue": announcement.outcome},
            },
        )


class LogNotifier:
    """Used when no topic is configured: says what would have been sent."""

    def announce(self, announcement: Announcement) -> None:
        log.info(
            "trip=%s no TRIPS_TOPIC_ARN set, not announcing: %s",
            announcement.trip_id,
            announcement.model_dump_json(),
        )


@cache
def notifier() -> Notifier:
    """The notifier this process's settings call for."""
    topic = settings().topic_arn
    return SnsNotifier(topic) if topic else LogNotifier()
