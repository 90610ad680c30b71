"""A single self-hosted Restate node on EC2, with its data on a volume that outlives the instance.

The functions below it build the parts that a node of a cluster (`restate_cluster.py`) has too:
its log group, data volume, security groups, role, network interface, Auto Scaling group of one, ingress
key, private DNS names and the load balancer in front of the ingress. Each takes the construct to build
in, so the resources of the single node keep their logical ids.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import jsii
from aws_cdk import CfnElement, CfnOutput, Duration, RemovalPolicy, Size, Stack, Tags
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from holiday_host.config import ADMIN_PORT, BALANCER_TARGET_PORT, HEALTH_PATH, HTTPS_PORT, Cluster, Signal, boot_script
from infra.nag import acknowledge
from infra.settings import AMI_PARAMETER, ANYWHERE, DeploymentSettings

HOST_TAG = "restate-holiday:host"
# Resolvers cache the private names (admin, node-N) this long.
PRIVATE_RECORD_TTL = Duration.seconds(30)
# A node's fixed address, this far into its subnet (a /24).
NODE_ADDRESS_OFFSET = 228
# A new host installs Docker and pulls three images (a few minutes), waits for its predecessor's volume, then
# for Restate to catch up: its boot script gives up on each wait after 15 minutes and signals why.
SIGNAL_TIMEOUT = Duration.minutes(40)
DRAIN = Duration.seconds(30)  # how long the load balancer lets a leaving host finish its calls
# EC2 status checks are not held against a host that is still booting.
BOOT_GRACE = Duration.minutes(5)


class RestateHost(Construct):
    """One Restate node on EC2, in an Auto Scaling group of one, reachable as described on each port.

    - ingress: HTTPS on 443 from the ranges of `ingressCidrs` (by default anywhere), at a
      fixed Elastic IP through nginx with a self-signed certificate on the host, or through
      a network load balancer with the ACM certificate given (which passes plain HTTP to
      nginx on the host). Either way nginx refuses, with 401, any call without the ingress
      key: a generated secret (`ingress_key`) that the host's role reads;
    - admin (9070): only from `admin_clients`, a security group for the registration
      function inside the VPC, never from the internet; at a private DNS name of the
      node's fixed private address;
    - logs (Restate's, nginx's, the boot's and the host's units') to the CloudWatch log group of
      `settings`, traces to X-Ray; operators get in with SSM Session Manager (no SSH, no key pair).

    An instance that dies is replaced by its group, and a new boot script, image pin or instance
    type is rolled out by CloudFormation (see `node_group`); either way the new instance takes
    over the data volume and the node's network interface (its fixed private address and the
    Elastic IP), and counts only once Restate serves on it.
    """

    def __init__(self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, settings: DeploymentSettings) -> None:
        super().__init__(scope, construct_id)
        subnet = vpc.public_subnets[0]

        self.log_group = node_log_group(self, settings)
        # Separate from the instance, so replacing the instance (a new AMI, say) keeps the journal.
        self.volume = data_volume(self, "Data", subnet)
        self.security_group, self.admin_clients = node_security_groups(
            self, vpc, "Restate node: ingress for callers, admin for registration only"
        )
        self_signed = settings.certificate_arn is None
        interface = node_interface(self, "Interface", subnet, self.security_group)
        self.role = host_role(self, [self.volume], self.log_group, [interface])
        self.ingress_key = ingress_key(self, self.role) if settings.ingress_key else None

        shared = Hosts(vpc, self.security_group, self.role, settings, self.log_group, self.ingress_key)
        self.group = node_group(self, "Node", shared, subnet=subnet, volume=self.volume, interface=interface)
        zone = private_zone(self, vpc, settings)
        self.admin_url = admin_url(self, zone, [interface.address])

        if self_signed:
            admit_callers(self.security_group, settings)
            # A fixed public address on the node's own interface: the ingress URL outlives every instance.
            elastic_ip = ec2.CfnEIP(self, "IngressAddress", domain="vpc")
            elastic_ip.node.add_dependency(vpc.internet_connectivity_established)
            ec2.CfnEIPAssociation(
                self,
                "IngressAddressAssociation",
                allocation_id=elastic_ip.attr_allocation_id,
                network_interface_id=interface.interface_id,
            )
            self.ingress_url = f"https://{elastic_ip.attr_public_ip}"
        else:
            self.ingress_url = ingress_balancer(self, vpc, settings, hosts=self.security_group, groups=[self.group])
        CfnOutput(self, "AdminUrl", value=self.admin_url, description="Reachable only from inside the VPC")
        CfnOutput(
            self,
            "NodeGroupName",
            value=self.group.auto_scaling_group_name,
            description="The node's Auto Scaling group: its instance is the host (aws ssm start-session --target ...)",
        )


def node_log_group(scope: Construct, settings: DeploymentSettings) -> logs.LogGroup:
    """The log group of Restate and nginx (`/restate/restate`, prefixed if asked): one for every node."""
    return logs.LogGroup(
        scope,
        "Logs",
        log_group_name=settings.log_group_name,
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )


def data_volume(scope: Construct, construct_id: str, subnet: ec2.ISubnet) -> ec2.Volume:
    """A node's journal: an encrypted volume in the subnet's zone that the node attaches at boot.

    A snapshot is kept when the volume is deleted, with the stack or otherwise.
    """
    return ec2.Volume(
        scope,
        construct_id,
        availability_zone=subnet.availability_zone,
        size=Size.gibibytes(20),
        volume_type=ec2.EbsDeviceVolumeType.GP3,
        encrypted=True,
        removal_policy=RemovalPolicy.SNAPSHOT,
    )


def node_security_groups(
    scope: Construct, vpc: ec2.IVpc, description: str
) -> tuple[ec2.SecurityGroup, ec2.SecurityGroup]:
    """The nodes' security group, and `admin_clients`: the only group the nodes accept admin calls from."""
    hosts = ec2.SecurityGroup(scope, "Restate", vpc=vpc, description=description)
    admin_clients = ec2.SecurityGroup(
        scope,
        "AdminClients",
        vpc=vpc,
        description="May call the Restate admin API (the registration function)",
        allow_all_outbound=False,
    )
    admin_clients.add_egress_rule(hosts, ec2.Port.tcp(ADMIN_PORT), "Restate admin API")
    hosts.add_ingress_rule(admin_clients, ec2.Port.tcp(ADMIN_PORT), "Restate admin API")
    return hosts, admin_clients


