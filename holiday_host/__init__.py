"""The self-hosted Restate node's boot script and configuration files, rendered in one place.

The CDK app (infra/) renders them for the EC2 hosts, and `holiday dev --nodes 3` for the local cluster's
nodes, so the two run with the same configuration. Standard library only: neither side's dependencies
(aws_cdk for the one, the local tools for the other) are needed to render a host.
"""
