"""What AWS checks when it creates or updates these stacks, checked here before any account sees them.

A template test that asserts what a template contains is not a test of what AWS
accepts, so each test below encodes a rule that CloudFormation, Lambda, EC2 or
Elastic Load Balancing applies, over every documented deployment mode, and
cfn-lint (AWS's own template linter) runs over every template.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cfnlint.api
import pytest

from holiday_host import config
from infra.constructs.restate_host import HOST_TAG
from tests.synth import (
    MODES,
    Templates,
    as_list,
    host_policies,
    host_role,
    hosts,
    ingress_rules,
    joined,
    launch_data,
    mentions,
    node_groups,
    node_interfaces,
    resources,
    synth,
)

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
    unprefixed: str, assets_dir: Path, synthesized: Callable[[str], Templates]
) -> None:
    default = synthesized(unprefixed)
    prefixed = synth(assets_dir, {**MODES[unprefixed], **MODES["prefix"]})
    for stack, first, second in zip(STACKS, default, prefixed, strict=True):
        assert physical_names(first), stack  # the rule has names to compare
        assert not physical_names(first) & physical_names(second), stack


# What CloudFormation replaces, or gives a new version, when a host is replaced or rolled.
HOST_KINDS = (
    "AWS::EC2::Instance",
    "AWS::AutoScaling::AutoScalingGroup",
    "AWS::EC2::LaunchTemplate",
    "AWS::EC2::NetworkInterface",
    "AWS::EC2::EIPAssociation",
)


def test_no_export_depends_on_a_host(templates: Templates) -> None:
    # A replaced instance (a new AMI, a new boot script) has a new IP, and a group or launch template that
    # rolls has new attributes; CloudFormation refuses to change an export that another stack imports, so
    # the update would roll back. Exports name the hosts only through the private names.
    for stack, template in both(templates):
        host_ids = {k for kind in HOST_KINDS for k in resources(template, kind)}
        for name, output in template.get("Outputs", {}).items():
            if "Export" in output:
                found = [h for h in host_ids if mentions(output["Value"], h)]
                assert not found, f"{stack}: export {name} = {json.dumps(output['Value'])}"


# --- EC2 Auto Scaling: a changed boot script or image rolls the hosts ---------------------------

PINNED_AMI = "ami-0123456789abcdef0"


@pytest.fixture(scope="module")
def changed_boot(assets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Templates]:
    """(mode, change) -> the mode's synthesis with a new Restate image, one more line in the boot script, or
    the hosts' image pinned with `amiId`."""
    script = tmp_path_factory.mktemp("boot") / "bootstrap.sh"
    script.write_text(config.BOOT_SCRIPT.read_text() + "echo booted\n")
    patches = {"image": ("RESTATE_IMAGE", "docker.io/restatedev/restate:1.7.13"), "script": ("BOOT_SCRIPT", script)}
    contexts = {"ami": {"amiId": PINNED_AMI}}
    done: dict[tuple[str, str], Templates] = {}

    def get(mode: str, change: str) -> Templates:
        if (mode, change) not in done:
            with pytest.MonkeyPatch.context() as patch:
                if change in patches:
                    patch.setattr(config, *patches[change])
                done[mode, change] = synth(assets_dir, {**MODES[mode], **contexts.get(change, {})})
        return done[mode, change]

    return get