def host_role(
    scope: Construct,
    volumes: Sequence[ec2.IVolume],
    log_group: logs.ILogGroup,
    interfaces: Sequence[NodeInterface],
) -> iam.Role:
    """The nodes' role: take over their data volumes and addresses on this stack's hosts, write the log group,
    send traces, and let operators in through SSM Session Manager (cfn-signal needs no permission)."""
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    stack = Stack.of(scope)
    this_stacks = {"StringEquals": {f"aws:ResourceTag/{HOST_TAG}": stack.stack_name}}
    instances = stack.format_arn(service="ec2", resource="instance", resource_name="*")
    role.add_to_policy(
        iam.PolicyStatement(
            sid="AttachVolumesToThisStacksHost",
            actions=["ec2:AttachVolume"],
            resources=[instances],
            conditions=this_stacks,
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="AttachTheDataVolume",
            actions=["ec2:AttachVolume"],
            resources=[
                stack.format_arn(service="ec2", resource="volume", resource_name=volume.volume_id) for volume in volumes
            ],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="AttachTheNodesInterfaceToThisStacksHost",
            actions=["ec2:AttachNetworkInterface"],
            resources=[instances, *(interface_arn(stack, i) for i in interfaces)],
            conditions=this_stacks,
        )
    )
    # Session Manager: a shell on the host with no SSH port, no key pair and every session logged by AWS.
    role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name("AmazonSSMManagedInstanceCore"))
    acknowledge(
        role,
        "IAM4",
        "AWS's own policy for SSM Session Manager (the agent's messages and sessions): the way in to the "
        "host, instead of SSH and a key pair.",
        findings=["Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore"],
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="WriteRestateLogs",
            actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
            resources=[log_group.log_group_arn],
        )
    )
    role.add_to_policy(
        iam.PolicyStatement(
            sid="SendTraces",
            actions=[
                "xray:PutTraceSegments",
                "xray:PutTelemetryRecords",
                "xray:GetSamplingRules",
                "xray:GetSamplingTargets",
            ],
            resources=["*"],
        )
    )
    acknowledge(
        role,
        "IAM5",
        "X-Ray's trace APIs accept no resource ARNs; attaching the volume and the interface to an instance "
        "is limited by tag to this stack's hosts, whose ids are not known before each is launched.",
        findings=["Resource::*", "Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*"],
    )
    return role


def interface_arn(stack: Stack, interface: NodeInterface) -> str:
    return stack.format_arn(service="ec2", resource="network-interface", resource_name=interface.interface_id)


