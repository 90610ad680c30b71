"""What AWS checks when it creates or updates these stacks, checked here before any account sees them.

A template test that asserts what a template contains is not a test of what AWS
accepts, so each test below encodes a rule that CloudFormation, Lambda, EC2 or
Elastic Load Balancing applies, over every documented deployment mode, and
cfn-lint (AWS's own template linter) runs over every template.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import cfnlint.api
import pytest

from infra.host import config
from tests.synth import MODES, Templates, as_list, joined, resources, synth

STACKS = ("RestateStack", "RestateHolidayStack")
# Policies AWS manages that grant the network-interface actions Lambda checks for.
VPC_ACCESS_POLICIES = ("AWSLambdaVPCAccessExecutionRole", "AWSLambdaENIManagementAccess")
ENI_ACTIONS = {"ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DeleteNetworkInterface"}
# ELB security policies that allow nothing older than TLS 1.2.
MODERN_TLS = re.compile(r"^ELBSecurityPolicy-(TLS13-1-[23]|TLS-1-2|FS-1-2)")


@pytest.fixture(scope="module", params=list(MODES))
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def templates(mode: str, synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized(mode)


def both(templates: Templates) -> Iterator[tuple[str, dict[str, Any]]]:
    yield from zip(STACKS, templates, strict=True)


# --- cfn-lint ---------------------------------------------------------------------------------


def test_cfn_lint_finds_no_error_and_no_unacknowledged_warning(templates: Templates) -> None:
    # Warnings acknowledged in code (infra/nag.py: lint_exception) carry their reason in the template.
    for stack, template in both(templates):
        found = [m for m in cfnlint.api.lint_all(json.dumps(template)) if m.rule.id[0] in "EW"]
        assert not found, f"{stack}: " + "\n".join(str(m) for m in found)


# --- Lambda: a function in a VPC needs a role that may manage network interfaces -------------


def eni_grants(template: dict[str, Any], function_id: str) -> set[str]:
    """The network-interface actions a function's role has by the time Lambda creates the function."""
    function = template["Resources"][function_id]
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    role = template["Resources"][role_id]["Properties"]
    granted: set[str] = set()
    for arn in role.get("ManagedPolicyArns", []):
        if any(name in joined(arn) for name in VPC_ACCESS_POLICIES):
            granted |= ENI_ACTIONS
    statements = [s for p in role.get("Policies", []) for s in p["PolicyDocument"]["Statement"]]
    # A separate policy counts only if the function waits for it.
    for policy_id in as_list(function.get("DependsOn", [])):
        policy = template["Resources"][policy_id]
        if policy["Type"] == "AWS::IAM::Policy" and {"Ref": role_id} in policy["Properties"]["Roles"]:
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        if statement["Effect"] == "Allow" and "*" in as_list(statement["Resource"]):
            granted |= set(as_list(statement["Action"])) & ENI_ACTIONS
    return granted


def test_every_function_in_a_vpc_may_manage_its_network_interfaces(templates: Templates) -> None:
    for stack, template in both(templates):
        for function_id, function in resources(template, "AWS::Lambda::Function").items():
            if "VpcConfig" in function["Properties"]:
                assert eni_grants(template, function_id) == ENI_ACTIONS, f"{stack}: {function_id}"


def test_the_custom_resource_frameworks_function_is_outside_the_vpc(mode: str, templates: Templates) -> None:
    # CloudFormation hears back from the framework; inside a VPC with no route out it never would.
    _, holiday = templates
    functions = resources(holiday, "AWS::Lambda::Function").values()
    [framework] = [f["Properties"] for f in functions if f["Properties"]["Handler"] == "framework.onEvent"]
    assert "VpcConfig" not in framework
    [handler] = [f["Properties"] for f in functions if f["Properties"]["Handler"] == "handler.on_event"]
    assert ("VpcConfig" in handler) == (mode != "cloud")  # the rule above is exercised where it matters


# --- CloudFormation: two copies in one account, exports in use --------------------------------

# Top-level properties named "...Name" that are not names in the account's namespace.
SCOPED_NAMES = {
    ("AWS::IAM::Policy", "PolicyName"),  # unique within its role only
}


