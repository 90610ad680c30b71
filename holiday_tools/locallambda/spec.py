"""What the local Lambda runtime knows of a function and of the version its workers run, and how an invocation fails.

The HTTP side (`runtime`), the pools of workers (`pool`) and how the workers are launched (`launch`) all share
these few types, so they live below all three, which then import them without importing one another in a circle.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from typing import Any

from holiday_tools.locallambda.versions import Version, function_arn

CORES = os.cpu_count() or 1


@dataclass(frozen=True)
class FunctionSpec:
    """What the runtime needs to know about one function."""

    name: str  # e.g. "holiday-trips"
    handler: str  # e.g. "holiday.functions.trips.app"
    timeout: float = 30.0
    memory_mb: int = 256
    # Execution environments per function. Each runs its handler on about one core, so
    # more workers than cores only take turns on them. 100 trips at once on 2 cores
    # (2026-12-01): 19 to 24 trips/s with 2 workers per function, 16 to 23 with 4, 14 to 17 with 6.
    max_workers: int = max(2, CORES)
    # Whether its workers may import only what a holiday function's Lambda asset ships (see `asset`).
    # None: when the handler is the project's own code (holiday, the null saga, the registration handler),
    # not a test's handler module, which imports the test tools.
    lambda_asset: bool | None = None

    def arn(self, region: str, version: str) -> str:
        return function_arn(region, self.name, version)

    def configuration(self, region: str, number: str, version: Version) -> dict[str, Any]:
        """The FunctionConfiguration Lambda answers about one version."""
        return {
            "FunctionName": self.name,
            "FunctionArn": self.arn(region, number),
            "Version": number,
            "Handler": self.handler,
            "Runtime": f"python{sys.version_info.major}.{sys.version_info.minor}",
            "CodeSha256": version.code_sha256,
            "CodeSize": version.code_size,
            "Description": version.description,
            "LastModified": version.last_modified,
            "MemorySize": self.memory_mb,
            "Timeout": math.ceil(self.timeout),
            "State": "Active",
            "LastUpdateStatus": "Successful",
            "PackageType": "Zip",
        }


@dataclass(frozen=True)
class Deployed:
    """One version of one function as its workers run it."""

    spec: FunctionSpec
    version: str  # "1", ... or "$LATEST"
    code_dir: str | None  # first on the worker's sys.path; None: the project's own code


class FunctionError(Exception):
    """The invocation failed the way Lambda reports as `X-Amz-Function-Error: Unhandled`."""

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__(payload.get("errorMessage", ""))
        self.payload = payload