def ingress_key(scope: Construct, role: iam.IRole) -> secretsmanager.Secret:
    """The key callers send (`Authorization: Bearer <key>`): made by Secrets Manager at deploy, read by the nodes."""
    key = secretsmanager.Secret(
        scope,
        "IngressKey",
        description="The Restate ingress key of the holiday example: Authorization: Bearer <this value>",
        # 48 letters and digits: nothing to escape in a header, a shell or nginx's configuration.
        generate_secret_string=secretsmanager.SecretStringGenerator(exclude_punctuation=True, password_length=48),
        removal_policy=RemovalPolicy.DESTROY,
    )
    key.grant_read(role)
    acknowledge(
        key,
        "SMG4",
        "Rotated on demand with the command in the README (a new value; the host picks it up within a "
        "minute); a rotation function would add a Lambda in the VPC for a key that only callers hold.",
    )
    return key


@dataclass(frozen=True)
class NodeInterface:
    """A node's own network interface: its fixed private address, kept while its instances come and go."""

    interface: ec2.CfnNetworkInterface
    address: str  # the fixed private IPv4 address

    @property
    def interface_id(self) -> str:
        return self.interface.ref


def node_interface(
    scope: Construct, construct_id: str, subnet: ec2.ISubnet, security_group: ec2.ISecurityGroup
) -> NodeInterface:
    """A network interface in `subnet` with a fixed address (the subnet's 228th), which each instance of the
    node attaches at boot as its second interface.

    The address belongs to the interface, not to an instance, so EC2 never hands it to anyone else and a
    node's private names (and a single node's Elastic IP) need no change when its instance is replaced.
    """
    subnet_range = ipaddress.IPv4Network(subnet.ipv4_cidr_block)
    address = str(subnet_range.network_address + NODE_ADDRESS_OFFSET)
    interface = ec2.CfnNetworkInterface(
        scope,
        construct_id,
        subnet_id=subnet.subnet_id,
        private_ip_address=address,
        group_set=[security_group.security_group_id],
        description="A Restate node's fixed address, attached by each of its instances",
    )
    Tags.of(interface).add(HOST_TAG, Stack.of(scope).stack_name)
    return NodeInterface(interface, address)


def node_image(settings: DeploymentSettings) -> ec2.IMachineImage:
    """Amazon Linux 2023 for arm64: the AMI pinned by `amiId`, else the newest one when an instance launches.

    Never a value read at deploy time: that would replace every host whenever AWS publishes a new image.
    """
    if settings.ami_id is not None:
        return PinnedImage(settings.ami_id)
    return ec2.MachineImage.resolve_ssm_parameter_at_launch(AMI_PARAMETER, os=ec2.OperatingSystemType.LINUX)


@jsii.implements(ec2.IMachineImage)
class PinnedImage:
    """One AMI id, whatever the region (an AMI id is regional: the one `amiId` names is the deploying region's)."""

    def __init__(self, ami_id: str) -> None:
        self.ami_id = ami_id

    def get_image(self, scope: Construct) -> ec2.MachineImageConfig:
        return ec2.MachineImageConfig(
            image_id=self.ami_id, os_type=ec2.OperatingSystemType.LINUX, user_data=ec2.UserData.for_linux()
        )


@dataclass(frozen=True)
class Hosts:
    """What every Restate host of the stack shares."""

    vpc: ec2.IVpc
    security_group: ec2.ISecurityGroup
    role: iam.IRole
    settings: DeploymentSettings
    log_group: logs.ILogGroup
    ingress_key: secretsmanager.ISecret | None
    cluster: Cluster | None = None  # None: a single node


