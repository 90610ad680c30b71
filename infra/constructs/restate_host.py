"""A single self-hosted Restate node on EC2, with its data on a volume that outlives the instance."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy, Size, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_route53 as route53
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.host.config import ADMIN_PORT, BALANCER_TARGET_PORT, HTTPS_PORT, boot_script
from infra.nag import acknowledge
from infra.settings import ANYWHERE, DeploymentSettings

HOST_TAG = "restate-holiday:host"
# Resolvers cache the admin name this long; a replaced instance is found again within it.
ADMIN_RECORD_TTL = Duration.seconds(30)


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

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=settings.log_group_name,
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # Separate from the instance, so replacing the instance (a new AMI, say) keeps the journal.
        self.volume = ec2.Volume(
            self,
            "Data",
            availability_zone=subnet.availability_zone,
            size=Size.gibibytes(20),
            volume_type=ec2.EbsDeviceVolumeType.GP3,
            encrypted=True,
            removal_policy=RemovalPolicy.SNAPSHOT,
        )

        self.security_group = ec2.SecurityGroup(
            self, "Restate", vpc=vpc, description="Restate node: ingress for callers, admin for registration only"
        )
        self.admin_clients = ec2.SecurityGroup(
            self,
            "AdminClients",
            vpc=vpc,
            description="May call the Restate admin API (the registration function)",
            allow_all_outbound=False,
        )
        self.admin_clients.add_egress_rule(self.security_group, ec2.Port.tcp(ADMIN_PORT), "Restate admin API")
        self.security_group.add_ingress_rule(self.admin_clients, ec2.Port.tcp(ADMIN_PORT), "Restate admin API")

        role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"))
        self.role = role
        self._grant_host_permissions(role)
        self.ingress_key = self._ingress_key(role) if settings.ingress_key else None

        self_signed = settings.certificate_arn is None
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(
            boot_script(
                tls="self-signed" if self_signed else "load-balancer",
                # Its ARN only: the host reads the key itself, so it is in no template and no user data.
                ingress_key_secret=self.ingress_key.secret_arn if self.ingress_key else None,
                volume_id=self.volume.volume_id,
                log_group=self.log_group.log_group_name,
            )
        )
        self.instance = ec2.Instance(
            self,
            "Instance",
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnets=[subnet]),
            instance_type=ec2.InstanceType("t4g.small"),
            machine_image=ec2.MachineImage.latest_amazon_linux2023(cpu_type=ec2.AmazonLinuxCpuType.ARM_64),
            security_group=self.security_group,
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
        Tags.of(self.instance).add(HOST_TAG, Stack.of(self).stack_name)
        self.admin_url = self._admin_name(vpc, settings)

        if self_signed:
            _admit_callers(self.security_group, settings)
            # A fixed public address: the ingress URL outlives a replaced instance.
            address = ec2.CfnEIP(self, "IngressAddress", domain="vpc", instance_id=self.instance.instance_id)
            address.node.add_dependency(vpc.internet_connectivity_established)
            self.ingress_url = f"https://{address.attr_public_ip}"
        else:
            self.ingress_url = self._load_balancer(vpc, settings)

        acknowledge(
            self.instance,
            "EC29",
            "A single Restate node by design; termination protection would block CloudFormation from "
            "replacing it, and its data lives on a separate volume that survives replacement.",
        )
        CfnOutput(self, "AdminUrl", value=self.admin_url, description="Reachable only from inside the VPC")

    def _ingress_key(self, role: iam.IRole) -> secretsmanager.Secret:
        """The key callers send (`Authorization: Bearer <key>`): made by Secrets Manager at deploy, read by the host."""
        key = secretsmanager.Secret(
            self,
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

    def _admin_name(self, vpc: ec2.IVpc, settings: DeploymentSettings) -> str:
        """`http://admin.<zone>:9070`, a private DNS name whose record follows the instance.

        The services stack registers functions at this URL. It is a plain string, not a
        reference to the instance, so a replaced instance (whose private IP changes) needs
        no change to any export, which CloudFormation would refuse while it is imported.
        """
        zone = route53.PrivateHostedZone(
            self, "AdminZone", zone_name=f"{settings.resource_name('restate')}.internal", vpc=vpc
        )
        route53.ARecord(
            self,
            "AdminRecord",
            zone=zone,
            record_name="admin",
            target=route53.RecordTarget.from_ip_addresses(self.instance.instance_private_ip),
            ttl=ADMIN_RECORD_TTL,
        )
        return f"http://admin.{zone.zone_name}:{ADMIN_PORT}"

    def _grant_host_permissions(self, role: iam.Role) -> None:
        stack = Stack.of(self)
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
                resources=[stack.format_arn(service="ec2", resource="volume", resource_name=self.volume.volume_id)],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="WriteRestateLogs",
                actions=["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"],
                resources=[self.log_group.log_group_arn],
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

    def _load_balancer(self, vpc: ec2.IVpc, settings: DeploymentSettings) -> str:
        """TLS (1.2 or 1.3) with the ACM certificate at a network load balancer, which passes plain HTTP to nginx."""
        assert settings.certificate_arn is not None
        balancer_group = ec2.SecurityGroup(
            self, "IngressBalancer", vpc=vpc, description="Load balancer of the Restate ingress: HTTPS from callers"
        )
        _admit_callers(balancer_group, settings)
        self.security_group.add_ingress_rule(
            balancer_group, ec2.Port.tcp(BALANCER_TARGET_PORT), "Restate ingress (nginx) from the load balancer"
        )
        # Not "Ingress", the id of earlier versions' balancer: that one was made without a security group, and
        # AWS cannot add one to it later. A new id makes CloudFormation replace it (its DNS name changes).
        nlb = elbv2.NetworkLoadBalancer(
            self,
            "Balancer",
            vpc=vpc,
            internet_facing=True,
            vpc_subnets=ec2.SubnetSelection(subnets=vpc.public_subnets),
            security_groups=[balancer_group],
        )
        listener = nlb.add_listener(
            "Https",
            port=HTTPS_PORT,
            protocol=elbv2.Protocol.TLS,
            certificates=[elbv2.ListenerCertificate.from_arn(settings.certificate_arn)],
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
        )
        listener.add_targets(
            "Restate",
            port=BALANCER_TARGET_PORT,
            protocol=elbv2.Protocol.TCP,
            targets=[targets.InstanceTarget(self.instance, BALANCER_TARGET_PORT)],
            preserve_client_ip=False,
        )
        acknowledge(
            nlb,
            "ELB2",
            "Access logs would need a bucket per deployment of this example; "
            "Restate's own log in CloudWatch records every ingress request.",
        )
        CfnOutput(
            self,
            "LoadBalancerDnsName",
            value=nlb.load_balancer_dns_name,
            description="Point the DNS name of the certificate here (a CNAME or an alias record)",
        )
        if settings.domain_name is None:
            return f"https://{nlb.load_balancer_dns_name}"
        if settings.hosted_zone_id is not None:
            route53.CfnRecordSet(
                self,
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


def _admit_callers(group: ec2.SecurityGroup, settings: DeploymentSettings) -> None:
    """HTTPS on 443 from each range of `ingressCidrs`: by default from anywhere, the key still required."""
    for cidr in settings.ingress_cidrs:
        group.add_ingress_rule(ec2.Peer.ipv4(cidr), ec2.Port.tcp(HTTPS_PORT), "Restate ingress (TLS)")
    if ANYWHERE in settings.ingress_cidrs:
        why = "callers reach it with curl over HTTPS on 443" + (
            ", and nginx refuses any call without the ingress key" if settings.ingress_key else ""
        )
        acknowledge(group, "EC23", f"The ingress is public by design ({ANYWHERE}, the default of ingressCidrs): {why}.")