def physical_names(template: dict[str, Any]) -> set[str]:
    """Every literal name a resource or export claims: `TableName`, `FunctionName`, `LaunchTemplateName`, ..."""
    names = set()
    for resource in template["Resources"].values():
        for key, value in resource.get("Properties", {}).items():
            if key.endswith("Name") and (resource["Type"], key) not in SCOPED_NAMES and isinstance(value, str):
                names.add(f"{resource['Type']}.{key}={value}")
    for output in template.get("Outputs", {}).values():
        if "Export" in output:
            names.add(f"Export={joined(output['Export']['Name'])}")
    return names


@pytest.mark.parametrize("unprefixed", ["default", "cluster"])
def test_a_prefixed_copy_claims_no_name_the_default_copy_claims(
    unprefixed: str, lambda_assets: Any, synthesized: Callable[[str], Templates]
) -> None:
    default = synthesized(unprefixed)
    prefixed = synth(lambda_assets[0].path.parent, {**MODES[unprefixed], **MODES["prefix"]})
    for stack, first, second in zip(STACKS, default, prefixed, strict=True):
        assert physical_names(first), stack  # the rule has names to compare
        assert not physical_names(first) & physical_names(second), stack


def test_no_export_depends_on_an_ec2_instance(templates: Templates) -> None:
    # A replaced instance (a new AMI, a new boot script) has a new IP; CloudFormation refuses
    # to change an export that another stack imports, so the update would roll back.
    for stack, template in both(templates):
        instances = set(resources(template, "AWS::EC2::Instance"))
        for name, output in template.get("Outputs", {}).items():
            if "Export" in output:
                value = json.dumps(output["Value"])
                assert not [i for i in instances if f'"{i}"' in value], f"{stack}: export {name} = {value}"


# --- EC2: a changed boot script must replace the instance -------------------------------------


@pytest.fixture(scope="module")
def changed_boot(lambda_assets: Any, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Templates]:
    """(mode, change) -> the mode's synthesis with a new Restate image, or with one more line in the boot script."""
    assets_dir = lambda_assets[0].path.parent
    script = tmp_path_factory.mktemp("boot") / "bootstrap.sh"
    script.write_text(config.BOOT_SCRIPT.read_text() + "echo booted\n")
    changes = {"image": ("RESTATE_IMAGE", "docker.io/restatedev/restate:1.7.13"), "script": ("BOOT_SCRIPT", script)}
    done: dict[tuple[str, str], Templates] = {}

    def get(mode: str, change: str) -> Templates:
        if (mode, change) not in done:
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(config, *changes[change])
                done[mode, change] = synth(assets_dir, MODES[mode])
        return done[mode, change]

    return get


def without_user_data(template: dict[str, Any]) -> dict[str, Any]:
    """The template with each instance's logical id made stable (no hash of its user data) and no user data."""
    text = json.dumps(template)
    for instance in resources(template, "AWS::EC2::Instance"):
        # CDK ends the id of an instance whose user data causes replacement with 16 hex digits of that data.
        assert re.fullmatch(r".+[0-9a-f]{16}", instance), instance
        text = text.replace(f'"{instance}"', f'"{instance[:-16]}"')
    stable: dict[str, Any] = json.loads(text)
    for properties in resources(stable, "AWS::EC2::Instance").values():
        del properties["Properties"]["UserData"]
    return stable


@pytest.mark.parametrize(("mode", "nodes"), [("default", 1), ("cluster", 3)])
@pytest.mark.parametrize("change", ["image", "script"])
def test_a_changed_boot_script_or_image_replaces_the_instances_and_nothing_else(
    mode: str,
    nodes: int,
    change: str,
    changed_boot: Callable[[str, str], Templates],
    synthesized: Callable[[str], Templates],
) -> None:
    (restate, holiday), (new_restate, new_holiday) = synthesized(mode), changed_boot(mode, change)
    # A new logical id is a new instance: CloudFormation creates it, then removes the old one.
    old, new = set(resources(restate, "AWS::EC2::Instance")), set(resources(new_restate, "AWS::EC2::Instance"))
    assert len(old) == len(new) == nodes
    assert not old & new
    # Nothing else changes: the volumes, the names and the balancer follow the new instances by reference.
    assert without_user_data(new_restate) == without_user_data(restate)
    assert resources(new_restate, "AWS::EC2::Volume") == resources(restate, "AWS::EC2::Volume")
    # The services stack sees no change at all: it registers at the admin name, not at an instance.
    assert new_holiday == holiday


