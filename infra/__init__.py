"""The CDK app that deploys holiday to AWS."""
