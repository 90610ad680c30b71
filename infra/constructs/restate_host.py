"""A single self-hosted Restate node on EC2, with its data on a volume that outlives the instance."""

from __future__ import annotations

from pathlib import Path
from string import Template

from aws_cdk import CfnOutput, RemovalPolicy, Size, Stack, Tags
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_elasticloadbalancingv2_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.nag import acknowledge

BOOTSTRAP = Path(__file__).resolve().parents[1] / "host" / "bootstrap.sh"
RESTATE_IMAGE = "docker.io/restatedev/restate:1.7.12"
OTEL_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.43.3"
NGINX_IMAGE = "public.ecr.aws/nginx/nginx:1.27"
INGRESS_PORT, ADMIN_PORT, HTTPS_PORT = 8080, 9070, 443
HOST_TAG = "restate-holiday:host"


class RestateHost(Construct):
    """One EC2 instance running restate-server, reachable as described on each port.

    - ingress: HTTPS on 443 from anywhere, through nginx with a self-signed
      certificate on the host, or through a network load balancer with the ACM
      certificate given (then 8080 is open to the VPC only, for the balancer);
    - admin (9070): only from `admin_clients`, a security group for the
      registration function inside the VPC; never from the internet;
    - logs to the CloudWatch log group `log_group_name`, traces to X-Ray.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        vpc: ec2.IVpc,
        log_group_name: str,
        certificate_arn: str | None,
    ) -> None:
        super().__init__(scope, construct_id)
        subnet = vpc.public_subnets[0]

        self.log_group = logs.LogGroup(
            self,
            "Logs",
            log_group_name=log_group_name,
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

        self_signed = certificate_arn is None
        script = Template(BOOTSTRAP.read_text()).safe_substitute(
            VOLUME_ID=self.volume.volume_id,
            LOG_GROUP=self.log_group.log_group_name,
            RESTATE_IMAGE=RESTATE_IMAGE,
            OTEL_IMAGE=OTEL_IMAGE,
            NGINX_IMAGE=NGINX_IMAGE,
            SELF_SIGNED_TLS="true" if self_signed else "false",
        )
        user_data = ec2.UserData.for_linux()
        user_data.add_commands(script)
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
        self.admin_url = f"http://{self.instance.instance_private_ip}:{ADMIN_PORT}"

        if self_signed:
            self.security_group.add_ingress_rule(ec2.Peer.any_ipv4(), ec2.Port.tcp(HTTPS_PORT), "Restate ingress (TLS)")
            self.ingress_url = f"https://{self.instance.instance_public_dns_name}"
        else:
            assert certificate_arn is not None
            self.ingress_url = self._load_balancer(vpc, certificate_arn)

        acknowledge(
            self.instance,
            "EC29",
            "A single Restate node by design; termination protection would block CloudFormation from "
            "replacing it, and its data lives on a separate volume that survives replacement.",
        )
        acknowledge(
            self.security_group,
            "EC23",
            "The ingress is public by design: callers reach it with curl over HTTPS on 443.",
        )
        CfnOutput(self, "AdminUrl", value=self.admin_url, description="Reachable only from inside the VPC")

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

    def _load_balancer(self, vpc: ec2.IVpc, certificate_arn: str) -> str:
        """TLS with the ACM certificate at a network load balancer; the host serves plain HTTP on 8080."""
        self.security_group.add_ingress_rule(
            ec2.Peer.ipv4(vpc.vpc_cidr_block), ec2.Port.tcp(INGRESS_PORT), "Restate ingress from the load balancer"
        )
        nlb = elbv2.NetworkLoadBalancer(
            self, "Ingress", vpc=vpc, internet_facing=True, vpc_subnets=ec2.SubnetSelection(subnets=vpc.public_subnets)
        )
        listener = nlb.add_listener(
            "Https",
            port=HTTPS_PORT,
            protocol=elbv2.Protocol.TLS,
            certificates=[elbv2.ListenerCertificate.from_arn(certificate_arn)],
        )
        listener.add_targets(
            "Restate",
            port=INGRESS_PORT,
            protocol=elbv2.Protocol.TCP,
            targets=[targets.InstanceTarget(self.instance, INGRESS_PORT)],
            preserve_client_ip=False,
        )
        acknowledge(
            nlb,
            "ELB2",
            "Access logs would need a bucket per deployment of this example; "
            "Restate's own log in CloudWatch records every ingress request.",
        )
        return f"https://{nlb.load_balancer_dns_name}"