# --- EC2: what a security group's descriptions may hold -----------------------------------------

# EC2 refuses other characters (an apostrophe, say) in a group's description and in a rule's.
GROUP_DESCRIPTION = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=&;{}!$*]{0,255}")
RULE_DESCRIPTION = re.compile(r"[A-Za-z0-9 ._\-:/()#,@\[\]+=;{}!$*]{0,255}")


def test_security_group_descriptions_hold_only_what_ec2_accepts(templates: Templates) -> None:
    for stack, template in both(templates):
        rules = [
            r["Properties"]
            for kind in ("Ingress", "Egress")
            for r in resources(template, f"AWS::EC2::SecurityGroup{kind}").values()
        ]
        for group in resources(template, "AWS::EC2::SecurityGroup").values():
            props = group["Properties"]
            assert GROUP_DESCRIPTION.fullmatch(props["GroupDescription"]), f"{stack}: {props['GroupDescription']}"
            rules += props.get("SecurityGroupIngress", []) + props.get("SecurityGroupEgress", [])
        for rule in rules:
            assert RULE_DESCRIPTION.fullmatch(rule.get("Description", "")), f"{stack}: {rule}"


# --- Elastic Load Balancing: no TLS older than 1.2 --------------------------------------------


def test_every_tls_listener_names_a_policy_without_tls_1_0_or_1_1(mode: str, templates: Templates) -> None:
    restate, _ = templates
    listeners = [
        listener["Properties"]
        for listener in resources(restate, "AWS::ElasticLoadBalancingV2::Listener").values()
        if listener["Properties"]["Protocol"] in ("TLS", "HTTPS")
    ]
    assert len(listeners) == (1 if "certificateArn" in MODES[mode] else 0)
    for listener in listeners:
        assert MODERN_TLS.match(listener.get("SslPolicy", "")), listener


# --- Elastic Load Balancing: security groups only at creation -------------------------------------

# Network load balancers that earlier versions of RestateStack created without security groups (up to
# commit 5e5bdf2, ACM modes): AWS refuses to add security groups to them, so none may keep that logical id.
BALANCERS_MADE_WITHOUT_GROUPS = {"RestateIngress4DE70F5A"}


def test_every_network_load_balancer_has_security_groups_from_its_creation(mode: str, templates: Templates) -> None:
    restate, _ = templates
    balancers = resources(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    # With a certificate, or in front of a cluster.
    cluster = MODES[mode].get("restateNodes", "1") != "1"
    assert len(balancers) == (1 if "certificateArn" in MODES[mode] or cluster else 0)
    for balancer_id, balancer in balancers.items():
        assert balancer["Properties"].get("SecurityGroups"), balancer_id
        # An update would ask AWS to add groups to a balancer made without any, which it refuses.
        assert balancer_id not in BALANCERS_MADE_WITHOUT_GROUPS


def test_every_target_group_asks_restates_health_through_nginx(mode: str, templates: Templates) -> None:
    # A TCP check passes while nginx runs, even with restate-server down on that node.
    restate, _ = templates
    groups = resources(restate, "AWS::ElasticLoadBalancingV2::TargetGroup")
    assert len(groups) == len(resources(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer"))
    for group in groups.values():
        props = group["Properties"]
        expected = "HTTP" if props["Port"] == config.BALANCER_TARGET_PORT else "HTTPS"
        assert (props["HealthCheckProtocol"], props["HealthCheckPath"]) == (expected, config.HEALTH_PATH)
        assert props["HealthCheckPort"] == str(props["Port"])


# --- Secrets Manager: the ingress key is made at deploy and stays there -----------------------


def test_no_template_or_user_data_holds_a_secret_value(mode: str, templates: Templates) -> None:
    for stack, template in both(templates):
        text = json.dumps(template)
        # A dynamic reference is resolved into the resource at deploy: user data would carry the key.
        assert "resolve:secretsmanager" not in text, stack
        for secret_id, secret in resources(template, "AWS::SecretsManager::Secret").items():
            props = secret["Properties"]
            assert "GenerateSecretString" in props, f"{stack}: {secret_id}"
            assert "SecretString" not in props, f"{stack}: {secret_id}"
    restate, _ = templates
    secrets = resources(restate, "AWS::SecretsManager::Secret")
    assert len(secrets) == (0 if mode in ("cloud", "open") else 1)  # the rule is exercised where it matters
