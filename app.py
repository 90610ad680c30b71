#!/usr/bin/env python3
"""The CDK app: `npx cdk deploy --all` deploys RestateStack and RestateHolidayStack.

Context (`--context key=value` or cdk.json): prefix, deploymentMode (self-hosted or cloud),
clusterId, authTokenSecretArn, region (us or eu, for cloud), certificateArn (self-hosted),
deregisterOnDelete. See infra/settings.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra.holiday_stack import RestateHolidayStack
from infra.restate_stack import RestateStack
from infra.settings import DeploymentSettings, SettingsError

ASSETS_DIR = Path(__file__).resolve().parent / "build" / "lambda"


def build_app(app: App, assets_dir: Path = ASSETS_DIR) -> tuple[RestateStack, RestateHolidayStack]:
    """Define both stacks on `app` from its context (tests call this too)."""
    settings = DeploymentSettings.from_context(app.node)
    restate_name = settings.stack_name("RestateStack")
    restate = RestateStack(app, restate_name, stack_name=restate_name, settings=settings)
    holiday_name = settings.stack_name("RestateHolidayStack")
    holiday = RestateHolidayStack(
        app, holiday_name, stack_name=holiday_name, settings=settings, restate=restate.endpoint, assets_dir=assets_dir
    )
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return restate, holiday


def main() -> None:
    app = App()
    try:
        build_app(app)
    except SettingsError as err:
        sys.exit(f"error: {err}")
    app.synth()


if __name__ == "__main__":
    main()
