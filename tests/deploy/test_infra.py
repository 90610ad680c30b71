"""The CDK app, synthesised in tests (no CLI, no AWS account) in each deployment mode.

Each synthesis runs the AWS Solutions checks of cdk-nag: a violation that is
not acknowledged with a reason fails synthesis, and so these tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App

from app import build_app
from holiday.functions import FUNCTIONS
from holiday_host.config import BALANCER_TARGET_PORT, FrontLayout, NodeLayout, nginx_config, restate_config
from tests.synth import (
    CALLERS,
    CERTIFICATE,
    CLOUD,
    SECRET,
    Templates,
    as_list,
    grants_on,
    host_group,
    host_role,
    ingress_rules,
    joined,
    node_groups,
    only,
    only_host,
    resources,
    statements_of_role,
    synth,
)


@pytest.fixture(scope="module")
def default(synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized("default")


@pytest.fixture(scope="module")
def prefixed(synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized("prefix")


@pytest.fixture(scope="module")
def cloud(synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized("cloud")


@pytest.fixture(scope="module")
def acm(synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized("acm")


@pytest.fixture(scope="module")
def open_ingress(synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized("open")


def function_roles(template: dict[str, Any]) -> dict[str, str]:
    """Service function name ("trips", ...) -> its role's logical id."""
    roles = {}
    for function in resources(template, "AWS::Lambda::Function").values():
        props = function["Properties"]
        if props.get("Handler") in FUNCTIONS.values():
            name = props["Handler"].split(".")[2]
            roles[name] = props["Role"]["Fn::GetAtt"][0]
    return roles


# --- RestateStack, self-hosted -------------------------------------------------------------


def test_self_hosted_restate_is_one_arm64_node_with_a_separate_encrypted_data_volume(default: Templates) -> None:
    restate, _ = default
    assert len(node_groups(restate)) == 1
    host = only_host(restate)
    assert host["InstanceType"].startswith("t4g.")  # Graviton: arm64
    assert "al2023-ami" in host["ImageId"]
    assert "arm64" in host["ImageId"]
    volume = only(restate, "AWS::EC2::Volume")
    assert volume["Properties"]["Encrypted"] is True
    assert volume["DeletionPolicy"] == "Snapshot"  # outlives the instance and even the stack
    # Attached at boot by the host itself, so a replacement instance can take it over.
    assert not resources(restate, "AWS::EC2::VolumeAttachment")
    user_data = joined(host["UserData"])
    assert "aws ec2 attach-volume" in user_data
    assert "restatedev/restate:1.7.12" in user_data
    # The configuration the rehearsal runs (tests/deploy/test_host_rehearsal.py), the ingress behind nginx.
    assert restate_config(NodeLayout()) in user_data
    assert 'bind-address = "127.0.0.1:8080"' in user_data
    assert nginx_config(FrontLayout(), keyed=True) in user_data
    assert host["MetadataOptions"] == {"HttpTokens": "required"}


def test_the_single_nodes_data_volume_and_group_keep_their_logical_ids(default: Templates) -> None:
    # A new logical id would be a new, empty volume (the old one left as a snapshot) and a new node.
    restate, _ = default
    assert list(resources(restate, "AWS::EC2::Volume")) == ["RestateData74B76A42"]
    # The node's group: no hash of its user data in it, so a new boot script rolls the group instead of replacing it.
    assert list(node_groups(restate)) == ["RestateNodeASG550AE182"]
    assert "RestateAdminZone8A37CCB0" in restate["Resources"]
    assert "RestateIngressKey83D03C2A" in restate["Resources"]


def test_restate_logs_go_to_the_documented_log_group_and_traces_to_xray(default: Templates) -> None:
    restate, _ = default
    groups = [g["Properties"].get("LogGroupName") for g in resources(restate, "AWS::Logs::LogGroup").values()]
    assert "/restate/restate" in groups
    user_data = joined(only_host(restate)["UserData"])
    assert "awslogs-stream=restate" in user_data
    assert "awsxray" in user_data
    assert 'tracing-endpoint = "http://127.0.0.1:4317"' in user_data
    actions = json.dumps([s["Action"] for s in statements_of_role(restate, host_role(restate))])
    assert "xray:PutTraceSegments" in actions


