"""`--context snapStart=true`: the four service functions publish their versions with Lambda SnapStart.

What AWS says, and what these tests hold the app to (AWS pages read 2026-12-07):

- SnapStart works on published versions only, never on $LATEST; while Lambda initialises a new version and takes
  its snapshot the version is `Pending`, and "any invocations or other API actions that operate on the function
  version will fail"; `Active` means the snapshot is ready
  (https://docs.aws.amazon.com/lambda/latest/dg/snapstart-activate.html#snapstart-function-states).
- CloudFormation waits for that: AWS::Lambda::Version's create handler polls the version
  (`lambda:GetFunctionConfiguration`, up to 180 minutes, in the resource schema cfn-lint ships) and fails the
  resource when the snapshot fails ("Resource of type 'AWS::Lambda::Version' ... did not stabilize. Status Reason
  is An error occurred during function initialization", HandlerErrorCode NotStabilized, as reported in
  https://github.com/aws-samples/bedrock-chat/issues/653 for a CDK current version of a Python function). A
  resource that refers to the version (a Ref) is created or updated only once the version's create completed, so
  the registration that names the version's ARN reaches Restate only once the version is Active.
- SnapStart on a function is updated in place ("Update requires: No interruption",
  https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-lambda-function-snapstart.html),
  and CDK counts it among the properties that make `current_version` a new version.
- Limits: Python 3.12 and later; no provisioned concurrency, EFS, or ephemeral storage over 512 MB; every
  commercial region but Asia Pacific (New Zealand) and Asia Pacific (Taipei)
  (https://docs.aws.amazon.com/lambda/latest/dg/snapstart.html).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cfnlint.api
import cfnlint.helpers
import pytest
from aws_cdk import App
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from app import build_app
from holiday.functions import FUNCTIONS
from infra.constructs import service_function
from infra.settings import DEPLOY_REGION, DeploymentSettings, SettingsError, snap_start_offered
from tests.synth import MODES, Templates, as_list, cdk_json_context, resources, statements_of_role, synth

SNAP_START = {"snapStart": "true"}
ON_PUBLISHED_VERSIONS = {"ApplyOn": "PublishedVersions"}
# The two modes whose services stacks differ (a VPC and a bearer token, or neither): enough to see SnapStart in both.
SNAP_MODES = ("default", "cloud")


def settings(context: dict[str, Any]) -> DeploymentSettings:
    return DeploymentSettings.from_context(App(context=context).node)


def service_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The four service functions' resources by logical id (the registration's functions are not among them)."""
    return {
        k: v
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") in FUNCTIONS.values()
    }


def version_of(template: dict[str, Any], function_id: str) -> str:
    """The logical id of the one version that a function publishes."""
    [version] = [
        k
        for k, v in resources(template, "AWS::Lambda::Version").items()
        if v["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    return version


@pytest.fixture(scope="module")
def snapped(assets_dir: Path) -> Callable[[str], Templates]:
    """`snapped("cloud")`: that mode's templates with snapStart=true, synthesised once. Synthesis runs cdk-nag's
    AWS Solutions checks and raises on any finding not acknowledged with a reason, so each template here passed them."""
    done: dict[str, Templates] = {}

    def get(mode: str) -> Templates:
        if mode not in done:
            done[mode] = synth(assets_dir, {**MODES[mode], **SNAP_START})
        return done[mode]

    return get


# --- the context key ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "snap_start"),
    [
        ({}, False),
        ({"snapStart": "true"}, True),  # --context snapStart=true
        ({"snapStart": "TRUE"}, True),
        ({"snapStart": True}, True),  # cdk.json
        ({"snapStart": "false"}, False),
        ({"snapStart": False}, False),
        ({**MODES["cloud"], **SNAP_START}, True),  # either mode
    ],
)
def test_snap_start_is_off_unless_asked_on_the_command_line_or_in_cdk_json(
    context: dict[str, Any], snap_start: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DEPLOY_REGION, raising=False)
    assert settings(context).snap_start is snap_start


@pytest.mark.parametrize(("given", "shown"), [("yes", "'yes'"), ("on", "'on'"), (1, "the number 1"), ("", "empty")])
def test_a_bad_value_is_refused_naming_the_key_and_the_accepted_values(given: object, shown: str) -> None:
    with pytest.raises(SettingsError) as refused:
        settings({"snapStart": given})
    message = str(refused.value)
    assert message.startswith("context 'snapStart' ")
    assert shown in message
    assert "true (the functions' published versions start from a Lambda SnapStart snapshot) or false" in message


@pytest.mark.parametrize(
    ("region", "named"),
    [
        ("ap-east-2", "ap-east-2 (Asia Pacific (Taipei))"),
        ("ap-southeast-6", "ap-southeast-6 (Asia Pacific (New Zealand))"),
        ("us-gov-west-1", "us-gov-west-1"),
        ("cn-north-1", "cn-north-1"),
    ],
)
def test_snap_start_is_refused_for_a_region_where_lambda_offers_none(
    region: str, named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DEPLOY_REGION, region)
    with pytest.raises(SettingsError) as refused:
        settings(SNAP_START)
    assert str(refused.value).startswith(f"context 'snapStart': Lambda offers no SnapStart in {named}, ")
    assert settings({}).snap_start is False  # the same region without SnapStart is fine


def test_snap_start_is_accepted_for_a_commercial_region_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DEPLOY_REGION, "eu-central-1")
    assert settings(SNAP_START).snap_start is True