@pytest.mark.parametrize(
    ("mode", "nodes", "change"),
    [
        ("default", 1, "image"),
        ("default", 1, "script"),
        ("default", 1, "ami"),
        ("cluster", 3, "image"),
        ("cluster", 3, "script"),
    ],
)
def test_a_changed_boot_script_or_image_rolls_the_launch_templates_and_nothing_else(
    mode: str,
    nodes: int,
    change: str,
    changed_boot: Callable[[str, str], Templates],
    synthesized: Callable[[str], Templates],
) -> None:
    (restate, holiday), (new_restate, new_holiday) = synthesized(mode), changed_boot(mode, change)
    old, new = restate["Resources"], new_restate["Resources"]
    # The same logical ids: nothing is replaced by a resource of a new id, nothing added or removed.
    assert set(new) == set(old)
    # Only the launch templates change (an update in place: a new version), and only in what a host boots.
    templates = set(resources(restate, "AWS::EC2::LaunchTemplate"))
    assert len(templates) == nodes
    assert {k for k in old if new[k] != old[k]} == templates
    changed = "ImageId" if change == "ami" else "UserData"
    for template_id in templates:
        before, after = old[template_id]["Properties"], new[template_id]["Properties"]
        assert {k: v for k, v in after.items() if k != "LaunchTemplateData"} == {
            k: v for k, v in before.items() if k != "LaunchTemplateData"
        }
        data_before, data_after = before["LaunchTemplateData"], after["LaunchTemplateData"]
        assert {k for k in data_before | data_after if data_before.get(k) != data_after.get(k)} == {changed}
    # Each group launches its template's latest version, so the new version is a rolling update of the group.
    for group in node_groups(restate).values():
        template_id = group["Properties"]["LaunchTemplate"]["LaunchTemplateId"]["Ref"]
        assert template_id in templates
        assert group["Properties"]["LaunchTemplate"]["Version"] == {"Fn::GetAtt": [template_id, "LatestVersionNumber"]}
        assert "AutoScalingRollingUpdate" in group["UpdatePolicy"]
    assert {k: v for k, v in new_restate.items() if k != "Resources"} == {
        k: v for k, v in restate.items() if k != "Resources"
    }
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


def test_a_host_leaving_the_load_balancer_is_let_go_within_30_s(mode: str, templates: Templates) -> None:
    # A group ends an instance only after its target's deregistration delay: 300 s by default, which a
    # rolling update would wait through for every node, and a single node would spend down but still running.
    restate, _ = templates
    for group in resources(restate, "AWS::ElasticLoadBalancingV2::TargetGroup").values():
        attributes = {a["Key"]: a["Value"] for a in group["Properties"].get("TargetGroupAttributes", [])}
        assert attributes.get("deregistration_delay.timeout_seconds") == "30"


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


# --- EC2 Auto Scaling: hosts that replace themselves, keep their addresses and let operators in ---

RESOLVED_AT_LAUNCH = "resolve:ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-arm64"
PT_DURATION = re.compile(r"PT(\d+H)?(\d+M)?(\d+S)?")


def node_count(mode: str) -> int:
    """How many Restate hosts the mode has: none with Restate Cloud."""
    return 0 if mode == "cloud" else int(MODES[mode].get("restateNodes", "1"))


def test_every_host_is_created_and_updated_only_on_its_own_signal(mode: str, templates: Templates) -> None:
    # Guards against the old AWS::EC2::Instance hosts: CloudFormation called them done once EC2 ran them,
    # Restate serving or not, and replaced them without waiting for the new one to serve.
    restate, _ = templates
    assert not resources(restate, "AWS::EC2::Instance")
    groups = node_groups(restate)
    assert len(groups) == node_count(mode)
    for group_id, group in groups.items():
        policies = host_policies(group)
        assert PT_DURATION.fullmatch(policies["Timeout"] or ""), policies
        assert policies == {
            "Count": 1,
            "Timeout": policies["Timeout"],
            "WaitOnResourceSignals": True,
            "PauseTime": policies["Timeout"],
            "MaxBatchSize": 1,
            "MinInstancesInService": 0,
        }, group_id
        # The boot script signals this very group, with cfn-signal, once restate-ready passes.
        user_data = joined(launch_data(restate, group_id)["UserData"])
        assert f"SIGNAL_RESOURCE='{group_id}'" in user_data
        assert "/opt/aws/bin/cfn-signal" in user_data
        wait = user_data.rindex("until why=$(")
        assert config.READY_COMMAND in user_data[wait:].splitlines()[0]
        assert user_data.rindex("signal SUCCESS") > wait


def image_ids(template: dict[str, Any]) -> list[Any]:
    return [data["ImageId"] for data in hosts(template)]


