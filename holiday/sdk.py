"""Two small adapters over the Restate SDK that every service here uses: its logger and a pydantic serde."""

from __future__ import annotations

import logging
from typing import TypeVar

from pydantic import BaseModel
from restate import RestateLoggingFilter
from restate.serde import PydanticJsonSerde

M = TypeVar("M", bound=BaseModel)


def replay_safe_logger(name: str) -> logging.Logger:
    """A logger that stays quiet while Restate replays a handler, so each step logs once."""
    logger = logging.getLogger(name)
    logger.addFilter(RestateLoggingFilter())
    return logger


def pydantic_serde(model: type[M]) -> PydanticJsonSerde[M]:
    """The SDK's serde for `model`, for where the handler's annotation cannot name it."""
    return PydanticJsonSerde(model)  # type: ignore[no-untyped-call]
