"""Lambda SnapStart: the slow work done once, before the snapshot, and what each restore makes fresh.

With SnapStart on (`--context snapStart=true`, see docs/deploying.md) Lambda
runs a function version's init once, snapshots its memory, and starts every
execution environment of that version from the snapshot. Whatever init leaves
in memory is then shared by all of them. Before the snapshot, `prime` does what
the first invocation would otherwise wait for: botocore's import, the AWS API
models, and the pydantic validators deferred at import (`holiday.models.LAZY`).
After each restore, what must belong to one environment is made anew: the AWS
clients (credentials and connections) and the random generator's state (which
botocore's retry jitter draws on; restored copies would all jitter alike).
Without SnapStart neither hook runs, and a function pays nothing for them.
"""

from __future__ import annotations

import logging
import random

from pydantic import BaseModel
from snapshot_restore_py import register_after_restore, register_before_snapshot

from holiday import aws

log = logging.getLogger(__name__)


def prime_before_snapshot(*aws_services: str) -> None:
    """Ask for the clients of `aws_services` ("dynamodb", "sns") and every model to be made before a snapshot."""
    register_before_snapshot(prime, *aws_services)


def prime(*aws_services: str) -> None:
    """The before-snapshot hook: make the clients of `aws_services`, and build every model's validator."""
    for service in aws_services:
        aws.client(service)
    models = models_of(BaseModel)
    for model in models:
        model.model_rebuild()
    log.info("ready for a snapshot: clients for %s, %d models built", ", ".join(aws_services), len(models))


def models_of(base: type[BaseModel]) -> list[type[BaseModel]]:
    """The project's pydantic models that are loaded: subclasses of `base`, at any depth."""
    found = []
    for sub in base.__subclasses__():
        if sub.__module__.startswith("holiday."):
            found.append(sub)
        found += models_of(sub)
    return found


def _fresh_after_restore() -> None:
    aws.forget_clients()
    random.seed()
    log.info("restored from a snapshot: new AWS clients and random state")


register_after_restore(_fresh_after_restore)