def ssm_parameters(template: dict[str, Any]) -> list[str]:
    """Parameters that CloudFormation reads from SSM at each deploy, but CDK's check of the bootstrap version."""
    return [
        k
        for k, p in template.get("Parameters", {}).items()
        if "SSM" in p["Type"] and not str(p.get("Default", "")).startswith("/cdk-bootstrap/")
    ]


def test_nothing_evaluated_at_deploy_time_can_change_a_hosts_image(mode: str, templates: Templates) -> None:
    # Guards against the old SSM parameter of the latest AMI, read again at every deploy: a deploy after
    # AWS published a new image replaced every host.
    for stack, template in both(templates):
        assert not ssm_parameters(template), stack
    restate, _ = templates
    assert image_ids(restate) == [RESOLVED_AT_LAUNCH] * node_count(mode)  # read by EC2 when it launches one


@pytest.mark.parametrize("mode", ["default", "cluster"])
def test_an_ami_id_pins_the_image_and_a_second_synthesis_gives_the_same_images(
    mode: str, changed_boot: Callable[[str, str], Templates], synthesized: Callable[[str], Templates]
) -> None:
    # Guards against the old hosts, whose image was a template parameter that no context could pin.
    if mode == "default":
        pinned, _ = changed_boot(mode, "ami")
        assert not ssm_parameters(pinned)
        assert image_ids(pinned) == [PINNED_AMI]
    restate, _ = synthesized(mode)
    again, _ = changed_boot(mode, "script")  # another synthesis, with a changed boot script only
    assert image_ids(again) == image_ids(restate) == [RESOLVED_AT_LAUNCH] * node_count(mode)


def test_a_dead_instance_is_replaced_and_its_successor_takes_over_the_nodes_interface_and_volume(
    mode: str, templates: Templates
) -> None:
    # Guards against the old single instances: one that died stayed dead until someone deployed again.
    restate, _ = templates
    volumes = set(resources(restate, "AWS::EC2::Volume"))
    interfaces = set(resources(restate, "AWS::EC2::NetworkInterface"))
    assert len(volumes) == len(interfaces) == node_count(mode)
    taken: list[tuple[str, str]] = []
    for group_id, group in node_groups(restate).items():
        props = group["Properties"]
        assert (props["MinSize"], props["MaxSize"], props["HealthCheckType"]) == ("1", "1", "EC2"), group_id
        user_data = launch_data(restate, group_id)["UserData"]
        [volume] = [v for v in volumes if mentions(user_data, v)]
        [interface] = [i for i in interfaces if mentions(user_data, i)]
        taken.append((volume, interface))
        text = joined(user_data)
        assert "aws ec2 attach-network-interface" in text
        assert "aws ec2 attach-volume" in text
    # Each node its own.
    assert {v for v, _ in taken} == volumes
    assert {i for _, i in taken} == interfaces


def private_records(template: dict[str, Any]) -> dict[str, list[Any]]:
    """The private zone's A records by their first label (`admin`, `node-1`, ...)."""
    [zone] = resources(template, "AWS::Route53::HostedZone")
    return {
        r["Properties"]["Name"].split(".")[0]: r["Properties"]["ResourceRecords"]
        for r in resources(template, "AWS::Route53::RecordSet").values()
        if r["Properties"]["HostedZoneId"] == {"Ref": zone}
    }


