"""The local tools around the holiday services: never shipped to Lambda.

The `holiday` command and what it runs: the local stack (moto as the AWS stand-in,
restate-server, the services or a local Lambda runtime), the audit, chaos and the
benchmark with its null saga, the fault proxy, and the packaging of the Lambda
assets. The runtime package, `holiday`, never imports anything from here.
"""
