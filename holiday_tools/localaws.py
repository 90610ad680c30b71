"""The local stack's AWS stand-in: moto's DynamoDB, SNS and STS over HTTP, served by granian.

`python -m holiday_tools.localaws --port 4566` starts it. It is moto in server mode,
as `moto_server` runs it, on another HTTP server: moto's own (werkzeug) closes
the connection after every request and spends about a quarter of moto's CPU on
HTTP, which made the stand-in, not the saga, the slowest part of a trip. granian
keeps connections alive and parses HTTP in Rust. moto's state lives in memory,
so granian runs one worker process; its threads share that state.
"""

from __future__ import annotations

import argparse
import os

from granian.constants import Interfaces
from granian.log import LogLevels
from granian.server import Server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from holiday_tools.processes import exit_with_parent

# granian imports this module again in its worker process: that worker must not
# outlive the granian process that started it, even when that one is SIGKILLed.
exit_with_parent()

app = DomainDispatcherApplication(create_backend_app)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    # moto builds some URLs it hands out (SNS subscriptions, SQS queues) from this.
    os.environ["MOTO_PORT"] = str(args.port)
    Server(
        "holiday_tools.localaws:app",
        address=args.host,
        port=args.port,
        interface=Interfaces.WSGI,
        # moto is CPU-bound and holds the GIL: a few threads only overlap the I/O.
        blocking_threads=4,
        log_level=LogLevels.error,
    ).serve()


if __name__ == "__main__":
    main()