# --- the functions -------------------------------------------------------------------------------------------------


def renamed_versions(template: dict[str, Any]) -> dict[str, Any]:
    """The template with each version's logical id (a hash of its function's properties) replaced by
    `<function id>Version`, and the functions' SnapStart setting left out: what no SnapStart setting changes."""
    text = json.dumps(template)
    for function_id in service_functions(template):
        text = text.replace(version_of(template, function_id), f"{function_id}Version")
    same: dict[str, Any] = json.loads(text)
    for function in service_functions(same).values():
        function["Properties"].pop("SnapStart", None)
    return same


@pytest.mark.parametrize("mode", SNAP_MODES)
def test_snap_start_is_on_the_four_service_functions_and_changes_nothing_else(
    mode: str, snapped: Callable[[str], Templates], synthesized: Callable[[str], Templates]
) -> None:
    (restate, holiday), (snap_restate, snap_holiday) = synthesized(mode), snapped(mode)
    assert [f["Properties"].get("SnapStart") for f in service_functions(holiday).values()] == [None] * 4
    assert [f["Properties"].get("SnapStart") for f in service_functions(snap_holiday).values()] == [
        ON_PUBLISHED_VERSIONS
    ] * 4
    # Not on the registration's handler, nor on the custom resource framework's function.
    assert [
        f for f in resources(snap_holiday, "AWS::Lambda::Function").values() if "SnapStart" in f["Properties"]
    ] == list(service_functions(snap_holiday).values())
    assert snap_restate == restate
    assert renamed_versions(snap_holiday) == renamed_versions(holiday)


def test_without_snap_start_no_function_has_it(synthesized: Callable[[str], Templates]) -> None:
    for mode in MODES:
        for template in synthesized(mode):
            assert not [
                f for f in resources(template, "AWS::Lambda::Function").values() if "SnapStart" in f["Properties"]
            ]


@pytest.mark.parametrize("mode", SNAP_MODES)
def test_restate_is_given_the_published_version_that_snap_start_optimised(
    mode: str, snapped: Callable[[str], Templates]
) -> None:
    _, holiday = snapped(mode)
    registered = {
        r["Properties"]["FunctionArn"]["Ref"] for r in resources(holiday, "Custom::RestateServiceDeployment").values()
    }
    # A Ref to each SnapStart function's version: CloudFormation creates the registration only after the version,
    # and the version only once Lambda made it Active (see the module's docstring), never $LATEST or the function.
    assert registered == {version_of(holiday, function_id) for function_id in service_functions(holiday)}


