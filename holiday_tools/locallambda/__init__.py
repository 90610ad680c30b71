"""A local stand-in for AWS Lambda, so the Lambda code path runs on a laptop and in tests."""
