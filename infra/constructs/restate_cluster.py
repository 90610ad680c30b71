"""A self-hosted Restate cluster on EC2: three nodes, one per availability zone, that replicate each other."""

from __future__ import annotations

from aws_cdk import CfnOutput, Duration, RemovalPolicy
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from constructs import Construct

from holiday_host.config import Cluster, NodeLayout
from infra.constructs.restate_host import (
    Hosts,
    admin_url,
    data_volume,
    host_role,
    ingress_balancer,
    ingress_key,
    node_group,
    node_interface,
    node_log_group,
    node_security_groups,
    private_name,
    private_zone,
)
from infra.nag import acknowledge, arn_finding
from infra.settings import DeploymentSettings

FABRIC_PORT = NodeLayout().fabric_port
SNAPSHOT_PREFIX = "snapshots"


class RestateCluster(Construct):
    """Three EC2 instances running restate-server as one replicated cluster, reachable as described on each port.

    - ingress: HTTPS on 443 from the ranges of `ingressCidrs`, at a network load balancer over
      the three nodes. With the ACM certificate given it ends TLS and passes plain HTTP to nginx
      on each node; without one it passes TLS through to nginx, which ends it with the node's own
      self-signed certificate. Either way nginx refuses any call without the ingress key;
    - admin (9070): only from `admin_clients`, at `admin.<zone>`, a private name of all three nodes;
    - fabric (5122): only between the nodes, which find each other at `node-1.<zone>` to
      `node-3.<zone>`: private names of the nodes' fixed addresses;
    - partition snapshots: in `snapshots`, a bucket that only the nodes' role may read and write,
      reached through a gateway endpoint in the VPC;
    - logs to the CloudWatch log group of `settings` (streams `restate-2`, `nginx-2` for node 2),
      traces to X-Ray.

    Each node is an Auto Scaling group of one (see `node_group`) and keeps its data on its own volume in
    its zone, which a replacement instance takes over with the node's fixed private address. The groups
    depend on each other in a chain, so CloudFormation replaces the nodes one at a time.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, vpc: ec2.IVpc, settings: DeploymentSettings, nodes: int = 3
    ) -> None:
        super().__init__(scope, construct_id)
        subnets = vpc.public_subnets
        if len(subnets) != nodes:
            raise ValueError(f"a cluster of {nodes} nodes wants a public subnet per node, not {len(subnets)}")

        self.log_group = node_log_group(self, settings)
        volumes = [data_volume(self, f"Data{n}", subnet) for n, subnet in enumerate(subnets, start=1)]
        self.security_group, self.admin_clients = node_security_groups(
            self, vpc, "Restate cluster nodes: ingress from the load balancer, admin for registration, fabric between"
        )
        self.security_group.add_ingress_rule(
            self.security_group, ec2.Port.tcp(FABRIC_PORT), "Restate fabric between the cluster nodes"
        )
        interfaces = [
            node_interface(self, f"Interface{n}", subnet, self.security_group) for n, subnet in enumerate(subnets, 1)
        ]
        self.role = host_role(self, volumes, self.log_group, interfaces)
        self.snapshots = self._snapshots(vpc)
        self.ingress_key = ingress_key(self, self.role) if settings.ingress_key else None

        zone = private_zone(self, vpc, settings)
        peers = tuple(f"http://node-{n}.{zone.zone_name}:{FABRIC_PORT}" for n in range(1, nodes + 1))
        cluster = Cluster(peers=peers, snapshots=f"s3://{self.snapshots.bucket_name}/{SNAPSHOT_PREFIX}")
        self.groups: list[autoscaling.AutoScalingGroup] = []
        shared = Hosts(vpc, self.security_group, self.role, settings, self.log_group, self.ingress_key, cluster)
        for index, (subnet, volume, interface) in enumerate(zip(subnets, volumes, interfaces, strict=True)):
            group = node_group(
                self, f"Node{index + 1}", shared, subnet=subnet, volume=volume, interface=interface, index=index
            )
            if self.groups:
                # One node at a time: CloudFormation updates (and creates) a group only once the one it depends
                # on is done, so a change that replaces the hosts replaces node 1, waits for its signal (alive,
                # every partition replicated again), then node 2, then node 3. Two are always serving.
                group.node.add_dependency(self.groups[-1])
            private_name(self, f"NodeRecord{index + 1}", zone, f"node-{index + 1}", [interface.address])
            CfnOutput(
                self,
                f"Node{index + 1}GroupName",
                value=group.auto_scaling_group_name,
                description=f"Node {index + 1}'s Auto Scaling group: its instance is the host",
            )
            self.groups.append(group)
        self.admin_url = admin_url(self, zone, [interface.address for interface in interfaces])
        self.ingress_url = ingress_balancer(self, vpc, settings, hosts=self.security_group, groups=self.groups)
        CfnOutput(self, "AdminUrl", value=self.admin_url, description="Reachable only from inside the VPC")

    def _snapshots(self, vpc: ec2.IVpc) -> s3.Bucket:
        """The partitions' snapshots, from which a node that lost its data catches up; kept when the stack goes."""
        bucket = s3.Bucket(
            self,
            "Snapshots",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(abort_incomplete_multipart_upload_after=Duration.days(1))],
        )
        objects = bucket.arn_for_objects(f"{SNAPSHOT_PREFIX}/*")
        self.role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadAndWriteSnapshots",
                actions=[
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                resources=[objects],
            )
        )
        # Without it S3 answers a missing object (no snapshot yet) with 403 rather than 404.
        self.role.add_to_policy(
            iam.PolicyStatement(sid="ListSnapshots", actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
        )
        acknowledge(
            self.role,
            "IAM5",
            "Restate names each snapshot's objects at run time, all under the bucket's snapshots/ prefix.",
            findings=[arn_finding(bucket, f"/{SNAPSHOT_PREFIX}/*")],
        )
        acknowledge(
            bucket,
            "S1",
            "Only the nodes' role may use the bucket, and access logs would need a second bucket per "
            "deployment of this example; CloudTrail records the bucket's management events.",
        )
        CfnOutput(
            self,
            "SnapshotBucketName",
            value=bucket.bucket_name,
            description="Restate's partition snapshots; kept when the stack is deleted (empty and delete it by hand)",
        )
        # Snapshots go to S3 inside the VPC, not over the internet.
        vpc.add_gateway_endpoint(
            "S3", service=ec2.GatewayVpcEndpointAwsService.S3, subnets=[ec2.SubnetSelection(subnets=vpc.public_subnets)]
        )
        return bucket
