"""Registers Lambda function versions with Restate, as a CloudFormation custom resource."""