def test_the_nodes_addresses_survive_a_replacement(mode: str, templates: Templates) -> None:
    # Guards against the old records, Elastic IP and targets, which named an instance (its PrivateIp, its id).
    restate, _ = templates
    groups = list(node_groups(restate))
    interfaces = node_interfaces(restate)
    assert len(groups) == len(interfaces) == node_count(mode)
    addresses = []
    for group_id, interface_id in zip(groups, interfaces, strict=True):
        interface = restate["Resources"][interface_id]["Properties"]
        [subnet] = restate["Resources"][group_id]["Properties"]["VPCZoneIdentifier"]
        assert interface["SubnetId"] == subnet
        cidr = ipaddress.IPv4Network(restate["Resources"][subnet["Ref"]]["Properties"]["CidrBlock"])
        address = interface["PrivateIpAddress"]
        assert isinstance(address, str)
        assert ipaddress.IPv4Address(address) in cidr
        stack = "-".join(filter(None, [MODES[mode].get("prefix"), "RestateStack"]))
        assert {"Key": HOST_TAG, "Value": stack} in interface["Tags"]  # the role may attach it to this stack's hosts
        assert interface_id in as_list(restate["Resources"][group_id]["DependsOn"])
        addresses.append(address)
    if not groups:
        return
    records = private_records(restate)
    assert records.pop("admin") == addresses
    if len(groups) > 1:
        assert records == {f"node-{n}": [a] for n, a in enumerate(addresses, start=1)}
    else:
        assert records == {}
    elastic_ips = resources(restate, "AWS::EC2::EIP")
    balancers = resources(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    if balancers:
        assert not elastic_ips
        [target_group] = resources(restate, "AWS::ElasticLoadBalancingV2::TargetGroup")
        assert "Targets" not in restate["Resources"][target_group]["Properties"]
        for group_id in groups:
            assert restate["Resources"][group_id]["Properties"]["TargetGroupARNs"] == [{"Ref": target_group}]
    else:
        [(eip_id, eip)] = elastic_ips.items()
        assert "InstanceId" not in eip["Properties"]
        [association] = [a["Properties"] for a in resources(restate, "AWS::EC2::EIPAssociation").values()]
        assert association == {
            "AllocationId": {"Fn::GetAtt": [eip_id, "AllocationId"]},
            "NetworkInterfaceId": {"Ref": interfaces[0]},
        }


def test_operators_get_in_with_session_manager_and_read_the_boot_and_the_units_in_cloudwatch(
    mode: str, templates: Templates
) -> None:
    # Guards against the old hosts: no way in but the EC2 serial console, and neither the boot's output
    # nor the units' journal left the host.
    restate, _ = templates
    if not node_count(mode):
        return
    role = restate["Resources"][host_role(restate)]["Properties"]
    managed = [joined(arn) for arn in role["ManagedPolicyArns"]]
    assert "arn:<ref>:iam::aws:policy/AmazonSSMManagedInstanceCore" in managed
    for data in hosts(restate):
        assert "KeyName" not in data
    for rule in ingress_rules(restate):
        assert rule["IpProtocol"] != "-1", rule
        assert not rule["FromPort"] <= 22 <= rule["ToPort"], rule
    [log_group] = [
        k
        for k, g in resources(restate, "AWS::Logs::LogGroup").items()
        if str(g["Properties"].get("LogGroupName", "")).startswith("/restate/")
    ]
    for n, data in enumerate(hosts(restate), start=1):
        node = n if node_count(mode) > 1 else None
        text = joined(data["UserData"])
        assert mentions(data["UserData"], log_group)
        assert "LOG_GROUP='<ref>'" in text
        agent = config.cloudwatch_agent_config(node)
        assert agent in text
        files = json.loads(agent)["logs"]["logs_collected"]["files"]["collect_list"]
        suffix = "" if node is None else f"-{node}"
        assert [(f["file_path"], f["log_group_name"], f["log_stream_name"]) for f in files] == [
            ("/var/log/cloud-init-output.log", "${LOG_GROUP}", f"cloud-init{suffix}-{{instance_id}}"),
            (config.JOURNAL_FILE, "${LOG_GROUP}", f"units{suffix}-{{instance_id}}"),
        ]
        # The journal file is written by a unit that follows the host's units, the key's timer among them.
        keyed = "ingressAuth" not in MODES[mode]
        journal = config.units("self-signed", "<ref>" if keyed else None, node)[config.JOURNAL_UNIT]
        assert journal in text
        assert f"StandardOutput=append:{config.JOURNAL_FILE}" in journal
        assert ("--unit=restate-ingress-key.timer" in journal) == keyed
        assert "--unit=restate.service" in journal
        assert f"systemctl enable --now {config.JOURNAL_UNIT}" in text
        assert "amazon-cloudwatch-agent-ctl -a fetch-config" in text
