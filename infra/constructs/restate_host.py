"""A single self-hosted Restate node on EC2, with its data on a volume that outlives the instance.

The functions below it build the parts that a node of a cluster (`restate_cluster.py`) has too:
its log group, data volume, security groups, role, instance, ingress key, private DNS names and the
load balancer in front of the ingress. Each takes the construct to build in, so the resources of
the single node keep their logical ids.
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Size, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.host.config import ADMIN_PORT, BALANCER_TARGET_PORT, HEALTH_PATH, HTTPS_PORT, boot_script
from infra.nag import acknowledge
from infra.settings import ANYWHERE, DeploymentSettings

HOST_TAG = "restate-holiday:host"
# Resolvers cache the private names (admin, node-N) this long; a replaced instance is found again within it.
PRIVATE_RECORD_TTL = Duration.seconds(30)


class RestateHost(Construct):
    """One EC2 instance running restate-server, reachable as described on each port.

    - ingress: HTTPS on 443 from the ranges of `ingressCidrs` (by default anywhere), at a
      fixed Elastic IP through nginx with a self-signed certificate on the host, or through
      a network load balancer with the ACM certificate given (which passes plain HTTP to
      nginx on the host). Either way nginx refuses, with 401, any call without the ingress
      key: a generated secret (`ingress_key`) that only the host's role may read;
    - admin (9070): only from `admin_clients`, a security group for the registration
      function inside the VPC, never from the internet; at a private DNS name that
      follows the instance when it is replaced;
    - logs to the CloudWatch log group of `settings`, traces to X-Ray.

    Any change of the boot script, the configuration it writes or the images it runs
    replaces the instance (cloud-init would not run a changed script again); the
    replacement takes over the data volume, the admin name and the ingress address.
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
        self.role = host_role(self, [self.volume], self.log_group)
        self.ingress_key = ingress_key(self, self.role) if settings.ingress_key else None

        self_signed = settings.certificate_arn is None
        script = boot_script(
            tls="self-signed" if self_signed else "load-balancer",
            # Its ARN only: the host reads the key itself, so it is in no template and no user data.
            ingress_key_secret=self.ingress_key.secret_arn if self.ingress_key else None,
            volume_id=self.volume.volume_id,
            log_group=self.log_group.log_group_name,
        )
        self.instance = node_instance(
            self, "Instance", vpc=vpc, subnet=subnet, security_group=self.security_group, role=self.role, script=script
        )
        zone = private_zone(self, vpc, settings)
        self.admin_url = admin_url(self, zone, [self.instance])

        if self_signed:
            admit_callers(self.security_group, settings)
            # A fixed public address: the ingress URL outlives a replaced instance.
            address = ec2.CfnEIP(self, "IngressAddress", domain="vpc", instance_id=self.instance.instance_id)
            address.node.add_dependency(vpc.internet_connectivity_established)
            self.ingress_url = f"https://{address.attr_public_ip}"
        else:
            self.ingress_url = ingress_balancer(
                self, vpc, settings, hosts=self.security_group, instances=[self.instance]
            )

        acknowledge(
            self.instance,
            "EC29",
            "A single Restate node by design; termination protection would block CloudFormation from "
            "replacing it, and its data lives on a separate volume that survives replacement.",
        )
        CfnOutput(self, "AdminUrl", value=self.admin_url, description="Reachable only from inside the VPC")


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


def host_role(scope: Construct, volumes: Sequence[ec2.IVolume], log_group: logs.ILogGroup) -> iam.Role:
    """The nodes' role: attach their data volumes to this stack's hosts, write the log group, send traces."""
    role = iam.Role(scope, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
    stack = Stack.of(scope)
    role.add_to_policy(
        iam.PolicyStatement(
            sid="AttachVolumesToThisStacksHost",
            actions=["ec2:AttachVolume"],
            resources=[stack.format_arn(service="ec2", resource="instance", resource_name="*")],
            conditions={"StringEquals": {f"aws:ResourceTag/{HOST_TAG}": stack.stack_name}},
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
        "X-Ray's trace APIs accept no resource ARNs; attaching the volume to an instance "
        "is limited by tag to this stack's host, whose id is not known before it exists.",
        findings=["Resource::*", "Resource::arn:<AWS::Partition>:ec2:<AWS::Region>:<AWS::AccountId>:instance/*"],
    )
    return role


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


def node_instance(
    scope: Construct,
    construct_id: str,
    *,
    vpc: ec2.IVpc,
    subnet: ec2.ISubnet,
    security_group: ec2.ISecurityGroup,
    role: iam.IRole,
    script: str,
) -> ec2.Instance:
    """A Restate host (arm64, Amazon Linux 2023) in `subnet`, booted by `script` and replaced when it changes.

    Tagged as this stack's host, so its role may attach its data volume to it.
    """
    user_data = ec2.UserData.for_linux()
    user_data.add_commands(script)
    instance = ec2.Instance(
        scope,
        construct_id,
        vpc=vpc,
        vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),
        instance_type=ec2.InstanceType("t4g.small"),
        machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=ec2.AmazonLinuxCpuType.ARM_64),
        security_group=security_group,
        role=role,
        user_data=user_data,
        user_data_causes_replacement=True,
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
    Tags.of(instance).add(HOST_TAG, Stack.of(scope).stack_name)
    return instance


def private_zone(scope: Construct, vpc: ec2.IVpc, settings: DeploymentSettings) -> route53.PrivateHostedZone:
    """`<prefix->restate-holiday-restate.internal`, a zone that only the VPC resolves: the nodes' stable names."""
    return route53.PrivateHostedZone(
        scope, "AdminZone", zone_name=f"{settings.resource_name('restate')}.internal", vpc=vpc
    )


def private_name(
    scope: Construct, construct_id: str, zone: route53.IHostedZone, name: str, instances: Sequence[ec2.Instance]
) -> str:
    """`<name>.<zone>`, a record of the instances' private addresses that follows a replaced instance."""
    route53.ARecord(
        scope,
        construct_id,
        zone=zone,
        record_name=name,
        target=route53.RecordTarget.from_ip_addresses(*(instance.instance_private_ip for instance in instances)),
        ttl=PRIVATE_RECORD_TTL,
    )
    return f"{name}.{zone.zone_name}"


def admin_url(scope: Construct, zone: route53.IHostedZone, instances: Sequence[ec2.Instance]) -> str:
    """`http://admin.<zone>:9070`, a private DNS name whose record follows the instances (any of them answers).

    The services stack registers functions at this URL. It is a plain string, not a
    reference to an instance, so a replaced instance (whose private IP changes) needs
    no change to any export, which CloudFormation would refuse while it is imported.
    """
    return f"http://{private_name(scope, 'AdminRecord', zone, 'admin', instances)}:{ADMIN_PORT}"


def ingress_balancer(
    scope: Construct,
    vpc: ec2.IVpc,
    settings: DeploymentSettings,
    *,
    hosts: ec2.SecurityGroup,
    instances: Sequence[ec2.Instance],
) -> str:
    """A network load balancer over the ingress of `instances`, in the public subnets; returns the ingress URL.

    With the ACM certificate of `settings` it ends TLS (1.2 or 1.3) and passes plain HTTP to nginx on
    each host; without one it passes TLS through to nginx on 443, which ends it with the host's own
    self-signed certificate. Over several instances it spreads calls across zones.
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
        cross_zone_enabled=True if len(instances) > 1 else None,
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
        targets=[targets.InstanceTarget(instance, target_port) for instance in instances],
        preserve_client_ip=False,
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