def node_group(
    scope: Construct,
    construct_id: str,
    hosts: Hosts,
    *,
    subnet: ec2.ISubnet,
    volume: ec2.IVolume,
    interface: NodeInterface,
    index: int = 0,
) -> autoscaling.AutoScalingGroup:
    """A Restate host: an Auto Scaling group of exactly one instance (arm64, Amazon Linux 2023) in `subnet`,
    node `index` of `hosts.cluster` (or the single node), with its data on `volume` and its address on `interface`.

    - A host that dies (its EC2 status checks fail, or it is terminated) is replaced by the group.
    - A new launch template version (the boot script, the image pin or the instance type changed)
      is rolled out by CloudFormation: the old instance ends first (it holds the data volume), then the new
      one boots; the update waits for its signal and fails, and rolls back, without one.
    - Each instance signals only once Restate serves on its data volume (the boot script's last step), so
      a host that never gets there is never counted as created.

    Tagged as this stack's host, so its role may attach its data volume and network interface.
    """
    settings = hosts.settings
    user_data = ec2.UserData.for_linux()
    template = ec2.LaunchTemplate(
        scope,
        f"{construct_id}LaunchTemplate",
        machine_image=node_image(settings),
        instance_type=ec2.InstanceType(settings.instance_type),
        security_group=hosts.security_group,
        role=hosts.role,
        user_data=user_data,
        require_imdsv2=True,
        detailed_monitoring=True,
        associate_public_ip_address=True,
        block_devices=[
            ec2.BlockDevice(
                device_name="/dev/xvda",
                volume=ec2.BlockDeviceVolume.ebs(8, encrypted=True, volume_type=ec2.EbsDeviceVolumeType.GP3),
            )
        ],
    )
    group = autoscaling.AutoScalingGroup(
        scope,
        construct_id,
        vpc=hosts.vpc,
        vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),
        launch_template=template,
        min_capacity=1,
        max_capacity=1,
        health_checks=autoscaling.HealthChecks.ec2(grace_period=BOOT_GRACE),
        signals=autoscaling.Signals.wait_for_count(1, timeout=SIGNAL_TIMEOUT),
        update_policy=autoscaling.UpdatePolicy.rolling_update(
            max_batch_size=1,
            min_instances_in_service=0,  # the old instance must end first: it holds the data volume
            # What could replace or move the instance behind CloudFormation's back while it rolls.
            suspend_processes=[
                autoscaling.ScalingProcess.HEALTH_CHECK,
                autoscaling.ScalingProcess.REPLACE_UNHEALTHY,
                autoscaling.ScalingProcess.AZ_REBALANCE,
                autoscaling.ScalingProcess.ALARM_NOTIFICATION,
                autoscaling.ScalingProcess.SCHEDULED_ACTIONS,
            ],
        ),
    )
    stack = Stack.of(scope)
    cfn_group = group.node.default_child
    assert isinstance(cfn_group, CfnElement)
    script = boot_script(
        tls="self-signed" if settings.certificate_arn is None else "load-balancer",
        # Its ARN only: the host reads the key itself, so it is in no template and no user data.
        ingress_key_secret=hosts.ingress_key.secret_arn if hosts.ingress_key else None,
        volume_id=volume.volume_id,
        log_group=hosts.log_group.log_group_name,
        interface=interface.interface_id,
        address=interface.address,
        signal=Signal(stack.stack_name, stack.get_logical_id(cfn_group)),
        cluster=hosts.cluster,
        index=index,
    )
    user_data.add_commands(script.removeprefix("#!/bin/bash\n"))  # the user data has its own first line
    group.node.add_dependency(interface.interface)  # its address is taken before any instance launches
    Tags.of(group).add(HOST_TAG, stack.stack_name)
    Tags.of(template).add(HOST_TAG, stack.stack_name)
    acknowledge(
        group,
        "AS3",
        "Each launch and termination, with its cause, is in the group's activity history and CloudTrail, and each "
        "host's boot is in the log group; an SNS topic per deployment of this example would have no subscriber.",
    )
    return group


def private_zone(scope: Construct, vpc: ec2.IVpc, settings: DeploymentSettings) -> route53.PrivateHostedZone:
    """`<prefix->restate-holiday-restate.internal`, a zone that only the VPC resolves: the nodes' stable names."""
    return route53.PrivateHostedZone(
        scope, "AdminZone", zone_name=f"{settings.resource_name('restate')}.internal", vpc=vpc
    )


def private_name(
    scope: Construct, construct_id: str, zone: route53.IHostedZone, name: str, addresses: Sequence[str]
) -> str:
    """`<name>.<zone>`, a record of the nodes' fixed private addresses."""
    route53.ARecord(
        scope,
        construct_id,
        zone=zone,
        record_name=name,
        target=route53.RecordTarget.from_ip_addresses(*addresses),
        ttl=PRIVATE_RECORD_TTL,
    )
    return f"{name}.{zone.zone_name}"


def admin_url(scope: Construct, zone: route53.IHostedZone, addresses: Sequence[str]) -> str:
    """`http://admin.<zone>:9070`, a private DNS name of the nodes' fixed addresses (any of them answers).

    The services stack registers functions at this URL. It is a plain string, not a reference
    to an instance, so no export changes when a host is replaced (CloudFormation refuses to
    change an export while another stack imports it).
    """
    return f"http://{private_name(scope, 'AdminRecord', zone, 'admin', addresses)}:{ADMIN_PORT}"