def test_by_default_the_ingress_is_open_on_443_and_the_admin_port_to_no_cidr(default: Templates) -> None:
    restate, _ = default
    rules = ingress_rules(restate)
    public = [r for r in rules if r.get("CidrIp") == "0.0.0.0/0"]
    assert [(r["FromPort"], r["ToPort"]) for r in public] == [(443, 443)]
    admin = [r for r in rules if r.get("FromPort") == 9070]
    assert len(admin) == 1
    assert "SourceSecurityGroupId" in admin[0]
    assert "CidrIp" not in admin[0]
    assert "CidrIpv6" not in admin[0]
    assert not [r for r in rules if r.get("FromPort") == 8080]  # the plain ingress is not exposed
    outputs = restate["Outputs"]
    assert "RestateIngressEndpoint" in outputs
    assert "https://" in json.dumps(outputs["RestateIngressEndpoint"]["Value"])


def test_with_an_acm_certificate_a_load_balancer_ends_tls_and_nginx_on_the_host_checks_the_key(
    acm: Templates,
) -> None:
    restate, _ = acm
    listener = only(restate, "AWS::ElasticLoadBalancingV2::Listener")["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (443, "TLS")
    assert listener["Certificates"] == [{"CertificateArn": CERTIFICATE}]
    target_group = only(restate, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert (target_group["Port"], target_group["Protocol"]) == (BALANCER_TARGET_PORT, "TCP")
    [balancer_group] = only(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]["SecurityGroups"]
    rules = ingress_rules(restate)
    # Callers reach the balancer on 443; only the balancer reaches nginx; nothing reaches Restate's 8080.
    public = [r for r in rules if r.get("CidrIp") == "0.0.0.0/0"]
    assert [(r["FromPort"], r["ToPort"]) for r in public] == [(443, 443)]
    [from_balancer] = [r for r in rules if r.get("FromPort") == BALANCER_TARGET_PORT]
    assert from_balancer["SourceSecurityGroupId"] == balancer_group
    assert from_balancer["GroupId"] == {"Fn::GetAtt": [host_group(restate), "GroupId"]}
    assert not [r for r in rules if r.get("FromPort") == 8080]
    user_data = joined(only_host(restate)["UserData"])
    assert nginx_config(FrontLayout.for_host("load-balancer"), keyed=True) in user_data
    assert f"listen {BALANCER_TARGET_PORT};" in user_data
    assert restate_config(NodeLayout()) in user_data
    assert "openssl" not in user_data  # no certificate on the host: the balancer holds it


# --- the ingress key ------------------------------------------------------------------------


def test_the_ingress_key_is_generated_at_deploy_and_only_the_hosts_role_may_read_it(default: Templates) -> None:
    restate, _ = default
    [(secret_id, secret)] = resources(restate, "AWS::SecretsManager::Secret").items()
    # Secrets Manager makes the value when the stack is created: no template holds it.
    assert secret["Properties"]["GenerateSecretString"] == {"ExcludePunctuation": True, "PasswordLength": 48}
    assert "SecretString" not in secret["Properties"]
    assert grants_on(default, secret_id) == {
        host_role(restate): {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    }
    assert not resources(restate, "AWS::SecretsManager::ResourcePolicy")
    for template in default:  # and no role may read secrets in general
        for policy in resources(template, "AWS::IAM::Policy").values():
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                if any(a.startswith("secretsmanager:") for a in as_list(statement["Action"])):
                    assert as_list(statement["Resource"]) == [{"Ref": secret_id}], statement
    # The output that names it, and the host that reads it by that name (its ARN) at boot and every minute.
    assert restate["Outputs"]["IngressKeySecretArn"]["Value"] == {"Ref": secret_id}
    user_data = only_host(restate)["UserData"]
    assert {"Ref": secret_id} in user_data["Fn::Base64"]["Fn::Join"][1]
    text = joined(user_data)
    assert "/usr/local/bin/restate-ingress-key <ref> /etc/restate-ingress/ingress-key.conf" in text
    assert "restate-ingress-key.timer" in text.rsplit("systemctl enable --now", 1)[1]


def test_with_ingress_auth_none_there_is_no_key_and_nginx_checks_none(open_ingress: Templates) -> None:
    restate, _ = open_ingress
    assert not resources(restate, "AWS::SecretsManager::Secret")
    assert "IngressKeySecretArn" not in restate["Outputs"]
    assert not [s for s in statements_of_role(restate, host_role(restate)) if "secretsmanager" in json.dumps(s)]
    user_data = joined(only_host(restate)["UserData"])
    assert nginx_config(FrontLayout(), keyed=False) in user_data
    assert "ingress_key" not in user_data
    assert "restate-ingress-key" not in user_data  # no key script, unit or timer, and no journal of them


def test_an_open_ingress_is_one_warning_line_when_the_app_is_built(
    assets_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    build_app(App(context={"ingressAuth": "none"}), assets_dir=assets_dir)
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("warning: ingressAuth=none: anyone on the internet can book")
    build_app(App(context={}), assets_dir=assets_dir)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("mode", "callers"),
    [
        ("default", ["0.0.0.0/0"]),
        ("open", ["0.0.0.0/0"]),
        ("cidrs", CALLERS),
        ("domain", CALLERS),
        ("cluster", ["0.0.0.0/0"]),
        ("cluster-acm", ["0.0.0.0/0"]),
    ],
)
def test_the_security_groups_admit_callers_from_ingress_cidrs_only(
    mode: str, callers: list[str], synthesized: Callable[[str], Templates]
) -> None:
    restate, _ = synthesized(mode)
    rules = ingress_rules(restate)
    from_addresses = sorted((r["CidrIp"], r["FromPort"], r["ToPort"]) for r in rules if "CidrIp" in r)
    assert from_addresses == sorted((cidr, 443, 443) for cidr in callers)
    assert not [r for r in rules if "CidrIpv6" in r]
    balancers = resources(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    # The callers' rules sit on the balancer's group when there is one, else on the node's.
    groups = resources(restate, "AWS::EC2::SecurityGroup")
    [group] = [k for k, g in groups.items() if g["Properties"].get("SecurityGroupIngress")]
    if balancers:
        [balancer] = balancers.values()
        assert balancer["Properties"]["SecurityGroups"] == [{"Fn::GetAtt": [group, "GroupId"]}]
    else:
        assert group == host_group(restate)


def test_the_invoker_role_is_assumed_only_by_the_restate_node(default: Templates) -> None:
    restate, holiday = default
    roles = resources(restate, "AWS::IAM::Role")
    [invoker] = [k for k in roles if k.startswith("InvokerRole")]
    principal = roles[invoker]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]
    assert "Fn::GetAtt" in json.dumps(principal)  # the node's role, not a service or an account
    [policy] = [p for k, p in resources(holiday, "AWS::IAM::Policy").items() if k.startswith("RestateMayInvoke")]
    [statement] = policy["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Action"] == "lambda:InvokeFunction"
    assert len(statement["Resource"]) == 4  # each function's versions, nothing else


# --- RestateHolidayStack -------------------------------------------------------------------


def test_three_tables_with_pk_sk_on_demand_and_point_in_time_recovery(default: Templates) -> None:
    _, holiday = default
    tables = resources(holiday, "AWS::DynamoDB::Table")
    names = sorted(t["Properties"]["TableName"] for t in tables.values())
    assert names == ["restate-holiday-Cars", "restate-holiday-Flights", "restate-holiday-Payments"]
    for table in tables.values():
        props = table["Properties"]
        assert props["KeySchema"] == [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ]
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_four_arm64_functions_from_the_packaged_assets_with_tracing_and_kept_versions(default: Templates) -> None:
    _, holiday = default
    functions = [f["Properties"] for f in resources(holiday, "AWS::Lambda::Function").values()]
    services = {f["Handler"]: f for f in functions if f["Handler"] in FUNCTIONS.values()}
    assert set(services) == set(FUNCTIONS.values())
    for props in services.values():
        assert props["Architectures"] == ["arm64"]
        assert props["Runtime"] == "python3.14"
        assert props["TracingConfig"] == {"Mode": "Active"}
        assert props["MemorySize"] == 1024
        assert props["Timeout"] == 30
    versions = resources(holiday, "AWS::Lambda::Version")
    assert len(versions) == 4
    assert {v["DeletionPolicy"] for v in versions.values()} == {"Retain"}
    assert only(holiday, "AWS::SNS::Topic")["Properties"]["TopicName"] == "restate-holiday-trips"


def test_each_function_may_write_only_its_own_table_and_only_trips_may_publish(default: Templates) -> None:
    _, holiday = default
    tables = {
        t["Properties"]["TableName"].split("-")[-1].lower(): k
        for k, t in resources(holiday, "AWS::DynamoDB::Table").items()
    }
    [topic] = resources(holiday, "AWS::SNS::Topic")
    for name, role in function_roles(holiday).items():
        # Besides its own log group and X-Ray, what may the function touch?
        data = [
            s
            for s in statements_of_role(holiday, role)
            if not all(a.startswith(("logs:", "xray:")) for a in as_list(s["Action"]))
        ]
        if name == "trips":
            assert data == [{"Action": "sns:Publish", "Effect": "Allow", "Resource": {"Ref": topic}}]
        else:
            assert data == [
                {
                    "Action": ["dynamodb:PutItem", "dynamodb:UpdateItem"],
                    "Effect": "Allow",
                    "Resource": {"Fn::GetAtt": [tables[name], "Arn"]},
                }
            ]
    for policy in resources(holiday, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert "*" not in actions
            assert not [a for a in actions if a.endswith(":*") and not a.startswith("xray")]


def test_each_function_version_is_registered_with_restate(default: Templates) -> None:
    _, holiday = default
    registrations = resources(holiday, "Custom::RestateServiceDeployment")
    versions = set(resources(holiday, "AWS::Lambda::Version"))
    assert {r["Properties"]["FunctionArn"]["Ref"] for r in registrations.values()} == versions
    for registration in registrations.values():
        props = registration["Properties"]
        assert ":9070" in json.dumps(props["AdminUrl"])
        assert props["RemovalPolicy"] == "retain"
        assert "AuthTokenSecretArn" not in props
    handler = [
        f["Properties"]
        for f in resources(holiday, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.on_event"
    ]
    assert len(handler) == 1
    assert handler[0]["Timeout"] == 600
    assert "VpcConfig" in handler[0]  # it reaches the admin API inside the VPC


def test_table_names_are_exported_as_the_reference_readme_expects(default: Templates) -> None:
    _, holiday = default
    outputs = holiday["Outputs"]
    for name in ("flights", "cars", "payments"):
        assert outputs[f"{name}TableName"]["Export"] == {"Name": f"{name}TableName"}


# --- prefix --------------------------------------------------------------------------------


def test_a_prefix_names_stacks_resources_log_group_and_exports(prefixed: Templates, assets_dir: Path) -> None:
    restate, holiday = prefixed
    app = App(context={"prefix": "alice"})
    stacks = build_app(app, assets_dir=assets_dir)
    assert [s.stack_name for s in stacks] == ["alice-RestateStack", "alice-RestateHolidayStack"]
    groups = [g["Properties"].get("LogGroupName") for g in resources(restate, "AWS::Logs::LogGroup").values()]
    assert "/restate/alice/restate" in groups
    names = sorted(t["Properties"]["TableName"] for t in resources(holiday, "AWS::DynamoDB::Table").values())
    assert names == ["alice-restate-holiday-Cars", "alice-restate-holiday-Flights", "alice-restate-holiday-Payments"]
    function_names = {f["Properties"].get("FunctionName") for f in resources(holiday, "AWS::Lambda::Function").values()}
    assert {f"alice-restate-holiday-{n}" for n in FUNCTIONS} <= function_names
    assert holiday["Outputs"]["flightsTableName"]["Export"] == {"Name": "alice-flightsTableName"}


# --- Restate Cloud -------------------------------------------------------------------------


def test_cloud_mode_has_no_self_hosted_resources_and_an_invoker_role_for_restate_cloud(cloud: Templates) -> None:
    restate, holiday = cloud
    kinds = {r["Type"] for r in restate["Resources"].values()}
    assert kinds == {"AWS::IAM::Role"}
    role = only(restate, "AWS::IAM::Role")["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assume = next(s for s in role if s["Action"] == "sts:AssumeRole")
    assert "654654156625" in json.dumps(assume["Principal"])
    assert assume["Condition"]["StringEquals"] == {"sts:ExternalId": "env_abc123"}
    assert assume["Condition"]["ArnEquals"] == {"aws:PrincipalArn": "arn:aws:iam::654654156625:role/RestateCloud"}
    assert any(s["Action"] == "sts:TagSession" for s in role)
    assert restate["Outputs"]["RestateIngressEndpoint"]["Value"] == "https://abc123.env.us.restate.cloud"
    for registration in resources(holiday, "Custom::RestateServiceDeployment").values():
        assert registration["Properties"]["AdminUrl"] == "https://abc123.env.us.restate.cloud:9070"
        assert registration["Properties"]["AuthTokenSecretArn"] == SECRET
    [handler] = [
        f["Properties"]
        for f in resources(holiday, "AWS::Lambda::Function").values()
        if f["Properties"].get("Handler") == "handler.on_event"
    ]
    assert "VpcConfig" not in handler
    role_id = handler["Role"]["Fn::GetAtt"][0]
    assert {"Action": "secretsmanager:GetSecretValue", "Effect": "Allow", "Resource": SECRET} in statements_of_role(
        holiday, role_id
    )


def test_cloud_region_eu(assets_dir: Path) -> None:
    restate, _ = synth(assets_dir, {**CLOUD, "region": "eu"})
    assert restate["Outputs"]["RestateIngressEndpoint"]["Value"] == "https://abc123.env.eu.restate.cloud"
