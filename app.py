#!/usr/bin/env python3
"""The CDK app: `npx cdk deploy --all` deploys RestateStack and RestateHolidayStack.

Context (`--context key=value` or cdk.json): prefix, deploymentMode (self-hosted or cloud),
clusterId, authTokenSecretArn, region (us or eu, for cloud), certificateArn, domainName,
hostedZoneId, ingressAuth, ingressCidrs, restateNodes (1 or 3), availabilityZones, instanceType and amiId
(self-hosted), deregisterOnDelete, snapStart (Lambda SnapStart for the functions).
See infra/settings.py: any other key is refused.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from infra.settings import DeploymentSettings, SettingsError

NODE_RECOMMENDED = 22  # the oldest Node.js major that jsii still supports
SILENCE_END_OF_LIFE = "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION"


def quiet_node_end_of_life_banner() -> None:
    """Say in one plain line that Node.js is end of life, instead of jsii's banner of bytes reprs.

    jsii starts Node.js (`JSII_NODE`, or `node` on the PATH) when aws_cdk is first imported. On an
    end-of-life Node.js it prints a banner that its stderr sink shows as `b'!! ... !!\\n'` lines,
    unless the major version is listed in JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION. Without a
    usable Node.js this says nothing: jsii then fails with its own error.
    """
    node = os.environ.get("JSII_NODE", "node")
    try:
        done = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True)
    except (OSError, subprocess.SubprocessError):
        return
    version = done.stdout.strip()
    found = re.fullmatch(r"v(\d+)\.\S*", version)
    if found is None or int(found[1]) >= NODE_RECOMMENDED:
        return
    silenced = [v.strip() for v in os.environ.get(SILENCE_END_OF_LIFE, "").split(",") if v.strip()]
    if found[1] in silenced:
        return  # silenced by whoever runs this
    print(
        f"warning: Node.js {version} is end of life; the CDK works with it, "
        f"but Node.js {NODE_RECOMMENDED} or newer is recommended",
        file=sys.stderr,
    )
    os.environ[SILENCE_END_OF_LIFE] = ",".join([*silenced, found[1]])


if __name__ == "__main__":
    # Only when run as the CDK app, and before the imports below, since importing aws_cdk starts Node.js.
    # Importing this module (the tests import build_app) runs nothing.
    quiet_node_end_of_life_banner()

# E402: these imports come after the check above on purpose.
from aws_cdk import App, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402

from infra.holiday_stack import RestateHolidayStack  # noqa: E402
from infra.restate_stack import RestateStack  # noqa: E402

ASSETS_DIR = Path(__file__).resolve().parent / "build" / "lambda"


def build_app(app: App, assets_dir: Path = ASSETS_DIR) -> tuple[RestateStack, RestateHolidayStack]:
    """Define both stacks on `app` from its context (tests call this too)."""
    settings = DeploymentSettings.from_context(app.node)
    for warning in settings.warnings:
        print(warning, file=sys.stderr)
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
