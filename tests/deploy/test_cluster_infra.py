"""RestateStack with `restateNodes=3`: a replicated cluster of three nodes, synthesised (no CLI, no AWS account).

Each synthesis runs cdk-nag's AWS Solutions checks too; the rules of what AWS accepts
(tests/deploy/test_deploy_rules.py) run over the cluster modes as over every other.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from holiday_host.config import (
    ADMIN_PORT,
    BALANCER_TARGET_PORT,
    HTTPS_PORT,
    Cluster,
    FrontLayout,
    NodeLayout,
    TlsMode,
    nginx_config,
    restate_config,
)
from tests.synth import (
    Templates,
    as_list,
    grants_on,
    host_group,
    host_role,
    hosts,
    ingress_rules,
    joined,
    mentions,
    node_groups,
    node_interfaces,
    only,
    resources,
    synth,
)

NODES = 3
FABRIC_PORT = NodeLayout().fabric_port


@pytest.fixture(scope="module")
def cluster(synthesized: Callable[[str], Templates]) -> Templates:
    return synthesized("cluster")


def nodes(template: dict[str, Any]) -> list[dict[str, Any]]:
    """What each node launches (its launch template's data), node 1 first."""
    found = hosts(template)
    assert len(found) == NODES
    return found


def node_ids(template: dict[str, Any]) -> list[str]:
    """The nodes' Auto Scaling groups, node 1 first."""
    return list(node_groups(template))


def subnet_of(template: dict[str, Any], group_id: str) -> str:
    [subnet] = template["Resources"][group_id]["Properties"]["VPCZoneIdentifier"]
    return str(subnet["Ref"])


def node_addresses(template: dict[str, Any]) -> list[str]:
    """Each node's fixed private address, node 1 first: that of its own network interface, in the node's subnet."""
    found = []
    for group_id, interface_id in zip(node_ids(template), node_interfaces(template), strict=True):
        interface = template["Resources"][interface_id]["Properties"]
        subnet = subnet_of(template, group_id)
        assert interface["SubnetId"] == {"Ref": subnet}
        cidr = ipaddress.IPv4Network(template["Resources"][subnet]["Properties"]["CidrBlock"])
        assert ipaddress.IPv4Address(interface["PrivateIpAddress"]) in cidr
        found.append(str(interface["PrivateIpAddress"]))
    return found


def zone_name(template: dict[str, Any]) -> str:
    return str(only(template, "AWS::Route53::HostedZone")["Properties"]["Name"]).removesuffix(".")


def records(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The private zone's records by name (`admin`, `node-1`, ...)."""
    zone = zone_name(template)
    return {
        r["Properties"]["Name"].removesuffix(f".{zone}."): r["Properties"]
        for r in resources(template, "AWS::Route53::RecordSet").values()
    }


# --- the nodes and their data -----------------------------------------------------------------


def test_three_nodes_in_three_zones_each_with_its_own_encrypted_volume_in_its_zone(cluster: Templates) -> None:
    restate, _ = cluster
    volumes = resources(restate, "AWS::EC2::Volume")
    assert len(volumes) == NODES
    public = {k for k in resources(restate, "AWS::EC2::Subnet") if "public" in k}
    zones, subnets, attached = [], set(), set()
    for group_id, node in zip(node_ids(restate), nodes(restate), strict=True):
        assert node["InstanceType"] == "t4g.small"
        # AttachVolume's condition: every instance of the group is tagged as this stack's host.
        tags = restate["Resources"][group_id]["Properties"]["Tags"]
        assert {"Key": "restate-holiday:host", "PropagateAtLaunch": True, "Value": "RestateStack"} in tags
        subnet = subnet_of(restate, group_id)
        assert subnet in public
        subnets.add(subnet)
        zone = restate["Resources"][subnet]["Properties"]["AvailabilityZone"]
        zones.append(zone)
        # Its own volume, attached at boot by the host (the boot script names it), in the node's zone.
        [volume] = [v for v in volumes if mentions(node["UserData"], v)]
        attached.add(volume)
        assert volumes[volume]["Properties"]["AvailabilityZone"] == zone
        assert "aws ec2 attach-volume" in joined(node["UserData"])
    assert attached == set(volumes)
    assert len(subnets) == NODES
    assert [zone["Fn::Select"][0] for zone in zones] == [0, 1, 2]  # the region's first three zones, one each
    for properties in volumes.values():
        assert properties["Properties"]["Encrypted"] is True
        assert properties["Properties"]["VolumeType"] == "gp3"
        assert properties["DeletionPolicy"] == "Snapshot"
    assert not resources(restate, "AWS::EC2::VolumeAttachment")
    for template in resources(restate, "AWS::EC2::LaunchTemplate").values():
        assert template["Properties"]["LaunchTemplateData"]["MetadataOptions"] == {"HttpTokens": "required"}
    # The role may attach the three volumes (and only to this stack's hosts, by tag).
    [attach] = [s for s in statements(restate) if s.get("Sid") == "AttachTheDataVolume"]
    assert sorted(v for v in volumes if mentions(attach["Resource"], v)) == sorted(volumes)


def statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of every IAM policy in the template."""
    policies = resources(template, "AWS::IAM::Policy").values()
    return [s for p in policies for s in p["Properties"]["PolicyDocument"]["Statement"]]


def test_each_nodes_boot_script_holds_the_cluster_configuration_for_its_own_index(cluster: Templates) -> None:
    restate, _ = cluster
    [bucket] = resources(restate, "AWS::S3::Bucket")
    peers = tuple(f"http://node-{n}.{zone_name(restate)}:{FABRIC_PORT}" for n in range(1, NODES + 1))
    # joined() shows each reference as <ref>: here, the bucket's name.
    expected = Cluster(peers=peers, snapshots="s3://<ref>/snapshots")
    configs = [restate_config(NodeLayout(fabric_ip="0.0.0.0"), expected, index) for index in range(NODES)]
    assert len(set(configs)) == NODES
    for index, node in enumerate(nodes(restate)):
        user_data = joined(node["UserData"])
        assert [config in user_data for config in configs] == [i == index for i in range(NODES)]
        assert mentions(node["UserData"], bucket)
        # Its log streams, in the one log group.
        assert f"awslogs-stream=restate-{index + 1} " in user_data
        assert f"awslogs-stream=nginx-{index + 1} " in user_data
    groups = [g["Properties"].get("LogGroupName") for g in resources(restate, "AWS::Logs::LogGroup").values()]
    assert groups.count("/restate/restate") == 1


def test_nodes_find_each_other_and_the_admin_api_at_private_names_that_follow_them(cluster: Templates) -> None:
    restate, holiday = cluster
    found = records(restate)
    assert set(found) == {"admin", *(f"node-{n}" for n in range(1, NODES + 1))}
    addresses = node_addresses(restate)
    assert len(set(addresses)) == NODES
    for n, (address, node) in enumerate(zip(addresses, nodes(restate), strict=True), start=1):
        assert found[f"node-{n}"]["ResourceRecords"] == [address]
        # The node takes over its address at boot, whichever instance it is.
        assert f"NODE_ADDRESS='{address}'" in joined(node["UserData"])
    # The registration function reaches the admin API at any of the three.
    assert found["admin"]["ResourceRecords"] == addresses
    for record in found.values():
        assert (record["Type"], record["TTL"]) == ("A", "30")
    zone = only(restate, "AWS::Route53::HostedZone")["Properties"]
    assert zone["VPCs"][0]["VPCId"] == {"Ref": only_key(restate, "AWS::EC2::VPC")}  # private: only the VPC resolves it
    admin_url = f"http://admin.{zone_name(restate)}:{ADMIN_PORT}"
    for registration in resources(holiday, "Custom::RestateServiceDeployment").values():
        assert registration["Properties"]["AdminUrl"] == admin_url


def only_key(template: dict[str, Any], kind: str) -> str:
    [key] = resources(template, kind)
    return key


# --- who may reach what -----------------------------------------------------------------------


@pytest.mark.parametrize(("mode", "port"), [("cluster", HTTPS_PORT), ("cluster-acm", BALANCER_TARGET_PORT)])
def test_the_nodes_admit_the_fabric_from_each_other_admin_from_registration_and_ingress_from_the_balancer(
    mode: str, port: int, synthesized: Callable[[str], Templates]
) -> None:
    restate, _ = synthesized(mode)
    hosts = {"Fn::GetAtt": [host_group(restate), "GroupId"]}
    groups = resources(restate, "AWS::EC2::SecurityGroup")
    [admin_clients] = [k for k, g in groups.items() if g["Properties"]["GroupDescription"].startswith("May call")]
    [balancer] = only(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer")["Properties"]["SecurityGroups"]
    to_nodes = [
        (r["FromPort"], r["ToPort"], r.get("SourceSecurityGroupId", r.get("CidrIp")))
        for r in ingress_rules(restate)
        if r.get("GroupId") == hosts
    ]
    assert sorted(to_nodes, key=json.dumps) == sorted(
        [
            (port, port, balancer),
            (ADMIN_PORT, ADMIN_PORT, {"Fn::GetAtt": [admin_clients, "GroupId"]}),
            (FABRIC_PORT, FABRIC_PORT, hosts),
        ],
        key=json.dumps,
    )
    # No inline rule on the nodes' group, and the fabric is open to nothing else.
    assert "SecurityGroupIngress" not in groups[host_group(restate)]["Properties"]
    assert [r for r in ingress_rules(restate) if r["FromPort"] <= FABRIC_PORT <= r["ToPort"]] == [
        r for r in ingress_rules(restate) if r.get("GroupId") == hosts and r["FromPort"] == FABRIC_PORT
    ]


# --- partition snapshots ----------------------------------------------------------------------


def test_snapshots_go_to_a_private_encrypted_tls_only_bucket_that_only_the_nodes_may_use(cluster: Templates) -> None:
    restate, _ = cluster
    [(bucket_id, bucket)] = resources(restate, "AWS::S3::Bucket").items()
    props = bucket["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert props["PublicAccessBlockConfiguration"] == dict.fromkeys(
        ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"), True
    )
    assert (bucket["DeletionPolicy"], bucket["UpdateReplacePolicy"]) == ("Retain", "Retain")
    # Named in an output, to find (and empty) after the stack is gone.
    [named] = [v for k, v in restate["Outputs"].items() if k.startswith("RestateSnapshotBucketName")]
    assert named["Value"] == {"Ref": bucket_id}
    # The bucket policy only refuses: any call without TLS, on the bucket and its objects.
    policy = only(restate, "AWS::S3::BucketPolicy")["Properties"]
    assert policy["Bucket"] == {"Ref": bucket_id}
    [deny] = policy["PolicyDocument"]["Statement"]
    assert (deny["Effect"], deny["Action"], deny["Condition"]) == (
        "Deny",
        "s3:*",
        {"Bool": {"aws:SecureTransport": "false"}},
    )
    assert len(deny["Resource"]) == 2
    # Only the nodes' role has any S3 action on it, and no role has an S3 action on everything.
    granted = grants_on(cluster, bucket_id)
    assert list(granted) == [host_role(restate)]
    assert {a.split(":")[0] for a in granted[host_role(restate)]} == {"s3"}
    for template in cluster:
        for statement in statements(template):
            if '"s3:' in json.dumps(statement["Action"]):
                assert mentions(statement["Resource"], bucket_id), statement
    # Snapshot traffic stays in the VPC: a gateway endpoint on the nodes' route tables.
    endpoint = only(restate, "AWS::EC2::VPCEndpoint")["Properties"]
    assert endpoint["VpcEndpointType"] == "Gateway"
    assert ".s3" in joined(endpoint["ServiceName"])
    public_tables = {k for k in resources(restate, "AWS::EC2::RouteTable") if "public" in k}
    assert {t["Ref"] for t in endpoint["RouteTableIds"]} == public_tables


# --- the ingress ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "listener_protocol", "port", "tls"),
    [("cluster", "TCP", HTTPS_PORT, "self-signed"), ("cluster-acm", "TLS", BALANCER_TARGET_PORT, "load-balancer")],
)
def test_a_load_balancer_over_the_three_zones_passes_the_ingress_to_nginx_on_every_node(
    mode: str, listener_protocol: str, port: int, tls: TlsMode, synthesized: Callable[[str], Templates]
) -> None:
    restate, _ = synthesized(mode)
    [(balancer_id, balancer)] = resources(restate, "AWS::ElasticLoadBalancingV2::LoadBalancer").items()
    public = sorted(k for k in resources(restate, "AWS::EC2::Subnet") if "public" in k)
    assert sorted(subnet["Ref"] for subnet in balancer["Properties"]["Subnets"]) == public
    assert balancer["Properties"]["Scheme"] == "internet-facing"
    assert {"Key": "load_balancing.cross_zone.enabled", "Value": "true"} in balancer["Properties"][
        "LoadBalancerAttributes"
    ]
    listener = only(restate, "AWS::ElasticLoadBalancingV2::Listener")["Properties"]
    assert (listener["Port"], listener["Protocol"]) == (HTTPS_PORT, listener_protocol)
    assert ("Certificates" in listener) == (tls == "load-balancer")
    group = only(restate, "AWS::ElasticLoadBalancingV2::TargetGroup")["Properties"]
    assert (group["Port"], group["Protocol"]) == (port, "TCP")
    # Each node's group registers whichever instance it runs.
    target_group = only_key(restate, "AWS::ElasticLoadBalancingV2::TargetGroup")
    for group_id in node_ids(restate):
        assert restate["Resources"][group_id]["Properties"]["TargetGroupARNs"] == [{"Ref": target_group}]
    for node in nodes(restate):
        user_data = joined(node["UserData"])
        assert nginx_config(FrontLayout.for_host(tls), keyed=True) in user_data
        assert ("openssl req -x509" in user_data) == (tls == "self-signed")  # each node makes its own certificate
    outputs = restate["Outputs"]
    dns_name = {"Fn::GetAtt": [balancer_id, "DNSName"]}
    assert outputs["RestateIngressEndpoint"]["Value"] == {"Fn::Join": ["", ["https://", dns_name]]}
    [dns_output] = [v for k, v in outputs.items() if k.startswith("RestateLoadBalancerDnsName")]
    assert dns_output["Value"] == dns_name
    assert not resources(restate, "AWS::EC2::EIP")  # the balancer is the one public address


def test_the_ingress_key_is_one_secret_that_only_the_nodes_role_may_read(cluster: Templates) -> None:
    restate, _ = cluster
    [secret_id] = resources(restate, "AWS::SecretsManager::Secret")
    assert grants_on(cluster, secret_id) == {
        host_role(restate): {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
    }
    assert restate["Outputs"]["IngressKeySecretArn"]["Value"] == {"Ref": secret_id}
    for node in nodes(restate):
        assert "/usr/local/bin/restate-ingress-key <ref> /etc/restate-ingress/ingress-key.conf" in joined(
            node["UserData"]
        )
        assert mentions(node["UserData"], secret_id)


def test_an_open_cluster_ingress_has_no_key(assets_dir: Path) -> None:
    restate, _ = synth(assets_dir, {"restateNodes": "3", "ingressAuth": "none"})
    assert not resources(restate, "AWS::SecretsManager::Secret")
    assert "IngressKeySecretArn" not in restate["Outputs"]
    for node in nodes(restate):
        user_data = joined(node["UserData"])
        assert nginx_config(FrontLayout(), keyed=False) in user_data
        assert "restate-ingress-key" not in user_data  # no key script, unit or timer, and no journal of them


# --- what the services stack sees -------------------------------------------------------------


def test_the_services_stack_gets_the_same_kind_of_endpoint_as_from_a_single_node(
    cluster: Templates, synthesized: Callable[[str], Templates]
) -> None:
    _, holiday = cluster
    _, single = synthesized("default")
    assert {k: v["Type"] for k, v in holiday["Resources"].items()} == {
        k: v["Type"] for k, v in single["Resources"].items()
    }
    # The invoker role is assumed by the nodes' role, as by the single node's.
    restate, _ = cluster
    [invoker] = [k for k in resources(restate, "AWS::IAM::Role") if k.startswith("InvokerRole")]
    trust = resources(restate, "AWS::IAM::Role")[invoker]["Properties"]["AssumeRolePolicyDocument"]
    assert mentions(trust, host_role(restate))


def test_a_single_node_keeps_its_vpc_of_two_zones(synthesized: Callable[[str], Templates]) -> None:
    single, _ = synthesized("default")
    restate, _ = synthesized("cluster")
    assert len(resources(single, "AWS::EC2::Subnet")) == 4  # public and isolated, in two zones
    assert len(resources(restate, "AWS::EC2::Subnet")) == 6
    assert not resources(single, "AWS::S3::Bucket")
    assert not resources(single, "AWS::EC2::VPCEndpoint")


# --- replacing the nodes ----------------------------------------------------------------------


def depends_on(template: dict[str, Any], logical_id: str) -> set[str]:
    return set(as_list(template["Resources"][logical_id].get("DependsOn", [])))


@pytest.mark.parametrize("mode", ["cluster", "cluster-acm"])
def test_cluster_nodes_are_replaced_one_at_a_time_each_after_the_previous_has_signalled(
    mode: str, synthesized: Callable[[str], Templates]
) -> None:
    # Guards against the old independent instances, which CloudFormation replaced all at once (quorum lost).
    restate, _ = synthesized(mode)
    groups = node_ids(restate)
    assert len(groups) == NODES
    for n, group_id in enumerate(groups):
        # Node n+1 waits for node n's group, and for no later node. That each group is updated one
        # instance at a time and only on its signal is checked over every mode, these two included, by
        # test_deploy_rules.py's test_every_host_is_created_and_updated_only_on_its_own_signal.
        assert depends_on(restate, group_id) & set(groups) == set(groups[n - 1 : n] if n else [])


ZONES = ("eu-west-1a", "eu-west-1b", "eu-west-1c")


@pytest.fixture(scope="module")
def chosen(assets_dir: Path) -> Templates:
    """A cluster in the zones and of the instance type that the context names."""
    return synth(
        assets_dir,
        {"restateNodes": "3", "availabilityZones": ",".join(ZONES), "instanceType": "m7g.large"},
    )


def test_the_context_chooses_the_instance_type_and_the_nodes_zones_in_order(chosen: Templates) -> None:
    # Guards against the old hosts, whose type was always t4g.small and whose zones were the region's first three.
    restate, _ = chosen
    assert [node["InstanceType"] for node in nodes(restate)] == ["m7g.large"] * NODES
    zones = [restate["Resources"][subnet_of(restate, g)]["Properties"]["AvailabilityZone"] for g in node_ids(restate)]
    assert zones == list(ZONES)
    public = [s for k, s in resources(restate, "AWS::EC2::Subnet").items() if "public" in k]
    assert sorted(s["Properties"]["AvailabilityZone"] for s in public) == list(ZONES)
    for node, zone in zip(nodes(restate), ZONES, strict=True):  # each node's volume is in its zone
        [volume] = [v for k, v in resources(restate, "AWS::EC2::Volume").items() if mentions(node["UserData"], k)]
        assert volume["Properties"]["AvailabilityZone"] == zone