@pytest.mark.parametrize("mode", SNAP_MODES)
def test_the_registration_needs_no_lambda_permission_to_wait_for_a_version(
    mode: str, snapped: Callable[[str], Templates]
) -> None:
    _, holiday = snapped(mode)
    [handler] = [
        f["Properties"]
        for f in resources(holiday, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.on_event"
    ]
    actions = {a for s in statements_of_role(holiday, handler["Role"]["Fn::GetAtt"][0]) for a in as_list(s["Action"])}
    assert not [a for a in actions if a.startswith("lambda:")]


@pytest.mark.parametrize("mode", SNAP_MODES)
def test_the_snap_start_functions_stay_within_snap_starts_limits(
    mode: str, snapped: Callable[[str], Templates]
) -> None:
    _, holiday = snapped(mode)
    assert service_function.RUNTIME.supports_snap_start
    for function in service_functions(holiday).values():
        props = function["Properties"]
        assert props["Runtime"] == service_function.RUNTIME.name
        assert "FileSystemConfigs" not in props  # no EFS
        assert props.get("EphemeralStorage", {"Size": 512})["Size"] <= 512
    for version in resources(holiday, "AWS::Lambda::Version").values():
        assert "ProvisionedConcurrencyConfig" not in version["Properties"]
    assert not resources(holiday, "AWS::Lambda::Alias")  # nor provisioned concurrency on an alias


def test_cdk_refuses_snap_start_on_a_runtime_without_it(assets_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_function, "RUNTIME", lambda_.Runtime.PYTHON_3_11)
    with pytest.raises(RuntimeError, match=r"SnapStart currently not supported by runtime python3\.11"):
        build_app(App(context={**cdk_json_context(), **SNAP_START}), assets_dir=assets_dir)


# --- the validators ------------------------------------------------------------------------------------------------


def lint(template: dict[str, Any], regions: list[str]) -> list[cfnlint.api.Match]:
    """cfn-lint's errors and warnings, as `lint_all` (tests/deploy/test_deploy_rules.py) finds them, in `regions`."""
    config = cfnlint.api.ManualArgs(include_checks=["I"], include_experimental=True, regions=regions)
    return [m for m in cfnlint.api.lint(json.dumps(template), config=config) if m.rule.id[0] in "EW"]


@pytest.mark.parametrize("mode", SNAP_MODES)
def test_cfn_lint_passes_in_every_region_the_app_allows_and_flags_only_snap_start_in_the_others(
    mode: str, snapped: Callable[[str], Templates]
) -> None:
    allowed = [r for r in cfnlint.helpers.REGIONS if snap_start_offered(r)]
    refused = [r for r in cfnlint.helpers.REGIONS if r not in allowed]
    for template in snapped(mode):
        found = lint(template, allowed)
        assert not found, "\n".join(str(m) for m in found)
    # Where the app refuses snapStart, cfn-lint knows no SnapStart either (E2530): neither list is wider.
    _, holiday = snapped(mode)
    flagged = lint(holiday, refused)
    assert {m.rule.id for m in flagged} == {"E2530"}
    assert all(str(refused) in m.message for m in flagged), "re-check AWS's SnapStart regions against cfn-lint's"


def test_cdk_and_cdk_nag_report_nothing_on_the_snap_start_app(assets_dir: Path) -> None:
    app = App(context={**cdk_json_context(), **SNAP_START})
    stacks = build_app(app, assets_dir=assets_dir)
    app.synth()  # raises on a cdk-nag finding not acknowledged with a reason
    for stack in stacks:
        annotations = Annotations.from_stack(stack)
        # CDK's warning that SnapStart needs published versions is acknowledged: current_version publishes one.
        assert annotations.find_warning("*", Match.any_value()) == []
        assert annotations.find_error("*", Match.any_value()) == []


# --- day two -------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def new_code(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Templates]:
    """The default mode with snapStart=true after a code change in every function (a line more in each handler),
    synthesised when first asked for."""
    done: list[Templates] = []

    def get() -> Templates:
        if not done:
            changed = tmp_path_factory.mktemp("changed") / "assets"
            shutil.copytree(assets_dir, changed)
            for handler in changed.rglob("*.py"):
                handler.write_text(handler.read_text() + "# changed\n")
            done.append(synth(changed, SNAP_START))
        return done[0]

    return get


def changed_properties(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    """The properties of a resource that differ between two templates' versions of it."""
    old, new = before["Properties"], after["Properties"]
    return {name for name in old.keys() | new.keys() if old.get(name) != new.get(name)}


@pytest.mark.parametrize(("change", "changed"), [("on", {"SnapStart"}), ("off", {"SnapStart"}), ("code", {"Code"})])
def test_turning_snap_start_on_or_off_or_new_code_publishes_new_versions_and_moves_the_registrations_in_place(
    change: str,
    changed: set[str],
    snapped: Callable[[str], Templates],
    synthesized: Callable[[str], Templates],
    new_code: Callable[[], Templates],
) -> None:
    (_, old), (_, new) = {
        "on": lambda: (synthesized("default"), snapped("default")),
        "off": lambda: (snapped("default"), synthesized("default")),
        "code": lambda: (snapped("default"), new_code()),
    }[change]()
    functions = service_functions(old)
    # The same functions, updated in place: what changed is no property CloudFormation replaces a function for.
    assert set(service_functions(new)) == set(functions)
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Lambda::Function").schema
    assert not {p.removeprefix("/properties/") for p in schema["createOnlyProperties"]} & changed
    registrations = resources(new, "Custom::RestateServiceDeployment")
    assert set(registrations) == set(resources(old, "Custom::RestateServiceDeployment"))  # updated, not replaced
    for function_id, function in functions.items():
        assert changed_properties(function, new["Resources"][function_id]) == changed
        earlier, later = version_of(old, function_id), version_of(new, function_id)
        # A new version resource, published from the updated function (with SnapStart on, Lambda snapshots it) ...
        assert later != earlier
        assert new["Resources"][later]["Properties"] == {"FunctionName": {"Ref": function_id}}
        # ... the function's registration moves to it (a new deployment in Restate) ...
        assert len([r for r in registrations.values() if r["Properties"]["FunctionArn"] == {"Ref": later}]) == 1
        # ... and the earlier version stays in Lambda for the invocations pinned to it: CloudFormation keeps a
        # resource that leaves the template when its DeletionPolicy is Retain.
        assert old["Resources"][earlier]["DeletionPolicy"] == "Retain"