def ingress_balancer(
    scope: Construct,
    vpc: ec2.IVpc,
    settings: DeploymentSettings,
    *,
    hosts: ec2.SecurityGroup,
    groups: Sequence[autoscaling.AutoScalingGroup],
) -> str:
    """A network load balancer over the ingress of the nodes' `groups`, in the public subnets; returns the ingress URL.

    Each group registers its current instance as a target, so a replaced host is in the rotation once healthy.

    With the ACM certificate of `settings` it ends TLS (1.2 or 1.3) and passes plain HTTP to nginx on
    each host; without one it passes TLS through to nginx on 443, which ends it with the host's own
    self-signed certificate. Over several nodes it spreads calls across zones.
    """
    at_balancer = settings.certificate_arn is not None
    target_port = BALANCER_TARGET_PORT if at_balancer else HTTPS_PORT
    balancer_group = ec2.SecurityGroup(
        scope, "IngressBalancer", vpc=vpc, description="Load balancer of the Restate ingress: HTTPS from callers"
    )
    admit_callers(balancer_group, settings)
    hosts.add_ingress_rule(balancer_group, ec2.Port.tcp(target_port), "Restate ingress (nginx) from the load balancer")
    # Not "Ingress", the id of earlier versions' balancer: that one was made without a security group, and
    # AWS cannot add one to it later. A new id makes CloudFormation replace it (its DNS name changes).
    nlb = elbv2.NetworkLoadBalancer(
        scope,
        "Balancer",
        vpc=vpc,
        internet_facing=True,
        vpc_subnets=ec2.SubnetSelection(subnets=vpc.public_subnets),
        security_groups=[balancer_group],
        cross_zone_enabled=True if len(groups) > 1 else None,
    )
    if settings.certificate_arn is not None:
        listener = nlb.add_listener(
            "Https",
            port=HTTPS_PORT,
            protocol=elbv2.Protocol.TLS,
            certificates=[elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
        )
    else:
        listener = nlb.add_listener("Https", port=HTTPS_PORT, protocol=elbv2.Protocol.TCP)
    listener.add_targets(
        "Restate",
        port=target_port,
        protocol=elbv2.Protocol.TCP,
        targets=list(groups),
        preserve_client_ip=False,
        # A group waits this long after taking an instance out of the rotation before it ends it. The
        # default (300 s) would add five minutes to every node's replacement, and with one node five
        # minutes of outage while the old host still runs; a trip takes a second, and callers ask again.
        deregistration_delay=DRAIN,
        # Restate's health through nginx (the one path it serves without the key), not just an open port:
        # a node whose restate-server is down leaves the rotation within about 20 s.
        health_check=elbv2.HealthCheck(
            protocol=elbv2.Protocol.HTTP if at_balancer else elbv2.Protocol.HTTPS,
            path=HEALTH_PATH,
            port=str(target_port),
            interval=Duration.seconds(10),
            timeout=Duration.seconds(5),
            healthy_threshold_count=2,
            unhealthy_threshold_count=2,
        ),
    )
    acknowledge(
        nlb,
        "ELB2",
        "Access logs would need a bucket per deployment of this example; "
        "Restate's own log in CloudWatch records every ingress request.",
    )
    CfnOutput(
        scope,
        "LoadBalancerDnsName",
        value=nlb.load_balancer_dns_name,
        description="Point the DNS name of the certificate here (a CNAME or an alias record)"
        if at_balancer
        else "The load balancer in front of the nodes' ingress",
    )
    if settings.domain_name is None:
        return f"https://{nlb.load_balancer_dns_name}"
    if settings.hosted_zone_id is not None:
        route53.CfnRecordSet(
            scope,
            "IngressRecord",
            hosted_zone_id=settings.hosted_zone_id,
            name=settings.domain_name,
            type="A",
            alias_target=route53.CfnRecordSet.AliasTargetProperty(
                dns_name=nlb.load_balancer_dns_name,
                hosted_zone_id=nlb.load_balancer_canonical_hosted_zone_id,
            ),
        )
    return f"https://{settings.domain_name}"


def admit_callers(group: ec2.SecurityGroup, settings: DeploymentSettings) -> None:
    """HTTPS on 443 from each range of `ingressCidrs`: by default from anywhere, the key still required."""
    for cidr in settings.ingress_cidrs:
        group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(HTTPS_PORT), "Restate ingress (TLS)")
    if ANYWHERE in settings.ingress_cidrs:
        why = "callers reach it with curl over HTTPS on 443" + (
            ", and nginx refuses any call without the ingress key" if settings.ingress_key else ""
        )
        acknowledge(group, "EC23", f"The ingress is public by design ({ANYWHERE}, the default of ingressCidrs): {why}.")
